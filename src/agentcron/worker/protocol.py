"""The worker protocol's client side: four calls over HTTP, and what each answer means.

- ``claim`` (a long poll), ``heartbeat`` (one call for every run held), ``complete`` and
  ``release`` (fenced on the run's lease), as ``POST /api/v1/workers/claim``,
  ``/api/v1/workers/{id}/heartbeat``, ``/api/v1/runs/{id}/complete`` and ``.../release``;
  ``complete_many`` (``/api/v1/workers/{id}/complete``) carries many outcomes at once.
- A network error, a timeout, a 5xx or a 429 is an outage: the call is retried with backoff
  (``retry``) until it is answered or the caller gives up, so a blip loses nothing.
- A 409 on a run's write is ``Stale``: the run is no longer this worker's (taken over,
  cancelled, finished); the write changed nothing and must be dropped, not retried.
- Any other 4xx is ``Refused``: a mistake no retry fixes (a bad token, an agent the token
  is not for, a malformed request); the message is the server's ``detail`` and ``hint``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx
import structlog

from agentcron import __version__
from agentcron.rules.scheduling import MAX_FOLLOW_UPS

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: Retried answers: the server or something in front of it is briefly unable to answer.
RETRIED_STATUS = frozenset({429, 500, 502, 503, 504})
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0
#: Heartbeats a worker keeps in flight at once, each given as many heartbeat intervals to be
#: answered. A beat proves the worker alive from when it was *sent*, however late its answer
#: (``worker/fence.py``): a server slowed by load then costs no proof, and a beat stuck on a
#: dead connection does not hold back the next one.
BEATS_IN_FLIGHT = 4


class Outage(Exception):
    """The server did not answer (a network error, a timeout, a 5xx): try again later."""


class Stale(Exception):
    """409: the run is no longer this worker's under that lease; the write changed nothing."""


