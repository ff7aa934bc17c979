"""A slow link, for a kernel without ``netem``: a TCP proxy that holds every chunk of bytes,
each way, for a delay drawn from ``delay ± jitter`` before passing it on
(``python -m chaos.delay --listen HOST --to HOST:PORT --delay-ms 50 --jitter-ms 10``).

Bytes keep their order: a chunk is never sent before the one read ahead of it, so a chunk
whose draw is shorter than its predecessor's leaves with it (as on a real link, jitter
bunches packets rather than reordering a TCP stream). It runs in its own process so a
node's load never slows the link further, prints ``listening PORT`` once it accepts
connections, and exits on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys

CHUNK = 1 << 16


class Link:
    def __init__(self, delay_s: float, jitter_s: float, seed: int | None) -> None:
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self.rng = random.Random(seed)

    def draw(self) -> float:
        return max(0.0, self.rng.uniform(self.delay_s - self.jitter_s,
                                         self.delay_s + self.jitter_s))

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read chunks as they come; a second task writes each once its delay is up."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.create_task(send())
        last = 0.0
        try:
            while True:
                chunk = await reader.read(CHUNK)
                last = max(last, loop.time() + self.draw())
                await queue.put((last, chunk))
                if not chunk:
                    break
            await sender
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
            writer.close()

    async def serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                    host: str, port: int) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(self.pump(client_r, server_w), self.pump(server_r, client_w),
                             return_exceptions=True)


async def main_async(listen: str, target: str, delay_s: float, jitter_s: float,
                     seed: int | None) -> None:
    to_host, _, to_port = target.rpartition(":")
    link = Link(delay_s, jitter_s, seed)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await asyncio.start_server(
        lambda r, w: link.serve(r, w, to_host, int(to_port)), listen, 0, backlog=1024)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.delay")
    parser.add_argument("--listen", required=True, help="address to accept connections on")
    parser.add_argument("--to", required=True, help="HOST:PORT to pass them to")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.listen, args.to, args.delay_ms / 1000, args.jitter_ms / 1000,
                           args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
