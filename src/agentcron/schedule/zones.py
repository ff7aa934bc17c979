"""Time zone lookup and UTC normalisation shared by every schedule module.

Contract: every datetime that leaves this package is timezone-aware UTC
(``datetime.timezone.utc``). Naive datetimes are a programming error here (user text
goes through ``parse_at``, which knows how to attach a zone), so they raise ``ValueError``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentcron.errors import ValidationError

#: One microsecond: the resolution of ``datetime``, used to turn "strictly after" into
#: "at or after" and back without any floating point.
EPSILON = timedelta(microseconds=1)

ZONE_HINT = "use an IANA name such as 'UTC' or 'Europe/Berlin'"

# Names that mean plain UTC. For these cronsim is handed ``timezone.utc``, which lets it
# skip its DST machinery entirely (same answers, several times faster).
_UTC_NAMES = frozenset(
    {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"}
)

# IANA keys are ASCII letters, digits and a few punctuation marks. Checking this first keeps
# odd input (paths, NULs, whitespace) away from the file lookup zoneinfo does.
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")


@lru_cache(maxsize=512)
def get_zone(name: str) -> ZoneInfo:
    """Return the IANA zone called ``name``.

    Raises ``ValidationError("tz", ...)`` naming the zone when it is unknown or malformed.
    """
    if not isinstance(name, str) or len(name) > 64 or not _ZONE_NAME.fullmatch(name):
        raise ValidationError("tz", f"unknown time zone {name!r}", ZONE_HINT)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ZoneInfoNotFoundError: no such key; OSError: the key is a directory ("America");
        # ValueError: the file under that key is not a TZif file.
        raise ValidationError("tz", f"unknown time zone {name!r}", ZONE_HINT) from None


def cron_zone(name: str) -> tzinfo:
    """The tzinfo to hand cronsim for zone ``name``: ``timezone.utc`` for UTC aliases."""
    if name in _UTC_NAMES:
        get_zone(name)  # still validate, so an unusable install fails loudly
        return UTC
    return get_zone(name)


def ensure_utc(value: datetime, what: str = "datetime") -> datetime:
    """Return ``value`` as an aware UTC datetime; ``ValueError`` when it is naive."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)