class Refused(Exception):
    """A 4xx other than 409: a mistake that no retry fixes. ``str()`` says what and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class ClaimedWork:
    """One run as the claim answers it."""

    id: str
    lease: int
    attempt: int
    agent: str
    trigger_id: str | None
    scheduled_for: datetime
    deadline_at: datetime | None
    payload: Any
    zombie_timeout_s: float | None = None  # None from a server that does not say


def _when(value: Any) -> datetime | None:
    return None if value in (None, "") else datetime.fromisoformat(str(value))


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return None
    return float(value)


def _work(item: dict[str, Any]) -> ClaimedWork:
    scheduled = _when(item.get("scheduled_for"))
    if scheduled is None:
        raise ValueError("a claimed run has no scheduled_for")
    return ClaimedWork(id=str(item["id"]), lease=int(item["lease"]),
                       attempt=int(item["attempt"]), agent=str(item["agent"]),
                       trigger_id=item.get("trigger_id"), scheduled_for=scheduled,
                       deadline_at=_when(item.get("deadline_at")), payload=item.get("payload"),
                       zombie_timeout_s=_seconds(item.get("zombie_timeout_s")))


class Protocol:
    """One worker's connection to the API. ``transport`` (tests) replaces the network."""

    def __init__(self, url: str, token: str, worker_id: str, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.worker_id = worker_id
        common: dict[str, Any] = {
            "base_url": url.rstrip("/"), "transport": transport,
            "headers": {"Authorization": f"Bearer {token}",
                        "User-Agent": f"agentcron-worker/{__version__}"}}
        # Generous limits: the long poll and completions (and releases) run at once.
        self.client = httpx.AsyncClient(
            **common, limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        # Heartbeats have connections of their own: the fence counts on them, and they must
        # never wait for a connection behind a burst of completions or releases.
        self.beats = httpx.AsyncClient(
            **common, limits=httpx.Limits(max_connections=BEATS_IN_FLIGHT,
                                          max_keepalive_connections=BEATS_IN_FLIGHT))

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.beats.aclose()

    async def _post(self, path: str, body: dict[str, Any], timeout_s: float,
                    client: httpx.AsyncClient | None = None) -> Any:
        try:
            response = await (client or self.client).post(path, json=body, timeout=timeout_s)
        except httpx.HTTPError as exc:  # connect, read, timeouts, a dropped connection
            raise Outage(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code in RETRIED_STATUS:
            raise Outage(f"{response.status_code} from the server")
        if response.status_code == 409:
            raise Stale(_message(response))
        if response.status_code >= 400:
            raise Refused(response.status_code, _message(response))
        try:
            return response.json()
        except ValueError as exc:
            raise Outage(f"an answer that is not JSON ({response.status_code})") from exc

    async def claim(self, agents: list[str], most: int, wait_s: float,
                    outcomes: list[dict[str, Any]] | None = None
                    ) -> tuple[list[ClaimedWork], list[tuple[str, str]]]:
        """Up to ``most`` runs, as soon as one is ready or after ``wait_s`` (then none);
        ``outcomes`` (as ``complete_many`` takes them) are written first, and answered
        (run id, status or ``stale``) with the runs."""
        body: dict[str, Any] = {
            "worker_id": self.worker_id, "agents": agents, "max": most,
            "wait": f"{wait_s:g}s", "version": f"agentcron-worker {__version__}",
        }
        if outcomes:
            body["outcomes"] = outcomes
        answer = await self._post("/api/v1/workers/claim", body, timeout_s=wait_s + 15.0)
        return ([_work(item) for item in answer.get("runs", [])],
                [(str(r["id"]), str(r["status"])) for r in answer.get("results", [])])

    async def heartbeat(self, held: list[tuple[str, int, str | None]], draining: bool,
                        timeout_s: float) -> list[str]:
        """Keep the worker and every run in ``held`` (id, lease, new progress line or None)
        alive; the runs to stop."""
        runs: list[dict[str, Any]] = []
        for run_id, lease, progress in held:
            item: dict[str, Any] = {"id": run_id, "lease": lease}
            if progress is not None:
                item["progress"] = progress
            runs.append(item)
        answer = await self._post(f"/api/v1/workers/{self.worker_id}/heartbeat",
                                  {"runs": runs, "draining": draining}, timeout_s=timeout_s,
                                  client=self.beats)
        return [str(run_id) for run_id in answer.get("revoked", [])]

    async def complete(self, run_id: str, body: dict[str, Any]) -> str:
        """Record an outcome (``body``: lease, status, output, error, retry, usage); the run's
        status after it. ``Stale`` if the lease is no longer the run's."""
        answer = await self._post(f"/api/v1/runs/{run_id}/complete", body, timeout_s=30.0)
        return str(answer.get("status", ""))

    async def complete_many(self, bodies: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """Record many outcomes (each a ``complete`` body with the run's ``id``) in one
        call; (run id, the run's status after it, or ``stale``) for each."""
        answer = await self._post(f"/api/v1/workers/{self.worker_id}/complete",
                                  {"outcomes": bodies}, timeout_s=30.0)
        return [(str(r["id"]), str(r["status"])) for r in answer.get("results", [])]

    async def release(self, run_id: str, lease: int) -> None:
        """Hand a run back to the queue, its attempt given back."""
        await self._post(f"/api/v1/runs/{run_id}/release", {"lease": lease}, timeout_s=30.0)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict) and body.get("detail"):
        # The server's detail is its whole sentence ("field: problem (fix)"); the field and
        # the hint are added only where it lacks them.
        text = str(body["detail"])
        field, hint = body.get("field"), body.get("hint")
        if field and not text.startswith(f"{field}:"):
            text = f"{field}: {text}"
        if hint and str(hint) not in text:
            text += f" ({hint})"
        return text[:300]
    return str(body)[:300]


async def retry(call: Callable[[], Awaitable[T]], what: str, *,
                give_up: asyncio.Event | None = None) -> T:
    """``call()`` until it is answered: an ``Outage`` is logged and tried again after a
    backoff (0.2 s doubling to 5 s, with jitter); ``Stale`` and ``Refused`` propagate.
    ``give_up``: once set, the last ``Outage`` propagates instead of another try."""
    delay = BACKOFF_FIRST_S
    failures = 0
    while True:
        try:
            result = await call()
        except Outage as exc:
            failures += 1
            if give_up is not None and give_up.is_set():
                raise
            log_at = log.warning if failures in (1, 5) or failures % 20 == 0 else log.debug
            log_at("worker_call_failed", call=what, error=str(exc)[:300], failures=failures,
                   retry_in_s=round(delay, 2))
            if give_up is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(give_up.wait(), delay)
            delay = min(BACKOFF_MAX_S, delay * 2) * random.uniform(0.8, 1.0)
            continue
        if failures:
            log.info("worker_call_recovered", call=what, failures=failures)
        return result


def follow_up_bodies(run_id: str, requests: tuple[Any, ...]) -> list[dict[str, Any]]:
    """A run's follow-up requests as the complete body takes them (JSON objects, at most
    ``MAX_FOLLOW_UPS``). The server validates each and records a refusal on the run; an
    item that is not even an object (a command's ``::agentcron:schedule`` line that is not
    JSON) cannot be sent, so it is logged here instead."""
    kept = [r for r in requests if isinstance(r, dict)]
    if len(kept) != len(requests):
        log.warning("worker_follow_ups_dropped", run_id=run_id,
                    count=len(requests) - len(kept), reason="not a JSON object")
    if len(kept) > MAX_FOLLOW_UPS:
        log.warning("worker_follow_ups_dropped", run_id=run_id,
                    count=len(kept) - MAX_FOLLOW_UPS,
                    reason=f"more than {MAX_FOLLOW_UPS} in one run")
    return kept[:MAX_FOLLOW_UPS]
