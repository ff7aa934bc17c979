"""``python -m bench <workload> [options]``: agentcron's benchmarks, side by side with its
peers on the same PostgreSQL. Run from the repository root with ``PYTHONPATH=src:.``.

Full runs write ``bench/results/<workload>.json`` (and ``fire_lag.png``); ``--quick`` runs
write to ``test-output/bench/`` so that CI never overwrites the committed figures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.ladder import PEERS, LadderOptions
from bench.machine import REPO
from bench.pg import PgTarget, wait_for_server

WORKLOADS = ["fire-rate", "peers", "scale", "replicas", "ceiling", "statements", "bodies",
             "scale-out", "bulk", "remote", "tenants"]


def _ints(text: str) -> list[int]:
    return [int(float(part.replace("k", "e3").replace("M", "e6"))) for part in text.split(",")
            if part.strip()]


def _settings(pairs: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        settings[key.strip().replace("-", "_")] = (
            int(value) if value.isdigit() else float(value)
            if value.replace(".", "", 1).isdigit() else value)
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=[*WORKLOADS, "all", "targets", "readme"],
                        help="a workload, all of them, `targets`: the issue's targets "
                             "checked against the JSON already in --out, or `readme`: the "
                             "README's tables from that JSON (`--write` updates README.md)")
    parser.add_argument("--write", action="store_true",
                        help="with `readme` (and after a full `all`): write the tables into "
                             "README.md between its bench markers")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, for CI (under 3 minutes for `all`)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results directory (default bench/results, or "
                             "test-output/bench with --quick)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if any step failed (a child crashed or timed out), not "
                             "only if a workload itself crashed (CI uses this)")
    parser.add_argument("--db-prefix", default=None,
                        help="prefix of the benchmark's databases (default: $BENCH_DB_PREFIX "
                             "or 'bench'; '<prefix>_quick' with --quick)")
    ladder = parser.add_argument_group("fire-rate, peers, replicas")
    ladder.add_argument("--ladder", type=_ints, default=None,
                        help="triggers per step, e.g. 1k,5k,10k,20k")
    ladder.add_argument("--duration", type=int, default=None, help="seconds measured per step")
    ladder.add_argument("--warmup", type=int, default=None, help="seconds before measuring")
    ladder.add_argument("--grace", type=float, default=None,
                        help="seconds after the window for late fires before counting misses")
    ladder.add_argument("--systems", default=",".join(PEERS),
                        help="peers to run (default: all three)")
    ladder.add_argument("--set", dest="node_settings", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="agentcron NodeSettings override, e.g. --set max_inflight=5000")
    scale = parser.add_argument_group("scale")
    scale.add_argument("--sizes", type=_ints, default=None, help="stored triggers, e.g. 100k,1M")
    replicas = parser.add_argument_group("replicas")
    replicas.add_argument("--nodes", type=_ints, default=None,
                          help="node counts, e.g. 1,2,3 (remote: worker process counts)")
    replicas.add_argument("--replica-triggers", type=int, default=None,
                          help="triggers for the replicas workload (default 10k)")
    return parser


def ladder_options(args: argparse.Namespace) -> LadderOptions:
    quick = args.quick
    return LadderOptions(
        ladder=args.ladder or ([100] if quick else [1000, 5000, 10000, 20000, 40000]),
        duration_s=args.duration or (3 if quick else 30),
        warmup_s=args.warmup if args.warmup is not None else (2 if quick else 5),
        grace_s=args.grace if args.grace is not None else (1.0 if quick else 10.0),
        settings=_settings(args.node_settings),
        quiet_wait_s=0.0 if quick else 120.0,
        retry_busy_pct=0.0 if quick else 50.0,
    )


def run(workload: str, args: argparse.Namespace, target: PgTarget, out: Path) -> None:
    from bench import ladder

    if workload == "fire-rate":
        ladder.fire_rate(target, ladder_options(args), out)
    elif workload == "peers":
        systems = [s.strip() for s in args.systems.split(",") if s.strip()]
        ladder.peers(target, ladder_options(args), out, systems)
    elif workload == "scale":
        from bench import scale

        scale.workload(target, out, quick=args.quick, sizes=args.sizes)
    elif workload == "replicas":
        from bench import replicas

        replicas.workload(target, out, quick=args.quick, nodes=args.nodes,
                          triggers=args.replica_triggers, duration_s=args.duration,
                          warmup_s=args.warmup)
    elif workload == "ceiling":
        from bench import ceiling

        ceiling.workload(target, out, quick=args.quick, duration_s=args.duration)
    elif workload == "statements":
        from bench import statements

        statements.workload(target, out, quick=args.quick)
    elif workload == "scale-out":
        from bench import scaleout

        scaleout.workload(target, out, quick=args.quick, nodes=args.nodes,
                          duration_s=args.duration, warmup_s=args.warmup)
    elif workload == "bodies":
        from bench import bodies

        bodies.workload(target, out, quick=args.quick)
    elif workload == "bulk":
        from bench import bulk

        bulk.workload(target, out, quick=args.quick)
    elif workload == "remote":
        from bench import remote

        remote.workload(target, out, quick=args.quick, nodes=args.nodes)
    elif workload == "tenants":
        from bench import tenants

        tenants.workload(target, out, quick=args.quick)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or (REPO / "test-output" / "bench" if args.quick
                       else REPO / "bench" / "results")
    prefix = args.db_prefix or (PgTarget.from_env().prefix + ("_quick" if args.quick else ""))
    target = PgTarget.from_env(prefix)
    if args.workload == "targets":
        from bench import targets

        targets.show(out)
        return 0
    if args.workload == "readme":
        from bench import markdown

        if args.write:
            markdown.write(out, REPO / "README.md")
        else:
            print(markdown.render(out), end="")
        return 0
    workloads = WORKLOADS if args.workload == "all" else [args.workload]
    failures: list[str] = []
    timings: dict[str, float] = {}
    for workload in workloads:
        started = time.monotonic()
        report.console.rule(f"[bold]{workload}")
        wait_for_server(target)
        if args.workload == "all":
            for attempt in (1, 2):
                try:
                    run(workload, args, target, out)
                    break
                except Exception as exc:  # one broken workload must not hide the others
                    report.console.print_exception()
                    if attempt == 2:
                        failures.append(f"{workload}: {type(exc).__name__}: {exc}")
                    else:  # e.g. the shared server restarted under it: once more
                        report.console.print(f"[yellow]{workload} crashed; once more[/yellow]")
                        wait_for_server(target)
        else:
            run(workload, args, target, out)
        timings[workload] = round(time.monotonic() - started, 1)
    report.console.print(f"[dim]wall time per workload (s): {timings}[/dim]")
    if args.workload == "all":
        from bench import markdown, targets

        targets.show(out)
        if args.write and not args.quick:
            markdown.write(out, REPO / "README.md")
    if failures:
        report.console.print("[red]workloads that crashed:[/red] " + "; ".join(failures))
        return 1
    if report.STEP_ERRORS:
        report.console.print("[yellow]steps that failed:[/yellow]\n  "
                             + "\n  ".join(report.STEP_ERRORS))
        if args.strict:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
