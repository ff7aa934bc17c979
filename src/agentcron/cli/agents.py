"""``agentcron agents``: add, list, show, rm, check."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from agentcron.cli.common import services
from agentcron.cli.render import agent_json, emit_json, print_agent, print_agents, say
from agentcron.errors import ValidationError
from agentcron.services.agents import AgentInput, import_problem

app = typer.Typer(help="Agents: the things triggers run.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _key_weights(given: list[str] | None) -> dict[str, int] | None:
    """``--key-weight KEY=W`` flags as a table (checked by the service, which names the
    field); a flag without ``=`` or a weight that is not a number is refused here."""
    if not given:
        return None
    weights: dict[str, int] = {}
    for item in given:
        key, sep, weight = item.rpartition("=")
        if not sep or not weight.strip().lstrip("-").isdigit():
            raise ValidationError("key-weight", f"{item[:80]!r} is not KEY=WEIGHT",
                                  "e.g. --key-weight acme=3")
        weights[key] = int(weight)
    return weights


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(
        metavar="NAME", help="Agent name (letters, digits, _ . -).")],
    http: Annotated[str | None, typer.Option("--http", metavar="URL",
                                             help="POST each run to this URL.")] = None,
    secret: Annotated[str | None, typer.Option(
        "--secret", help="Sign --http requests with this secret (whsec_...).")] = None,
    command: Annotated[str | None, typer.Option(
        "--command", metavar="CMD", help="Run this command line (no shell).")] = None,
    inherit_env: Annotated[list[str] | None, typer.Option(
        "--inherit-env", metavar="NAME", help="--command: pass this variable of the node's "
        "environment on (repeat for more); commands start from a clean environment.")] = None,
    python: Annotated[str | None, typer.Option(
        "--python", metavar="MODULE:FUNC", help="Call this Python function.")] = None,
    remote: Annotated[bool, typer.Option(
        "--remote", help="Run by remote workers that pull its runs over HTTP (agentcron "
        "worker, or any program speaking the worker protocol); nodes never run it.")
    ] = False,
    llm: Annotated[str | None, typer.Option(
        "--llm", metavar="MODEL", help="Ask this model (OpenAI-compatible chat completions); "
        "with --base-url and --prompt.")] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", metavar="URL", help="--llm: the API root, e.g. "
        "https://api.openai.com/v1.")] = None,
    prompt: Annotated[str | None, typer.Option(
        "--prompt", metavar="TEMPLATE", help="--llm: the user message, a Jinja2 template "
        "over the run's payload ({{ key }}).")] = None,
    system: Annotated[str | None, typer.Option(
        "--system", metavar="TEMPLATE", help="--llm: the system message.")] = None,
    api_key_env: Annotated[str | None, typer.Option(
        "--api-key-env", metavar="NAME", help="--llm: the environment variable that holds "
        "the API key on the nodes (the key itself is never stored).")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature")] = None,
    max_tokens: Annotated[int | None, typer.Option(
        "--max-tokens", help="--llm: completion token limit.")] = None,
    tokens_per_day: Annotated[int | None, typer.Option(
        "--tokens-per-day", help="Budget: tokens in any 24 hours.")] = None,
    usd_per_day: Annotated[float | None, typer.Option(
        "--usd-per-day", help="Budget: USD in any 24 hours.")] = None,
    tokens_per_month: Annotated[int | None, typer.Option(
        "--tokens-per-month", help="Budget: tokens per calendar month.")] = None,
    usd_per_month: Annotated[float | None, typer.Option(
        "--usd-per-month", help="Budget: USD per calendar month.")] = None,
    budget_tz: Annotated[str | None, typer.Option(
        "--budget-tz", metavar="ZONE", help="Budget: the zone months start in (UTC).")
    ] = None,
    on_budget: Annotated[str | None, typer.Option(
        "--on-budget", metavar="skip|pause", help="Over budget: skip the run (default), or "
        "also pause the agent's triggers.")] = None,
    max_concurrency: Annotated[int, typer.Option(
        "--max-concurrency", help="Runs of this agent at once, across all nodes.")] = 1,
    timeout: Annotated[str, typer.Option("--timeout", help="Per-attempt time limit.")] = "5m",
    max_attempts: Annotated[int, typer.Option(
        "--max-attempts", help="Attempts before a run fails.")] = 3,
    zombie_timeout: Annotated[str | None, typer.Option(
        "--zombie-timeout", help="Silence after which a running attempt is lost "
        "(default: the node's).")] = None,
    retry_backoff: Annotated[str, typer.Option(
        "--retry-backoff", help="Delay before the first retry (doubles).")] = "2s",
    description: Annotated[str | None, typer.Option("--description")] = None,
    pause_after_failures: Annotated[int | None, typer.Option(
        "--pause-after-failures", metavar="N", help="Circuit breaker default for the "
        "agent's triggers: pause one after N consecutive failed runs.")] = None,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", metavar="TAG", help="Routing: run only on nodes started with this tag "
        "(serve --tags); repeat for more (any one matches).")] = None,
    may_schedule: Annotated[list[str] | None, typer.Option(
        "--may-schedule", metavar="AGENT", help="Scheduling: an agent this agent's runs may "
        "schedule follow-ups for (default: only itself); repeat for more.")] = None,
    min_interval: Annotated[str | None, typer.Option(
        "--min-interval", metavar="DURATION", help="Scheduling: the shortest gap between "
        "fires of a trigger agents make for this agent (default 1m).")] = None,
    max_live: Annotated[int | None, typer.Option(
        "--max-live", metavar="N", help="Scheduling: live agent-made triggers of this agent "
        "at most (default 100).")] = None,
    expires_after: Annotated[str | None, typer.Option(
        "--expires-after", metavar="DURATION", help="Scheduling: an agent-made trigger "
        "stops firing this long after it was made (default 30d).")] = None,
    require_approval: Annotated[bool, typer.Option(
        "--require-approval", help="Scheduling: agent-made triggers wait for "
        "`agentcron triggers approve` before they fire.")] = False,
    concurrency_key: Annotated[str | None, typer.Option(
        "--concurrency-key", metavar="TEMPLATE", help="Keys: a template over the payload, "
        "e.g. '{{ tenant }}'; runs with the same key share --max-per-key places and keys "
        "are claimed in turn.")] = None,
    max_per_key: Annotated[int | None, typer.Option(
        "--max-per-key", metavar="N", help="Keys: runs of one key at once, across all "
        "nodes (default 1).")] = None,
    key_weight: Annotated[list[str] | None, typer.Option(
        "--key-weight", metavar="KEY=W", help="Keys: give KEY W turns per round of the "
        "fair order (default 1); repeat for more.")] = None,
    pool: Annotated[str | None, typer.Option(
        "--pool", metavar="POOL", help="Rate limits: the pool its runs draw from "
        "(`agentcron pools set`).")] = None,
    rate: Annotated[str | None, typer.Option(
        "--rate", metavar="N/UNIT", help="Rate limits: its own rate across every node, "
        "e.g. 60/m (also /s, /h).")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace the agent of this name if it exists (its triggers stay).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add an agent; an existing name is refused (exit 1) unless --replace is given."""
    kinds = {"http": http, "command": command, "python": python, "llm": llm,
             "remote": True if remote else None}
    given = [kind for kind, value in kinds.items() if value is not None]
    if len(given) != 1:
        raise ValidationError(
            "kind",
            "no agent kind given" if not given
            else " and ".join(f"--{k}" for k in given) + " given together",
            "give exactly one of --http URL, --command CMD, --python MODULE:FUNC, "
            "--llm MODEL or --remote",
        )
    kind = given[0]
    if secret is not None and kind != "http":
        raise ValidationError("secret", f"does not apply to a {kind} agent",
                              "use --secret with --http")
    if inherit_env and kind != "command":
        raise ValidationError("inherit-env", f"does not apply to a {kind} agent",
                              "use --inherit-env with --command")
    llm_settings = {"base_url": base_url, "prompt": prompt, "system": system,
                    "api_key_env": api_key_env, "temperature": temperature,
                    "max_tokens": max_tokens}
    stray = [k for k, v in llm_settings.items() if v is not None]
    if stray and kind != "llm":
        flag = "--" + stray[0].replace("_", "-")
        raise ValidationError(flag.lstrip("-"), f"does not apply to a {kind} agent",
                              f"use {flag} with --llm MODEL")
    budget = {"tokens_per_day": tokens_per_day, "usd_per_day": usd_per_day,
              "tokens_per_month": tokens_per_month, "usd_per_month": usd_per_month,
              "tz": budget_tz}
    config: dict[str, Any]
    if kind == "llm":
        config = {"model": llm, **{k: v for k, v in llm_settings.items() if v is not None}}
    elif kind == "http":
        config = {"url": http, "secret": secret}
    elif kind == "command":
        config = {"command": command}
        if inherit_env:
            config["inherit_env"] = inherit_env
    elif kind == "remote":
        config = {}
    else:
        config = {"target": python}
    agents = services(ctx).agents
    spec = AgentInput(
        name=name, kind=kind, config=config, max_concurrency=max_concurrency, timeout=timeout,
        max_attempts=max_attempts, zombie_timeout=zombie_timeout, retry_backoff=retry_backoff,
        description=description,
        budget={k: v for k, v in budget.items() if v is not None}, on_budget=on_budget,
        pause_after_failures=pause_after_failures,
        tags=tag or (),
        scheduling={k: v for k, v in {
            "may_schedule": may_schedule or None, "min_interval": min_interval,
            "max_live": max_live, "expires_after": expires_after,
            "require_approval": require_approval or None}.items() if v is not None} or None,
        concurrency_key=concurrency_key, max_per_key=max_per_key,
        key_weights=_key_weights(key_weight),
        pool=pool, rate=rate,
    )
    built = agents.build(spec, source="cli")
    # Refusing by default keeps a typo'd name from silently overwriting another agent.
    saved = agents.save(built) if replace else agents.create(
        built, how_to_replace=f"use `agentcron agents add {built.name} ... --replace` "
                              "to replace it")
    if as_json:
        emit_json(agent_json(saved))
    else:
        say(f"agent {saved.name} saved ({saved.kind.value})")
    problem = import_problem(saved)
    if problem is not None:
        # Saved all the same: the nodes, not this shell, run the agent, and their code may
        # be somewhere this machine does not have.
        typer.echo(f"warning: {problem.field}: {problem.message}. The agent is saved, but "
                   f"its runs fail on any node that cannot import it ({problem.hint})",
                   err=True)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List agents."""
    agents = services(ctx).agents.all()
    if as_json:
        emit_json([agent_json(a) for a in agents])
    else:
        print_agents(agents)


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Agent name.")],
    as_json: JsonFlag = False,
) -> None:
    """Show an agent: what it runs, its limits and its budget (--json: the document
    GET /api/v1/agents/NAME answers with)."""
    svc = services(ctx)
    agent = svc.get_agent(name)
    if as_json:
        emit_json(agent_json(agent))
    else:
        print_agent(agent, svc.agents.busiest_keys(name) if agent.keys else None)


@app.command("rm")
def rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Agent name.")],
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not ask for confirmation (needed without a terminal).")
    ] = False,
) -> None:
    """Remove an agent and its triggers; its queued runs are cancelled, history is kept.
    Asks first, saying what will go, unless --yes is given."""
    svc = services(ctx)
    triggers, queued, total = svc.agents.footprint(name)
    what = (f"agent {name}: deletes its {_count(triggers, 'trigger')}, cancels "
            f"{_count(queued, 'queued run')}; its {_count(total, 'run')} stay in the history")
    if not yes:
        if not sys.stdin.isatty():
            raise ValidationError("yes", f"removing {what}, and there is no terminal to "
                                  "confirm it", "pass --yes to remove it")
        typer.confirm(f"Remove {what}. Go on?", abort=True, err=True)
    cancelled = svc.remove_agent(name)
    say(f"agent {name} removed: {_count(triggers, 'trigger')} deleted, "
        f"{_count(cancelled, 'queued run')} cancelled")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The agents file (TOML).")],
) -> None:
    """Check an agents file as `serve --config FILE` would, without starting a node or
    touching any database: exit 0 if it would sync, else exit 2 with serve's message."""
    import tempfile

    from agentcron.services import Services
    from agentcron.services.agents_file import load_agents_file
    from agentcron.services.opening import open_store

    declared = load_agents_file(file)
    # The very sync `serve` runs, into a scratch database thrown away afterwards.
    with tempfile.TemporaryDirectory(prefix="agentcron-check-") as scratch:
        store = open_store(f"sqlite:///{Path(scratch) / 'check.db'}")
        try:
            report = Services(store).sync_agents_file(declared)
        finally:
            store.close()
    triggers = report["created"]
    say(f"{file}: ok ({report['agents']} agent(s), {triggers} trigger(s), "
        f"{len(declared.prices)} price(s))")
