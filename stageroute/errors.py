"""The exception hierarchy: one base, one subclass per kind of failure, each with its exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; part of the command-line contract (documented in the README)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    INFEASIBLE = 10
    BAD_DATA = 65
    INPUT_MISSING = 66
    NO_SOLVER = 69
    CANNOT_WRITE = 73
    LOCKED = 75


class StagerouteError(Exception):
    """Base of every error that a user can fix; the CLI prints it as one ``Error: ...`` line."""

    exit_code: ExitCode = ExitCode.INTERNAL


class UsageError(StagerouteError):
    """An option value that makes no sense (negative budget, unparsable duration)."""

    exit_code = ExitCode.USAGE


class BadDataError(StagerouteError):
    """An input file exists but its content breaks the data contract."""

    exit_code = ExitCode.BAD_DATA


class InputMissingError(StagerouteError):
    """An input path does not exist or matches no file."""

    exit_code = ExitCode.INPUT_MISSING


class SolverUnavailableError(StagerouteError):
    """The requested MIP/LP solver is not installed."""

    exit_code = ExitCode.NO_SOLVER


class InfeasibleError(StagerouteError):
    """No deployment or routing table satisfies the constraints."""

    exit_code = ExitCode.INFEASIBLE


class CannotWriteError(StagerouteError):
    """The output file cannot be written."""

    exit_code = ExitCode.CANNOT_WRITE


class LockedError(StagerouteError):
    """Another run holds the lock on the output file."""

    exit_code = ExitCode.LOCKED
