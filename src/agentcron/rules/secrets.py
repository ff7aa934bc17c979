"""What counts as a secret in a URL, and the mask shown in its place. Pure: the documents
both front doors show (``services.documents``) and the executors' error messages (a run's
error is shown to read tokens too) use the same function."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_MASK = "********"

# Query parameters whose values are credentials (``?api_key=...``, ``&token=...``).
_SECRET_PARAM = re.compile(r"key|token|secret|passw|auth|sig|credential", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` with its user name and password, and the values of query parameters named
    like credentials, replaced by the mask; any other URL unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return SECRET_MASK  # not a URL we can take apart: show nothing of it
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{SECRET_MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.search(name) for name, _ in pairs):
            query = urlencode([(n, SECRET_MASK if _SECRET_PARAM.search(n) else v)
                               for n, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))
