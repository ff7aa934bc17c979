"""``Outbox``: a worker's outcomes, sent in batches (``POST /api/v1/workers/{id}/complete``).

Runs that end together are reported in one call and one transaction on the server, not one
each: an outcome is sent at once when nothing is being sent, and the outcomes that end
while a call is in flight go together in the next (up to ``MAX_ITEMS`` outcomes and about
``MAX_BYTES`` of text, under the server's body limit). Each caller still learns its own
run's answer: the run's status, ``Stale`` (that outcome changed nothing), or the call's
``Outage`` once it gives up.

A batch the server refuses as a whole (``Refused``: e.g. one of its runs was deleted, or a
server older than the batched call) is sent again outcome by outcome through the single
``POST /api/v1/runs/{id}/complete``, so one bad outcome costs no other its write.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from agentcron.worker.protocol import Outage, Protocol, Refused, Stale, retry

log = structlog.get_logger(__name__)

MAX_ITEMS = 200
MAX_BYTES = 256 * 1024
#: How long the first outcome waits for others that end with it (runs claimed together
#: often end together).
LINGER_S = 0.002
_ENVELOPE = 200  # bytes an outcome takes besides its output and error


def _size(body: dict[str, Any]) -> int:
    return _ENVELOPE + sum(len(body.get(k) or "") for k in ("output", "error"))


class Outbox:
    """Batches ``complete`` calls for one worker. ``give_up``: once set, an outage ends
    the call instead of another try (as ``retry``)."""

    def __init__(self, protocol: Protocol, give_up: asyncio.Event) -> None:
        self.protocol = protocol
        self.give_up = give_up
        self._pending: list[tuple[dict[str, Any], asyncio.Future[str]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def send(self, run_id: str, body: dict[str, Any]) -> str:
        """Report one run's outcome (``body`` as the single complete takes it); the run's
        status after it. ``Stale``: the lease was stale, nothing changed. ``Refused`` or
        ``Outage`` (after ``give_up``): it was not recorded."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append(({**body, "id": run_id}, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="worker-outbox")
        return await future

    async def aclose(self) -> None:
        """Stop sending; outcomes not yet answered end with ``Outage``."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for _, future in self._take(len(self._pending), None):
            if not future.done():
                future.set_exception(Outage("the worker stopped before it was sent"))

    def _take(self, most: int, max_bytes: int | None
              ) -> list[tuple[dict[str, Any], asyncio.Future[str]]]:
        batch: list[tuple[dict[str, Any], asyncio.Future[str]]] = []
        size = 0
        while self._pending and len(batch) < most:
            item = self._pending[0]
            size += _size(item[0])
            if batch and max_bytes is not None and size > max_bytes:
                break
            batch.append(self._pending.pop(0))
        return batch

    async def _flush(self) -> None:
        await asyncio.sleep(LINGER_S)
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
        statuses = dict(answers)
        for body, future in batch:
            status = statuses.get(body["id"])
            if status is None:
                _settle(future, Outage("the answer did not name this run"))
            elif status == "stale":
                _settle(future, Stale(f"stale lease {body['lease']} for run {body['id']}"))
            elif not future.done():
                future.set_result(status)

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
