"""Agent config validation: normalised forms, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from agentcron.errors import ValidationError
from agentcron.executors.base import OUTPUT_LIMIT
from agentcron.executors.validation import validate_agent_config
from agentcron.models import AgentKind

PY, CMD, HTTP = AgentKind.PYTHON, AgentKind.COMMAND, AgentKind.HTTP


def test_python_target() -> None:
    assert validate_agent_config(PY, {"target": " myapp.jobs:run "}) == {"target": "myapp.jobs:run"}
    assert validate_agent_config(PY, {"target": "m:Cls.method", "output_limit": 10}) == {
        "target": "m:Cls.method",
        "output_limit": 10,
    }


def test_command_string_is_split_like_a_shell_and_defaults_are_filled() -> None:
    assert validate_agent_config(CMD, {"command": "python -m job --name 'two words'"}) == {
        "argv": ["python", "-m", "job", "--name", "two words"],
        "env": {},
        "cwd": None,
        "output_limit": OUTPUT_LIMIT,
    }


def test_command_argv_env_cwd_and_limits() -> None:
    raw = {
        "argv": ["/usr/bin/env", "x"],
        "env": {"MODE": "prod"},
        "cwd": "/srv/agents",
        "output_limit": 1000,
        "kill_grace_s": 2,
    }
    assert validate_agent_config(CMD, raw) == {**raw, "kill_grace_s": 2.0}


def test_command_inherit_env_is_kept_once_per_name() -> None:
    raw = {"command": "x", "inherit_env": ["OPENAI_API_KEY", "HTTPS_PROXY", "OPENAI_API_KEY"]}
    config = validate_agent_config(CMD, raw)
    assert config["inherit_env"] == ["OPENAI_API_KEY", "HTTPS_PROXY"]


def test_http() -> None:
    assert validate_agent_config(HTTP, {"url": "https://agents.example.com/run"}) == {
        "url": "https://agents.example.com/run",
        "secret": None,
        "headers": {},
    }
    raw = {
        "url": "http://127.0.0.1:8080/x?y=1",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "headers": {"Authorization": "Bearer abc"},
    }
    assert validate_agent_config(HTTP, raw) == raw
    assert validate_agent_config(HTTP, {"url": "https://h/", "secret": "raw secret"})["secret"]


@pytest.mark.parametrize(
    ("kind", "raw", "field", "fragment"),
    [
        (PY, {}, "python", "needs a target"),
        (PY, {"target": "myapp.jobs"}, "python", "invalid target"),
        (PY, {"target": "my-app:run"}, "python", "invalid target"),
        (PY, {"target": "a:b:c"}, "python", "invalid target"),
        (PY, {"target": "a.:b"}, "python", "invalid target"),
        (PY, {"target": "m:f", "taget": 1}, "python", "unknown setting 'taget'"),
        (PY, {"target": "m:f", "output_limit": 0}, "output_limit", "invalid 0"),
        (PY, {"target": "m:f", "output_limit": True}, "output_limit", "invalid True"),
        (CMD, {}, "command", "exactly one of"),
        (CMD, {"command": "a", "argv": ["a"]}, "command", "exactly one of"),
        (CMD, {"command": "echo 'unbalanced"}, "command", "No closing quotation"),
        (CMD, {"command": "   "}, "command", "empty"),
        (CMD, {"command": ["echo"]}, "command", "must be a string"),
        (CMD, {"argv": "echo hi"}, "argv", "list of strings"),
        (CMD, {"argv": ["echo", 1]}, "argv", "list of strings"),
        (CMD, {"argv": []}, "command", "empty"),
        (CMD, {"argv": ["a\0b"]}, "command", "NUL"),
        (CMD, {"command": "x", "env": ["A=1"]}, "env", "table of strings"),
        (CMD, {"command": "x", "env": {"PORT": 8080}}, "env", "PORT must be a string"),
        (CMD, {"command": "x", "env": {"1BAD": "v"}}, "env", "invalid variable name"),
        (CMD, {"command": "x", "env": {"A=B": "v"}}, "env", "invalid variable name"),
        (CMD, {"command": "x", "env": {"AGENTCRON_RUN_ID": "v"}}, "env", "reserved"),
        (CMD, {"command": "x", "inherit_env": "OPENAI_API_KEY"}, "inherit_env", "list of names"),
        (CMD, {"command": "x", "inherit_env": ["A B"]}, "inherit_env", "invalid variable"),
        (CMD, {"command": "x", "inherit_env": [1]}, "inherit_env", "invalid variable"),
        (CMD, {"command": "x", "inherit_env": ["AGENTCRON_DATABASE_URL"]}, "inherit_env",
         "never passed"),
        (CMD, {"command": "x", "inherit_env": ["agentcron_secret_key"]}, "inherit_env",
         "never passed"),
        (CMD, {"command": "x", "inherit_env": ["V"] * 101}, "inherit_env", "at most 100"),
        (CMD, {"command": "x", "cwd": ""}, "cwd", "invalid directory"),
        (CMD, {"command": "x", "kill_grace_s": -1}, "kill_grace_s", "invalid"),
        (CMD, {"command": "x", "kill_grace_s": float("inf")}, "kill_grace_s", "invalid"),
        (CMD, {"command": "x", "enviroment": {}}, "command", "unknown setting"),
        (HTTP, {}, "http", "needs a url"),
        (HTTP, {"url": "ftp://host/x"}, "http", "invalid url"),
        (HTTP, {"url": "https:///path"}, "http", "invalid url"),
        (HTTP, {"url": "agents.example.com"}, "http", "invalid url"),
        (HTTP, {"url": "http://host:99999/"}, "http", "invalid url"),
        (HTTP, {"url": "http://h", "secret": ""}, "secret", "non-empty"),
        (HTTP, {"url": "http://h", "secret": "whsec_***"}, "secret", "not valid base64"),
        (HTTP, {"url": "http://h", "secret": 42}, "secret", "non-empty string"),
        (HTTP, {"url": "http://h", "headers": {"Idempotency-Key": "x"}}, "headers", "set by"),
        (HTTP, {"url": "http://h", "headers": {"webhook-id": "x"}}, "headers", "set by"),
        (HTTP, {"url": "http://h", "headers": {"Bad Name": "x"}}, "headers", "invalid header"),
        (HTTP, {"url": "http://h", "headers": {"X-A": "a\r\nB: c"}}, "headers", "one-line"),
        (HTTP, {"url": "http://h", "headers": {"X-A": "é"}}, "headers", "ASCII"),
        (HTTP, {"url": "http://h", "headers": "X-A: 1"}, "headers", "table of strings"),
        (HTTP, {"urll": "http://h"}, "http", "unknown setting 'urll'"),
    ],
)
def test_errors_name_the_field(
    kind: AgentKind, raw: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(ValidationError) as info:
        validate_agent_config(kind, raw)
    assert info.value.field == field
    assert fragment in str(info.value)


def test_unknown_settings_suggest_the_right_one() -> None:
    with pytest.raises(ValidationError) as info:
        validate_agent_config(HTTP, {"url": "http://h", "secrett": "s"})
    assert info.value.hint == "did you mean 'secret'? valid: url, secret, headers, output_limit"


def test_env_error_hint_shows_how_to_quote() -> None:
    with pytest.raises(ValidationError) as info:
        validate_agent_config(CMD, {"command": "x", "env": {"PORT": 8080}})
    assert info.value.hint == 'quote it: PORT = "8080"'


def test_bad_kind_and_bad_config_type() -> None:
    with pytest.raises(ValidationError) as info:
        validate_agent_config("shell", {})  # type: ignore[arg-type]
    assert info.value.field == "kind" and "python, command, http, llm" in str(info.value)
    with pytest.raises(ValidationError, match="must be a table"):
        validate_agent_config(HTTP, ["http://h"])  # type: ignore[arg-type]


def test_validation_does_not_import_or_touch_files() -> None:
    # Syntax only: the module and the directory may exist only on the nodes running the agent.
    assert validate_agent_config(PY, {"target": "not_installed_anywhere:run"})
    assert validate_agent_config(CMD, {"command": "x", "cwd": "/no/such/dir"})["cwd"]
