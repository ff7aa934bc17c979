"""The ``agentcron`` command line against a real SQLite file: agents, triggers, runs, fire,
db upgrade and serve's settings. Bad input is in ``test_cli_errors.py``."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from agentcron.cli import app
from agentcron.engine.settings import NodeSettings
from agentcron.store import Store
from tests.conftest import Cli

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def ok(cli: Cli) -> Callable[..., str]:
    """Run a command that must succeed; return its stdout."""

    def run(*args: str) -> str:
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
        assert result.stderr == ""
        return result.stdout

    return run




@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- agents -------------------------------------------------------------------------------


def test_agents_add_list_rm_for_the_three_kinds(ok: Callable[..., str],
                                               js: Callable[..., Any], cli: Cli) -> None:
    assert (ok("agents", "add", "py", "--python", "agentcron.examples:hello")
            == "agent py saved (python)\n")
    ok("agents", "add", "sh", "--command", "echo 'hello world'")
    ok("agents", "add", "web", "--http", "https://agents.example/run", "--secret", SECRET)

    agents = {a["name"]: a for a in js("agents", "list")}
    assert sorted(agents) == ["py", "sh", "web"]
    assert agents["py"]["kind"] == "python"
    assert agents["py"]["config"] == {"target": "agentcron.examples:hello"}
    assert agents["sh"]["kind"] == "command"
    assert agents["sh"]["config"]["argv"] == ["echo", "hello world"]
    assert agents["web"]["kind"] == "http"
    assert agents["web"]["config"]["url"] == "https://agents.example/run"
    assert agents["web"]["config"]["secret"] == "********"  # never printed
    assert _utc(agents["py"]["created_at"]).tzinfo is not None

    table = ok("agents", "list")
    assert SECRET not in table
    for text in ("py", "agentcron.examples:hello", "echo 'hello world'", "https://agents.example/run"):
        assert text in table

    assert ok("agents", "rm", "sh", "--yes") == (
        "agent sh removed: 0 triggers deleted, 0 queued runs cancelled\n")
    assert sorted(a["name"] for a in js("agents", "list")) == ["py", "web"]
    again = cli("agents", "rm", "sh", "--yes")
    assert again.exit_code == 1
    assert again.stderr == "error: agent 'sh' not found\n"


def test_agents_add_takes_every_option(js: Callable[..., Any]) -> None:
    agent = js("agents", "add", "slow", "--python", "agentcron.examples:noop", "--max-concurrency", "4",
               "--timeout", "30s", "--max-attempts", "5", "--zombie-timeout", "90s",
               "--retry-backoff", "1m", "--description", "nightly [report]")
    assert agent["name"] == "slow"
    assert agent["max_concurrency"] == 4
    assert agent["timeout_s"] == 30.0
    assert agent["max_attempts"] == 5
    assert agent["zombie_timeout_s"] == 90.0
    assert agent["retry_backoff_s"] == 60.0
    assert agent["description"] == "nightly [report]"
    assert agent["source"] == "cli"


def test_agents_add_of_an_existing_name_is_refused_without_replace(
        cli: Cli, js: Callable[..., Any], bot: str) -> None:
    before = js("agents", "list")
    result = cli("agents", "add", bot, "--command", "true")
    assert result.exit_code == 1, result.output
    assert "already exists" in result.stderr and "--replace" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert js("agents", "list") == before


def test_agents_add_replace_replaces_an_agent_and_keeps_its_triggers(
        ok: Callable[..., str], js: Callable[..., Any], bot: str) -> None:
    trigger_id = ok("triggers", "add", bot, "--every", "1m").strip()
    ok("agents", "add", bot, "--command", "true", "--max-concurrency", "2", "--replace")
    (agent,) = js("agents", "list")
    assert agent["kind"] == "command"
    assert agent["max_concurrency"] == 2
    assert [t["id"] for t in js("triggers", "list")] == [trigger_id]


def test_removing_an_agent_removes_its_triggers(ok: Callable[..., str],
                                                js: Callable[..., Any], bot: str) -> None:
    ok("triggers", "add", bot, "--every", "1m")
    ok("fire", bot)
    assert ok("agents", "rm", bot, "--yes") == (
        "agent bot removed: 1 trigger deleted, 1 queued run cancelled\n")
    assert js("triggers", "list") == []
    assert [r["status"] for r in js("runs", "list")] == ["cancelled"]


# -- triggers -----------------------------------------------------------------------------


def test_triggers_add_prints_the_id_alone_usable_in_show(
        ok: Callable[..., str], js: Callable[..., Any], bot: str) -> None:
    out = ok("triggers", "add", bot, "--cron", "*/15 * * * *")
    trigger_id = out.strip()
    assert out == trigger_id + "\n"
    assert trigger_id.startswith("tr_") and " " not in trigger_id
    shown = js("triggers", "show", trigger_id)
    assert shown["id"] == trigger_id
    assert shown["kind"] == "cron"
    assert shown["cron"] == "*/15 * * * *"
    assert shown["description"]
    assert trigger_id in ok("triggers", "show", trigger_id)


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["--cron", "0 9 * * MON-FRI", "--tz", "Europe/Berlin"], "cron"),
        (["--every", "30s"], "interval"),
        (["--at", "2099-06-01T09:00:00+02:00"], "once"),
    ],
)
def test_triggers_add_json_shape(js: Callable[..., Any], bot: str, args: list[str],
                                 kind: str) -> None:
    before = datetime.now(UTC)
    added = js("triggers", "add", bot, *args)
    assert sorted(added) == ["id", "next_fire_at"]
    assert added["next_fire_at"].endswith("Z")
    next_fire = _utc(added["next_fire_at"])
    assert next_fire > before
    shown = js("triggers", "show", added["id"])
    assert shown["kind"] == kind
    assert shown["next_fire_at"] == added["next_fire_at"]
    if kind == "once":
        assert next_fire == datetime(2099, 6, 1, 7, 0, tzinfo=UTC)
        assert shown["at"] == "2099-06-01T07:00:00Z"
    if kind == "interval":
        assert shown["every_s"] == 30.0


def test_trigger_show_has_every_field(ok: Callable[..., str], js: Callable[..., Any],
                                      bot: str) -> None:
    trigger_id = ok(
        "triggers", "add", bot, "--cron", "30 8 * * *", "--tz", "America/New_York",
        "--payload", '{"topic": "news", "n": [1, 2]}', "--overlap", "queue",
        "--catchup", "1h", "--catchup-mode", "all", "--jitter", "10s",
        "--start", "2090-01-01T00:00:00Z", "--end", "2095-01-01T00:00:00Z",
        "--name", "morning",
    ).strip()
    shown = js("triggers", "show", trigger_id)
    assert list(shown) == [
        "id", "agent", "name", "kind", "description", "cron", "timezone", "every_s", "at",
        "anchor_at", "start_at", "end_at", "jitter_s", "payload", "payload_truncated",
        "overlap", "catchup_window_s", "catchup_mode", "paused", "paused_reason",
        "pause_after_failures", "consecutive_failures", "broken", "next_fire_at",
        "last_fired_at", "missed_count", "last_missed_at", "skipped_count", "last_skipped_at",
        "created_at", "source", "created_by", "expires_at", "approval", "chain",
    ]
    assert (shown["created_by"], shown["expires_at"], shown["approval"]) == ("cli", None, None)
    assert shown["chain"] == [{"trigger_id": trigger_id, "agent": bot, "created_by": "cli",
                               "run_id": None}]
    assert shown["broken"] is None
    assert shown["payload_truncated"] is False
    assert shown["agent"] == bot
    assert shown["name"] == "morning"
    assert shown["timezone"] == "America/New_York"
    assert shown["payload"] == {"topic": "news", "n": [1, 2]}
    assert shown["overlap"] == "queue"
    assert shown["catchup_window_s"] == 3600.0
    assert shown["catchup_mode"] == "all"
    assert shown["jitter_s"] == 10.0
    assert shown["start_at"] == "2090-01-01T00:00:00Z"
    assert shown["end_at"] == "2095-01-01T00:00:00Z"
    assert shown["paused"] is False
    assert shown["missed_count"] == 0
    assert shown["last_missed_at"] is None
    assert shown["last_fired_at"] is None
    # The first fire is 08:30 New York time on the start date, 13:30 UTC in winter.
    assert shown["next_fire_at"] == "2090-01-01T13:30:00Z"

    text = ok("triggers", "show", trigger_id)
    for expected in (shown["description"], "America/New_York", "queue", "1h (all)",
                     '{"topic": "news", "n": [1, 2]}', "2090-01-01 08:30:00 EST -05:00",
                     "2090-01-01 13:30:00 UTC", "missed", "0 times beyond the catch-up window",
                     "last missed"):
        assert expected in text, expected


def test_trigger_show_counts_fire_times_missed_beyond_the_catchup_window(
        ok: Callable[..., str], js: Callable[..., Any], bot: str, store: Store) -> None:
    trigger_id = ok("triggers", "add", bot, "--every", "1m", "--catchup", "1m").strip()
    first = _utc(js("triggers", "show", trigger_id)["next_fire_at"])
    store.fire_due(now=first + timedelta(hours=1))

    shown = js("triggers", "show", trigger_id)
    assert shown["missed_count"] > 0
    assert shown["last_missed_at"] is not None
    assert shown["last_fired_at"] is not None
    text = ok("triggers", "show", trigger_id)
    assert f"{shown['missed_count']} times beyond the catch-up window" in text
    listed = ok("triggers", "list")
    assert str(shown["missed_count"]) in listed


def test_triggers_next_shows_the_zone_and_utc(ok: Callable[..., str],
                                              js: Callable[..., Any], bot: str) -> None:
    trigger_id = ok("triggers", "add", bot, "--cron", "0 9 * * *", "--tz", "Europe/Berlin"
                    ).strip()
    doc = js("triggers", "next", trigger_id, "-n", "3")
    assert doc["id"] == trigger_id
    assert doc["timezone"] == "Europe/Berlin"
    assert len(doc["times"]) == 3
    berlin = ZoneInfo("Europe/Berlin")
    previous = None
    for item in doc["times"]:
        local = datetime.fromisoformat(item["local"])
        utc = _utc(item["utc"])
        assert item["utc"].endswith("Z")
        assert (local.hour, local.minute) == (9, 0)
        assert local.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
        assert local == utc
        assert utc.astimezone(berlin).hour == 9
        assert utc.hour in (7, 8)
        if previous is not None:
            assert utc > previous
        previous = utc

    text = ok("triggers", "next", trigger_id, "-n", "3")
    assert "Europe/Berlin" in text and "UTC" in text
    rows = [line for line in text.splitlines() if " 09:00:00 CE" in line]
    assert len(rows) == 3
    for row, item in zip(rows, doc["times"], strict=True):
        utc = _utc(item["utc"])
        assert utc.strftime("%Y-%m-%d %H:%M:%S UTC") in row


def test_triggers_next_defaults_to_ten(js: Callable[..., Any], ok: Callable[..., str],
                                       bot: str) -> None:
    trigger_id = ok("triggers", "add", bot, "--every", "1h").strip()
    times = [_utc(t["utc"]) for t in js("triggers", "next", trigger_id)["times"]]
    assert len(times) == 10
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(times))


def test_pause_and_resume(ok: Callable[..., str], js: Callable[..., Any], bot: str) -> None:
    trigger_id = ok("triggers", "add", bot, "--every", "5m").strip()
    assert ok("triggers", "pause", trigger_id) == f"trigger {trigger_id} paused\n"
    shown = js("triggers", "show", trigger_id)
    assert shown["paused"] is True
    assert "(paused)" in ok("triggers", "show", trigger_id)
    (listed,) = js("triggers", "list")
    assert listed["paused"] is True

    resumed = ok("triggers", "resume", trigger_id)
    assert resumed.startswith(f"trigger {trigger_id} resumed; next fire at ")
    shown = js("triggers", "show", trigger_id)
    assert shown["paused"] is False
    assert _utc(shown["next_fire_at"]) > datetime.now(UTC) - timedelta(seconds=1)


def test_triggers_list_filters_by_agent_and_rm(ok: Callable[..., str],
                                               js: Callable[..., Any], cli: Cli,
                                               bot: str) -> None:
    ok("agents", "add", "other", "--command", "true")
    mine = ok("triggers", "add", bot, "--every", "1m").strip()
    theirs = ok("triggers", "add", "other", "--every", "2m").strip()
    assert {t["id"] for t in js("triggers", "list")} == {mine, theirs}
    assert [t["id"] for t in js("triggers", "list", "--agent", "other")] == [theirs]
    table = ok("triggers", "list")
    assert mine in table and theirs in table
    assert "Every 1m" in table or "1m" in table

    assert ok("triggers", "rm", mine) == f"trigger {mine} removed\n"
    assert [t["id"] for t in js("triggers", "list")] == [theirs]
    for command in ("show", "rm", "pause", "resume", "next"):
        result = cli("triggers", command, mine)
        assert result.exit_code == 1, command
        assert result.stderr == f"error: trigger '{mine}' not found\n"
        assert result.stdout == ""


def test_listings_say_when_empty(ok: Callable[..., str], js: Callable[..., Any]) -> None:
    assert ok("agents", "list") == "no agents\n"
    assert ok("triggers", "list") == "no triggers\n"
    assert ok("runs", "list") == "no runs\n"
    assert js("agents", "list") == []
    assert js("triggers", "list") == []
    assert js("runs", "list") == []


# -- runs -----------------------------------------------------------------------------------


def test_fire_then_runs_list_shows_the_queued_run(ok: Callable[..., str],
                                                  js: Callable[..., Any], bot: str) -> None:
    out = ok("fire", bot, "--payload", '{"to": "me"}')
    run_id = out.strip()
    assert out == run_id + "\n"
    (run,) = js("runs", "list")
    assert run["id"] == run_id
    assert run["status"] == "queued"
    assert run["agent"] == bot
    assert run["trigger_id"] is None
    assert run["payload"] == {"to": "me"}
    assert run["scheduled_for"].endswith("Z")
    table = ok("runs", "list")
    assert run_id in table and "queued" in table and "(manual)" in table

    fired = js("fire", bot)
    assert sorted(fired) == ["agent", "id"]
    assert [r["id"] for r in js("runs", "list")] == [fired["id"], run_id]  # newest first


def test_runs_list_filters(ok: Callable[..., str], js: Callable[..., Any], bot: str,
                           store: Store, cli: Cli) -> None:
    ok("agents", "add", "other", "--command", "true")
    trigger_id = ok("triggers", "add", bot, "--every", "1m", "--name", "minutely").strip()
    first = _utc(js("triggers", "show", trigger_id)["next_fire_at"])
    store.fire_due(now=first + timedelta(seconds=1))
    manual = ok("fire", bot).strip()
    other = ok("fire", "other").strip()
    ok("runs", "cancel", other)

    everything = js("runs", "list")
    assert len(everything) == 3
    scheduled = [r["id"] for r in everything if r["trigger_id"] == trigger_id]
    assert len(scheduled) == 1

    assert {r["id"] for r in js("runs", "list", "--agent", bot)} == {manual, *scheduled}
    assert [r["id"] for r in js("runs", "list", "--agent", "other")] == [other]
    assert [r["id"] for r in js("runs", "list", "--trigger", trigger_id)] == scheduled
    assert [r["id"] for r in js("runs", "list", "--trigger", "minutely")] == scheduled
    missing = cli("runs", "list", "--trigger", "hourly")
    assert (missing.exit_code, missing.stderr) == (1, "error: trigger 'hourly' not found\n")
    assert [r["id"] for r in js("runs", "list", "--status", "cancelled")] == [other]
    assert {r["id"] for r in js("runs", "list", "--status", "queued")} == {manual, *scheduled}
    assert js("runs", "list", "--status", "succeeded") == []

    page1 = js("runs", "list", "--limit", "2")
    assert [r["id"] for r in page1] == [r["id"] for r in everything[:2]]
    page2 = js("runs", "list", "--limit", "2", "--before", page1[-1]["id"])
    assert [r["id"] for r in page2] == [everything[2]["id"]]

    table = ok("runs", "list", "--status", "cancelled")
    assert other in table and manual not in table


def test_runs_cancel_then_retry(ok: Callable[..., str], js: Callable[..., Any], cli: Cli,
                                bot: str) -> None:
    run_id = ok("fire", bot).strip()
    assert ok("runs", "cancel", run_id) == f"run {run_id} cancelled (was queued)\n"
    shown = js("runs", "show", run_id)
    assert shown["status"] == "cancelled"
    assert shown["finished_at"] is not None

    again = cli("runs", "cancel", run_id)
    assert again.exit_code == 1
    assert again.stderr.startswith("error: ") and "already cancelled" in again.stderr

    assert ok("runs", "retry", run_id) == f"run {run_id} queued again\n"
    shown = js("runs", "show", run_id)
    assert shown["status"] == "queued"
    assert [e["kind"] for e in shown["events"]] == ["cancelled", "retried"]
    assert all(e["at"].endswith("Z") for e in shown["events"])

    busy = cli("runs", "retry", run_id)
    assert busy.exit_code == 1
    assert "only a finished run can be retried" in busy.stderr


def test_runs_show(ok: Callable[..., str], js: Callable[..., Any], cli: Cli,
                   bot: str) -> None:
    run_id = ok("fire", bot, "--payload", "[1, 2, 3]").strip()
    ok("runs", "cancel", run_id)
    shown = js("runs", "show", run_id)
    assert shown["id"] == run_id
    assert shown["payload"] == [1, 2, 3]
    assert shown["events"][0]["kind"] == "cancelled"
    assert "duration_s" in shown and "cost_usd" in shown and "input_tokens" in shown
    text = ok("runs", "show", run_id)
    assert run_id in text and "cancelled by a user" in text and "[1, 2, 3]" in text

    missing = cli("runs", "show", "nope")
    assert missing.exit_code == 1
    assert missing.stderr == "error: run 'nope' not found\n"


# -- database -------------------------------------------------------------------------------


def test_db_upgrade_prints_the_revisions(ok: Callable[..., str]) -> None:
    first = ok("db", "upgrade")
    assert "upgraded from an empty database to revision " in first
    revision = first.strip().rsplit(" ", 1)[-1]
    assert ok("db", "upgrade").strip().endswith(f"already at revision {revision}")


def test_sqlite_is_created_and_migrated_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "new.db"
    path.parent.mkdir()
    runner = CliRunner()
    result = runner.invoke(app, ["agents", "list", "--json"],
                           env={"AGENTCRON_DATABASE_URL": f"sqlite:///{path}"})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert path.exists()


def test_unreachable_database_is_one_line_without_the_password() -> None:
    result = CliRunner().invoke(
        app, ["--db", "postgresql://alice:s3cr3t-pw@127.0.0.1:1/agentcron", "agents", "list"])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot use the database postgresql://alice:***@127.0.0.1:1")
    assert "s3cr3t-pw" not in result.stderr


# -- serve ----------------------------------------------------------------------------------


def test_serve_builds_node_settings(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    import agentcron.server

    seen: dict[str, Any] = {}

    def fake_run_node(settings: NodeSettings, config_path: Any = None) -> int:
        seen["settings"], seen["config"] = settings, config_path
        return 3

    monkeypatch.setattr(agentcron.server, "run_node", fake_run_node)
    monkeypatch.setenv("AGENTCRON_PORT", "9999")
    result = CliRunner().invoke(app, [
        "--db", db_url, "serve", "--config", "agents.toml", "--no-api", "--node-id", "n1",
        "--zombie-timeout", "90s", "--drain-timeout", "1m", "--heartbeat-interval", "10s",
        "--poll-interval", "500ms", "--host", "0.0.0.0", "--max-inflight", "7",
    ])
    assert result.exit_code == 3, result.stderr
    settings = seen["settings"]
    assert isinstance(settings, NodeSettings)
    assert settings.database_url == db_url
    assert settings.node_id == "n1"
    assert settings.zombie_timeout_s == 90.0
    assert settings.drain_timeout_s == 60.0
    assert settings.heartbeat_interval_s == 10.0
    assert settings.poll_interval_s == 0.5
    assert settings.api is False
    assert settings.host == "0.0.0.0"
    assert settings.port == 9999  # from the environment, not overridden
    assert settings.max_inflight == 7
    assert str(seen["config"]) == "agents.toml"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--zombie-timeout", "banana"], "zombie-timeout"),
        (["--zombie-timeout", "5s", "--heartbeat-interval", "5s"], "zombie-timeout"),
        (["--drain-timeout", "-1s"], "drain-timeout"),
        (["--max-inflight", "0"], "max-inflight"),
    ],
)
def test_serve_rejects_bad_settings(monkeypatch: pytest.MonkeyPatch, db_url: str,
                                    args: list[str], field: str) -> None:
    import agentcron.server

    def never(*_args: Any, **_kwargs: Any) -> int:
        raise AssertionError("run_node must not be called")

    monkeypatch.setattr(agentcron.server, "run_node", never)
    result = CliRunner().invoke(app, ["--db", db_url, "serve", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {field}: ")
