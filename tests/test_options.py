"""Option parsers shared by the commands: durations, datetimes and closed sets.

Every bad value is a UsageError that names the option and the value on one line; nothing else
(OverflowError, ValueError) may escape, whatever the text.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from stageroute.errors import ExitCode, UsageError
from stageroute.options import Policy, Radius, Solver, choice, parse_datetime, parse_duration

UTC = dt.UTC
DAY = dt.timedelta(days=1)


def usage_error(call, *args) -> str:
    """The message of the UsageError that ``call(*args)`` raises (one line, exit code 2)."""
    with pytest.raises(UsageError) as info:
        call(*args)
    assert info.value.exit_code == ExitCode.USAGE
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    return message


# ---------------------------------------------------------------------------------------------
# parse_duration


@pytest.mark.parametrize(("text", "expected"), [
    ("7d", dt.timedelta(days=7)),
    ("12h", dt.timedelta(hours=12)),
    ("1w", dt.timedelta(weeks=1)),
    ("90m", dt.timedelta(minutes=90)),
    ("3600s", dt.timedelta(hours=1)),
    ("1s", dt.timedelta(seconds=1)),
    ("1.5h", dt.timedelta(minutes=90)),
    ("0.25d", dt.timedelta(hours=6)),
    ("1d12h", dt.timedelta(days=1, hours=12)),
    ("1w2d3h4m5s", dt.timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
    ("1d 12h", dt.timedelta(days=1, hours=12)),
    ("  2D ", dt.timedelta(days=2)),
    ("12 H", dt.timedelta(hours=12)),
    ("1h1h", dt.timedelta(hours=2)),  # repeated units add up
    ("0d1s", dt.timedelta(seconds=1)),
    ("007d", dt.timedelta(days=7)),
    ("36500d", dt.timedelta(days=36_500)),  # the longest accepted: 100 years
])
def test_durations_in_every_accepted_form(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", [
    "", " ", "7", "d", "7x", "7 days", "seven days", "1.d", ".5d", "1..5d", "1,5d", "1dd", "d7",
    "-1d", "+1d", "1d-2h", "1e3d", "1e300d", "inf d", "nans", "1d x", "P7D", "7\x00d",
    "7d;rm -rf /", "١٢٣x",
])
def test_text_that_is_not_a_duration_is_refused_naming_option_and_text(text):
    message = usage_error(parse_duration, text, "--max-staleness")
    assert message.startswith(f"--max-staleness {text!r} is not a duration")
    assert "7d" in message  # the fix: an example of the form


@pytest.mark.parametrize("text", ["0d", "0s", "0w0d0h", "0.5s", "0.0000001s", "0.000000000001w"])
def test_zero_and_sub_second_durations_are_refused(text):
    message = usage_error(parse_duration, text)
    assert message.startswith("--stage-length must be at least 1s")
    assert repr(text) in message


@pytest.mark.parametrize("text", [
    "36501d", "3000000d", "5215w", "999999999d", "99999999999999999999d", "1" + "0" * 400 + "s",
    "9" * 5000 + "w", "1" * 30 + ".5w",
])
def test_huge_durations_are_refused_not_overflowed(text):
    message = usage_error(parse_duration, text)
    assert "--stage-length" in message
    assert "longer than 100 years" in message or "is not a duration" in message


def test_huge_durations_name_the_limit():
    message = usage_error(parse_duration, "3000000d")
    assert message == "--stage-length '3000000d' is longer than 100 years (36500d), give a shorter one"


def format_duration(td: dt.timedelta, sep: str) -> str:
    """``td`` as weeks, days, hours, minutes and seconds, largest first, zero parts left out."""
    seconds = int(td.total_seconds())
    parts = []
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return sep.join(parts)


@given(st.integers(1, 36_500 * 86_400).map(lambda s: dt.timedelta(seconds=s)),
       st.sampled_from(["", " "]))
@example(dt.timedelta(days=36_500), "")
@example(dt.timedelta(seconds=1), "")
@example(dt.timedelta(weeks=1, seconds=1), " ")
def test_formatted_durations_parse_back(td, sep):
    assert parse_duration(format_duration(td, sep)) == td


@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from("smhdw")), min_size=1, max_size=5))
def test_any_sum_of_parts_is_the_timedelta_or_one_usage_error(parts):
    text = "".join(f"{n}{u}" for n, u in parts)
    seconds = sum(n * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[u] for n, u in parts)
    if 1 <= seconds <= 36_500 * 86_400:
        assert parse_duration(text) == dt.timedelta(seconds=seconds)
    else:
        usage_error(parse_duration, text)


@given(st.text(max_size=40))
@example("9" * 400 + "d")
@example("1" * 30 + ".5w")
def test_no_text_makes_parse_duration_raise_anything_but_a_usage_error(text):
    try:
        value = parse_duration(text)
    except UsageError as exc:
        assert "\n" not in str(exc)
    else:
        assert dt.timedelta(seconds=1) <= value <= dt.timedelta(days=36_500)


# ---------------------------------------------------------------------------------------------
# parse_datetime


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-16T02:00:00Z", dt.datetime(2026, 11, 16, 2, tzinfo=UTC)),
    ("2026-11-16T02:00:00+00:00", dt.datetime(2026, 11, 16, 2, tzinfo=UTC)),
    ("2026-11-16T04:30:00+02:30", dt.datetime(2026, 11, 16, 2, tzinfo=UTC)),
    ("2026-11-15T21:00:00-05:00", dt.datetime(2026, 11, 16, 2, tzinfo=UTC)),
    ("2026-11-16T02:00:00", dt.datetime(2026, 11, 16, 2, tzinfo=UTC)),  # no offset: UTC
    ("2026-11-16 02:00", dt.datetime(2026, 11, 16, 2, tzinfo=UTC)),
    ("2026-11-16", dt.datetime(2026, 11, 16, tzinfo=UTC)),
    ("  2026-11-16  ", dt.datetime(2026, 11, 16, tzinfo=UTC)),
    ("2026-11-16T02:00:00.250Z", dt.datetime(2026, 11, 16, 2, 0, 0, 250_000, tzinfo=UTC)),
    ("2024-02-29", dt.datetime(2024, 2, 29, tzinfo=UTC)),
    ("2026-01-01T00:30:00+01:00", dt.datetime(2025, 12, 31, 23, 30, tzinfo=UTC)),  # year before
    ("0001-01-01", dt.datetime(1, 1, 1, tzinfo=UTC)),
    ("0001-01-01T00:00:00Z", dt.datetime(1, 1, 1, tzinfo=UTC)),
    ("0001-01-01T00:00:00-05:00", dt.datetime(1, 1, 1, 5, tzinfo=UTC)),
    ("9999-12-31", dt.datetime(9999, 12, 31, tzinfo=UTC)),
    ("9999-12-31T23:59:59Z", dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ("9999-12-31T23:00:00+05:00", dt.datetime(9999, 12, 31, 18, tzinfo=UTC)),
])
def test_datetimes_with_offsets_z_and_dates_are_utc(text, expected):
    got = parse_datetime(text)
    assert got == expected
    assert got.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00+05:00", "0001-01-01T04:59:59+05:00", "9999-12-31T23:00:00-05:00",
    "9999-12-31T20:00:00-23:59",
])
def test_offsets_that_leave_the_calendar_are_a_usage_error_not_an_overflow(text):
    message = usage_error(parse_datetime, text, "--start")
    assert message.startswith(f"--start {text!r}")
    assert "calendar" in message


@pytest.mark.parametrize("text", [
    "", "garbage", "2026-02-30", "2026-13-01", "2025-02-29", "2026-11-16T25:00:00",
    "16/11/2026", "yesterday", "2026-11-16T02:00:00z", "10000-01-01", "0000-12-31",
    "2026-11-16T02:00:00+25:00", "2026-11-16\n2026-11-17", "nowish",
])
def test_text_that_is_not_a_date_is_refused_naming_option_and_text(text):
    message = usage_error(parse_datetime, text, "--end")
    assert message.startswith(f"--end {text!r}")
    assert "ISO 8601" in message


@pytest.mark.parametrize("text", [None, "now", "NOW", " now "])
def test_now_is_the_current_utc_second(text):
    before = dt.datetime.now(UTC).replace(microsecond=0)
    got = parse_datetime(text)
    after = dt.datetime.now(UTC)
    assert before <= got <= after
    assert got.utcoffset() == dt.timedelta(0) and got.microsecond == 0


@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                    timezones=st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                                               dt.timezone(dt.timedelta(hours=-8))])))
def test_an_aware_datetime_written_in_iso_8601_parses_to_the_same_instant(moment):
    got = parse_datetime(moment.isoformat())
    assert got == moment and got.utcoffset() == dt.timedelta(0)


@given(st.text(max_size=40))
@example("9999-12-31T23:59:59.999999-00:01")
@example("0001-01-01T00:00:00.000001+00:01")
def test_no_text_makes_parse_datetime_raise_anything_but_a_usage_error(text):
    try:
        value = parse_datetime(text)
    except UsageError as exc:
        assert "\n" not in str(exc)
    else:
        assert value.utcoffset() == dt.timedelta(0)


# ---------------------------------------------------------------------------------------------
# closed sets


@pytest.mark.parametrize(("kind", "text", "expected"), [
    (Solver, "highs", Solver.HIGHS), (Solver, " GLPK ", Solver.GLPK), (Radius, "Mean", Radius.MEAN),
    (Policy, "epsilon-greedy", Policy.EPSILON), (Policy, Policy.ORACLE, Policy.ORACLE),
])
def test_choice_is_case_insensitive(kind, text, expected):
    assert choice(kind, text, "--x") is expected


@pytest.mark.parametrize(("kind", "text"), [(Solver, "cplex"), (Radius, ""), (Policy, "stage\nroute")])
def test_choice_lists_every_allowed_value(kind, text):
    message = usage_error(choice, kind, text, "--opt")
    assert message.startswith(f"--opt {text!r} is not one of: ")
    assert message.split("is not one of: ")[1].split(";")[0] == ", ".join(m.value for m in kind)
