"""``agentcron alerts``: ``list`` (the outbox: what was raised and whether it went out) and
``rules add | list | rm``, thin layers over ``agentcron.services.alerts``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from agentcron.cli.common import services
from agentcron.cli.render import emit_json, print_table, say
from agentcron.services.alerts import AlertRuleInput
from agentcron.services.documents import alert_json, alert_rule_json

if TYPE_CHECKING:
    from agentcron.services.alerts import AlertService

app = typer.Typer(help="Alerts: rules that tell a person when runs fail or stop happening, "
                  "and the alerts they raised.", no_args_is_help=True)
rules_app = typer.Typer(help="Alert rules of agents and triggers.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _alerts(ctx: typer.Context) -> AlertService:
    return services(ctx).alerts


@app.command("list")
def list_(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's.")] = None,
    status: Annotated[str | None, typer.Option(
        "--status", metavar="open|sending|retrying|delivered|failed")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1-1000).")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List alerts, newest first: what each says, how many repeats it groups, whether it
    was delivered."""
    listed = _alerts(ctx).alerts(limit=limit, status=status, agent=agent)
    if as_json:
        emit_json([alert_json(a) for a in listed])
    elif not listed:
        say("no alerts")
    else:
        print_table(None, ["ID", "KIND", "AGENT", "TRIGGER", "RUN", "COUNT", "STATUS",
                           "ATTEMPTS", "FIRST", "REASON", "LAST ERROR"],
                    ([a.id[:13], a.kind, a.agent, a.trigger_id, a.run_id, a.count,
                      a.status.value, a.attempts, a.first_at, a.reason[:200],
                      (a.last_error or "")[:200]] for a in listed),
                    no_wrap=["ID", "KIND"])


@rules_app.command("add")
def add(
    ctx: typer.Context,
    agent: Annotated[str, typer.Argument(metavar="AGENT", help="The agent the rule watches.")],
    kind: Annotated[str, typer.Option(
        "--on", metavar="failed|consecutive_failures|missed|budget|long_running|dead_man|"
        "paused", help="What to alert on.")],
    channel: Annotated[list[str], typer.Option(
        "--channel", metavar="URL", help="A webhook URL (https://...) or an Apprise URL "
        "(slack://..., mailto://..., ntfy://...); repeat for more.")],
    trigger: Annotated[str | None, typer.Option(
        "--trigger", help="Only this trigger (id or name); else every run of the agent.")
    ] = None,
    threshold: Annotated[int | None, typer.Option(
        "--threshold", metavar="N", help="consecutive_failures: alert at the Nth.")] = None,
    after: Annotated[str | None, typer.Option(
        "--after", metavar="DURATION|Nx", help="long_running: a duration (30m); dead_man: "
        "a duration or a multiple of the trigger's interval (2x).")] = None,
    group_window: Annotated[str, typer.Option(
        "--group-window", metavar="DURATION",
        help="Repeats within this are sent as one alert with a count.")] = "1h",
    secret: Annotated[str | None, typer.Option(
        "--secret", envvar="AGENTCRON_ALERT_SECRET",
        help="Sign webhook deliveries with this (Standard Webhooks, whsec_...).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add an alert rule."""
    rule = _alerts(ctx).add(AlertRuleInput(
        agent=agent, kind=kind, channels=channel, trigger=trigger, threshold=threshold,
        after=after, group_window=group_window, webhook_secret=secret))
    if as_json:
        emit_json(alert_rule_json(rule))
    else:
        say(f"alert rule {rule.id} added: {rule.kind.value} of {rule.agent}"
            + (f" trigger {rule.trigger_id}" if rule.trigger_id else ""))


@rules_app.command("list")
def rules_list(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List alert rules."""
    rules = _alerts(ctx).rules(agent)
    if as_json:
        emit_json([alert_rule_json(r) for r in rules])
    elif not rules:
        say("no alert rules")
    else:
        docs = [alert_rule_json(r) for r in rules]
        print_table(None, ["ID", "AGENT", "TRIGGER", "ON", "N", "AFTER", "CHANNELS", "GROUP",
                           "SOURCE"],
                    ([d["id"], d["agent"], d["trigger_id"], d["kind"], d["threshold"],
                      d["after"], " ".join(d["channels"]), f"{d['group_window_s']:g}s",
                      d["source"]] for d in docs), no_wrap=["ID"])


@rules_app.command("rm")
def rm(ctx: typer.Context,
       rule_id: Annotated[str, typer.Argument(metavar="RULE", help="The rule's id.")]) -> None:
    """Remove an alert rule and its alerts."""
    _alerts(ctx).remove(rule_id)
    say(f"alert rule {rule_id} removed")
