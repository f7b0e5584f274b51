"""The process around a command: signals, standard streams, and which output files are in place.

The rule: the exit status tells the truth about what was written. SIGINT/SIGTERM before the output
is replaced: one ``Error:`` line, nothing written, exit 130/143. After: exit 0 with a warning. A
stdout that cannot take the report (closed, ``| head``, full disk) fails the run only if no
output file was asked for and written.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import NoReturn

import typer

from stageroute.errors import (
    ExitCode,
    InputMissingError,
    StagerouteError,
    UsageError,
    one_line,
    shown,
)
from stageroute_cli.config import FILE_OUTPUTS


class Interrupted(BaseException):
    """SIGINT or SIGTERM, raised where the program is (no ``except Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


class Signals:
    """SIGINT and SIGTERM raise ``Interrupted`` at once, except inside ``deferred()`` and once the
    outcome is decided (``done()``)."""

    def __init__(self) -> None:
        self.deferring = False
        self.finished = False
        self.pending: int | None = None

    def install(self) -> None:
        self.finished = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    signal.signal(signum, self._handle)

    def done(self) -> None:
        """The exit status is decided: SIGINT/SIGTERM are ignored from now on, also while Python
        shuts down (which restores the default action: the process would die of the signal, and
        its status would hide that the output was written)."""
        self.finished = True
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):
                if signal.getsignal(signum) == self._handle:
                    signal.signal(signum, signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.finished:
            return
        if self.deferring:
            self.pending = self.pending or signum
            return
        raise Interrupted(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold signals back until the block is done (then raise the first one)."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
            if self.pending is not None:
                signum, self.pending = self.pending, None
                raise Interrupted(signum)


SIGNALS = Signals()  # signals are per process, so is this


class StdoutError(Exception):
    """stdout cannot take the report: closed, a broken pipe (``| head``), a full disk."""


class ClosedStream(io.TextIOBase):
    """Stands in for a standard stream that was closed when the process started."""

    def __init__(self, name: str) -> None:
        self.stream_name = name

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, f"{self.stream_name} is closed")

    def isatty(self) -> bool:
        return False


def standard_streams() -> None:
    """Closed fds 0-2 get /dev/null (so no file we open lands on them); stdout never raises
    UnicodeEncodeError (unencodable characters are escaped)."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if name == "stdout":
                sys.stdout = ClosedStream("stdout")
            elif name == "stderr":
                sys.stderr = open(fd, "w", closefd=False)  # lives as long as the process
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def stderr(text: str) -> None:
    """Write to stderr; if even that fails there is nobody to tell."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(text)
        sys.stderr.flush()


def print_out(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        raise StdoutError(exc.strerror or str(exc)) from None


def silence_stdout() -> None:
    """After a failed write to stdout: what is still buffered goes nowhere, quietly, at exit."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    sys.stdout = ClosedStream("stdout")


def fail(message: str, code: int) -> NoReturn:
    stderr(f"Error: {one_line(message)}\n")
    raise typer.Exit(code)


@dataclass
class Session:
    """One command's output files: which were asked for, which are in place."""

    outputs: dict[str, Path]  # option -> path, for the options given
    written: list[Path] = field(default_factory=list)

    @contextmanager
    def committing(self, path: Path) -> Iterator[None]:
        """Around the rename that replaces ``path``: signals wait, so ``written`` is exact."""
        with SIGNALS.deferred():
            yield
            self.written.append(path)

    @property
    def complete(self) -> bool:
        return bool(self.outputs) and all(p in self.written for p in self.outputs.values())

    def status(self) -> str:
        if not self.written:
            return "nothing was written"
        missing = [str(p) for p in self.outputs.values() if p not in self.written]
        wrote = ", ".join(str(p) for p in self.written)
        return f"wrote {wrote}" + (f" but not {', '.join(missing)}" if missing else "")


@contextmanager
def command(outputs: Mapping[str, Path | None], inputs: Mapping[str, str | Path | None],
             solves: bool = True) -> Iterator[Session]:
    """Run a command body: outputs checked before any work, every failure one ``Error:`` line.

    Bugs (anything not a ``StagerouteError``) also get one line, and exit 1;
    STAGEROUTE_DEBUG=1 shows the traceback instead.
    """
    session = Session({k: v for k, v in outputs.items() if v is not None})
    try:
        with contextlib.ExitStack() as held:
            _check_inputs(inputs)
            _check_outputs(session.outputs, inputs, held)
            if solves:
                from stageroute.optimize.solver import solver_time_limit

                solver_time_limit()  # a bad $STAGEROUTE_SOLVER_TIME_LIMIT fails before any work
            yield session
        SIGNALS.done()
    except BaseException as exc:
        SIGNALS.done()  # what follows only reports the outcome: a signal cannot change it any more
        _report(exc, session)
        raise


def _report(exc: BaseException, session: Session) -> None:
    """Turn a command's exception into one ``Error:`` line and its exit code (``typer.Exit``);
    return to let it through (``typer.Exit`` itself, ``SystemExit``, ``STAGEROUTE_DEBUG``)."""
    if isinstance(exc, StagerouteError):
        note = f" ({session.status()})" if session.written else ""
        fail(f"{exc}{note}", int(exc.exit_code))
    if isinstance(exc, Interrupted | KeyboardInterrupt):
        _interrupted(exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT), session)
    if isinstance(exc, StdoutError):
        _stdout_failed(str(exc), session)
    if isinstance(exc, Exception) and not isinstance(exc, typer.Exit) and not os.environ.get(
            "STAGEROUTE_DEBUG"):  # a bug, not bad input: say so, without a traceback
        fail(f"internal error ({type(exc).__name__}: {exc}), please report it with the command "
             "you ran; STAGEROUTE_DEBUG=1 shows the traceback", ExitCode.INTERNAL)


def _check_inputs(inputs: Mapping[str, str | Path | None]) -> None:
    """Input paths that no loader can even look at (missing ones are the loaders' to report)."""
    for option, path in inputs.items():
        try:
            if path is not None:
                os.stat(path)
        except OSError as exc:
            if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP):
                raise InputMissingError(f"{option} {shown(path, 200)} cannot be opened "
                                        f"({exc.strerror}), give the path of an existing file") from None


