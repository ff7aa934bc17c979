"""The six scenarios whose nodes all run on this host: ``kill``, ``pause``, ``database``,
``skew``, ``deploy`` and ``soak`` (their storms and their own checks; the table is
``chaos.scenarios``)."""

from __future__ import annotations

import signal
import time
from typing import Any

from chaos.common import pick, pick_busiest, seconds, start
from chaos.harness import Fault, Storm, log
from chaos.trend import LeakBound, Trend, allowed_rise, leak, trend
from chaos.verdict import error_lines

# -- kill ----------------------------------------------------------------------------------


def kill(storm: Storm) -> None:
    start(storm)
    offset = 10.0
    while offset < storm.duration_s - 2:
        storm.at(offset)
        victim = pick(storm)
        storm.kill9(victim)
        replacement = storm.start_node(wait=False)
        log(f"kill -9 {victim.id} (pid {victim.pid}); started {replacement.id}")
        offset += 10.0
    storm.at(storm.duration_s)


# -- pause ----------------------------------------------------------------------------------


def pause(storm: Storm) -> None:
    start(storm)
    zombie = seconds(storm.node_options.zombie_timeout)
    hold = zombie + 3.0
    offset = 5.0
    while offset + hold < storm.duration_s:
        storm.at(offset)
        victim = pick_busiest(storm)
        fault = Fault("SIGSTOP", time.time(), victim.id, detail={"paused_s": hold})
        victim.proc.signal(signal.SIGSTOP)
        victim.paused = True
        storm.faults.append(fault)
        log(f"SIGSTOP {victim.id} for {hold:g}s (zombie timeout {zombie:g}s)")
        time.sleep(hold)
        victim.proc.signal(signal.SIGCONT)
        victim.paused = False
        fault.cleared_at = time.time()
        log(f"SIGCONT {victim.id}")
        offset += 20.0
    storm.at(storm.duration_s)


