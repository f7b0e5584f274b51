"""Option values shared by the library and the CLI: closed sets and text parsers (no heavy imports)."""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import TypeVar

from stageroute.errors import UsageError, shown


class Solver(StrEnum):
    """MIP/LP solvers stageroute drives through Pyomo."""

    HIGHS = "highs"
    GLPK = "glpk"


class Radius(StrEnum):
    """What ``v`` is in the confidence radius: the empirical variance (default) or the mean."""

    VARIANCE = "variance"
    MEAN = "mean"


E = TypeVar("E", bound=StrEnum)


def choice(kind: type[E], text: str | E, option: str) -> E:
    """The member of a closed set named ``text`` (case-insensitive), or a UsageError."""
    try:
        return kind(str(text).strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise UsageError(f"{option} {shown(text)} is not one of: {allowed}; pick one of those") from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_LONGEST = 36_500 * 86_400  # seconds: no stage or staleness limit is longer than 100 years




def parse_duration(text: str, option: str = "--stage-length") -> dt.timedelta:
    """'7d', '12h', '1w', '90m', '3600s' (or a combination such as '1d12h') -> timedelta."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", text.strip().lower()):
        raise UsageError(
            f"{option} {shown(text)} is not a duration, use a number and a unit such as 7d, 12h or 1w"
        )
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < 1:  # also what would round to a zero timedelta (below a microsecond)
        raise UsageError(f"{option} must be at least 1s, got {shown(text)}")
    if not seconds <= _LONGEST:  # timedelta overflows near 2.7 million years; dates much sooner
        raise UsageError(f"{option} {shown(text)} is longer than 100 years (36500d), give a shorter one")
    return dt.timedelta(seconds=seconds)


def format_duration(length: dt.timedelta) -> str:
    """A duration as ``parse_duration`` reads it, in the largest unit that divides it: '28d',
    '36h', '90m', '1.5s'.

    >>> format_duration(dt.timedelta(days=28)), format_duration(dt.timedelta(hours=36))
    ('28d', '36h')
    """
    total = length / dt.timedelta(seconds=1)
    for unit in ("d", "h", "m"):
        count = total / _UNITS[unit]
        if count == int(count):
            return f"{int(count)}{unit}"
    return f"{total:f}".rstrip("0").rstrip(".") + "s"


def parse_datetime(text: str | None, option: str = "--as-of") -> dt.datetime:
    """ISO 8601 date or datetime (UTC when no offset is given); None or 'now' -> now (UTC)."""
    if text is None or text.strip().lower() == "now":
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {shown(text)} is not a date, use ISO 8601 such as 2026-11-16 or "
            "2026-11-16T02:00:00Z"
        ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is in year 0 in UTC
        raise UsageError(
            f"{option} {shown(text)} is outside the calendar in UTC (years 1 to 9999), give a "
            "date such as 2026-11-16"
        ) from None


def iso_date(t: dt.datetime) -> str:
    """A datetime for a message: '0001-01-01 00:00' (strftime's %Y drops the zeros on Linux)."""
    return t.isoformat(sep=" ", timespec="minutes").removesuffix("+00:00")


class Policy(StrEnum):
    """Policies that ``replay`` can simulate."""

    STAGEROUTE = "stageroute"
    PACED = "stageroute-paced"  # StageRoute with budget pacing
    ORACLE = "oracle"
    STATIC = "static"
    GREEDY = "greedy"
    EPSILON = "epsilon-greedy"
    UNIFORM = "uniform"
    # replay --contextual (SPEC 12)
    CONTEXTUAL = "stageroute-contextual"
    PORT = "port"
    ORACLE_CONTEXTUAL = "oracle-contextual"


CONTEXTUAL_POLICIES = (Policy.CONTEXTUAL, Policy.PORT, Policy.ORACLE_CONTEXTUAL)
BASE_POLICIES = tuple(p for p in Policy if p not in CONTEXTUAL_POLICIES)


def parse_grace(text: str | None) -> dt.timedelta | None:
    """--grace: a duration, or 0 (strictly the next boundary); None stays None (the default)."""
    if text is None:
        return None
    return dt.timedelta(0) if text.strip().lower() in {"0", "0s"} else parse_duration(text, "--grace")


def parse_anchor(text: str) -> dt.datetime | str:
    """--anchor: an ISO 8601 boundary, or a cron expression ('0 2 * * 1': Mondays 02:00 UTC),
    checked by ``croniter``."""
    if len(text.split()) < 5:
        return parse_datetime(text, "--anchor")
    from croniter import croniter

    if not croniter.is_valid(text.strip()):
        raise UsageError(f"--anchor {shown(text)} is neither a date nor a cron expression, give "
                         "e.g. 2026-01-05T02:00Z or '0 2 * * 1' (Mondays 02:00 UTC)")
    return text.strip()


def _around(as_of: dt.datetime, anchor: dt.datetime | str,
            length: dt.timedelta) -> tuple[dt.datetime, dt.datetime]:
    """The last boundary at or before ``as_of`` and the first one after it."""
    if isinstance(anchor, dt.datetime):
        before = anchor + ((as_of - anchor) // length) * length  # before <= as_of < before + length
        return before, before + length
    from croniter import croniter

    second = dt.timedelta(seconds=1)  # croniter steps strictly past its start, in whole seconds
    before = croniter(anchor, as_of + second).get_prev(dt.datetime)
    after = croniter(anchor, as_of).get_next(dt.datetime)
    return before.astimezone(dt.UTC), after.astimezone(dt.UTC)


def window_start(as_of: dt.datetime, anchor: dt.datetime | str, length: dt.timedelta,
                 grace: dt.timedelta | None = None) -> dt.datetime:
    """The start of the stage a run at ``as_of`` plans: boundaries are ``anchor + k * length``
    (k any integer: the anchor may lie in the future), or the times of a cron expression (UTC).

    The boundary at or after ``as_of``, unless the last boundary before it is at most ``grace``
    earlier: a cron job that starts late still plans the window that began at that boundary.
    ``grace`` defaults to half the stage length, so a run plans the window whose start is nearest
    to it (a run exactly halfway is late for the earlier one); ``grace=0`` is strictly the next
    boundary at or after ``as_of``.

    Raises:
        UsageError: ``grace`` negative or not shorter than ``length``; a start outside the calendar.
    """
    grace = length / 2 if grace is None else grace
    if not dt.timedelta(0) <= grace < length:
        raise UsageError(f"--grace must be at least 0 and shorter than --stage-length ({length}), "
                         f"got {grace}; give e.g. --grace 6h")
    try:
        before, after = _around(as_of, anchor, length)
    except (OverflowError, ValueError):
        raise UsageError(f"the stage after --as-of {iso_date(as_of)} on the boundaries of --anchor "
                         f"{anchor if isinstance(anchor, str) else iso_date(anchor)} is outside "
                         "the calendar (years 1 to 9999)") from None
    return before if as_of - before <= grace else after


def replay_policies(names: list[str] | None, contextual: bool, prompts: bool) -> tuple[Policy, ...]:
    """replay's --policy values (case-insensitive), or the default: every policy, with
    ``contextual`` the contextual ones too (PORT only with prompt text for its neighbours)."""
    if names:
        return tuple(dict.fromkeys(choice(Policy, p, "--policy") for p in names))
    extra = tuple(p for p in CONTEXTUAL_POLICIES if p is not Policy.PORT or prompts)
    return BASE_POLICIES + (extra if contextual else ())
