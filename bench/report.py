"""Output of every workload: a Rich table on the terminal, ``<out>/<workload>.json`` with the
machine, the settings and every figure, and the fire-lag plot."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.machine import describe

console = Console(width=None if Console().is_terminal else 170)

Column = tuple[str, str]  # (key in the row, header)
TEXT_KEYS = {"system", "note", "script", "mode", "by_kind", "what", "case"}


STEP_ERRORS: list[str] = []
"""Steps that failed (a child that crashed or timed out), for ``--strict``."""


def _collect_errors(workload: str, value: Any) -> None:
    if isinstance(value, dict):
        if value.get("error"):
            what = value.get("system") or value.get("script") or value.get("stored_triggers")
            STEP_ERRORS.append(f"{workload} {what}: {value['error']}"[:300])
        for item in value.values():
            _collect_errors(workload, item)
    elif isinstance(value, list):
        for item in value:
            _collect_errors(workload, item)


def write_json(out_dir: Path, workload: str, *, pg_url: str, settings: dict[str, Any],
               results: Any, notes: Sequence[str] = (), machine: dict[str, Any] | None = None
               ) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{workload}.json"
    payload = {
        "workload": workload,
        "machine": machine or describe(pg_url),
        "settings": settings,
        "results": results,
        "notes": list(notes),
    }
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    _collect_errors(workload, results)
    console.print(f"[dim]wrote {path}[/dim]")
    return path


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) < 10:
            return f"{value:.3g}"
        return f"{value:.1f}" if value != int(value) or abs(value) < 100 else f"{value:.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, columns: Sequence[Column], rows: Sequence[dict[str, Any]],
                caption: str | None = None) -> None:
    table = Table(title=title, caption=caption, show_lines=False)
    for key, header in columns:
        table.add_column(header, justify="left" if key in TEXT_KEYS else "right",
                         overflow="fold")
    for row in rows:
        table.add_row(*(fmt(row.get(key)) for key, _ in columns))
    console.print(table)


LADDER_COLUMNS: list[Column] = [
    ("system", "system"), ("triggers", "N/s offered"), ("fires_per_s", "fires/s"),
    ("lag_p50_ms", "lag p50 ms"), ("lag_p99_ms", "lag p99 ms"), ("lag_max_ms", "lag max ms"),
    ("missed", "missed"), ("duplicates", "dups"), ("node_cpu_pct", "node CPU %"),
    ("pg_cpu_pct", "PG CPU %"), ("pg_bench_cpu_pct", "PG (own db) %"),
    ("other_cpu_pct", "others %"), ("sustained", "kept up"), ("note", "note"),
]


def ladder_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        row = dict(result)
        if result.get("error"):
            row["note"] = f"error: {result['error']}"[:160]
        elif result.get("cannot"):
            row["note"] = f"cannot express: {result['cannot']}"
        rows.append(row)
    return rows


def plot_fire_lag(out_dir: Path) -> Path | None:
    """Fire lag p50 (dashed) and p99 (solid) against offered load, one colour per system,
    from whichever of fire-rate.json and peers.json exist in ``out_dir``."""
    series: dict[str, list[dict[str, Any]]] = {}
    for name in ("fire-rate", "peers"):
        path = out_dir / f"{name}.json"
        if not path.exists():
            continue
        for row in json.loads(path.read_text()).get("results", []):
            if row.get("lag_p99_ms") is not None and not row.get("error"):
                series.setdefault(str(row["system"]), []).append(row)
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for i, (system, rows) in enumerate(sorted(series.items())):
        rows.sort(key=lambda r: r["triggers"])
        xs = [r["triggers"] for r in rows]
        colour = f"C{i}"
        ax.plot(xs, [r["lag_p99_ms"] for r in rows], "-o", color=colour, label=f"{system} p99")
        ax.plot(xs, [r["lag_p50_ms"] for r in rows], "--", marker=".", color=colour,
                label=f"{system} p50")
        for r in rows:
            if r.get("missed"):
                ax.annotate(f"{r['missed']:,} missed", (r["triggers"], r["lag_p99_ms"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7,
                            color=colour)
    ax.set_xscale("log")
    ax.set_yscale("log")
    loads = sorted({r["triggers"] for rows in series.values() for r in rows})
    ax.set_xticks(loads, [f"{n / 1000:g}k" if n >= 1000 else str(n) for n in loads])
    ax.minorticks_off()
    ax.set_xlabel("offered load: triggers firing every second (fires/s)")
    ax.set_ylabel("fire lag, ms (agent start - scheduled time)")
    ax.set_title("Fire lag against load, one node, PostgreSQL on the same 2-core host")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    path = out_dir / "fire_lag.png"
    fig.savefig(path)
    plt.close(fig)
    console.print(f"[dim]wrote {path}[/dim]")
    return path
