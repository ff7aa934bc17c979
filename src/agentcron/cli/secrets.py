"""``agentcron secrets``: the key that encrypts secrets at rest (``AGENTCRON_SECRET_KEY``)."""

from __future__ import annotations

from typing import Annotated

import typer

from agentcron.cli.common import services
from agentcron.cli.render import emit_json, say

app = typer.Typer(help="Secrets at rest: a new key, and re-encryption with it.",
                  no_args_is_help=True)


@app.command("key")
def key() -> None:
    """Print a new random key for AGENTCRON_SECRET_KEY."""
    from agentcron.store.secrets import new_key

    typer.echo(new_key())


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Encrypt every stored secret with the first key of AGENTCRON_SECRET_KEY.

    Secrets stored in plain text are encrypted, and secrets encrypted with an older key
    (listed after the first, comma-separated) are encrypted again with the first."""
    done = services(ctx).rotate_secrets()
    if as_json:
        emit_json(done)
    else:
        say(f"secrets re-encrypted: {done['agents']} agents, "
            f"{done['webhook_triggers']} webhook triggers")
