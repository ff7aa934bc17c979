"""``agentcron workers``: the remote workers that pull runs of remote agents over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from agentcron.cli.common import services
from agentcron.cli.render import emit_json, print_table, say

app = typer.Typer(help="Remote workers (they pull runs of remote agents over HTTP).",
                  no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List workers: id, agents, state (idle, active, draining, lost), runs in flight, last
    seen, version."""
    # Imported here: the CLI starts without the store (tests/unit/test_layers.py).
    from agentcron.services.documents import worker_json
    from agentcron.services.workers import worker_state

    svc = services(ctx)
    now = svc.store.now()
    docs = [worker_json(w, worker_state(w, now).value) for w in svc.workers.list()]
    if as_json:
        emit_json(docs)
    elif not docs:
        say("no workers")
    else:
        print_table(None, ["ID", "AGENTS", "STATE", "RUNNING", "LAST SEEN", "VERSION"],
                    ([d["id"], ",".join(d["agents"]), d["state"], d["running"],
                      d["last_seen"], d["version"] or "-"] for d in docs),
                    no_wrap=["ID"])
