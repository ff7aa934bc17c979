"""``python -m bench readme``: the README's benchmark tables, made from the JSON of the last
full run (``--write`` puts them between the README's ``bench:begin``/``bench:end`` markers),
so the README never says a figure the results do not hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import report, targets
from bench.readme_block import markdown_table, replace_block

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return markdown_table(header, rows, report.fmt)


def _machine_line(data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    pg = m.get("postgresql", {})
    return (f"{m.get('date', '?')[:10]}, {m.get('cores')} cores ({m.get('cpu_model')}), "
            f"{m.get('memory_gb')} GB, PostgreSQL {str(pg.get('server_version', '?')).split()[0]} "
            f"on the same host (shared_buffers {pg.get('shared_buffers')}, synchronous_commit "
            f"{pg.get('synchronous_commit')}), Python {m.get('python')}")


def _ladder(rows: list[dict[str, Any]]) -> list[str]:
    body = []
    for r in rows:
        if r.get("error"):
            body.append([r.get("system"), r.get("triggers"), "error: " + str(r["error"])[:60],
                         "", "", "", "", "", ""])
            continue
        body.append([r.get("system"), r.get("offered_per_s"), r.get("fires_per_s"),
                     r.get("lag_p50_ms"), r.get("lag_p99_ms"), r.get("missed"),
                     r.get("duplicates"), "yes" if r.get("sustained") else "no",
                     f"{report.fmt(r.get('node_cpu_pct'))} / {report.fmt(r.get('pg_cpu_pct'))}"])
    return _table(["system", "offered fires/s", "achieved fires/s", "lag p50 ms", "lag p99 ms",
                   "missed", "duplicates", "kept up", "CPU % node / PostgreSQL"], body)


def render(out: Path) -> str:
    fire, peers = _load(out, "fire-rate"), _load(out, "peers")
    lines: list[str] = []
    if fire:
        lines += [f"Full run of `python -m bench all`: {_machine_line(fire)}.", ""]
        rows = list(fire["results"]) + list(peers["results"] if peers else [])
        lines += ["**Fire-rate ladder** (N interval triggers every second, 30 s measured after "
                  "a warm-up; lag = start of the agent minus the scheduled time, measured "
                  "inside the agent):", "", *_ladder(rows), ""]
        modes = {r["system"]: r.get("mode") for r in rows if r.get("mode")}
        lines += [f"- `{system}`: {mode}" for system, mode in modes.items()]
        lines.append("")
    lines += ["**Targets** (issue 3):", "",
              *_table(["target", "measured", "met", "note"],
                      [[t["what"], t["value"], {True: "yes", False: "**no**"}.get(t["met"], "-"),
                        t["note"]] for t in targets.check(out)]), ""]
    scale = _load(out, "scale")
    if scale:
        lines += ["**Scale** (stored triggers due sparsely, one node):", "", *_table(
            ["stored triggers", "node start s", "spawn to first tick s", "RSS MB (max)",
             "tick ms p50 / p99", "statements per tick"],
            [[r.get("stored_triggers"), r.get("node_start_s"), r.get("ready_s"),
              r.get("rss_max_mb"),
              f"{report.fmt(r.get('tick_ms_p50'))} / {report.fmt(r.get('tick_ms_p99'))}",
              r.get("statements_per_tick")] for r in scale["results"]]), ""]
    replicas = _load(out, "replicas")
    if replicas:
        res = replicas["results"]
        lines += ["**Replicas** (one database, N nodes):", "", *_table(
            ["nodes", "triggers", "achieved fires/s", "lag p99 ms", "missed", "duplicates"],
            [[r.get("nodes"), r.get("triggers"), r.get("fires_per_s"), r.get("lag_p99_ms"),
              r.get("missed"), r.get("duplicates")] for r in res.get("scaling", [])]), "",
            "kill -9 of the node with the most runs in flight:", "", *_table(
            ["triggers", "runs orphaned", "detected after s", "all taken over after s",
             "re-run elsewhere", "duplicates"],
            [[r.get("triggers"), r.get("orphaned_runs"), r.get("detected_after_s"),
              r.get("taken_over_after_s"), r.get("orphans_rerun_elsewhere"),
              r.get("duplicates")] for r in res.get("kill", [])]), ""]
    ceiling = _load(out, "ceiling")
    if ceiling:
        lines += ["**Ceiling** (the same transactions in raw SQL through pgbench, 2 clients):",
                  "", *_table(["script", "batch", "transactions/s", "fires/s"],
                              [[r.get("script"), r.get("batch"), r.get("tps"),
                                r.get("fires_per_s")] for r in ceiling["results"]]), ""]
    statements = _load(out, "statements")
    if statements:
        per = statements["results"].get("per_batch", [])
        node = statements["results"].get("node", {})
        lines += ["**Statements** (counted per session):", "", *_table(
            ["batch", "fire_due", "fire_due + claim", "claim_runs", "finish", "heartbeat"],
            [[r.get("batch"), r.get("fire_due"), r.get("fire_due_claiming"),
              r.get("claim_runs"), r.get("finish"), r.get("heartbeat")] for r in per]), "",
            f"A node firing {report.fmt(node.get('triggers'))} triggers every second for "
            f"{report.fmt(node.get('seconds'))} s ran {report.fmt(node.get('statements'))} "
            f"statements: {report.fmt(node.get('statements_per_fire'))} per fire.", ""]
    bulk = _load(out, "bulk")
    if bulk:
        res = bulk["results"]
        api = res.get("api") or {}
        lines += ["**Bulk creation** (an agents file synced; triggers created through "
                  "`POST /api/v1/triggers/batch`):", "", *_table(
            ["backend", "triggers", "sync", "seconds", "triggers/s", "statements"],
            [[r.get("backend"), r.get("triggers"), r.get("what"), r.get("seconds"),
              r.get("triggers_per_s"), r.get("statements")] for r in res.get("file_sync", [])]),
            "", f"API: {report.fmt(api.get('triggers'))} triggers in "
            f"{report.fmt(api.get('seconds'))} s ({report.fmt(api.get('triggers_per_s'))}/s, "
            f"{report.fmt(api.get('batch'))} per request, {report.fmt(api.get('clients'))} "
            "clients).", ""]
    return "\n".join(lines).rstrip() + "\n"


def write(out: Path, readme: Path) -> None:
    replace_block(readme, BEGIN, END, render(out))
