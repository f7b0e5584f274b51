"""The exception hierarchy: one base, one subclass per kind of failure, each with its exit code."""

from __future__ import annotations

from enum import IntEnum


def one_line(text: str) -> str:
    """``text`` with every non-printable character (newline, tab, escape, ...) written as its
    escape sequence, so that a message quoting a hostile value stays on one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


class ExitCode(IntEnum):
    """Process exit codes; part of the command-line contract (README and docs/errors.md)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    INFEASIBLE = 10
    SOLVER_TIME_LIMIT = 11
    BAD_DATA = 65
    INPUT_MISSING = 66
    INSUFFICIENT_DATA = 67
    NO_SOLVER = 69
    CANNOT_WRITE = 73
    LOCKED = 75
    INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
    TERMINATED = 143  # SIGTERM: 128 + 15


class StagerouteError(Exception):
    """Base of every error that a user can fix; the CLI prints it as one ``Error: ...`` line."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __str__(self) -> str:
        # One ``Error:`` line whatever the data quoted in the message hold.
        return one_line(super().__str__())


class UsageError(StagerouteError):
    """An option value that makes no sense (negative budget, unparsable duration)."""

    exit_code = ExitCode.USAGE


class BadDataError(StagerouteError):
    """An input file exists but its content breaks the data contract."""

    exit_code = ExitCode.BAD_DATA


class InsufficientDataError(BadDataError):
    """Valid inputs that cannot support a plan: nothing usable, no reward, mostly unknown models,
    or logs older than ``--max-staleness`` (a cron job must not plan from nothing)."""

    exit_code = ExitCode.INSUFFICIENT_DATA


class InputMissingError(StagerouteError):
    """An input path does not exist or matches no file."""

    exit_code = ExitCode.INPUT_MISSING


class SolverUnavailableError(StagerouteError):
    """The requested MIP/LP solver is not installed."""

    exit_code = ExitCode.NO_SOLVER


class EngineUnavailableError(StagerouteError):
    """The requested statistics engine (DuckDB, or Spark and its Java) is not installed."""

    exit_code = ExitCode.NO_SOLVER


class SolverTimeLimitError(StagerouteError):
    """The solver hit its time limit before proving an optimum (or infeasibility)."""

    exit_code = ExitCode.SOLVER_TIME_LIMIT


class InfeasibleError(StagerouteError):
    """No deployment or routing table satisfies the constraints."""

    exit_code = ExitCode.INFEASIBLE


class CannotWriteError(StagerouteError):
    """The output file cannot be written."""

    exit_code = ExitCode.CANNOT_WRITE


class LockedError(StagerouteError):
    """Another run holds the lock on the output file."""

    exit_code = ExitCode.LOCKED


def shown(value: object, limit: int = 80) -> str:
    """A user value (option, path, model id) quoted for a message, on one line.

    ``shown("a<newline>b")`` is ``'a\\nb'``: control characters are escaped, printable text
    (including non-ASCII letters) is kept.
    Values longer than ``limit`` characters are cut (a message stays readable).
    """
    return repr(cut(str(value), limit))


def cut(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
