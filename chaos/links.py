"""The scenarios whose nodes run on hosts of their own (``chaos.hosts``): ``partition``,
``slow-link`` (the ``kill`` storm over a slow link) and ``flaky-link`` (their storms and
their own checks; the table is ``chaos.scenarios``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaos.common import pick_busiest, seconds, start
from chaos.harness import Fault, Node, Storm, log

# -- partition ------------------------------------------------------------------------------


def partition(storm: Storm) -> None:
    """Cut the busiest node off the database for twice the zombie timeout, then heal and
    let it rejoin; packets dropped and refused in turn."""
    start(storm)
    cut_in_turn(storm, 2 * seconds(storm.node_options.zombie_timeout), "the database",
                lambda node: None)
    storm.at(storm.duration_s)


#: Runs older than this at a cut are the long ones (the short ones last a second).
LONG_RUN_AGE_S = 2.0


def cut_in_turn(storm: Storm, cut_s: float, what: str,
                port_of: Callable[[Node], int | None]) -> None:
    """From 5 s into the storm to its end: cut the busiest node (or worker) with a host of
    its own off ``port_of(it)`` on the gateway (None: the database) for ``cut_s``, heal,
    wait 5 s; packets dropped and refused in turn."""
    hosts = storm.hosts
    assert hosts is not None
    offset, cuts = 5.0, 0
    while offset + cut_s <= storm.duration_s:
        storm.at(offset)
        # The one holding the most long runs, so the fence has executing runs to stop.
        long_runs = storm.running_by_node(LONG_RUN_AGE_S)
        victim = pick_busiest(storm, [n for n in storm.live_nodes() if n.netns is not None],
                              long_runs)
        how = ("drop", "refuse")[cuts % 2]
        fault = Fault(f"partition ({how})", time.time(), victim.id,
                      detail={"how": how, "cut_s": cut_s, "from": what,
                              "long_runs_held": long_runs.get(victim.id, 0)})
        hosts.cut(victim.host, how, port_of(victim))
        storm.faults.append(fault)
        log(f"cut {victim.id} off {what} ({how}) for {cut_s:g}s")
        time.sleep(cut_s)
        hosts.heal(victim.host)
        fault.cleared_at = time.time()
        log(f"healed {victim.id}")
        cuts += 1
        offset += cut_s + 5.0


@dataclass
class Handovers:
    """How the attempts of each run followed one another, as the receiver saw them."""

    overlapping: list[dict[str, Any]]  # a later attempt began before an earlier one ended
    stopped: int  # attempts whose client went away before the answer (cancelled)
    min_gap_s: float | None  # the shortest time from an attempt's end to the next's start


def handovers(spans: dict[tuple[str, int], tuple[float, float, bool]]) -> Handovers:
    by_run: dict[str, list[tuple[int, float, float]]] = {}
    for (run_id, attempt), (began, ended, _) in spans.items():
        by_run.setdefault(run_id, []).append((attempt, began, ended))
    found, gaps = [], []
    for run_id, attempts in by_run.items():
        attempts.sort()
        latest = (0, float("-inf"))  # the earlier attempt that ended last
        for attempt, began, ended in attempts:
            if latest[0]:
                gaps.append(began - latest[1])
            if began < latest[1]:
                found.append({"run_id": run_id, "attempts": [latest[0], attempt],
                              "overlap_s": round(latest[1] - began, 3)})
            latest = max(latest, (attempt, ended), key=lambda a: a[1])
    return Handovers(found, sum(1 for _, _, gone in spans.values() if gone),
                     round(min(gaps), 3) if gaps else None)


def partition_check(storm: Storm, figs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    return cut_check(storm, figs, "node_fenced", "node_rejoined", "completion_fenced")


def cut_check(storm: Storm, figs: dict[str, Any], fenced_event: str, rejoined_event: str,
              late_event: str) -> tuple[dict[str, Any], list[str]]:
    """A cut-off node (or worker) fenced itself and rejoined after each cut (its log says
    ``fenced_event`` and ``rejoined_event``); its runs were taken over, and no attempt of
    theirs executed while the one before it still did; no stale outcome of its landed
    (``late_event`` counts the late writes it was refused)."""
    cut = [f.target for f in storm.faults if f.kind.startswith("partition")]
    logs = dict(storm.node_logs())

    def count(node: str, event: str) -> int:
        return logs.get(node, "").count(f'"event": "{event}"')

    fenced = {node: count(node, fenced_event) for node in set(cut)}
    rejoined = {node: count(node, rejoined_event) for node in set(cut)}
    late = sum(count(node, late_event) for node in set(cut))
    taken = [(e.run_id, e.attempt) for e in figs["_events"]
             if e.kind == "lost" and e.node_id in set(cut)]
    final = {row.id: row for row in figs["_rows"]}
    stale = [run_id for run_id, attempt in taken
             if run_id in final and final[run_id].attempt <= attempt]
    seen = handovers(figs["_spans"])
    failures = []
    for node in sorted(set(cut)):
        times = cut.count(node)
        if fenced[node] < times or rejoined[node] < times:
            failures.append(f"{node} was cut off {times} times but fenced itself "
                            f"{fenced[node]} and rejoined {rejoined[node]} times")
    if cut and not taken:
        failures.append("no run was taken over from a cut-off node: the fault was not "
                        "exercised")
    if stale:
        failures.append(f"{len(stale)} runs kept a cut-off node's stale outcome")
    if seen.overlapping:
        failures.append(f"{len(seen.overlapping)} runs had two attempts executing at once")
    # A cut that struck a node holding long runs must have stopped some; one that struck
    # a node holding none (the victim is judged from the runs table a moment before the
    # cut) had nothing to stop, and says so in its fault's ``long_runs_held``.
    struck = sum(1 for f in storm.faults
                 if f.kind.startswith("partition") and f.detail.get("long_runs_held"))
    if struck and not seen.stopped:
        failures.append(f"{struck} cuts struck a node holding long runs, but no executing "
                        "attempt was stopped by a fence")
    dropped = sum(f.kind.endswith("(drop)") for f in storm.faults)
    return {"cuts": len(cut), "cuts_striking_long_runs": struck, "cuts_dropped": dropped,
            "times_fenced": sum(fenced.values()), "times_rejoined": sum(rejoined.values()),
            "runs_taken_over_from_cut_nodes": len(taken),
            "late_completions_fenced": late, "stale_completions_applied": len(stale),
            "attempts_stopped": seen.stopped, "attempts_overlapping": len(seen.overlapping),
            "min_handover_gap_s": seen.min_gap_s, "overlap_examples": seen.overlapping[:5]
            }, failures


# -- slow link ---------------------------------------------------------------------------------


def slow_link_check(storm: Storm, figs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What the latency costs: runs finished per second of storm (the kill scenario's
    figure to compare with), and the fire lag (in the common figures)."""
    began, ended = storm.storm_started, storm.storm_started + storm.duration_s
    done = sum(1 for row in figs["_rows"] if row.finished_at is not None
               and began <= row.finished_at.timestamp() <= ended)
    net = storm.network
    return {"link_delay_ms_each_way": f"{net.delay_ms:g} +/- {net.jitter_ms:g}",
            "runs_finished_per_s_during_storm": round(done / storm.duration_s, 1),
            "fire_lag_p99_s": figs["fire_lag_s"]["p99"]}, []


