"""Follow-ups: the triggers a run asked for, validated by the one trigger validator.

A run's requests (``ctx.schedule``, an answer's ``"schedule"`` list, a command's
``::agentcron:schedule`` lines, a remote worker's ``schedule``; see
``executors/follow_ups.py``) arrive as plain dicts. Each becomes a ``TriggerInput`` (its
agent defaults to the run's) and goes through ``TriggerService.build``, exactly as a
trigger a person adds: a valid one is a ``FollowUp(row=...)`` that ``Store.finish`` writes
in the outcome's fenced transaction, under the target agent's guardrails; an invalid one is
a ``FollowUp(refused=...)`` whose reason names the request and field
(``schedule[0].cron: ...``), recorded on the run. Nothing here raises for a bad request:
the run did its work, and its outcome is written whatever it asked for.

Two callers: the node (``FollowUps.for_run`` is the engine's ``FollowUpBuilder``, injected
by ``server.run_node``) and the worker protocol (``WorkerService`` for a remote run's
complete).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from agentcron.errors import NotFoundError, ValidationError
from agentcron.executors.follow_ups import REQUEST_KEYS, WHEN_KEYS
from agentcron.models import AgentSpec, ClaimedRun, FollowUp
from agentcron.rules.scheduling import MAX_FOLLOW_UPS
from agentcron.schedule.durations import parse_duration
from agentcron.services.trigger_input import TriggerInput
from agentcron.services.triggers import TriggerService
from agentcron.services.validate import located

SOURCE = "run"
"""The ``source`` (kind) of a trigger a run made; its ``created_by`` is ``run:<run id>``."""
_KEYS_HINT = "use " + ", ".join(REQUEST_KEYS)
_STRINGS = ("agent", "cron", "at", "tz", "name")


def created_by(run_id: str) -> str:
    """The provenance of a trigger made by run ``run_id``."""
    return f"{SOURCE}:{run_id}"


class FollowUps:
    def __init__(self, triggers: TriggerService) -> None:
        self.triggers = triggers

    def for_run(self, run: ClaimedRun, requests: Sequence[Any], now: datetime
                ) -> tuple[FollowUp, ...]:
        """The engine's hook (``engine.follow_ups.FollowUpBuilder``) for a node's run."""
        return self.build(run.run_id, run.agent.name, requests, now, spec=run.agent)

    def build(self, run_id: str, agent: str, requests: Sequence[Any], now: datetime, *,
              spec: AgentSpec | None = None) -> tuple[FollowUp, ...]:
        """One ``FollowUp`` per request of run ``run_id`` (of agent ``agent``, whose
        ``spec`` saves a read), in order; past ``MAX_FOLLOW_UPS`` one refusal says the rest
        were dropped. ``now`` is when the outcome is written (a schedule's first fire time
        is counted from it). Reads an agent from the store only for a request naming
        another agent (once per agent)."""
        known: dict[str, AgentSpec | None] = {agent: spec} if spec is not None else {}
        out: list[FollowUp] = []
        for i, raw in enumerate(requests):
            if i >= MAX_FOLLOW_UPS:
                out.append(FollowUp(refused=(
                    f"schedule[{i}]: more than {MAX_FOLLOW_UPS} follow-ups in one run; "
                    f"{len(requests) - i} or more were dropped")))
                break
            try:
                with located(f"schedule[{i}]"):
                    given = _input(raw, agent, now)
                    target = self._agent(given.agent, known)
                    new = self.triggers.build(given, now, source=SOURCE, agent=target,
                                              created_by=created_by(run_id))
            except ValidationError as exc:
                out.append(FollowUp(refused=str(exc)))
                continue
            except (TypeError, ValueError, OverflowError) as exc:  # a value of a wrong type
                out.append(FollowUp(refused=f"schedule[{i}]: {exc}"))
                continue
            out.append(FollowUp(row=new.row()))
        return tuple(out)

    def _agent(self, name: str, known: dict[str, AgentSpec | None]) -> AgentSpec | None:
        """The target agent (its templates must render with the payload); an unknown one
        is refused here with a clear reason rather than by the insert."""
        if name not in known:
            try:
                known[name] = self.triggers.store.get_agent(name)
            except NotFoundError:
                raise ValidationError("agent", f"no agent named {name!r}",
                                      "name an existing agent, or leave agent out to "
                                      "schedule this run's own agent") from None
        return known[name]


def _input(raw: Any, agent: str, now: datetime) -> TriggerInput:
    """A request as a ``TriggerInput``: a JSON object with the keys ``REQUEST_KEYS``, each
    of the type a person would type (strings; ``every`` may be seconds)."""
    if not isinstance(raw, dict):
        raise ValidationError("request", f"not a JSON object: {repr(raw)[:80]}",
                              'e.g. {"in": "20m", "payload": {...}}')
    unknown = sorted(str(k) for k in raw if k not in REQUEST_KEYS)
    if unknown:
        raise ValidationError(unknown[0][:40], "is not a follow-up key", _KEYS_HINT)
    for key in _STRINGS:
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise ValidationError(key, f"must be a string, got {repr(value)[:40]}")
    for key in ("every", "in"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, str | int | float)):
            raise ValidationError(key, f"must be a duration, got {repr(value)[:40]}",
                                  "e.g. \"20m\" or a number of seconds")
    given = [k for k in WHEN_KEYS if raw.get(k) is not None]
    if len(given) != 1:
        raise ValidationError(
            "schedule", "no time given" if not given else f"{' and '.join(given)} given "
            "together", "give exactly one of at, in, cron or every")
    at: str | datetime | None = raw.get("at")
    if raw.get("in") is not None:
        # Captured requests already carry ``at``; a raw ``in`` (another worker's, or one
        # an executor could not read) counts from when the outcome is written.
        at = now + timedelta(seconds=parse_duration(raw["in"], "in"))
    return TriggerInput(agent=raw.get("agent") or agent, cron=raw.get("cron"),
                        every=raw.get("every"), at=at, tz=raw.get("tz"),
                        payload=raw.get("payload"), name=raw.get("name"))
