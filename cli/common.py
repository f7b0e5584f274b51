"""What the commands share: the Typer app and its exit-code epilog, writing the JSON document,
printing a Rich report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from stageroute_cli import process

EXIT_CODES = """Exit codes (docs/errors.md):

\b
  0    ok (also when the output is written and only stdout or a signal failed after)
  1    internal error (a bug: please report it)
  2    usage: an option value that makes no sense, or an output that is an input
  10   infeasible: the budget or the max_share caps cannot be met
  11   solver time limit ($STAGEROUTE_SOLVER_TIME_LIMIT seconds, default 60)
  65   bad data      66  input missing      69  no solver or stats engine
  67   insufficient data: nothing usable, too many unknown models, or stale logs
  73   cannot write the output (or stdout, when no output file was written)
  75   locked: another run writes the same output or history
  130  interrupted (SIGINT), nothing written
  143  terminated (SIGTERM), nothing written
"""

app = typer.Typer(
    name="stageroute",
    help="Plan which LLMs to keep deployed and how to route traffic among them, from your logs.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from stageroute import __version__

        process.print_out(f"stageroute {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Plan which LLMs to keep deployed and how to route traffic among them, from your logs."""



def emit(doc: dict[str, Any], as_json: bool, output: Path | None, session: process.Session,
          quiet: bool, history: Path | None = None, run_id: str = "") -> None:
    """Write the JSON document to the history (as ``run_id``), to ``output`` (atomically, under
    its lock) and/or stdout."""
    from stageroute.render.output import to_json, write_atomic

    text = to_json(doc)
    if history is not None:
        from stageroute.history import history_file, record

        record(history, run_id, text, guard=session.committing(history_file(history, run_id)))
        process.progress(quiet)(f"recorded {history_file(history, run_id)}")
    if output is not None:
        write_atomic(output, text, lock=False, guard=session.committing(output))
        process.progress(quiet)(f"wrote {output}")
    if as_json:
        try:  # stdout may not take UTF-8 (PYTHONIOENCODING=ascii): \u escapes keep it JSON
            text.encode(sys.stdout.encoding or "utf-8")
        except (UnicodeEncodeError, LookupError):
            text = to_json(doc, ascii_only=True)
        process.print_out(text)


def render(what: str, result: object) -> None:
    """Print a Rich report on stdout (``what`` names a ``render.report`` function)."""
    from stageroute.render import report

    def broken() -> None:
        raise process.StdoutError("Broken pipe")

    try:
        getattr(report, what)(result, report.stdout_console(broken))
        sys.stdout.flush()
    except OSError as exc:
        raise process.StdoutError(exc.strerror or str(exc)) from None



import_app = typer.Typer(help="Convert third-party data into stageroute's formats.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")
