"""The agents file and the Python API: declared agents and triggers are validated whole,
then synced in one transaction; re-syncing keeps each trigger's place in its schedule."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from agentcron import Agentcron
from agentcron.errors import DatabaseUnavailableError, ValidationError
from agentcron.services import Services
from agentcron.services.agents_file import load_agents_file
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_trigger, wait_until
from tests.support.procs import REPO

EXAMPLE = REPO / "examples" / "agents.toml"


def test_the_example_file_syncs(store: Store) -> None:
    report = Services(store).sync_agents_file(load_agents_file(EXAMPLE), now=T0)
    assert report == {"agents": 3, "created": 4, "updated": 0, "removed": 0}
    assert {a.name for a in store.list_agents()} == {"hello", "system-report", "uptime"}
    names = {(t.agent, t.name) for t in store.list_triggers()}
    assert ("hello", "every-10s") in names and ("uptime", "every-30s") in names


def test_resync_keeps_next_fire_times_and_applies_changes(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(textwrap.dedent("""
        [agents.a]
        command = "true"
        [[agents.a.triggers]]
        name = "t"
        every = "1m"
        [[agents.a.triggers]]
        name = "gone-later"
        cron = "@hourly"
    """))
    services = Services(store)
    services.sync_agents_file(load_agents_file(path), now=T0)
    before = {t.name: t for t in store.list_triggers()}
    manual = add_trigger(store, T0, agent="a", every="5m")  # made with the CLI: untouched
    path.write_text(textwrap.dedent("""
        [agents.a]
        command = "true"
        max_concurrency = 4
        [[agents.a.triggers]]
        name = "t"
        every = "1m"
        payload = {v = 2}
    """))
    report = services.sync_agents_file(load_agents_file(path), now=T0 + timedelta(seconds=20))
    assert report == {"agents": 1, "created": 0, "updated": 1, "removed": 1}
    after = {t.name: t for t in store.list_triggers()}
    assert set(after) == {"t", None}
    assert after["t"].id == before["t"].id
    assert after["t"].next_fire_at == before["t"].next_fire_at  # same schedule: same place
    assert after["t"].payload == {"v": 2}
    assert store.get_agent("a").max_concurrency == 4
    assert store.get_trigger(manual.id).every_s == 300


def test_a_bad_entry_names_its_place_and_writes_nothing(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(textwrap.dedent("""
        [agents.ok]
        command = "true"
        [[agents.ok.triggers]]
        every = "1m"
        [agents.bad]
        command = "true"
        [[agents.bad.triggers]]
        cron = "61 * * * *"
    """))
    with pytest.raises(ValidationError) as info:
        Services(store).sync_agents_file(load_agents_file(path), now=T0)
    assert info.value.field == "agents.bad.triggers[0].cron"
    assert store.list_agents() == [] and store.list_triggers() == []


def test_unknown_keys_are_refused_with_their_location(tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('[agents.a]\ncommand = "true"\nmax_concurency = 2\n')
    with pytest.raises(ValidationError) as info:
        load_agents_file(path)
    assert "agents.a.max_concurency" in info.value.field


def test_a_command_agent_declares_the_variables_it_inherits(store: Store,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('[agents.a]\ncommand = "env"\ninherit_env = ["OPENAI_API_KEY"]\n')
    Services(store).sync_agents_file(load_agents_file(path), now=T0)
    assert store.get_agent("a").config["inherit_env"] == ["OPENAI_API_KEY"]
    path.write_text('[agents.a]\ncommand = "env"\ninherit_env = ["AGENTCRON_SECRET_KEY"]\n')
    with pytest.raises(ValidationError) as info:
        Services(store).sync_agents_file(load_agents_file(path), now=T0)
    assert "inherit_env" in info.value.field and "never passed" in str(info.value)


@pytest.mark.slow
def test_python_api_runs_a_decorated_agent_in_process(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    script = tmp_path / "hub.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from agentcron import Agentcron, RunContext

        app = Agentcron("sqlite:///{tmp_path}/hub.db", api=False, poll_interval_s=0.1)

        @app.agent(max_concurrency=1, timeout="10s")
        def greet(ctx: RunContext) -> str:
            with Path({str(ledger)!r}).open("a") as f:
                f.write(f"{{ctx.run_id}} {{ctx.payload['who']}}\\n")
            return "hi " + ctx.payload["who"]

        app.schedule("greet", every="1s", payload={{"who": "api"}}, name="fast")

        if __name__ == "__main__":
            sys.exit(app.run())
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(tmp_path)]))
    proc = subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: ledger.exists() and "api" in ledger.read_text(), timeout=30,
                   message="the decorated agent to run")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    store = Store(f"sqlite:///{tmp_path}/hub.db")
    [agent] = store.list_agents()
    assert agent.config["target"] == "hub:greet" and agent.source == "code"
    listed = store.list_runs()
    # Failed once in CI (2026-11-30) with the agent run and exit 0: the state and the
    # node's log say which run lost its outcome, for the next time.
    assert any(r.output == "hi api" for r in listed), (
        [(r.id, r.status, r.attempt, r.output, r.error) for r in listed],
        ledger.read_text(), output[-4000:])
    store.close()


def test_the_python_api_says_which_database_it_cannot_use(tmp_path: Path) -> None:
    """As the CLI does: one ``error:`` line naming the database (password masked) and the
    driver's reason, exit 1, no traceback; ``sync`` raises agentcron's own error."""
    url = "postgresql://alice:s3cr3t-pw@127.0.0.1:1/agentcron"
    script = tmp_path / "hub.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from agentcron import Agentcron

        app = Agentcron({url!r}, api=False)

        @app.agent()
        def greet() -> str:
            return "hi"

        if __name__ == "__main__":
            sys.exit(app.run())
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(tmp_path)]))
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        line for line in done.stderr.splitlines() if line.startswith("error: ")], done.stderr
    assert done.stderr.startswith("error: cannot use the database "
                                  "postgresql://alice:***@127.0.0.1:1/agentcron: ")
    assert "s3cr3t-pw" not in done.stderr and "Traceback" not in done.stderr

    with pytest.raises(DatabaseUnavailableError, match="port 1 failed"):
        Agentcron(url, api=False).sync()
