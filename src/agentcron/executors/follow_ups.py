"""Follow-ups: the triggers a run asks for, captured as the agent states them.

Three ways in, one shape out (a plain, JSON-ready dict per request, keys ``REQUEST_KEYS``):

- a python agent calls ``ctx.schedule(in_="20m", payload=...)`` (``request``);
- an http agent, a command agent printing a JSON object, or a remote worker answers a JSON
  object with ``"schedule": [{...}, ...]`` (``requests_of``);
- a command agent prints lines ``::agentcron:schedule {json object}`` on stdout
  (``split_directives``), which are taken out of its output.

Only cheap shape work is done here: ``in`` becomes ``at`` (an ISO 8601 UTC time) when it is
captured, so a relative time counts from when the agent asked, not from when the outcome is
written; and at most ``MAX_FOLLOW_UPS`` requests are kept per run (one more is kept from an
answer so the validator can say that the rest were dropped). Whether a request is a valid
trigger is decided by the trigger service's one validator (``services/follow_ups.py``),
which refuses a bad request with a reason recorded on the run; a bad request never fails a
run that did its work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from agentcron.errors import ValidationError
from agentcron.models import FollowUp
from agentcron.rules.scheduling import MAX_FOLLOW_UPS
from agentcron.schedule.durations import parse_duration

REQUEST_KEYS = ("agent", "cron", "every", "at", "in", "tz", "payload", "name")
"""The keys a follow-up request may have. Exactly one of ``cron``, ``every``, ``at``,
``in`` says when; ``agent`` defaults to the run's own agent."""
WHEN_KEYS = ("cron", "every", "at", "in")
COMMAND_DIRECTIVE = "::agentcron:schedule"
"""A command agent's stdout line ``::agentcron:schedule {"in": "20m"}`` asks for a
follow-up (the line is not part of the run's output)."""


def request(*, at: datetime | str | None = None, in_: str | float | None = None,
            cron: str | None = None, every: str | float | None = None,
            tz: str | None = None, payload: Any = None, name: str | None = None,
            agent: str | None = None, now: datetime) -> dict[str, Any]:
    """One ``ctx.schedule`` call as a request dict. ``ValueError`` naming the argument for
    what is wrong in any call (none or two of ``at`` / ``in_`` / ``cron`` / ``every``, a
    naive ``at``, a bad ``in_`` duration, a payload that is not JSON): the agent's own bug,
    raised where it calls. The rest (a cron's syntax, the agent's existence, the
    guardrails) is checked when the outcome is written, and a refusal is recorded on the
    run."""
    given = [k for k, v in (("at", at), ("in_", in_), ("cron", cron), ("every", every))
             if v is not None]
    if len(given) != 1:
        raise ValueError(
            "ctx.schedule needs exactly one of at=, in_=, cron= or every=, got "
            + (" and ".join(f"{k}=" for k in given) if given else "none"))
    out: dict[str, Any] = {}
    if agent is not None:
        out["agent"] = _str(agent, "agent")
    if in_ is not None:
        out["at"] = _in(in_, now, "in_")
    elif at is not None:
        if isinstance(at, datetime):
            if at.tzinfo is None or at.utcoffset() is None:
                raise ValueError("at must be timezone-aware (e.g. datetime.now(UTC) + ...)")
            out["at"] = at.astimezone(UTC).isoformat()
        else:
            out["at"] = _str(at, "at")
    elif cron is not None:
        out["cron"] = _str(cron, "cron")
    else:
        if isinstance(every, bool) or not isinstance(every, str | int | float):
            raise ValueError(f"every must be a duration like '30m' or seconds, got {every!r}")
        out["every"] = every
    if tz is not None:
        out["tz"] = _str(tz, "tz")
    if name is not None:
        out["name"] = _str(name, "name")
    if payload is not None:
        try:
            json.dumps(payload, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"payload must be JSON (dicts, lists, strings, numbers, "
                             f"booleans, None): {exc}") from None
        out["payload"] = payload
    return out


def requests_of(value: Any, now: datetime) -> tuple[Any, ...]:
    """The requests an answer's ``"schedule"`` value holds: a list is its items, a single
    object is one request, ``null`` none. Items are kept as given (a non-object item is
    refused by the validator, naming its index) up to ``MAX_FOLLOW_UPS`` + 1; an item's
    valid ``in`` becomes ``at`` now."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    return tuple(_absolute(item, now) for item in items[: MAX_FOLLOW_UPS + 1])


def split_directives(text: str, now: datetime) -> tuple[str, tuple[Any, ...]]:
    """A command's stdout without its ``::agentcron:schedule`` lines, and the requests
    they hold (a line whose rest is not JSON is kept as its text: the validator refuses it
    as not an object). Cheap when there are none: one substring test."""
    if COMMAND_DIRECTIVE not in text:
        return text, ()
    kept: list[str] = []
    found: list[Any] = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if not stripped.startswith(COMMAND_DIRECTIVE):
            kept.append(line)
            continue
        rest = stripped[len(COMMAND_DIRECTIVE):].strip()
        try:
            found.append(json.loads(rest))
        except ValueError:
            found.append(rest)
    return "".join(kept), requests_of(found, now) if found else ()


def merged(*parts: Iterable[Any]) -> tuple[Any, ...]:
    """Requests from several sources (the context, the answer), in order, capped like
    ``requests_of``."""
    out: list[Any] = []
    for part in parts:
        out.extend(part)
    return tuple(out[: MAX_FOLLOW_UPS + 1])


NOT_SUCCEEDED = ("the attempt did not succeed: follow-ups are kept only from an attempt "
                 "that succeeds (a retry asks again)")


def refused_all(requests: Sequence[Any], reason: str) -> tuple[FollowUp, ...]:
    """Every request refused for one ``reason`` (an attempt that failed; a node without
    follow-up support): one refusal for them all, so the run shows one event, not one per
    request. None when there are no requests."""
    if not requests:
        return ()
    count = len(requests)
    what = "1 follow-up" if count == 1 else f"{count} follow-ups"
    return (FollowUp(refused=f"schedule: {what} not created: {reason}"),)


def utc_now() -> datetime:
    return datetime.now(UTC)


Clock = Callable[[], datetime]


def _absolute(item: Any, now: datetime) -> Any:
    """``item`` with a valid ``in`` turned into ``at`` (an invalid one is left for the
    validator to name)."""
    if not isinstance(item, dict) or "in" not in item or "at" in item:
        return item
    try:
        at = _in(item["in"], now, "in")
    except ValueError:
        return item
    out = {k: v for k, v in item.items() if k != "in"}
    out["at"] = at
    return out


def _in(value: Any, now: datetime, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{field} must be a duration like '20m' or seconds, got {value!r}")
    try:
        seconds = parse_duration(value, field)
        return (now + timedelta(seconds=seconds)).astimezone(UTC).isoformat()
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
    except OverflowError:
        raise ValueError(f"{field}: {value!r} is too far in the future") from None


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {value!r}")
    return value
