"""parse_duration / format_duration: accepted notations, every rejection, round trip."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcron.errors import ValidationError
from agentcron.schedule.durations import HINT, MAX_SECONDS, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1d2h3m4s5ms", 93784.005),
        ("1h 30m", 5400.0),
        ("1.5h", 5400.0),
        ("0.1s", 0.1),
        (".5s", 0.5),
        ("  45S ", 45.0),
        (30, 30.0),
        (0.25, 0.25),
    ],
)
def test_parses(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text, "every") == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("-5m", "'-5m' is negative"),
        (-1, "'-1' is negative"),
        ("0s", "'0s' is zero; it must be more than that"),
        (0, "'0' is zero; it must be more than that"),
        ("0", "'0' is zero; it must be more than that"),
        ("5x", "'5x' has an unknown unit 'x'"),
        ("5 years", "'5 years' has an unknown unit 'years'"),
        ("1h30", "'1h30' has a number without a unit"),
        ("abc", "'abc' is not a duration"),
        ("1h-5m", "'1h-5m' is not a duration"),
        ("11000d", "'11000d' is longer than 10 years"),
        (MAX_SECONDS + 1, f"'{MAX_SECONDS + 1}' is longer than 10 years"),
        (math.inf, "inf is not a finite duration"),
        (math.nan, "nan is not a finite duration"),
        (True, "True is not a duration"),
    ],
)
def test_rejects_with_field_and_hint(value: str | int | float, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_duration(value, "timeout")
    assert caught.value.field == "timeout"
    assert caught.value.message == message
    assert caught.value.hint == HINT
    assert str(caught.value) == f"timeout: {message} ({HINT})"


@pytest.mark.parametrize("text", ["5", "90", " 1.25 ", ".5"])
def test_a_string_without_a_unit_is_refused(text: str) -> None:
    """``--every 5``: seconds or minutes? Refused, naming the field and the choices."""
    with pytest.raises(ValidationError) as caught:
        parse_duration(text, "every")
    plain = text.strip()
    assert str(caught.value) == (f"every: '{plain}' has no unit "
                                 f"(write {plain}s, {plain}m or {plain}h)")


@pytest.mark.parametrize("text", ["30m1h", "1h1h", "5s2m"])
def test_rejects_units_out_of_order(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_duration(text, "every")
    assert caught.value.field == "every"
    assert "out of order" in caught.value.message
    assert caught.value.hint == "give each unit once, largest first, e.g. 1h30m"


def test_zero_allowed_when_asked() -> None:
    assert parse_duration("0s", "jitter", allow_zero=True) == 0.0
    assert parse_duration(0, "jitter", allow_zero=True) == 0.0


def test_ten_years_is_the_limit() -> None:
    assert parse_duration(MAX_SECONDS, "window") == MAX_SECONDS
    assert parse_duration("3652d", "window") == 3652 * 86400


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (90, "1m30s"),
        (0.5, "500ms"),
        (0, "0s"),
        (3600, "1h"),
        (86400, "1d"),
        (90061.5, "1d1h1m1s500ms"),
        (30, "30s"),
        (-90, "-1m30s"),
        (0.0004, "0s"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=MAX_SECONDS * 1000))
def test_round_trip_whole_milliseconds(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds), "every") == seconds
