"""The README's generated blocks: a Markdown table, and the block between two markers
(no dependencies: the chaos suite uses it too)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any


def replace_block(readme: Path, begin: str, end: str, body: str) -> None:
    """Put ``body`` between the ``begin`` and ``end`` markers of ``readme`` (also used by
    ``python -m chaos readme``)."""
    text = readme.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no {begin} ... {end} block")
    block = f"{begin}\n{body}{end}"
    readme.write_text(pattern.sub(lambda _: block, text))


def markdown_table(header: list[str], rows: list[list[Any]],
                   fmt: Callable[[Any], str] = str) -> list[str]:
    """The lines of a Markdown table, each cell through ``fmt``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return lines
