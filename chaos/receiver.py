"""The counting receiver: the endpoint every chaos ``http`` agent posts to.

A small HTTP/1.1 server on loopback, in its own process (``python -m chaos.receiver``), so
that killing, pausing or restarting nodes and the database never touches it. For every
request it records one line of nine tab-separated fields, appended to ``--out``::

    received_at  answered_at  run_id  attempt  trigger_id  scheduled_for  idempotency_key
    delivered  gone_at

and answers ``200`` after holding the request for the payload's ``hold`` seconds (so runs
take time and are in flight when a fault strikes). ``delivered`` is 1 when the 200 was
written to a connection that was still open, 0 when the client had gone (its node was
killed or drained mid-request): only a delivered request counts as a successful delivery.
``gone_at`` is when the client closed the connection while its request was held (empty if
it stayed): with ``received_at`` it bounds when an attempt was executing, so two attempts
of one run can be seen to overlap or not.

It prints ``listening PORT`` on stdout once it accepts connections, and on SIGTERM writes
what it still buffers and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import IO

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
            b"\r\n{}")
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


class Ledger:
    """Buffered lines, written out by a periodic flush (and at exit)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lines: list[str] = []
        self.count = 0

    def add(self, fields: list[str]) -> None:
        self.lines.append("\t".join(fields) + "\n")
        self.count += 1

    def flush(self) -> None:
        if self.lines:
            lines, self.lines = self.lines, []
            self.out.writelines(lines)
            self.out.flush()


class Receiver(asyncio.Protocol):
    """One client connection. Requests on it are answered one at a time, in order (httpx
    does not pipeline; a pipelined request would simply wait its turn)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.busy = False
        self.gone_at = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy:
            self.gone_at = f"{time.time():.6f}"

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._next()

    def _next(self) -> None:
        while not self.busy and not self.closed:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            length = 0
            key = ""
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "idempotency-key":
                    key = value.strip()
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = bytes(self.buf[end + 4:total])
            del self.buf[:total]
            self._request(body, key)

    def _request(self, body: bytes, key: str) -> None:
        received = time.time()
        try:
            doc = json.loads(body)
            payload = doc.get("payload") or {}
            hold = float(payload.get("hold", 0.0)) if isinstance(payload, dict) else 0.0
            fields = [f"{received:.6f}", "", str(doc["run_id"]), str(doc["attempt"]),
                      str(doc.get("trigger_id")), str(doc.get("scheduled_for")), key]
        except (ValueError, KeyError, TypeError):
            assert self.transport is not None
            self.transport.write(BAD)
            return
        self.busy = True
        if hold > 0:
            asyncio.get_running_loop().call_later(hold, self._answer, fields)
        else:
            self._answer(fields)

    def _answer(self, fields: list[str]) -> None:
        self.busy = False
        fields[1] = f"{time.time():.6f}"
        assert self.transport is not None
        delivered = not self.closed and not self.transport.is_closing()
        if delivered:
            self.transport.write(RESPONSE)
        fields.extend(["1" if delivered else "0", self.gone_at])
        self.ledger.add(fields)
        self._next()


async def serve(out: IO[str], host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    ledger = Ledger(out)
    server = await loop.create_server(lambda: Receiver(ledger), host, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening {bound}", flush=True)

    async def flusher() -> None:
        while True:
            await asyncio.sleep(0.2)
            ledger.flush()

    task = asyncio.create_task(flusher())
    await stop.wait()
    task.cancel()
    server.close()
    ledger.flush()
    print(f"received {ledger.count}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.receiver")
    parser.add_argument("--out", required=True, help="file to append one line per request to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with open(args.out, "a", encoding="utf-8") as out:
        asyncio.run(serve(out, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
