"""Replace the generated block of the README between two markers (no dependencies: the
chaos suite uses it too)."""

from __future__ import annotations

import re
from pathlib import Path


def replace_block(readme: Path, begin: str, end: str, body: str) -> None:
    """Put ``body`` between the ``begin`` and ``end`` markers of ``readme`` (also used by
    ``python -m chaos readme``)."""
    text = readme.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no {begin} ... {end} block")
    block = f"{begin}\n{body}{end}"
    readme.write_text(pattern.sub(lambda _: block, text))
