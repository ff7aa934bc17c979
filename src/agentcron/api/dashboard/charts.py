"""Charts drawn on the server as SVG: no script, no library, nothing fetched.

``status_bars`` stacks each hour's runs by status. All text is escaped; the numbers are
computed here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from agentcron.services.overview import HourBucket

# Drawn bottom-up in this order.
STATUS_COLORS: dict[str, str] = {
    "succeeded": "#2e9b5f",
    "failed": "#d64545",
    "cancelled": "#8a8f98",
    "skipped": "#c9ccd1",
    "running": "#3b82c4",
    "queued": "#e0a526",
}


def _nice_max(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 5, 10, 20, 50, ...)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= value:
                return step * m
        step *= 10


def status_bars(hours: Sequence[HourBucket], *, width: int = 760, height: int = 220) -> str:
    left, right, top, bottom = 44, 8, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(h.counts.get(s, 0) for s in STATUS_COLORS) for h in hours]
    y_max = _nice_max(max(totals, default=0))
    n = max(1, len(hours))
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.78)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="Runs per hour over the last {len(hours)} hours, by status">',
    ]
    for i in range(5):
        value = y_max * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     'class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
                     f'{value:g}</text>')
    for i, (bucket, total) in enumerate(zip(hours, totals, strict=True)):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for status, color in STATUS_COLORS.items():
            count = bucket.counts.get(status, 0)
            if not count:
                continue
            h = plot_h * count / y_max
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{escape(_hour(bucket.start))} {escape(status)}: '
                f'{count}</title></rect>')
        if i % 3 == 0 or i == len(hours) - 1:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" '
                         f'text-anchor="middle" class="axis">{escape(_hour(bucket.start))}'
                         '</text>')
        if total and len(hours) <= 48:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                         f'class="value">{total}</text>')
    legend_x = left
    for status, color in STATUS_COLORS.items():
        parts.append(f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" '
                     f'fill="{color}"/><text x="{legend_x + 14}" y="{height - 5}" '
                     f'class="axis">{escape(status)}</text>')
        legend_x += 24 + 7 * len(status)
    parts.append("</svg>")
    return "".join(parts)


def _hour(value: datetime) -> str:
    return value.strftime("%H:00")