def _check_outputs(outputs: Mapping[str, Path], inputs: Mapping[str, str | Path | None],
                   held: contextlib.ExitStack) -> None:
    """Outputs that can be written, are no input, and are locked for the whole run (a second run
    on the same output fails at once, before any work)."""
    from stageroute.render.output import check_not_input, check_writable, locked

    for option, path in outputs.items():
        if str(path) == "-":
            raise UsageError(f"{option} - would write a file named '-', not stdout; give a file name, "
                             "or --json to print the document on stdout")
        check_writable(path)
        others = {o: p for o, p in outputs.items() if o < option}  # each pair once
        check_not_input(option, path, inputs, others)
    for path in outputs.values():
        held.enter_context(locked(path))


def _interrupted(exc: Interrupted, session: Session) -> NoReturn:
    if session.complete:  # the new output is in place: only the report was cut short
        warn([f"interrupted by {exc.name} after the output was written ({session.status()}); "
               "only the report on stdout is incomplete"])
        raise typer.Exit(0)
    fail(f"interrupted by {exc.name}, {session.status()}", 128 + exc.signum)


def _stdout_failed(reason: str, session: Session) -> NoReturn:
    silence_stdout()
    if session.complete:
        warn([f"could not print the report on stdout ({reason}); the output is complete "
               f"({session.status()})"])
        raise typer.Exit(0)
    fail(f"cannot write the report to stdout ({reason}), {session.status()}; keep stdout open "
          "(a pipe reader that exits early, such as head, closes it) or use --output",
          ExitCode.CANNOT_WRITE)


def progress(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            stderr(f"stageroute: {one_line(message)}\n")
    return say


def warn(warnings: Sequence[str]) -> None:
    """Warnings go to stderr always: --quiet silences progress, not warnings."""
    for warning in warnings:
        stderr(f"stageroute: warning: {one_line(warning)}\n")


THREAD_VARIABLES = ("POLARS_MAX_THREADS", "NUMBA_NUM_THREADS")  # read once at import, fatally


def startup_problem(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """What makes the run impossible before a command starts (None: nothing): an empty
    argument (an unset shell variable in a crontab: ``--logs $LOGS`` would otherwise read the
    working directory), a file output written as a directory (``--output out/``: the path
    reaches the command without its slash and would become a file ``out``), or a thread count
    in the environment that Polars or Numba would die on."""
    for i, arg in enumerate(argv):
        flag, _, value = arg.partition("=")
        if arg == "" or (flag.startswith("--") and arg.endswith("=") and value == ""):
            after = f" after {argv[i - 1]}" if arg == "" and i and argv[i - 1].startswith("-") \
                else f" ({flag})" if arg else ""
            return (f"argument {i + 1} is empty{after}; give a value (an unset shell variable "
                    "expands to nothing)")
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if not eq:
            flag, value = arg, argv[i + 1] if i + 1 < len(argv) else ""
        if flag in FILE_OUTPUTS and value.endswith(("/", os.sep)):
            return (f"{flag} {value} names a directory; it takes a file name, e.g. "
                    f"{flag} {value}NAME")
    for name in THREAD_VARIABLES:
        value = environ.get(name, "1")
        if not (value.strip().isdigit() and int(value) > 0):
            return (f"the environment variable {name}={value!r} is not a positive whole number; "
                    f"unset it or give a thread count such as {name}=4")
    return None
