"""``agentcron costs`` (a report of tokens and cost) and ``agentcron prices`` (set | list | rm),
thin layers over ``agentcron.services.spending``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentcron.cli.common import services
from agentcron.cli.render import emit_json, iso, print_table, say
from agentcron.models import ModelPrice
from agentcron.rules.budgets import format_usd
from agentcron.services.documents import cost_report_json, cost_total

if TYPE_CHECKING:
    from agentcron.services.spending import Spending

app = typer.Typer(help="Model prices: USD per million input and output tokens.",
                  no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
HEADINGS = {"agent": "AGENT", "trigger": "TRIGGER", "model": "MODEL", "day": "DAY (UTC)"}


def _spending(ctx: typer.Context) -> Spending:
    return services(ctx).spending


def price_json(price: ModelPrice) -> dict[str, Any]:
    return {"model": price.model, "input_per_mtok": price.input_per_mtok,
            "output_per_mtok": price.output_per_mtok, "source": price.source,
            "updated_at": iso(price.updated_at)}


@app.command("set")
def set_(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model, as runs record it.")],
    input_per_mtok: Annotated[float, typer.Option(
        "--input", metavar="USD", help="USD per million input (prompt) tokens.")],
    output_per_mtok: Annotated[float, typer.Option(
        "--output", metavar="USD", help="USD per million output (completion) tokens.")],
    as_json: JsonFlag = False,
) -> None:
    """Set a model's price. It applies to runs that finish from now on."""
    price = _spending(ctx).set_price(model, input_per_mtok, output_per_mtok)
    if as_json:
        emit_json(price_json(price))
    else:
        say(f"price of {price.model} set: ${price.input_per_mtok:g} in / "
            f"${price.output_per_mtok:g} out per million tokens")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List model prices."""
    prices = _spending(ctx).list_prices()
    if as_json:
        emit_json([price_json(p) for p in prices])
    elif not prices:
        say("no prices")
    else:
        print_table(None, ["MODEL", "INPUT $/MTOK", "OUTPUT $/MTOK", "SOURCE", "UPDATED"],
                    ([p.model, f"{p.input_per_mtok:g}", f"{p.output_per_mtok:g}", p.source,
                      p.updated_at] for p in prices), no_wrap=["MODEL"])


@app.command("rm")
def rm(ctx: typer.Context,
       model: Annotated[str, typer.Argument(metavar="MODEL", help="The model.")]) -> None:
    """Remove a model's price (its runs keep the cost they were given)."""
    _spending(ctx).remove_price(model)
    say(f"price of {model} removed")


def costs(
    ctx: typer.Context,
    by: Annotated[str, typer.Option("--by", metavar="agent|trigger|model|day",
                                    help="Group runs by this.")] = "agent",
    since: Annotated[str | None, typer.Option(
        "--since", metavar="DATE", help="Runs started from this date (UTC) or ISO time "
        "(default: 30 days ago).")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", metavar="DATE", help="... and before this one (default: now).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many groups.")] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """Tokens and cost of the runs started in a period, grouped."""
    report = _spending(ctx).cost_report(by, since, until, limit=limit)
    total = cost_total(report.rows)
    if as_json:
        emit_json(cost_report_json(report))
        return
    if not report.rows:
        say(f"no runs started since {iso(report.since)}")
        return
    print_table(
        f"cost by {report.by} since {iso(report.since)}"
        + (f" until {iso(report.until)}" if report.until else ""),
        [HEADINGS[report.by], "RUNS", "INPUT TOKENS", "OUTPUT TOKENS", "COST USD", "UNPRICED"],
        [*([r.key, f"{r.runs:,}", f"{r.input_tokens:,}", f"{r.output_tokens:,}",
            format_usd(r.cost_usd), r.unpriced_runs or ""] for r in report.rows),
         ["total", f"{total.runs:,}", f"{total.input_tokens:,}", f"{total.output_tokens:,}",
          format_usd(total.cost_usd), total.unpriced_runs or ""]],
        no_wrap=[HEADINGS[report.by]],
    )
    if total.unpriced_runs:
        say(f"{total.unpriced_runs} run(s) recorded tokens but no cost: their model has no "
            "price (see `agentcron prices set`), so the cost shown is a lower bound")
    if report.truncated:
        say(f"only the first {len(report.rows)} groups are shown (--limit)")
