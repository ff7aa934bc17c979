"""A worker's settings, checked before it starts, and the local agent it runs runs as."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from agentcron.errors import ValidationError
from agentcron.executors.validation import validate_agent_config
from agentcron.models import AgentKind, AgentSpec

_WORKER_ID = re.compile(r"^[A-Za-z0-9._:@\-]{1,64}$")
_AGENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


@dataclass(frozen=True)
class WorkerSettings:
    """``python`` (``module:function``) or ``command`` says what runs each run of ``agent``.

    ``heartbeat_interval_s``: keep it at most a third of the agent's zombie timeout (the
    server's default timeout is 60 s; the default beat, 5 s, suits timeouts from 15 s), so
    two beats may be lost to a blip before the worker's runs are taken for lost.
    ``wait_s``: how long one claim waits for a run (the server cuts it to 60 s).
    """

    url: str
    token: str
    agent: str
    python: str | None = None
    command: str | None = None
    concurrency: int = 1
    worker_id: str | None = None
    heartbeat_interval_s: float = 5.0
    wait_s: float = 20.0
    drain_timeout_s: float = 30.0

    def validate(self, *, has_function: bool = False) -> WorkerSettings:
        """This, checked: ``ValidationError`` naming the flag and the fix."""
        if not self.url.startswith(("http://", "https://")):
            raise ValidationError("url", f"{self.url[:80]!r} is not an http(s) URL",
                                  "give the node's API root, e.g. http://agentcron:8080")
        if not self.token:
            raise ValidationError("token", "no token given",
                                  "create one: agentcron tokens create NAME --scope worker "
                                  "--agents AGENT")
        if not _AGENT.match(self.agent or ""):
            raise ValidationError("agent", f"{self.agent!r} is not a valid agent name",
                                  "give the name of a remote agent")
        given = [name for name, value in (("python", self.python), ("command", self.command))
                 if value]
        if has_function:
            given.append("function")
        if len(given) != 1:
            raise ValidationError(
                "python", "no way to run the agent given" if not given
                else " and ".join(given) + " given together",
                "give exactly one of --python MODULE:FUNC or --command CMD")
        if not 1 <= self.concurrency <= 1000:
            raise ValidationError("concurrency", f"{self.concurrency} is out of range",
                                  "use 1 to 1000")
        if self.worker_id is not None and not _WORKER_ID.match(self.worker_id):
            raise ValidationError("worker-id", f"{self.worker_id[:80]!r} is not a valid id",
                                  "1-64 letters, digits, '.', '_', ':', '@' or '-'")
        for name, value, low in (("heartbeat-interval", self.heartbeat_interval_s, 0.1),
                                 ("wait", self.wait_s, 0.0),
                                 ("drain-timeout", self.drain_timeout_s, 0.0)):
            if not low <= value <= 3600:
                raise ValidationError(name, f"{value:g}s is out of range",
                                      f"use {low:g}s to 1h")
        return self


def local_spec(settings: WorkerSettings, python_target: str | None) -> AgentSpec:
    """The agent as the local executors run it: a python or command agent of the remote
    agent's name (its limits are the server's business; the deadline comes with each run)."""
    if python_target is not None:
        config = validate_agent_config(AgentKind.PYTHON, {"target": python_target})
        return AgentSpec(name=settings.agent, kind=AgentKind.PYTHON, config=config)
    assert settings.command is not None
    try:
        shlex.split(settings.command)
    except ValueError as exc:
        raise ValidationError("command", f"cannot split {settings.command[:80]!r}: {exc}",
                              "quote it as a shell would") from None
    config = validate_agent_config(AgentKind.COMMAND, {"command": settings.command})
    return AgentSpec(name=settings.agent, kind=AgentKind.COMMAND, config=config)
