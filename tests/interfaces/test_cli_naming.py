"""Everyday commands as people type them: triggers by name, runs by id prefix, ``triggers
update``, ``triggers rotate-secret``, ``agents show``, ``agents rm`` asking first, and a
paused trigger listed as paused. The real Typer app on a real SQLite file; the confirmation
prompt in a real process on a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from agentcron.api.schemas import AgentOut
from agentcron.store import Store
from tests.conftest import Cli

# -- triggers by name, runs by prefix -------------------------------------------------------


def test_trigger_commands_take_a_unique_name(ok: Callable[..., str], js: Callable[..., Any],
                                             bot: str) -> None:
    trigger_id = ok("triggers", "add", bot, "--cron", "0 3 * * *", "--name", "nightly").strip()
    assert ok("triggers", "pause", "nightly") == f"trigger {trigger_id} paused\n"
    assert js("triggers", "show", "nightly")["id"] == trigger_id
    assert "03:00" in ok("triggers", "next", "nightly", "-n", "1")
    assert ok("triggers", "resume", "nightly").startswith(f"trigger {trigger_id} resumed")
    assert ok("triggers", "rm", "nightly") == f"trigger {trigger_id} removed\n"


def test_an_ambiguous_trigger_name_is_refused_with_the_candidates(
        cli: Cli, ok: Callable[..., str], js: Callable[..., Any], bot: str) -> None:
    ok("agents", "add", "other", "--command", "true")
    first = ok("triggers", "add", bot, "--every", "1h", "--name", "hourly").strip()
    second = ok("triggers", "add", "other", "--every", "1h", "--name", "hourly").strip()
    result = cli("triggers", "pause", "hourly")
    assert result.exit_code == 2
    assert f"{first} (agent bot)" in result.stderr and f"{second} (agent other)" in result.stderr
    assert "give the trigger's id" in result.stderr
    assert not any(t["paused"] for t in js("triggers", "list"))


def test_run_commands_take_a_unique_prefix(cli: Cli, ok: Callable[..., str],
                                           js: Callable[..., Any], bot: str) -> None:
    run_id = ok("fire", bot).strip()
    prefix = run_id[:13]
    assert js("runs", "show", prefix)["id"] == run_id
    assert ok("runs", "cancel", prefix) == f"run {run_id} cancelled (was queued)\n"
    assert ok("runs", "retry", prefix) == f"run {run_id} queued again\n"
    short = cli("runs", "show", run_id[:3])
    assert short.exit_code == 2
    assert "at least 4 characters" in short.stderr
    other = ok("fire", bot).strip()
    common = ""
    for mine, theirs in zip(run_id, other, strict=True):
        if mine != theirs:
            break
        common += mine
    if len(common) >= 4:  # two runs fired within about a minute share their first digits
        both = cli("runs", "show", common)
        assert both.exit_code == 2
        assert run_id in both.stderr and other in both.stderr


# -- triggers update, rotate-secret, paused listing -----------------------------------------


def test_triggers_update_changes_only_what_is_given(cli: Cli, ok: Callable[..., str],
                                                    js: Callable[..., Any], bot: str) -> None:
    trigger_id = ok("triggers", "add", bot, "--cron", "0 9 * * *", "--payload", '{"a": 1}',
                    "--name", "morning", "--overlap", "queue").strip()
    changed = js("triggers", "update", "morning", "--cron", "30 7 * * 1-5", "--zone",
                 "Europe/Paris", "--payload", '{"a": 2}', "--name", "weekday-morning")
    assert changed["id"] == trigger_id
    assert changed["cron"] == "30 7 * * 1-5" and changed["timezone"] == "Europe/Paris"
    assert changed["payload"] == {"a": 2} and changed["name"] == "weekday-morning"
    assert changed["overlap"] == "queue"  # not given: kept
    every = js("triggers", "update", trigger_id, "--every", "15m")
    assert every["kind"] == "interval" and every["every_s"] == 900
    assert every["timezone"] == "UTC"
    table = ok("triggers", "update", trigger_id, "--jitter", "10s")
    assert trigger_id in table and "10s" in table

    bad = cli("triggers", "update", trigger_id, "--payload", "{not json")
    assert bad.exit_code == 2 and "payload" in bad.stderr
    nothing = cli("triggers", "update", trigger_id)
    assert nothing.exit_code == 2 and "nothing to change" in nothing.stderr
    wrong = cli("triggers", "update", trigger_id, "--cron", "61 * * * *")
    assert wrong.exit_code == 2 and "cron" in wrong.stderr
    assert js("triggers", "show", trigger_id)["every_s"] == 900  # nothing written


def test_triggers_rotate_secret_prints_a_new_secret_once(
        cli: Cli, ok: Callable[..., str], js: Callable[..., Any], bot: str) -> None:
    created = js("triggers", "add", bot, "--webhook", "--name", "hook")
    result = cli("triggers", "rotate-secret", "hook")
    assert result.exit_code == 0, result.stderr
    secret = result.stdout.strip()
    assert secret.startswith("whsec_") and secret != created["secret"]
    assert "shown only this once" in result.stderr
    again = js("triggers", "rotate-secret", created["id"])
    assert again["id"] == created["id"] and again["secret"] not in (secret, created["secret"])
    assert again["hook_path"] == f"/hooks/{created['id']}"
    timed = ok("triggers", "add", bot, "--every", "1h").strip()
    refused = cli("triggers", "rotate-secret", timed)
    assert refused.exit_code == 2 and "has no secret" in refused.stderr


def test_a_paused_trigger_is_listed_as_paused_not_with_a_next_fire_time(
        ok: Callable[..., str], js: Callable[..., Any], bot: str) -> None:
    trigger_id = ok("triggers", "add", bot, "--every", "1h").strip()
    ok("triggers", "pause", trigger_id)
    next_fire = js("triggers", "show", trigger_id)["next_fire_at"][:16].replace("T", " ")
    row = next(line for line in ok("triggers", "list").splitlines() if trigger_id in line)
    assert "paused" in row
    assert next_fire not in row
    assert "if resumed now" in ok("triggers", "next", trigger_id)


# -- agents show, agents rm ---------------------------------------------------------------


def test_agents_show_prints_a_panel_and_the_apis_document(
        cli: Cli, ok: Callable[..., str], js: Callable[..., Any], db_url: str) -> None:
    ok("agents", "add", "web", "--http", "https://user:pw@agents.example/run",
       "--tokens-per-day", "5000", "--timeout", "2m")
    panel = ok("agents", "show", "web")
    assert "agent web" in panel and "https://********@agents.example/run" in panel
    assert "pw@" not in panel
    assert "5,000 tokens per day; over budget: skip" in panel and "2m" in panel
    document = js("agents", "show", "web")
    store = Store(db_url)
    try:
        assert document == AgentOut.of(store.get_agent("web")).model_dump()
    finally:
        store.close()
    missing = cli("agents", "show", "nobody")
    assert missing.exit_code == 1 and missing.stderr == "error: agent 'nobody' not found\n"


def test_agents_rm_without_a_terminal_needs_yes(cli: Cli, ok: Callable[..., str],
                                               js: Callable[..., Any], bot: str) -> None:
    ok("triggers", "add", bot, "--every", "1h")
    ok("fire", bot)
    refused = cli("agents", "rm", bot)
    assert refused.exit_code == 2
    assert "deletes its 1 trigger, cancels 1 queued run" in refused.stderr
    assert "--yes" in refused.stderr
    assert [a["name"] for a in js("agents", "list")] == [bot]
    assert ok("agents", "rm", bot, "-y") == (
        "agent bot removed: 1 trigger deleted, 1 queued run cancelled\n")


def _rm_on_a_terminal(db_url: str, answer: bytes) -> tuple[int, str]:
    """``agents rm bot`` in a real process whose stdin, stdout and stderr are a
    pseudo-terminal; ``answer`` is typed once the question is shown."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "agentcron", "--db", db_url, "agents",
                             "rm", "bot"], stdin=follower, stdout=follower, stderr=follower,
                            close_fds=True)
    os.close(follower)
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the process ended and closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and b"Go on?" in seen:
                os.write(leader, answer)
                answered = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    return code, seen.decode(errors="replace")


def test_agents_rm_on_a_terminal_asks_and_says_what_will_go(
        ok: Callable[..., str], js: Callable[..., Any], bot: str, db_url: str) -> None:
    ok("triggers", "add", bot, "--every", "1h")
    ok("triggers", "add", bot, "--every", "2h")
    code, screen = _rm_on_a_terminal(db_url, b"n\n")
    assert "deletes its 2 triggers, cancels 0 queued runs" in screen, screen
    assert code == 1, screen
    assert [a["name"] for a in js("agents", "list")] == [bot]
    assert len(js("triggers", "list")) == 2

    code, screen = _rm_on_a_terminal(db_url, b"y\n")
    assert code == 0, screen
    assert "agent bot removed: 2 triggers deleted" in screen
    assert js("agents", "list") == []
