"""``agentcron nodes``: the running ``agentcron serve`` processes, and what each runs."""

from __future__ import annotations

from typing import Annotated

import typer

from agentcron.cli.common import services
from agentcron.cli.render import emit_json, print_table, say

app = typer.Typer(help="Nodes (agentcron serve processes) and their routing.",
                  no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List nodes: id, host, state, runs in flight, what it runs (its --agents and --tags),
    last heartbeat. Nodes dead for over an hour are left out."""
    # Imported here: the CLI starts without the store (tests/unit/test_layers.py).
    from agentcron.services.documents import node_json

    docs = [node_json(node, alive) for node, alive in services(ctx).nodes()]
    if as_json:
        emit_json(docs)
    elif not docs:
        say("no nodes")
    else:
        print_table(None, ["ID", "HOST", "STATE", "RUNNING", "RUNS", "LAST HEARTBEAT"],
                    ([d["id"], d["hostname"],
                      "draining" if d["draining"] else "alive" if d["alive"] else "silent",
                      d["running"], d["runs"], d["heartbeat_at"]] for d in docs),
                    no_wrap=["ID"])
