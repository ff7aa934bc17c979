"""A newcomer's first hour: agents that cannot be found are found (or refused at once with
what to do), durations need a unit everywhere, the agents file can be checked without a
node, its errors suggest the key that was meant, and re-syncing an unchanged file says it
changed nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from agentcron import Agentcron
from agentcron.errors import ValidationError
from agentcron.services import Services, TriggerInput
from agentcron.services.agents_file import load_agents_file
from agentcron.store import Store
from tests.conftest import T0, Cli
from tests.support.api_server import api_server
from tests.support.helpers import add_agent, wait_until
from tests.support.procs import REPO

MYTASKS = 'def summarize(ctx):\n    return "summary of " + ctx.payload["topic"]\n'


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src")  # the repository root is not on the path
    env.pop("AGENTCRON_DATABASE_URL", None)
    return env


def _agentcron(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentcron", *args], capture_output=True,
                          text=True, env=_env(), cwd=cwd, timeout=timeout)


# -- durations need a unit, in every front door ------------------------------------------


def test_every_without_a_unit_is_refused_by_the_cli(cli: Cli) -> None:
    assert cli("agents", "add", "a", "--command", "true").exit_code == 0
    result = cli("triggers", "add", "a", "--every", "5")
    assert result.exit_code == 2
    assert "every: '5' has no unit (write 5s, 5m or 5h)" in result.output
    assert cli("triggers", "add", "a", "--every", "5m").exit_code == 0


def test_every_without_a_unit_is_refused_by_the_file_and_the_python_api(
        store: Store, tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('[agents.a]\ncommand = "true"\n[[agents.a.triggers]]\nevery = "5"\n')
    with pytest.raises(ValidationError) as caught:
        Services(store).sync_agents_file(load_agents_file(path), now=T0)
    assert str(caught.value) == ("agents.a.triggers[0].every: '5' has no unit "
                                 "(write 5s, 5m or 5h)")
    add_agent(store, "b")
    with pytest.raises(ValidationError, match="'5' has no unit"):
        Services(store).add_trigger(TriggerInput(agent="b", every="5"), T0)
    app = Agentcron(str(store.engine.url.render_as_string(hide_password=False)))
    app.schedule("b", every="5")
    with pytest.raises(ValidationError, match="every: '5' has no unit"):
        app.sync()


def test_every_without_a_unit_is_refused_by_the_api(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'api.db'}"
    Store(db).upgrade()
    with api_server(db, tmp_path, truncate=False) as srv, srv.client() as client:
        made = client.post("/api/v1/agents", json={
            "name": "a", "kind": "command", "config": {"command": "true"}})
        assert made.status_code == 201, made.text
        refused = client.post("/api/v1/triggers", json={"agent": "a", "every": "5"})
        assert refused.status_code == 422
        assert refused.json()["field"] == "every" and "no unit" in refused.text
        # a python agent this node cannot import is saved, with a warning that says why
        saved = client.post("/api/v1/agents", json={
            "name": "p", "kind": "python", "config": {"target": "nowhere_to_be_found:run"}})
        assert saved.status_code == 201
        warning = saved.headers["agentcron-warning"]
        assert warning.startswith("python: cannot import 'nowhere_to_be_found:run'")
        assert "next to the agents file" in warning
        fine = client.put("/api/v1/agents/p", json={
            "kind": "python", "config": {"target": "agentcron.examples:noop"}})
        assert fine.status_code == 200 and "agentcron-warning" not in fine.headers


# -- the agents file -----------------------------------------------------------------------


def test_an_unknown_key_suggests_the_nearest_one(tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('[agents.a]\ncommand = "true"\n[[agents.a.triggers]]\ncorn = "@daily"\n')
    with pytest.raises(ValidationError) as caught:
        load_agents_file(path)
    assert caught.value.field == f"{path}: agents.a.triggers[0].corn"
    assert caught.value.message == "unknown key 'corn'; did you mean 'cron'?"
    assert "valid keys here: at, catchup" in (caught.value.hint or "")
    path.write_text('[agents.a]\ncommand = "true"\nmax_concurency = 2\n')
    with pytest.raises(ValidationError, match="did you mean 'max_concurrency'"):
        load_agents_file(path)
    path.write_text('[agent.a]\ncommand = "true"\n')
    with pytest.raises(ValidationError, match="did you mean 'agents'"):
        load_agents_file(path)
    path.write_text('[agents.a]\ncommand = "true"\nzzzzzz = 1\n')
    with pytest.raises(ValidationError) as caught:
        load_agents_file(path)
    assert caught.value.message == "unknown key 'zzzzzz'"


def test_every_problem_in_an_agents_file_is_reported_at_once(cli: Cli, tmp_path: Path
                                                             ) -> None:
    """One line per problem, shape problems together and then value problems together,
    exit 2, nothing written: a user with three typos fixes them in one go."""
    path = tmp_path / "agents.toml"
    path.write_text(textwrap.dedent("""
        [agents.a]
        command = "true"
        max_concurency = 2
        [[agents.a.triggers]]
        corn = "@daily"
    """))
    shape = cli("apply", str(path))
    assert shape.exit_code == 2, shape.stderr
    assert sorted(line.split(" (")[0] for line in shape.stderr.splitlines()) == [
        f"error: {path}: agents.a.max_concurency: unknown key 'max_concurency'; "
        "did you mean 'max_concurrency'?",
        f"error: {path}: agents.a.triggers[0].corn: unknown key 'corn'; did you mean 'cron'?",
    ]
    path.write_text(textwrap.dedent("""
        [agents.a]
        command = "true"
        timeout = "5 parsecs"
        [[agents.a.triggers]]
        cron = "61 * * * *"
        [agents.b]
        command = "true"
        [[agents.b.triggers]]
        every = "1m"
        [[agents.b.triggers]]
        every = "1 fortnight"
        [[agents.b.triggers]]
        cron = "* * * * *"
        tz = "Mars/Olympus"
    """))
    values = cli("apply", str(path))
    assert values.exit_code == 2, values.stderr
    fields = [line.removeprefix("error: ").split(":")[0]
              for line in values.stderr.splitlines()]
    # a's triggers are not checked against an agent that is itself refused
    assert fields == ["agents.a.timeout", "agents.b.triggers[1].every",
                      "agents.b.triggers[2].tz"], values.stderr
    listed = cli("agents", "list", "--json")
    assert listed.exit_code == 0 and listed.stdout.strip() == "[]"


def test_a_file_with_many_problems_shows_twenty_and_counts_the_rest(store: Store,
                                                                    tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text("".join(f'[agents.a{i}]\ncommand = "true"\ntimeout = "{i} parsecs"\n'
                            for i in range(25)))
    with pytest.raises(ValidationError) as caught:
        Services(store).sync_agents_file(load_agents_file(path))
    lines = str(caught.value).splitlines()
    assert len(lines) == 21 and lines[0].startswith("agents.a0.timeout: ")
    assert lines[19].startswith("agents.a19.timeout: ")
    assert lines[20] == "...: and 5 more problems (fix these and check again)"
    assert store.list_agents() == []


def test_resyncing_an_unchanged_file_updates_nothing(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(textwrap.dedent("""
        [agents.a]
        command = "true"
        [[agents.a.triggers]]
        every = "1m"
        payload = {deep = {list = [1, 2.5, "x"]}}
        [[agents.a.triggers]]
        cron = "0 9 * * 1-5"
        tz = "Europe/Berlin"
        start = "2026-01-01T00:00:00Z"
        [[agents.b.triggers]]
        at = "2026-06-01T09:00:00"
        tz = "Europe/Berlin"
        [agents.b]
        command = "true"
    """).replace('[[agents.b.triggers]]\nat = "2026-06-01T09:00:00"\ntz = "Europe/Berlin"\n'
                 '[agents.b]\ncommand = "true"\n',
                 '[agents.b]\ncommand = "true"\n[[agents.b.triggers]]\n'
                 'at = "2026-06-01T09:00:00"\ntz = "Europe/Berlin"\n'))
    services = Services(store)
    first = services.sync_agents_file(load_agents_file(path), now=T0)
    assert first == {"agents": 2, "created": 3, "updated": 0, "removed": 0}
    again = services.sync_agents_file(load_agents_file(path), now=T0 + timedelta(seconds=5))
    assert again == {"agents": 2, "created": 0, "updated": 0, "removed": 0}
    path.write_text(path.read_text().replace('"x"', '"y"'))
    changed = services.sync_agents_file(load_agents_file(path), now=T0 + timedelta(seconds=9))
    assert changed == {"agents": 2, "created": 0, "updated": 1, "removed": 0}


def test_agents_check_says_what_serve_would_say(tmp_path: Path) -> None:
    (tmp_path / "mytasks.py").write_text(MYTASKS)
    good = tmp_path / "agents.toml"
    good.write_text('[agents.s]\npython = "mytasks:summarize"\n'
                    '[[agents.s.triggers]]\nevery = "1h"\npayload = {topic = "x"}\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ok = _agentcron(elsewhere, "agents", "check", str(good))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"{good}: ok (1 agent(s), 1 trigger(s), 0 price(s))"
    assert not list(elsewhere.iterdir())  # no database was made
    for bad_text in ('[agents.s]\npython = "mytasks:summarise"\n',
                     '[agents.s]\ncommand = "true"\n[[agents.s.triggers]]\nevery = "5"\n',
                     '[agents.s]\ncomand = "true"\n'):
        bad = tmp_path / "bad.toml"
        bad.write_text(bad_text)
        checked = _agentcron(elsewhere, "agents", "check", str(bad))
        served = _agentcron(elsewhere, "--db", f"sqlite:///{tmp_path / 'x.db'}", "serve",
                            "--no-api", "--config", str(bad))
        assert checked.returncode == served.returncode == 2, served.stderr
        error = [line for line in checked.stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and error[0] in served.stderr.splitlines(), (checked.stderr,
                                                                           served.stderr)


def test_version() -> None:
    from importlib.metadata import version

    result = _agentcron(REPO, "--version")
    assert result.returncode == 0 and result.stdout == f"agentcron {version('agentcron')}\n"


# -- python agents are found where people put them -----------------------------------------


def test_a_module_next_to_the_agents_file_runs_without_pythonpath(tmp_path: Path) -> None:
    """``python = "mytasks:summarize"`` with mytasks.py beside the file; the node is
    started from another folder, with no PYTHONPATH for it."""
    (tmp_path / "mytasks.py").write_text(MYTASKS)
    config = tmp_path / "agents.toml"
    config.write_text('[agents.s]\npython = "mytasks:summarize"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    db = f"sqlite:///{tmp_path / 'ac.db'}"
    log = tmp_path / "node.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentcron", "--db", db, "serve", "--no-api", "--config",
             str(config), "--poll-interval", "0.2s", "--drain-timeout", "2s"],
            cwd=elsewhere, env=_env(), stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "running (no HTTP API" in log.read_text() or proc.poll(), 60,
                   lambda: f"the node to start:\n{log.read_text()}")
        fired = _agentcron(elsewhere, "--db", db, "fire", "s", "--payload", '{"topic": "t"}')
        assert fired.returncode == 0, fired.stderr
        run_id = fired.stdout.strip().split()[-1]
        store = Store(db)
        try:
            run = wait_until(lambda: (r := store.get_run(run_id)).finished_at and r,
                             60, "the run to finish")
        finally:
            store.close()
        assert run.status.value == "succeeded", run.error
        assert run.output == "summary of t"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_the_cli_warns_about_a_module_it_cannot_import(cli: Cli, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    result = cli("agents", "add", "p", "--python", "no_such_module_here:run")
    assert result.exit_code == 0  # saved: the nodes may have code this shell has not
    assert "warning: python: cannot import 'no_such_module_here:run'" in result.output
    assert "next to the agents file or in the folder the node starts in" in result.output
    (tmp_path / "cli_here_tasks.py").write_text(MYTASKS)
    monkeypatch.chdir(tmp_path)  # the working directory is on the import path
    result = cli("agents", "add", "q", "--python", "cli_here_tasks:summarize")
    assert result.exit_code == 0 and "warning" not in result.output


def test_an_unimportable_module_in_the_agents_file_is_refused(store: Store,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('[agents.s]\npython = "mytaks:summarize"\n')
    with pytest.raises(ValidationError) as caught:
        Services(store).sync_agents_file(load_agents_file(path), now=T0)
    assert caught.value.field == "agents.s.python"
    assert "cannot import 'mytaks:summarize': ModuleNotFoundError" in caught.value.message
    assert store.list_agents() == []


# -- the Python API run as `python app.py` -------------------------------------------------


APP = '''
from agentcron import Agentcron, RunContext

app = Agentcron(poll_interval_s=0.2, drain_timeout_s=2)  # AGENTCRON_DATABASE_URL

@app.agent(timeout="10s")
def greet(ctx: RunContext) -> str:
    return "hi " + ctx.payload["who"]

if __name__ == "__main__":
    raise SystemExit(app.run())
'''


def test_a_function_of_the_script_is_stored_by_the_script_s_name(tmp_path: Path) -> None:
    """``python hub.py`` stores ``hub:greet``, which a plain ``agentcron serve`` started
    in the script's folder runs."""
    (tmp_path / "hub.py").write_text(APP)
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    env = {**_env(), "AGENTCRON_DATABASE_URL": db, "AGENTCRON_PORT": str(_free_port())}
    app = subprocess.Popen([sys.executable, "hub.py"], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = ""
        assert app.stdout is not None
        while "running (dashboard and API at" not in banner:
            line = app.stdout.readline()
            assert line, f"exited with {app.wait()}: {banner}"
            banner += line
        assert f"127.0.0.1:{env['AGENTCRON_PORT']}/" in banner  # the port is configurable
    finally:
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=60) == 0
    store = Store(db)
    try:
        assert store.get_agent("greet").config["target"] == "hub:greet"
    finally:
        store.close()
    log = tmp_path / "node.log"
    with log.open("wb") as sink:
        node = subprocess.Popen(
            [sys.executable, "-m", "agentcron", "--db", db, "serve", "--no-api",
             "--poll-interval", "0.2s", "--drain-timeout", "2s"],
            cwd=tmp_path, env=_env(), stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "running (no HTTP API" in log.read_text() or node.poll(), 60,
                   lambda: f"the node to start:\n{log.read_text()}")
        fired = _agentcron(tmp_path, "--db", db, "fire", "greet", "--payload",
                           '{"who": "node"}')
        run_id = fired.stdout.strip().split()[-1]
        store = Store(db)
        try:
            run = wait_until(lambda: (r := store.get_run(run_id)).finished_at and r, 60,
                             "the run to finish")
        finally:
            store.close()
        assert (run.status.value, run.output) == ("succeeded", "hi node"), run.error
    finally:
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=60) == 0


def test_a_database_to_upgrade_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Store(f"sqlite:///{path}").upgrade()
    with sqlite3.connect(path) as conn:  # as if made by an older version
        conn.execute("UPDATE alembic_version SET version_num = '0004'")
    (tmp_path / "hub.py").write_text(APP)
    result = subprocess.run([sys.executable, "hub.py"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120,
                            env={**_env(), "AGENTCRON_DATABASE_URL": f"sqlite:///{path}"})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "agentcron db upgrade" in result.stderr and "Traceback" not in result.stderr


def test_a_function_typed_at_a_prompt_is_refused() -> None:
    code = ("from agentcron import Agentcron\napp = Agentcron('sqlite://')\n"
            "try:\n    app.agent()(lambda: 1)\nexcept Exception as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True,
                            env=_env(), timeout=60)
    assert "which no other process can import (move the function into a module" in result.stdout


def _free_port() -> int:
    from tests.support.procs import free_port

    return free_port()
