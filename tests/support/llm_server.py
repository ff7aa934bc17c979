"""A small OpenAI-compatible chat completions server for the llm agent tests.

Run as its own process (``python tests/llm_server.py``; it prints ``LISTENING <url>``) on
loopback, so the agent talks to it over real sockets with real httpx: nothing is mocked.
Standard library only. Tests start it with ``LlmServer.start()``.

``POST /v1/chat/completions`` behaves as the request's *model name* says, so each test picks
its behaviour without shared state: ``<behaviour>[;option=value]...``

- ``echo`` (or any other name): 200 with ``"echo: <user message>"`` and usage
  ``prompt_tokens`` = words in all messages, ``completion_tokens`` = words in the answer;
  options ``prompt_tokens=N`` / ``completion_tokens=N`` fix them instead;
- ``status;code=429;retry_after=2``: that status, with ``Retry-After`` when given, and an
  OpenAI-shaped error body (``echo_key=1`` puts the received Authorization header in it);
- ``fail_first=N;code=...`` (with any behaviour): the first N requests for this exact model
  name answer with ``code`` (default 500) first;
- ``rpm=N;window=S`` (with any behaviour): a provider's rate limit: a request for this exact
  model name arriving when N requests were answered in the last S seconds (default 60)
  gets 429 with ``Retry-After`` (and is recorded with ``"limited": true``);
- ``hang``: never answers (until the server stops);
- ``not-json``: 200 with an HTML page; ``no-choices``: 200 JSON without ``choices``;
  ``no-usage``: 200 completion without ``usage``.

``GET /requests`` returns every request received (path, headers, JSON body); ``POST /reset``
forgets them and the ``fail_first`` counters.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_requests: list[dict[str, Any]] = []
_seen: Counter[str] = Counter()
_answered: dict[str, list[float]] = {}  # model -> monotonic times of requests let through
_stop = threading.Event()


def _options(model: str) -> tuple[str, dict[str, str]]:
    behaviour, *rest = model.split(";")
    return behaviour, dict(part.split("=", 1) for part in rest if "=" in part)


def _over_rate(model: str, opts: dict[str, str]) -> bool:
    """``rpm=N;window=S``: whether N requests were let through in the last S seconds (the
    caller holds ``_lock``); if not, this one is let through and counted."""
    if "rpm" not in opts:
        return False
    now = time.monotonic()
    window = float(opts.get("window", "60"))
    recent = [t for t in _answered.get(model, []) if t > now - window]
    if len(recent) >= int(opts["rpm"]):
        _answered[model] = recent
        return True
    _answered[model] = [*recent, now]
    return False


def _words(text: str) -> int:
    return len(text.split())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(doc).encode(), headers=headers)

    def do_GET(self) -> None:
        if self.path == "/requests":
            with _lock:
                self._json(200, list(_requests))
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/reset":
            with _lock:
                _requests.clear()
                _seen.clear()
                _answered.clear()
            self._json(200, {"ok": True})
            return
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = json.loads(raw)
        model = str(body.get("model", "echo"))
        behaviour, opts = _options(model)
        with _lock:
            limited = _over_rate(model, opts)
            _requests.append({"path": self.path, "headers": dict(self.headers.items()),
                              "body": body, "limited": limited})
            _seen[model] += 1
            count = _seen[model]
        if limited:
            self._fail(429, {"retry_after": "1"})
            return
        if "fail_first" in opts and count <= int(opts["fail_first"]):
            self._fail(int(opts.get("code", "500")), opts)
            return
        if behaviour == "status":
            self._fail(int(opts.get("code", "500")), opts)
        elif behaviour == "hang":
            _stop.wait(600)
        elif behaviour == "not-json":
            self._send(200, b"<html><body>It works!</body></html>", "text/html")
        elif behaviour == "no-choices":
            self._json(200, {"id": "x", "object": "chat.completion"})
        else:
            self._complete(body, model, behaviour, opts)

    def _fail(self, code: int, opts: dict[str, str]) -> None:
        headers = {"Retry-After": opts["retry_after"]} if "retry_after" in opts else {}
        message = f"simulated HTTP {code}"
        if opts.get("echo_key"):
            message += f"; you sent {self.headers.get('Authorization')}"
        self._json(code, {"error": {"message": message, "type": "test"}}, headers)

    def _complete(self, body: dict[str, Any], model: str, behaviour: str,
                  opts: dict[str, str]) -> None:
        messages = body.get("messages") or []
        user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        answer = f"echo: {user}"
        if opts.get("echo_key"):
            answer += f"; you sent {self.headers.get('Authorization')}"
        doc: dict[str, Any] = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": f"{model}-2026-01-01",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer}}],
        }
        if behaviour != "no-usage":
            prompt = int(opts.get("prompt_tokens",
                                  sum(_words(str(m.get("content", ""))) for m in messages)))
            completion = int(opts.get("completion_tokens", _words(answer)))
            doc["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                            "total_tokens": prompt + completion}
        self._json(200, doc)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"LISTENING http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(0.05)
    finally:
        _stop.set()


class LlmServer:
    """The server above as a child process; ``base_url`` ends in ``/v1``."""

    def __init__(self, proc: subprocess.Popen[bytes], root: str) -> None:
        self.proc = proc
        self.root = root
        self.base_url = f"{root}/v1"

    @classmethod
    def start(cls) -> LlmServer:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve())],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("LISTENING "):
            proc.kill()
            raise RuntimeError(f"llm test server did not start: {line!r}")
        return cls(proc, line.split(" ", 1)[1])

    def requests(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.root}/requests", timeout=10) as response:
            result: list[dict[str, Any]] = json.loads(response.read())
        return result

    def requests_for(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["body"].get("model") == model]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


if __name__ == "__main__":
    main()
