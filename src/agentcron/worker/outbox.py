"""``Outbox``: a worker's outcomes, sent in batches (``POST /api/v1/workers/{id}/complete``).

Runs that end together are reported in one call and one transaction on the server, not one
each: an outcome is sent at once when nothing is being sent, and the outcomes that end
while a call is in flight go together in the next (up to ``MAX_ITEMS`` outcomes and about
``MAX_BYTES`` of text, under the server's body limit). Each caller still learns its own
run's answer: the run's status, ``Stale`` (that outcome changed nothing), or the call's
``Outage`` once it gives up.

A claim may carry them instead (``take_for_claim``): the worker reports what ended and
asks for more in one call, and the claim's answer settles them (``settle``).

A batch the server refuses as a whole (``Refused``: e.g. one of its runs was deleted, or a
server older than the batched call) is sent again outcome by outcome through the single
``POST /api/v1/runs/{id}/complete``, so one bad outcome costs no other its write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import structlog

from agentcron.worker.protocol import Outage, Protocol, Refused, Stale, retry

log = structlog.get_logger(__name__)

MAX_ITEMS = 200
MAX_BYTES = 256 * 1024
#: How long the first outcome waits for others that end with it (runs claimed together
#: often end together).
LINGER_S = 0.002
#: How long outcomes wait for a claim to carry them before they are sent on their own
#: (a claim may be a long poll in flight).
CLAIM_WAIT_S = 0.05
_ENVELOPE = 200  # bytes an outcome takes besides its output and error


def _size(body: dict[str, Any]) -> int:
    size = _ENVELOPE + sum(len(body.get(k) or "") for k in ("output", "error"))
    if body.get("schedule"):  # follow-ups' payloads count too (rare: measured only then)
        size += len(json.dumps(body["schedule"], default=str))
    return size


class Outbox:
    """Batches ``complete`` calls for one worker. ``give_up``: once set, an outage ends
    the call instead of another try (as ``retry``). ``claims_carry``: whether the worker's
    claims take outcomes now; then what waits is left up to ``CLAIM_WAIT_S`` for a claim
    to carry before the outbox sends it itself."""

    def __init__(self, protocol: Protocol, give_up: asyncio.Event,
                 claims_carry: Callable[[], bool] = lambda: False) -> None:
        self.protocol = protocol
        self.give_up = give_up
        self.claims_carry = claims_carry
        self._pending: list[tuple[dict[str, Any], asyncio.Future[str]]] = []
        #: Outcomes a claim carried and the server refused with it: sent on their own.
        self._not_for_claims: set[int] = set()
        self._flusher: asyncio.Task[None] | None = None

    async def send(self, run_id: str, body: dict[str, Any]) -> str:
        """Report one run's outcome (``body`` as the single complete takes it); the run's
        status after it. ``Stale``: the lease was stale, nothing changed. ``Refused`` or
        ``Outage`` (after ``give_up``): it was not recorded."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append(({**body, "id": run_id}, future))
        self._kick()
        return await future

    def take_for_claim(self) -> list[tuple[dict[str, Any], asyncio.Future[str]]]:
        """The outcomes waiting to be sent (as many as one call takes), for a claim to
        carry; the caller settles them (``settle``) or gives them back (``give_back``)."""
        batch = [item for item in self._take(MAX_ITEMS, MAX_BYTES, for_claim=True)
                 if not item[1].done()]
        return batch

    def settle(self, batch: list[tuple[dict[str, Any], asyncio.Future[str]]],
               answers: list[tuple[str, str]]) -> None:
        """Settle each outcome of ``batch`` with its answer (a status or ``stale``)."""
        statuses = dict(answers)
        for body, future in batch:
            status = statuses.get(body["id"])
            if status is None:
                _settle(future, Outage("the answer did not name this run"))
            elif status == "stale":
                _settle(future, Stale(f"stale lease {body['lease']} for run {body['id']}"))
            elif not future.done():
                future.set_result(status)

    def give_back(self, batch: list[tuple[dict[str, Any], asyncio.Future[str]]], *,
                  refused: bool) -> None:
        """Outcomes a claim did not deliver, sent again (first); ``refused``: on their
        own, never by a claim again."""
        if refused:
            self._not_for_claims.update(id(body) for body, _ in batch)
        self._pending[:0] = batch
        self._kick()

    def _kick(self) -> None:
        if self._pending and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush(), name="worker-outbox")

    async def aclose(self) -> None:
        """Stop sending; outcomes not yet answered end with ``Outage``."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for _, future in self._take(len(self._pending), None):
            if not future.done():
                future.set_exception(Outage("the worker stopped before it was sent"))

    def _take(self, most: int, max_bytes: int | None, for_claim: bool = False
              ) -> list[tuple[dict[str, Any], asyncio.Future[str]]]:
        batch: list[tuple[dict[str, Any], asyncio.Future[str]]] = []
        kept: list[tuple[dict[str, Any], asyncio.Future[str]]] = []
        size = 0
        while self._pending and len(batch) < most:
            item = self._pending.pop(0)
            if for_claim and id(item[0]) in self._not_for_claims:
                kept.append(item)
                continue
            size += _size(item[0])
            if batch and max_bytes is not None and size > max_bytes:
                self._pending.insert(0, item)
                break
            self._not_for_claims.discard(id(item[0]))
            batch.append(item)
        self._pending[:0] = kept
        return batch

    async def _flush(self) -> None:
        await asyncio.sleep(LINGER_S)
        waited = 0.0
        while self._pending and self.claims_carry() and waited < CLAIM_WAIT_S:
            await asyncio.sleep(LINGER_S)
            waited += LINGER_S
        while self._pending:
            batch = [(b, f) for b, f in self._take(MAX_ITEMS, MAX_BYTES) if not f.done()]
            if batch:
                await self._send(batch)

    async def _send(self, batch: list[tuple[dict[str, Any], asyncio.Future[str]]]) -> None:
        bodies = [body for body, _ in batch]
        try:
            answers = await retry(lambda: self.protocol.complete_many(bodies), "complete",
                                  give_up=self.give_up)
        except Refused as exc:
            if len(batch) == 1 and exc.status not in (404, 405):
                _settle(batch[0][1], exc)
                return
            log.warning("worker_batch_refused", outcomes=len(batch), error=str(exc)[:200],
                        note="sent one by one instead")
            await asyncio.gather(*(self._send_one(body, future) for body, future in batch))
            return
        except Outage as exc:
            for _, future in batch:
                _settle(future, exc)
            return
        self.settle(batch, answers)

    async def _send_one(self, body: dict[str, Any], future: asyncio.Future[str]) -> None:
        fields = {k: v for k, v in body.items() if k != "id"}
        try:
            status = await retry(lambda: self.protocol.complete(body["id"], fields),
                                 "complete", give_up=self.give_up)
        except (Stale, Refused, Outage) as exc:
            _settle(future, exc)
            return
        if not future.done():
            future.set_result(status)


def _settle(future: asyncio.Future[str], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
