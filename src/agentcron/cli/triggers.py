"""``agentcron triggers``: add, list, show, approve, next, update, pause, resume, rm,
rotate-secret.
A trigger is named by its id, or by its name when no other trigger has that name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentcron.cli.common import services
from agentcron.cli.render import (
    emit_json,
    iso,
    next_fires_json,
    print_next_fires,
    print_trigger,
    print_triggers,
    say,
    trigger_json,
)

if TYPE_CHECKING:
    from agentcron.services.pausing import TriggerSelector

app = typer.Typer(help="Triggers: when an agent runs, and with what payload.",
                  no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
TriggerId = Annotated[str, typer.Argument(
    metavar="TRIGGER", help="Trigger id (tr_...), or its name if no other trigger has it.")]


@app.command("add")
def add(
    ctx: typer.Context,
    agent: Annotated[str, typer.Argument(metavar="AGENT", help="The agent to run.")],
    cron: Annotated[str | None, typer.Option(
        "--cron", metavar="EXPR", help="Cron expression, 5 fields (or 6 with seconds).")] = None,
    tz: Annotated[str | None, typer.Option(
        "--tz", "--zone", metavar="ZONE",
        help="IANA time zone for --cron / --at (default UTC).")] = None,
    every: Annotated[str | None, typer.Option(
        "--every", metavar="DURATION", help="Fixed interval, e.g. 30s, 5m, 1h30m.")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", metavar="ISO", help="Fire once at this time.")] = None,
    webhook: Annotated[bool, typer.Option(
        "--webhook", help="Fire on signed POSTs to /hooks/ID (prints the secret once).")
    ] = False,
    payload: Annotated[str | None, typer.Option(
        "--payload", metavar="JSON", help="JSON passed to every run.")] = None,
    overlap: Annotated[str | None, typer.Option(
        "--overlap", metavar="skip|queue|allow|replace",
        help="What to do when the previous run is still going (default skip).")] = None,
    catchup: Annotated[str | None, typer.Option(
        "--catchup", metavar="DURATION",
        help="How late a missed time may still fire (default 10m).")] = None,
    catchup_mode: Annotated[str | None, typer.Option(
        "--catchup-mode", metavar="coalesce|all",
        help="Fire missed times once (coalesce, default) or each (all).")] = None,
    jitter: Annotated[str | None, typer.Option(
        "--jitter", metavar="DURATION", help="Random delay up to this long.")] = None,
    start: Annotated[str | None, typer.Option(
        "--start", metavar="ISO", help="Do not fire before this time.")] = None,
    end: Annotated[str | None, typer.Option(
        "--end", metavar="ISO", help="Do not fire after this time.")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="A name, unique per agent.")] = None,
    pause_after_failures: Annotated[int | None, typer.Option(
        "--pause-after-failures", metavar="N", help="Circuit breaker: pause after N "
        "consecutive failed runs (default: the agent's setting).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a trigger; prints its id (and, for --webhook, its secret on a second line)."""
    from agentcron.services import TriggerInput

    options: dict[str, Any] = {
        "overlap": overlap, "catchup": catchup, "catchup_mode": catchup_mode,
        "jitter": jitter, "pause_after_failures": pause_after_failures,
    }
    given = {key: value for key, value in options.items() if value is not None}
    if payload is not None:
        given.update(payload=payload, payload_is_json_text=True)
    spec = TriggerInput(agent=agent, cron=cron, every=every, at=at, tz=tz, start=start,
                        end=end, name=name, webhook=webhook, **given)
    trigger, secret = services(ctx).create_trigger(spec, source="cli")
    if as_json:
        document = {"id": trigger.id, "next_fire_at": iso(trigger.next_fire_at)}
        if secret is not None:
            document.update(secret=secret, url_path=f"/hooks/{trigger.id}")
        emit_json(document)
    else:
        say(trigger.id)
        if secret is not None:
            say(secret)
            typer.echo(f"webhook secret shown only this once; deliveries go to "
                       f"POST /hooks/{trigger.id}, signed per Standard Webhooks", err=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's.")] = None,
    created_by: Annotated[str | None, typer.Option(
        "--created-by", metavar="WHO", help="Only those made by WHO: cli, file, python, "
        "api:<token>, mcp:<token>, run:<run id>; a prefix ending in ':' (run:, mcp:) "
        "matches them all.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List triggers with their next fire times and who made them."""
    svc = services(ctx)
    triggers = [(t, svc.describe(t))
                for t in svc.triggers.all(agent, preview=True, created_by=created_by)]
    if as_json:
        emit_json([trigger_json(t, description, preview=True)
                   for t, description in triggers])
    else:
        print_triggers(triggers)


@app.command("show")
def show(ctx: typer.Context, trigger_id: TriggerId, as_json: JsonFlag = False) -> None:
    """Show a trigger: schedule, next and last fire, pause state, missed fire times."""
    svc = services(ctx)
    trigger = svc.get_trigger(trigger_id)
    description = svc.describe(trigger)
    chain = svc.trigger_chain(trigger)
    if as_json:
        emit_json(trigger_json(trigger, description, chain=chain))
    else:
        print_trigger(trigger, description, chain)


@app.command("approve")
def approve(ctx: typer.Context, trigger_id: TriggerId, as_json: JsonFlag = False) -> None:
    """Approve a trigger an agent made under a policy that requires approval
    (``require_approval``): it fires from now on. A resume does not approve."""
    svc = services(ctx)
    trigger = svc.approve_trigger(trigger_id)
    if as_json:
        emit_json(trigger_json(trigger, svc.describe(trigger)))
    else:
        when = iso(trigger.next_fire_at) or "never"
        say(f"trigger {trigger.id} approved; next fire at {when}")


@app.command("next")
def next_(
    ctx: typer.Context,
    trigger_id: TriggerId,
    count: Annotated[int, typer.Option("-n", "--count", help="How many.")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """The next fire times, in the trigger's zone and in UTC."""
    svc = services(ctx)
    times = svc.next_fire_times(trigger_id, count)
    trigger = svc.get_trigger(trigger_id)
    if as_json:
        emit_json(next_fires_json(trigger, times))
    else:
        print_next_fires(trigger, times)


OptionalTrigger = Annotated[str | None, typer.Argument(
    metavar="[TRIGGER]", help="Trigger id or name; or select many with --agent, --name or "
    "--all.")]
AgentOption = Annotated[str | None, typer.Option(
    "--agent", help="Every trigger of this agent.")]
NameOption = Annotated[str | None, typer.Option(
    "--name", metavar="GLOB", help="Every trigger whose name matches, e.g. 'nightly-*'.")]
AllOption = Annotated[bool, typer.Option("--all", help="Every trigger (needs --yes).")]
YesOption = Annotated[bool, typer.Option("--yes", help="Confirm --all.")]


def _selector(trigger_id: str | None, agent: str | None, name: str | None, every: bool
              ) -> TriggerSelector | None:
    """None for one trigger by id or name, else the selection of many."""
    from agentcron.errors import ValidationError
    from agentcron.services.pausing import TriggerSelector

    if trigger_id is None:
        return TriggerSelector(agent=agent, name=name, all=every)
    if agent is not None or name is not None or every:
        raise ValidationError("trigger", "a trigger and --agent/--name/--all given "
                              "together", "give one trigger, or select many")
    return None


def _confirm_all(ctx: typer.Context, selector: TriggerSelector, yes: bool, verb: str,
                 paused: bool) -> None:
    """--all acts on every trigger: refused without --yes, saying how many it would touch."""
    from agentcron.errors import ValidationError

    if selector.all and not yes:
        n = services(ctx).pausing.count(selector, paused=paused)
        raise ValidationError("all", f"--all would {verb} {n} triggers",
                              "add --yes to confirm")


@app.command("pause")
def pause(ctx: typer.Context, trigger_id: OptionalTrigger = None, agent: AgentOption = None,
          name: NameOption = None, every: AllOption = False, yes: YesOption = False,
          as_json: JsonFlag = False) -> None:
    """Stop firing a trigger, or many (--agent, --name GLOB, --all), until resumed."""
    selector = _selector(trigger_id, agent, name, every)
    if selector is None:
        trigger = services(ctx).pause_trigger(str(trigger_id))
        say(f"trigger {trigger.id} paused")
        return
    _confirm_all(ctx, selector, yes, "pause", paused=False)
    done = services(ctx).pausing.pause(selector)
    if as_json:
        emit_json({"paused": len(done), "triggers": done})
    else:
        say(f"{len(done)} triggers paused")


@app.command("resume")
def resume(ctx: typer.Context, trigger_id: OptionalTrigger = None, agent: AgentOption = None,
           name: NameOption = None, every: AllOption = False, yes: YesOption = False,
           catch_up: Annotated[bool, typer.Option(
               "--catch-up", help="Also fire the times passed while paused that are within "
               "each trigger's catch-up window (by its catch-up mode).")] = False,
           as_json: JsonFlag = False) -> None:
    """Fire a paused trigger, or many, again from now: times passed while paused are
    skipped and not counted missed (unless --catch-up). Clears a circuit breaker's pause."""
    selector = _selector(trigger_id, agent, name, every)
    if selector is None:
        trigger = services(ctx).resume_trigger(str(trigger_id), catch_up=catch_up)
        when = iso(trigger.next_fire_at) or "never"
        say(f"trigger {trigger.id} resumed; next fire at {when}")
        return
    _confirm_all(ctx, selector, yes, "resume", paused=True)
    done = services(ctx).pausing.resume(selector, catch_up=catch_up)
    if as_json:
        emit_json({"resumed": len(done), "triggers": done})
    else:
        say(f"{len(done)} triggers resumed")


@app.command("backfill")
def backfill(
    ctx: typer.Context,
    trigger_id: TriggerId,
    start: Annotated[str, typer.Option(
        "--from", metavar="ISO", help="The first time of the range (included).")],
    end: Annotated[str, typer.Option(
        "--to", metavar="ISO", help="The last time of the range (included; not after now).")],
    mode: Annotated[str, typer.Option(
        "--mode", metavar="all|coalesce",
        help="A run per scheduled time (all, default), or one standing for them all.")
    ] = "all",
    as_json: JsonFlag = False,
) -> None:
    """Queue runs for the trigger's scheduled times in a past range. A time that already
    has a run keeps it (counted as skipped); the runs wait for the agent's concurrency
    limit and budget like any other."""
    import sys

    from agentcron.services.backfill import BackfillInput

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            typer.echo(f"\r{done}/{total} times", err=True, nl=done >= total)

    result = services(ctx).backfills.backfill(
        BackfillInput(trigger=trigger_id, start=start, end=end, mode=mode), progress=progress)
    if as_json:
        from agentcron.services.documents import backfill_json

        emit_json(backfill_json(result))
    else:
        say(f"trigger {result.trigger_id}: {result.times} scheduled times in the range; "
            f"{result.queued} runs queued, {result.skipped} skipped (already had a run)")


@app.command("rm")
def rm(ctx: typer.Context, trigger_id: TriggerId) -> None:
    """Delete a trigger (its run history stays)."""
    found = services(ctx).delete_trigger(trigger_id)
    say(f"trigger {found} removed")


@app.command("update")
def update(
    ctx: typer.Context,
    trigger_id: TriggerId,
    cron: Annotated[str | None, typer.Option(
        "--cron", metavar="EXPR", help="New cron expression (replaces the schedule).")] = None,
    every: Annotated[str | None, typer.Option(
        "--every", metavar="DURATION", help="New fixed interval (replaces the schedule).")
    ] = None,
    at: Annotated[str | None, typer.Option(
        "--at", metavar="ISO", help="Fire once at this time (replaces the schedule).")] = None,
    tz: Annotated[str | None, typer.Option(
        "--tz", "--zone", metavar="ZONE", help="IANA time zone for the cron or --at time.")
    ] = None,
    payload: Annotated[str | None, typer.Option(
        "--payload", metavar="JSON", help="New JSON passed to every run.")] = None,
    overlap: Annotated[str | None, typer.Option(
        "--overlap", metavar="skip|queue|allow|replace")] = None,
    catchup: Annotated[str | None, typer.Option("--catchup", metavar="DURATION")] = None,
    catchup_mode: Annotated[str | None, typer.Option(
        "--catchup-mode", metavar="coalesce|all")] = None,
    jitter: Annotated[str | None, typer.Option("--jitter", metavar="DURATION")] = None,
    start: Annotated[str | None, typer.Option("--start", metavar="ISO")] = None,
    end: Annotated[str | None, typer.Option("--end", metavar="ISO")] = None,
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    pause_after_failures: Annotated[int | None, typer.Option(
        "--pause-after-failures", metavar="N", help="Circuit breaker threshold.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change some of a trigger's settings; the rest stay. The result is checked like a new
    trigger. A new schedule starts from now; an unchanged one keeps its next fire time."""
    from agentcron.errors import ValidationError
    from agentcron.services.validate import check_payload

    options: dict[str, Any] = {
        "cron": cron, "every": every, "at": at, "tz": tz, "overlap": overlap,
        "catchup": catchup, "catchup_mode": catchup_mode, "jitter": jitter, "start": start,
        "end": end, "name": name, "pause_after_failures": pause_after_failures,
    }
    changes = {key: value for key, value in options.items() if value is not None}
    if payload is not None:
        changes["payload"] = check_payload(payload, is_json_text=True)
    if not changes:
        raise ValidationError("update", "nothing to change",
                              "give at least one option, e.g. --cron '0 9 * * *'")
    svc = services(ctx)
    trigger = svc.update_trigger(trigger_id, changes)
    description = svc.describe(trigger)
    if as_json:
        emit_json(trigger_json(trigger, description))
    else:
        print_trigger(trigger, description)


@app.command("rotate-secret")
def rotate_secret(ctx: typer.Context, trigger_id: TriggerId, as_json: JsonFlag = False
                  ) -> None:
    """Give a webhook trigger a new signing secret, printed this once; deliveries signed
    with the old secret are refused from now on."""
    trigger, secret = services(ctx).triggers.rotate_secret(trigger_id)
    if as_json:
        emit_json({"id": trigger.id, "secret": secret, "hook_path": f"/hooks/{trigger.id}"})
    else:
        say(secret)
        typer.echo(f"new webhook secret of {trigger.id}, shown only this once; the old "
                   "secret no longer verifies", err=True)
