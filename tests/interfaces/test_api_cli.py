"""``agentcron tokens`` and how ``serve`` guards its API: a one-time admin token on a fresh
loopback install, refusal on a network address without any token, and a clear error when
the port is taken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agentcron.cli import app
from tests.support.helpers import wait_until
from tests.support.procs import REPO, free_port


def cli(db: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--db", db, *args])
    return result.exit_code, result.stdout, result.stderr


def test_tokens_create_list_revoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/t.db"
    code, out, err = cli(db, "tokens", "create", "ci", "--scope", "write")
    token = out.strip()
    assert code == 0 and token.startswith("act_") and len(token) == 47
    assert "shown only this once" in err and token not in err
    code, out, _ = cli(db, "tokens", "list", "--json")
    [listed] = json.loads(out)
    assert listed["name"] == "ci" and listed["scope"] == "write" and token not in out
    assert cli(db, "tokens", "create", "ci")[0] == 1  # the name is taken
    code, _, err = cli(db, "tokens", "create", "x", "--scope", "root")
    assert code == 2 and "scope" in err
    assert cli(db, "tokens", "revoke", "ci")[0] == 0
    assert cli(db, "tokens", "revoke", "ci")[0] == 1
    assert "no tokens" in cli(db, "tokens", "list")[1]


def serve(db: str, cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "src")]))
    return subprocess.Popen([sys.executable, "-m", "agentcron", "--db", db, "serve", *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_serve_refuses_a_network_address_without_a_token(tmp_path: Path) -> None:
    proc = serve(f"sqlite:///{tmp_path}/t.db", tmp_path, "--host", "0.0.0.0",
                 "--port", str(free_port()))
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "refusing to serve the API on 0.0.0.0" in err
    assert "agentcron tokens create" in err


@pytest.mark.slow
def test_a_fresh_loopback_node_prints_one_admin_token_once(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/t.db"
    port = free_port()
    proc = serve(db, tmp_path, "--port", str(port))
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        token = lines[2].strip()
        assert "admin token named 'local-admin'" in lines[0] and token.startswith("act_")
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200, 30,
                   "/readyz to answer 200", interval=0.05, ignoring=(httpx.HTTPError,))
        assert httpx.get(f"{base}/login").status_code == 200
        agents = httpx.get(f"{base}/api/v1/agents", headers={"Authorization": f"Bearer {token}"})
        assert agents.status_code == 200

        taken = serve(db, tmp_path, "--port", str(port))  # same port: the API cannot bind
        _, taken_err = taken.communicate(timeout=60)
        assert taken.returncode == 1 and f"cannot serve the API on 127.0.0.1:{port}" in taken_err
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=60)
    assert token not in err  # logs (stderr) never carry it
    again = serve(db, tmp_path, "--port", str(free_port()))
    try:  # a token exists now: the second start prints none
        assert again.stderr is not None
        for line in again.stderr:
            if "running (" in line:
                break
    finally:
        again.terminate()
        out2, _ = again.communicate(timeout=60)
    assert "act_" not in out2
