"""The ``stageroute`` entry point: checks before any command, then the app (the commands live in
``plan_cmd``, ``replay_cmd`` and ``tools_cmd``; each parses options, makes one library call,
renders and exits).

Heavy modules (Polars, Pyomo, Rich) are imported inside the commands so that ``--help`` is instant.
SIGINT and SIGTERM become one ``Error:`` line and exit 130/143 from the first line of this module
on; once the output file is replaced, nothing (a signal, a closed stdout) makes the run look failed.
"""

# ruff: noqa: E402  (the start-up signal guard must run before the imports below)
from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def _startup_exit(signum: int, frame: FrameType | None) -> None:
    """SIGINT/SIGTERM while the CLI is still importing: nothing was done, leave at once."""
    name = signal.Signals(signum).name
    os.write(2, f"Error: interrupted by {name} during start-up, nothing was written\n".encode())
    os._exit(128 + signum)


def _guard_startup() -> dict[int, object]:
    """Install ``_startup_exit`` while this module imports; the end of the module restores."""
    previous: dict[int, object] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            handler = signal.getsignal(signum)
            if handler is not signal.SIG_IGN:  # nohup and friends: keep ignoring
                signal.signal(signum, _startup_exit)
                previous[signum] = handler
        except ValueError:  # imported outside the main thread: leave the handlers alone
            break
    return previous


_STARTUP_HANDLERS = _guard_startup()

import contextlib
from collections.abc import Sequence
from typing import Any

import typer

from stageroute.errors import ExitCode, one_line, shown
from stageroute_cli import plan_cmd, process, replay_cmd, tools_cmd  # noqa: F401  (they register the commands)

from .common import app

__all__ = ["app", "run"]


def run() -> None:
    """Console-script entry point: Typer's usage errors also become one ``Error:`` line."""
    process.SIGNALS.install()  # first: from here on SIGINT/SIGTERM unwind (and clean up) properly
    process.standard_streams()
    problem = process.startup_problem(sys.argv[1:], os.environ)
    if problem is not None:
        process.stderr(f"Error: {problem}\n")
        process.SIGNALS.done()
        sys.exit(ExitCode.USAGE)
    try:
        code = _invoke()
    finally:
        process.SIGNALS.done()  # --help, --version, usage errors; commands did it themselves
    sys.exit(code)


def _invoke() -> int:
    """Run the app; its outcome as an exit code (commands report their own errors)."""
    usage_error = typer.BadParameter.__mro__[1]  # click's UsageError, without importing click
    try:
        code = app(standalone_mode=False)
    except usage_error as exc:  # type: ignore[misc]
        return _usage_error(exc)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        process.stderr("Error: aborted, nothing was written\n")
        return ExitCode.INTERRUPTED
    except process.Interrupted as exc:  # while parsing options, before a command started
        process.stderr(f"Error: interrupted by {exc.name}, nothing was written\n")
        return 128 + int(exc.signum)
    except process.StdoutError as exc:  # --version on a closed stdout
        process.silence_stdout()
        process.stderr(f"Error: cannot write to stdout ({one_line(str(exc))})\n")
        return ExitCode.CANNOT_WRITE
    return int(code) if isinstance(code, int) else 0


def _usage_error(exc: Any) -> int:
    """Typer's parsing errors: one line, with the value given and where to read the help."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:  # bare `stageroute`
        with contextlib.suppress(process.StdoutError):
            process.print_out(exc.format_message() + "\n")
        commands = ", ".join(sorted(getattr(ctx.command, "commands", {})))
        process.stderr(f"Error: no command given, pick one of: {commands} (see "
                       f"'{ctx.command_path} --help')\n")
        return ExitCode.USAGE
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    param = getattr(exc, "param", None)
    value = _argument_value(param.opts, sys.argv[1:]) if param is not None else None
    from stageroute_cli.config import ConfigError  # its errors name the file and the value

    got = (f", got {shown(value)}" if value is not None and not isinstance(exc, ConfigError)
           else "")
    message = one_line(exc.format_message())
    if "--help" in message:  # the message already says where to read
        where = ""
    process.stderr(f"Error: {message}{got}{where}\n")
    return ExitCode.USAGE


def _argument_value(names: Sequence[str], argv: Sequence[str]) -> str | None:
    """The last value given on the command line to an option called one of ``names``."""
    value = None
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(name + "="):
                value = arg[len(name) + 1:]
    return value


def _restore_startup_handlers() -> None:
    for signum, handler in _STARTUP_HANDLERS.items():
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signum, handler)  # type: ignore[arg-type]


_restore_startup_handlers()  # importing this module (tests, the console script) changes nothing


if __name__ == "__main__":
    run()