# -- flaky link ------------------------------------------------------------------------------

LOSS = 0.05


def flaky_link(storm: Storm) -> None:
    """Every node loses ``LOSS`` of its packets, both ways, for the whole storm."""
    hosts = storm.hosts
    assert hosts is not None
    nodes = start(storm)
    fault = Fault("packet loss", time.time(), "every node", detail={"share": LOSS})
    storm.faults.append(fault)
    before = {n.id: hosts.retransmits(n.host) for n in nodes}
    for node in nodes:
        hosts.lose(node.host, LOSS)
    log(f"every node loses {LOSS:.0%} of its packets for {storm.duration_s:g}s")
    storm.at(storm.duration_s)
    fault.detail["tcp_retransmits"] = {n.id: hosts.retransmits(n.host) - before[n.id]
                                       for n in nodes}
    for node in nodes:
        hosts.heal(node.host)
    fault.cleared_at = time.time()


def flaky_link_check(storm: Storm, figs: dict[str, Any]
                      ) -> tuple[dict[str, Any], list[str]]:
    """The loss was real: every node's TCP retransmitted segments."""
    [fault] = [f for f in storm.faults if f.kind == "packet loss"]
    retransmits = fault.detail.get("tcp_retransmits", {})
    failures = [f"{node} retransmitted nothing: the loss was not exercised"
                for node, n in sorted(retransmits.items()) if n <= 0]
    return {"tcp_retransmits": sum(retransmits.values())}, failures
