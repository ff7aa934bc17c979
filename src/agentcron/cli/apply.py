"""``agentcron apply FILE [--dry-run]``: sync an agents file into the database without
starting a node, so a deploy pipeline can apply it and nodes start without ``--config``.
The sync is the one ``serve --config`` runs (source ``file``), except that a python agent's
module need not import on the machine applying it (a warning, as ``agents add`` gives)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentcron.cli.common import services
from agentcron.cli.render import emit_json, print_table, say


def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The agents file (TOML).")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what would be created, updated and removed; write nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")
                       ] = False,
) -> None:
    """Sync an agents file into the database, as `serve --config FILE` does on start."""
    from agentcron.services.agents import import_problem
    from agentcron.services.agents_file import load_agents_file
    from agentcron.services.documents import planned_change_json

    declared = load_agents_file(file)
    svc = services(ctx)
    if dry_run:
        planned = svc.declared.plan_agents_file(declared)
        if as_json:
            emit_json([planned_change_json(change) for change in planned])
        elif not planned:
            say(f"{file}: nothing to change")
        else:
            print_table(f"{file}: what applying it would change (nothing written)",
                        ["ACTION", "KIND", "NAME", "DETAIL"],
                        ([c.action, c.kind, c.name, c.detail or "-"] for c in planned),
                        no_wrap=["ACTION", "KIND"])
        return
    report = svc.declared.sync_agents_file(declared, check_imports=False)
    if as_json:
        emit_json(report)
    else:
        say(f"{file} applied: {report['agents']} agents; triggers {report['created']} "
            f"created, {report['updated']} updated, {report['removed']} removed")
    folders = [declared.folder] if declared.folder is not None else []
    for name in declared.agents:
        problem = import_problem(svc.agents.get(name), *folders)
        if problem is not None:
            typer.echo(f"warning: agents.{name}: {problem.message}. Applied all the same: "
                       "its runs fail on any node that cannot import it", err=True)