def pause_check(storm: Storm, figs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A paused node's runs were taken over; the success recorded for each is a later
    attempt's (the paused node's stale completion never lands), and the paused node saw its
    writes fenced or its runs revoked."""
    paused = {f.target for f in storm.faults if f.kind == "SIGSTOP"}
    final = {row.id: row for row in figs["_rows"]}
    lost_on_paused = [(e.run_id, e.attempt) for e in figs["_events"]
                      if e.kind == "lost" and e.node_id in paused]
    stale = [run_id for run_id, attempt in lost_on_paused
             if run_id in final and final[run_id].attempt <= attempt]
    fenced = revoked = 0
    for node_id, text in storm.node_logs():
        if node_id in paused:
            fenced += text.count('"event": "completion_fenced"')
            revoked += text.count('"event": "run_revoked"')
    extra = {"paused_nodes": sorted(paused), "runs_taken_over_from_paused": len(lost_on_paused),
             "stale_completions_applied": len(stale), "paused_node_completions_fenced": fenced,
             "paused_node_runs_revoked": revoked}
    failures = [f"{len(stale)} runs kept a stale attempt's outcome"] if stale else []
    if paused and not lost_on_paused:
        failures.append("no run was taken over from a paused node: the fault was not exercised")
    return extra, failures


# -- database ---------------------------------------------------------------------------------


def database(storm: Storm) -> None:
    start(storm)
    offset = 5.0
    restarts = 0
    while offset < storm.duration_s - 3:
        storm.at(offset)
        downtime = storm.rng.uniform(0.0, 3.0)
        mode = "immediate" if restarts % 2 else "fast"
        fault = Fault("postgres restart", time.time(), storm.cluster.name,
                      detail={"downtime_s": round(downtime, 2), "mode": mode})
        storm.cluster.stop(mode)
        time.sleep(downtime)
        storm.cluster.start()
        fault.cleared_at = time.time()
        storm.faults.append(fault)
        restarts += 1
        log(f"PostgreSQL stopped ({mode}) for {fault.cleared_at - fault.at:.1f}s")
        if offset + 10 < storm.duration_s - 3:
            storm.at(offset + 10)
            fault = Fault("pg_terminate_backend", time.time(), "all node sessions")
            fault.detail["terminated"] = storm.cluster.terminate_backends()
            fault.cleared_at = fault.at
            storm.faults.append(fault)
            log(f"pg_terminate_backend: {fault.detail['terminated']} node sessions")
        offset += 20.0
    storm.at(storm.duration_s)


def database_check(storm: Storm, figs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    lost_events = figs["events"].get("lost", 0)
    timeouts = figs["events"].get("timeout", 0)
    failures = []
    if timeouts:
        failures.append(f"{timeouts} runs cancelled as timed out after an outage")
    return {"runs_judged_lost": lost_events, "runs_cancelled_for_timeout": timeouts}, failures


# -- skew ---------------------------------------------------------------------------------------


SKEW_S = 300.0


def skew(storm: Storm) -> None:
    storm.start_node(env={"AGENTCRON_CLOCK_OFFSET_S": f"{SKEW_S:g}"}, prefix="ahead")
    storm.start_node(env={"AGENTCRON_CLOCK_OFFSET_S": f"{-SKEW_S:g}"}, prefix="behind")
    plain = storm.start_node(prefix="plain")
    storm.add_triggers(storm.plan)
    storm.begin()
    # Midway the unskewed node dies, so the skewed ones recover its runs too.
    storm.at(storm.duration_s / 2)
    storm.kill9(plain)
    log(f"kill -9 {plain.id}; the skewed nodes carry on")
    storm.start_node(prefix="plain", wait=False)
    storm.at(storm.duration_s)


def skew_check(storm: Storm, figs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    by_node: dict[str, int] = {}
    for row in figs["_rows"]:
        if row.node_id:
            by_node[row.node_id] = by_node.get(row.node_id, 0) + 1
    skewed = {n.id: n.env.get("AGENTCRON_CLOCK_OFFSET_S") for n in storm.nodes
              if n.env.get("AGENTCRON_CLOCK_OFFSET_S")}
    failures = [f"skewed node {node_id} ran nothing" for node_id in skewed
                if not by_node.get(node_id)]
    return {"clock_offsets_s": skewed, "runs_by_node": by_node}, failures


# -- deploy -------------------------------------------------------------------------------------


def deploy(storm: Storm) -> None:
    """Rolling restarts: each round SIGTERMs every node live at its start, one at a time,
    the one holding the most runs of the groups that outlast the drain first. A random
    order could strike, in a short storm, only nodes that held none, and then the drain's
    release path would go untested."""
    start(storm)
    drain = seconds(storm.node_options.drain_timeout)
    outlasting = [i for g in storm.groups if g.hold_s > drain for i in g.ids]
    storm.at(min(8.0, storm.duration_s / 4))
    while storm.until_end() > 0:
        due = list(storm.live_nodes())
        while due and storm.until_end() > 0:
            held = storm.running_by_node(triggers=outlasting)
            node = pick_busiest(storm, due, held)
            due.remove(node)
            fault = Fault("SIGTERM (rolling restart)", time.time(), node.id,
                          detail={"outlasting_runs_held": held.get(node.id, 0)})
            storm.faults.append(fault)
            code, took = storm.sigterm(node, timeout=drain + 60)
            fault.cleared_at = time.time()
            fault.detail.update(exit_code=code, drain_s=round(took, 2))
            log(f"SIGTERM {node.id} ({held.get(node.id, 0)} runs longer than the drain): "
                f"exit {code} after {took:.1f}s")
            storm.start_node()
            time.sleep(2.0)
    storm.at(storm.duration_s)


# How long before a drain's end a run's answer must come for its release to be needless.
# The node still has to read the answer and end the run's task before the drain's wait
# ends; on a loaded 2-core machine its event loop can lag that long. A drain that ignored
# its timeout (cancelled at once, or after a second) releases runs with seconds to spare.
DRAIN_MARGIN_S = 2.0


def deploy_check(storm: Storm, figs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """No run that could have finished within the drain timeout was cancelled: every run a
    draining node released was answered by the receiver later than ``drain_timeout`` less
    ``DRAIN_MARGIN_S`` after the signal (the node's drain starts no earlier)."""
    drain = seconds(storm.node_options.drain_timeout)
    signalled = {f.target: f.at for f in storm.faults if f.kind.startswith("SIGTERM")}
    rows = {row.id: row for row in figs["_rows"]}
    needless, unknown, released = [], 0, 0
    for event in figs["_events"]:
        if event.kind != "released":
            continue
        released += 1
        signal_at = signalled.get(event.node_id)
        row = rows.get(event.run_id)
        # The receiver answers after the run's hold whether or not its node still waits.
        would_finish = figs["_answered_at"].get((event.run_id, event.attempt))
        if signal_at is None or row is None or would_finish is None:
            unknown += 1
            continue
        if would_finish <= signal_at + drain - DRAIN_MARGIN_S:
            needless.append({"run_id": event.run_id, "left_at_signal_s":
                             round(would_finish - signal_at, 2)})
    drains = [f.detail.get("drain_s", 0.0) for f in storm.faults
              if f.kind.startswith("SIGTERM")]
    slow = [d for d in drains if d > drain + 5]
    failures = []
    if needless:
        failures.append(f"{len(needless)} runs cancelled that could have finished in the drain")
    if slow:
        failures.append(f"{len(slow)} drains took longer than drain_timeout + 5 s")
    if not released:
        failures.append("no run outlived a drain: the release path was not exercised")
    return {"restarts": len(drains), "max_drain_s": max(drains, default=None),
            "runs_released": released, "released_unknown": unknown,
            "cancelled_but_could_finish": len(needless),
            "cancelled_examples": needless[:10]}, failures


# -- soak ---------------------------------------------------------------------------------


def soak(storm: Storm) -> None:
    start(storm, lead_s=5.0)
    storm.at(storm.duration_s)


# Sustained growth a soak allows. The 30 min soak measured 3-5 MB/h of RSS per node and
# 0.03 connections/h; a node leaking 20 MB/h would take a gigabyte in two days. The floors
# are what noise makes over a short window: an allocator arena or a collection (10 MB, or 5 %
# of the node's RSS) and one more pooled connection per node under a burst (3).
RSS_MB_PER_HOUR = 20.0
RSS_FLOOR_MB = 10.0
CONNECTIONS = LeakBound(per_hour=6.0, floor=3.0)


def soak_check(storm: Storm, figs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Memory and connections flat after warm-up (``chaos.trend``); no error in any log."""
    warmup = max(20.0, storm.duration_s / 3)
    measured = [s for s in storm.samples if warmup <= s["t"] <= storm.duration_s]
    node_ids = sorted({n for s in measured for n in s["rss_kb"]})
    rss: dict[str, dict[str, Any]] = {}
    failures = []
    window = (measured[-1]["t"] - measured[0]["t"]) if len(measured) > 1 else 0.0
    for node_id in node_ids:
        fit = trend([(s["t"], s["rss_kb"][node_id] / 1024) for s in measured
                     if s["rss_kb"].get(node_id)])
        bound = LeakBound(RSS_MB_PER_HOUR, max(RSS_FLOOR_MB, 0.05 * (fit.mean or 0.0)))
        rss[node_id] = {**_extent(fit), "first_mb": _round(fit.first, 1),
                        "last_mb": _round(fit.last, 1), "mean_mb": _round(fit.mean, 1),
                        "slope_mb_per_hour": _round(fit.slope_per_hour, 2),
                        "growth_over_window_mb": round(fit.rise, 2),
                        "allowed_growth_mb": round(allowed_rise(bound, fit), 2)}
        failure = leak(f"{node_id} RSS", fit, bound, " MB")
        if failure:
            failures.append(failure)
    conns = trend([(s["t"], float(s["connections"])) for s in measured
                   if s["connections"] is not None])
    failure = leak("PostgreSQL connections", conns, CONNECTIONS)
    if failure:
        failures.append(failure)
    errors = error_lines(storm)
    if errors:
        failures.append(f"{len(errors)} error lines in the logs")
    deliveries = [(s["t"], s["deliveries"]) for s in storm.samples]
    rate = None
    if len(measured) > 1:
        rate = (measured[-1]["deliveries"] - measured[0]["deliveries"]) / window
    return {"warmup_s": warmup, "measured_window_s": round(window, 1), "rss": rss,
            "connections": {**_extent(conns), "slope_per_hour": _round(conns.slope_per_hour, 3),
                            "min": conns.low, "max": conns.high,
                            "growth_over_window": round(conns.rise, 2),
                            "allowed_growth": round(allowed_rise(CONNECTIONS, conns), 2)},
            "delivery_rate_per_s": None if rate is None else round(rate, 1),
            "samples": len(storm.samples),
            "delivery_samples": deliveries[-5:]}, failures


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _extent(fit: Trend) -> dict[str, Any]:
    return {"samples": fit.samples, "window_s": round(fit.window_s, 1)}
