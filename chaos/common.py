"""What every scenario shares: choosing a node to strike, reading a duration, and the
checks every verdict makes."""

from __future__ import annotations

from typing import Any

from agentcron.schedule.durations import parse_duration
from chaos.harness import Node, Storm
from chaos.verdict import error_lines


def start(storm: Storm, nodes: int = 3, lead_s: float = 3.0) -> list[Node]:
    """Start ``nodes`` nodes, add the scenario's triggers (their first fire ``lead_s`` ahead,
    see ``Storm.add_triggers``) and start the storm's clock; returns the nodes."""
    started = [storm.start_node() for _ in range(nodes)]
    storm.add_triggers(storm.plan, lead_s=lead_s)
    storm.begin()
    return started


def pick(storm: Storm, exclude: set[str] | None = None) -> Node:
    candidates = [n for n in storm.live_nodes() if n.id not in (exclude or set())
                  and not n.paused]
    return storm.rng.choice(candidates)


def pick_busiest(storm: Storm, among: list[Node] | None = None,
                 held: dict[str, int] | None = None) -> Node:
    """The live node (of ``among``) holding the most running runs (``held``, by node id:
    default ``storm.running_by_node()``; a random one among equals): the firing node
    claims what it fires, so a random node may hold none, and pausing it would test
    nothing."""
    held = storm.running_by_node() if held is None else held
    candidates = [n for n in (storm.live_nodes() if among is None else among) if not n.paused]
    most = max(held.get(n.id, 0) for n in candidates)
    return storm.rng.choice([n for n in candidates if held.get(n.id, 0) == most])


def checks_exit_codes(storm: Storm) -> list[str]:
    """Every node the storm stopped gracefully (or that is stopped at the end) exited 0."""
    return [f"{n.id} exited {n.exit_code}" for n in storm.nodes
            if n.exit_code not in (0, -9)]


def common(storm: Storm, figs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    errors = error_lines(storm)
    crashed = [line for line in errors if "service_crashed" in line]
    failures = checks_exit_codes(storm)
    if crashed:
        failures.append(f"{len(crashed)} service_crashed lines in the logs")
    return {"error_lines": len(errors), "error_examples": errors[:10]}, failures


def seconds(duration: str) -> float:
    return float(parse_duration(duration, "duration"))
