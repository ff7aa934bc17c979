"""``python -m chaos <scenario> [--duration S]``: run one fault-injection scenario against
real ``agentcron serve`` processes, print its verdict line, and write
``chaos/results/<scenario>.json``. Exit code 0 when the verdict is PASS."""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos.common import common
from chaos.harness import Storm, log
from chaos.pg import Cluster, exclusive
from chaos.scenarios import SCENARIOS
from chaos.verdict import figures, public, verdict_line

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"hostname": socket.gethostname(), "cpus": os.cpu_count(), "cpu_model": cpu,
            "memory_gb": memory_gb, "kernel": platform.release(),
            "python": platform.python_version(), "load_average_at_start": os.getloadavg()}


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=10, check=False)
    except OSError:
        return None
    return done.stdout.strip() or None


def run(name: str, duration: float | None, seed: int | None, out: Path | None) -> int:
    scenario = SCENARIOS[name]
    duration_s = duration if duration is not None else scenario.long_duration_s
    problem = Cluster.check_tools()
    if problem:
        print(f"chaos: cannot run: {problem}", file=sys.stderr)
        return 2
    if scenario.network.hosts:
        from chaos import hosts

        problem = hosts.check()
        if problem:
            print(f"chaos: cannot run {name}: {problem}", file=sys.stderr)
            return 2
    storm = Storm(name, duration_s, nodes=scenario.nodes, agents=scenario.agents, seed=seed,
                  network=scenario.network, plan=scenario.groups(duration_s))
    started = datetime.now(UTC)
    began = time.monotonic()
    with exclusive(storm.cluster):
        try:
            storm.setup()
            storm.start_sampling(scenario.sample_every_s(duration_s))
            scenario.storm(storm)
            settled = storm.settle(scenario.settle_s)
            storm.finish()
            storm.sample()
            postgres = storm.cluster.server_version()
            figs = figures(storm)
            extra, failures = common(storm, figs)
            if scenario.check is not None:
                more, more_failures = scenario.check(storm, figs)
                extra.update(more)
                failures += more_failures
        finally:
            storm.cleanup()
    if not settled:
        failures.append("runs did not settle")
    core = (figs["duplicate_fires"], figs["missing_fires"], figs["runs_lost"],
            figs["early_fires"], figs["unexpected_fires"])
    passed = core == (0, 0, 0, 0, 0) and not failures
    line = verdict_line(name, figs, passed)
    result = {
        "scenario": name,
        "summary": scenario.summary,
        "date": started.isoformat(timespec="seconds"),
        "form": "long" if duration is None or duration >= scenario.long_duration_s else "short",
        "duration_s": duration_s,
        "wall_time_s": round(time.monotonic() - began, 1),
        "verdict": "PASS" if passed else "FAIL",
        "verdict_line": line,
        "failures": failures,
        "machine": machine(),
        "postgresql": postgres,
        "commit": git_commit(),
        "seed": storm.seed,
        "settings": {"nodes": storm.node_options.as_dict(),
                     "network": storm.network.as_dict(),
                     "agents": {name: a.as_dict() for name, a in storm.agents.items()},
                     "triggers": [g.as_dict() for g in storm.groups],
                     "cluster": f"{storm.cluster.version}/{storm.cluster.name}:"
                                f"{storm.cluster.port}"},
        "figures": public(figs),
        "checks": extra,
        "faults": [f.as_dict() for f in storm.faults],
        "settled_after_storm_s": storm.settled_in_s,
        "notes": storm.notes,
        "logs": str(storm.workdir),
    }
    target = out or RESULTS / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"results in {target}; logs in {storm.workdir}")
    for failure in failures:
        log(f"FAILED CHECK: {failure}")
    print(line, flush=True)
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Fault injection against real agentcron nodes on a PostgreSQL cluster of "
                    "its own (CHAOS_PG_CLUSTER / CHAOS_PG_PORT, default chaos on 5444).")
    parser.add_argument("scenario", choices=[*sorted(SCENARIOS), "readme"],
                        help="a scenario, or `readme`: the README's table of the results in "
                             "chaos/results (`--write` updates README.md)")
    parser.add_argument("--write", action="store_true",
                        help="with `readme`: write the table into README.md")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of storm (default: the scenario's long form)")
    parser.add_argument("--seed", type=int, default=None, help="for the random choices")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the JSON (default chaos/results/<scenario>.json)")
    args = parser.parse_args(argv)
    if args.scenario == "readme":
        from chaos import markdown

        readme = Path(__file__).resolve().parent.parent / "README.md"
        if args.write:
            markdown.write(RESULTS, readme, list(SCENARIOS))
        else:
            print(markdown.render(RESULTS, list(SCENARIOS)), end="")
        return 0
    return run(args.scenario, args.duration, args.seed, args.out)


if __name__ == "__main__":
    sys.exit(main())
