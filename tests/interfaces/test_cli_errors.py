"""Bad input on the command line: exit code 2, ``error: <field>: ...`` on stderr naming the
field, no traceback, and nothing written. Plus the real console entry point in a
subprocess, and PostgreSQL without a schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import agentcron
from agentcron.cli import app
from tests.conftest import Cli


@pytest.fixture
def bot(cli: Cli) -> str:
    result = cli("agents", "add", "bot", "--python", "myapp.jobs:run")
    assert result.exit_code == 0, result.stderr
    return "bot"


def _listing(cli: Cli, *args: str) -> list[dict[str, object]]:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    value = json.loads(result.stdout)
    assert isinstance(value, list)
    return value


def _assert_rejected(result: Result, field: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert result.stderr.startswith(f"error: {field}: "), result.stderr
    assert result.stderr.count("\n") == 1  # one line
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


TRIGGER_CASES = [
    pytest.param(["--cron", "61 * * * *"], "cron", id="minute-61"),
    pytest.param(["--cron", "* 24 * * *"], "cron", id="hour-24"),
    pytest.param(["--cron", "*/0 * * * *"], "cron", id="step-0"),
    pytest.param(["--cron", "0 0 30 2 *"], "cron", id="feb-30"),
    pytest.param(["--cron", "0-99999999 * * * *"], "cron", id="huge-range"),
    pytest.param(["--cron", "* * *"], "cron", id="three-fields"),
    pytest.param(["--cron", "* * * * * * *"], "cron", id="seven-fields"),
    pytest.param(["--cron", "0 9 * * *", "--tz", "Mars/Base"], "tz", id="bad-zone"),
    pytest.param(["--every", "0s"], "every", id="every-zero"),
    pytest.param(["--every", "-5s"], "every", id="every-negative"),
    pytest.param(["--every", "soon"], "every", id="every-word"),
    pytest.param(["--at", "2020-01-01T00:00:00Z"], "at", id="at-past"),
    pytest.param(["--at", "tomorrow"], "at", id="at-word"),
    pytest.param(["--every", "1m", "--payload", "{bad"], "payload", id="payload"),
    pytest.param(["--every", "1m", "--overlap", "sometimes"], "overlap", id="overlap"),
    pytest.param(["--every", "1m", "--catchup-mode", "later"], "catchup-mode",
                 id="catchup-mode"),
    pytest.param(["--every", "1m", "--catchup", "a while"], "catchup", id="catchup"),
    pytest.param(["--every", "1m", "--jitter", "-1s"], "jitter", id="jitter"),
    pytest.param(["--every", "1m", "--start", "yesterday"], "start", id="start"),
    pytest.param(["--every", "1m", "--end", "2020-01-01T00:00:00Z"], "end", id="end-past"),
    pytest.param(["--every", "1m", "--name", "x" * 101], "name", id="name"),
    pytest.param(["--every", "1m", "--tz", "Europe/Berlin"], "tz", id="tz-with-every"),
    pytest.param(["--cron", "* * * * *", "--every", "30s"], "schedule", id="cron-and-every"),
    pytest.param([], "schedule", id="no-schedule"),
]


@pytest.mark.parametrize(("args", "field"), TRIGGER_CASES)
def test_bad_trigger_input_names_the_field_and_writes_nothing(
        cli: Cli, bot: str, args: list[str], field: str) -> None:
    _assert_rejected(cli("triggers", "add", bot, *args), field)
    assert _listing(cli, "triggers", "list") == []


def test_cron_messages_say_what_is_wrong(cli: Cli, bot: str) -> None:
    assert "61" in cli("triggers", "add", bot, "--cron", "61 * * * *").stderr
    assert "24" in cli("triggers", "add", bot, "--cron", "* 24 * * *").stderr
    assert "Mars/Base" in cli("triggers", "add", bot, "--cron", "* * * * *", "--tz",
                              "Mars/Base").stderr
    both = cli("triggers", "add", bot, "--cron", "* * * * *", "--every", "30s").stderr
    assert "cron" in both and "every" in both


def test_trigger_for_an_unknown_agent_is_not_found(cli: Cli) -> None:
    result = cli("triggers", "add", "ghost", "--every", "1m")
    assert result.exit_code == 1
    assert result.stderr == "error: agent 'ghost' not found\n"
    assert _listing(cli, "triggers", "list") == []


AGENT_CASES = [
    pytest.param(["--python", "m:f", "--max-concurrency", "0"], "max-concurrency",
                 id="max-concurrency-0"),
    pytest.param(["--python", "m:f", "--timeout", "banana"], "timeout", id="timeout"),
    pytest.param(["--python", "m:f", "--max-attempts", "0"], "max-attempts",
                 id="max-attempts"),
    pytest.param(["--python", "m:f", "--zombie-timeout", "0s"], "zombie-timeout",
                 id="zombie-timeout"),
    pytest.param(["--python", "m:f", "--retry-backoff", "x"], "retry-backoff",
                 id="retry-backoff"),
    pytest.param([], "kind", id="no-kind"),
    pytest.param(["--python", "m:f", "--command", "true"], "kind", id="two-kinds"),
    pytest.param(["--python", "not a target"], "python", id="python-target"),
    pytest.param(["--command", ""], "command", id="empty-command"),
    pytest.param(["--command", "echo 'unclosed"], "command", id="command-quotes"),
    pytest.param(["--http", "ftp://example.com"], "http", id="http-url"),
    pytest.param(["--command", "true", "--secret", "s"], "secret", id="secret-not-http"),
]


@pytest.mark.parametrize(("args", "field"), AGENT_CASES)
def test_bad_agent_input_names_the_field_and_writes_nothing(
        cli: Cli, args: list[str], field: str) -> None:
    _assert_rejected(cli("agents", "add", "newbie", *args), field)
    assert _listing(cli, "agents", "list") == []


def test_bad_agent_name(cli: Cli) -> None:
    _assert_rejected(cli("agents", "add", "bad name", "--python", "m:f"), "name")
    assert _listing(cli, "agents", "list") == []


def test_fire_with_a_bad_payload_queues_nothing(cli: Cli, bot: str) -> None:
    _assert_rejected(cli("fire", bot, "--payload", "{bad"), "payload")
    assert _listing(cli, "runs", "list") == []
    unknown = cli("fire", "ghost")
    assert unknown.exit_code == 1
    assert unknown.stderr == "error: agent 'ghost' not found\n"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["runs", "list", "--status", "done"], "status"),
        (["runs", "list", "--limit", "0"], "limit"),
        (["triggers", "next", "tr_x", "-n", "0"], "n"),
    ],
)
def test_bad_listing_options(cli: Cli, args: list[str], field: str) -> None:
    _assert_rejected(cli(*args), field)


def test_typer_usage_errors_keep_exit_code_2(cli: Cli) -> None:
    for args in (["agents", "add", "x", "--max-concurrency", "many"],
                 ["triggers", "add"], ["runs", "list", "--nope"], ["nosuchcommand"]):
        result = cli(*args)
        assert result.exit_code == 2, args
        assert "Traceback" not in result.output


def test_unsupported_database_url_is_bad_input() -> None:
    result = CliRunner().invoke(app, ["--db", "mysql://u:p@h/x", "agents", "list"])
    _assert_rejected(result, "db")


# -- the real console entry ---------------------------------------------------------------


def _agentcron(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    src = str(Path(agentcron.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [src, *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("AGENTCRON_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "agentcron", "--db", db_url, *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )


def test_console_entry_exit_codes_and_stderr(db_url: str) -> None:
    added = _agentcron(db_url, "agents", "add", "bot", "--python", "myapp.jobs:run")
    assert added.returncode == 0, added.stderr
    assert added.stdout == "agent bot saved (python)\n"

    trigger = _agentcron(db_url, "triggers", "add", "bot", "--every", "1m")
    assert trigger.returncode == 0, trigger.stderr
    trigger_id = trigger.stdout.strip()
    shown = _agentcron(db_url, "triggers", "show", trigger_id, "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["id"] == trigger_id

    bad = _agentcron(db_url, "triggers", "add", "bot", "--cron", "61 * * * *")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: cron: ")
    assert bad.stdout == ""

    missing = _agentcron(db_url, "triggers", "show", "tr_nope")
    assert missing.returncode == 1
    assert missing.stderr == "error: trigger 'tr_nope' not found\n"

    usage = _agentcron(db_url, "triggers", "add", "bot", "--bogus-option")
    assert usage.returncode == 2

    unreachable = _agentcron("postgresql://bob:hunter2@127.0.0.1:1/db", "runs", "list")
    assert unreachable.returncode == 1
    assert unreachable.stderr.count("\n") == 1
    assert "hunter2" not in unreachable.stderr
    assert "bob:***@127.0.0.1:1" in unreachable.stderr

    for result in (bad, missing, usage, unreachable):
        assert "Traceback" not in result.stderr


# -- PostgreSQL without a schema ------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_without_a_schema_says_to_upgrade() -> None:
    from sqlalchemy import create_engine, text

    admin_url = os.environ.get(
        "AGENTCRON_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        if os.environ.get("AGENTCRON_REQUIRE_PG") == "1":
            raise
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    name = f"agentcron_cli_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    try:
        runner = CliRunner()
        result = runner.invoke(app, ["--db", url, "agents", "list"])
        assert result.exit_code == 1
        assert result.stderr.startswith("error: the database has no agentcron schema")
        assert "agentcron db upgrade" in result.stderr
        upgraded = runner.invoke(app, ["--db", url, "db", "upgrade"])
        assert upgraded.exit_code == 0, upgraded.stderr
        assert "upgraded from an empty database" in upgraded.stdout
        listed = runner.invoke(app, ["--db", url, "agents", "list", "--json"])
        assert listed.exit_code == 0
        assert json.loads(listed.stdout) == []
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = :n"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
