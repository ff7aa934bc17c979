"""``python -m chaos readme [--write]``: the README's table of the last long-form results
(``chaos/results/<scenario>.json``), so the README only says what the results hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.readme_block import markdown_table, replace_block

BEGIN, END = "<!-- chaos:begin -->", "<!-- chaos:end -->"
COLUMNS = ["scenario", "date", "commit", "storm s", "fires expected", "seen", "duplicates",
           "missing", "early", "runs lost", "runs retried", "max recovery s",
           "repeat deliveries", "verdict"]


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _row(data: dict[str, Any]) -> list[Any]:
    f = data.get("figures", {})
    return [data["scenario"], data.get("date", "?")[:16].replace("T", " "),
            (data.get("commit") or "?")[:7], data.get("duration_s"), f.get("fires_expected"),
            f.get("fires_seen"), f.get("duplicate_fires"), f.get("missing_fires"),
            f.get("early_fires"), f.get("runs_lost"), f.get("runs_retried"),
            f.get("max_recovery_s"), f.get("duplicate_deliveries"), data.get("verdict")]


def _slopes(checks: dict[str, Any]) -> list[str]:
    """The soak's flatness figures, one phrase each."""
    out = []
    for node, rss in sorted((checks.get("rss") or {}).items()):
        out.append(f"{node} RSS {rss.get('first_mb')} -> {rss.get('last_mb')} MB "
                   f"({rss.get('slope_mb_per_hour')} MB/h)")
    conns = checks.get("connections")
    if conns:
        out.append(f"PostgreSQL connections {conns.get('min'):g}-{conns.get('max'):g} "
                   f"({conns.get('slope_per_hour')}/h)")
    return out


def render(results: Path, order: list[str]) -> str:
    found = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}
    rows = [_row(found[name]) for name in order if name in found]
    lines = markdown_table(COLUMNS, rows, _cell)
    extra = []
    for name in order:
        data = found.get(name)
        if data and data.get("checks"):
            checks = ", ".join([f"{k} {v}" for k, v in data["checks"].items()
                                if not isinstance(v, list | dict)] + _slopes(data["checks"]))
            extra.append(f"- `{name}`: {data.get('summary')}. Checks: {checks}.")
    return "\n".join([*lines, "", *extra]) + "\n"


def write(results: Path, readme: Path, order: list[str]) -> None:
    replace_block(readme, BEGIN, END, render(results, order))
