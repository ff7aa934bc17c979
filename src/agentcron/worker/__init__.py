"""The reference remote worker: ``agentcron worker`` and, from Python code,
``from agentcron.worker import Worker``.

    from agentcron.worker import Worker, WorkerSettings

    def summarize(ctx):
        ctx.heartbeat("reading")
        return {"ok": True}

    Worker(WorkerSettings(url="http://agentcron:8080", token="...", agent="summarize"),
           function=summarize).run_forever()

It speaks the worker protocol (``worker/protocol.py``) and runs each run with this package's
executors, as a node runs a local agent (``worker/core.py``).
"""

from agentcron.worker.core import Worker, WorkerStats, default_worker_id
from agentcron.worker.settings import WorkerSettings

__all__ = ["Worker", "WorkerSettings", "WorkerStats", "default_worker_id"]
