"""stageroute's commands: parse options, make one library call, render, exit.

Heavy modules (Polars, Pyomo, Rich) are imported inside the commands so that ``--help`` is instant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from stageroute.errors import ExitCode, StagerouteError
from stageroute.options import Radius, Solver, parse_datetime, parse_duration

app = typer.Typer(
    name="stageroute",
    help="Plan which LLMs to keep deployed and how to route traffic among them, from your logs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from stageroute import __version__

        sys.stdout.write(f"stageroute {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Plan which LLMs to keep deployed and how to route traffic among them, from your logs.

    Exit codes: 0 ok, 2 usage, 10 infeasible (budget or throughput), 65 bad data,
    66 input missing, 69 no solver, 73 cannot write, 75 locked.
    """


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"Error: {message}\n")
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn library errors into one ``Error:`` line and their exit code."""
    try:
        yield
    except StagerouteError as exc:
        _fail(str(exc), int(exc.exit_code))
    except KeyboardInterrupt:
        _fail("interrupted, nothing was written", 130)


def _progress(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            sys.stderr.write(f"stageroute: {message}\n")
            sys.stderr.flush()
    return say


def _emit(doc: dict, as_json: bool, output: Path | None) -> None:
    from stageroute.output import to_json, write_atomic

    text = to_json(doc)
    if output is not None:
        write_atomic(output, text)
    if as_json:
        sys.stdout.write(text)
        sys.stdout.flush()


@app.command()
def plan(
    logs: Annotated[Path, typer.Option(help="Request logs: a Parquet file, a glob or a directory "
                                       "(hive-partitioned or not). E.g. --logs 'logs/*.parquet'")],
    catalog: Annotated[Path, typer.Option(help="Model catalog (CSV, Parquet, JSON or TOML) with "
                                          "model, released, retired, max_share, prices.")],
    budget: Annotated[float, typer.Option(help="Cost budget per request, in the logs' currency. "
                                          "E.g. --budget 0.002")],
    max_deployed: Annotated[int, typer.Option(help="At most this many models deployed at once. "
                                              "E.g. --max-deployed 3")],
    as_of: Annotated[str | None, typer.Option(help="Start of the stage to plan (ISO 8601, UTC if no "
                                              "offset); only earlier log rows are used. Default: now. "
                                              "E.g. --as-of 2026-11-16T02:00:00Z")] = None,
    stage_length: Annotated[str, typer.Option(help="Length of the stage: 7d, 12h, 2w, ...")] = "7d",
    solver: Annotated[Solver, typer.Option(help="MIP/LP solver used through Pyomo.")] = Solver.HIGHS,
    gamma: Annotated[str, typer.Option(help="Confidence-radius scale: a number > 0, or 'theory' "
                                       "for log(N T / delta). E.g. --gamma 0.5")] = "1.0",
    radius: Annotated[Radius, typer.Option(help="v in the radius: the empirical variance or the "
                                           "mean (Bandits-with-Knapsacks style).")] = Radius.VARIANCE,
    delta: Annotated[float, typer.Option(help="Confidence level delta of --gamma theory.")] = 0.05,
    cost_scale: Annotated[float | None, typer.Option(help="Per-request cost that normalises costs "
                                                     "for the radius. Default: the 99.9th percentile "
                                                     "of logged costs. E.g. --cost-scale 0.05")] = None,
    feedback: Annotated[Path | None, typer.Option(help="Separate Parquet of (request_id, reward) "
                                                  "joined on request_id.")] = None,
    deployed: Annotated[str | None, typer.Option(help="Models deployed now, comma-separated (default: "
                                                 "those that served traffic in the log's last stage "
                                                 "length). E.g. --deployed a,b,c")] = None,
    allow_drop: Annotated[bool, typer.Option("--allow-drop", help="Allow refusing/queuing a share "
                                             "of requests (reward 0, cost 0) instead of going over "
                                             "budget.")] = False,
    allow_over_budget: Annotated[bool, typer.Option("--allow-over-budget", help="Exit 0 (not 10) "
                                                    "when the budget cannot be met and the cheapest "
                                                    "mixture is planned.")] = False,
    canary_share: Annotated[float | None, typer.Option(help="Cap the share of models with fewer "
                                                       "than --min-samples rewards. E.g. 0.1")] = None,
    min_samples: Annotated[int, typer.Option(help="Rewards a model needs to leave the canary cap.")] = 30,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on log rows of models that are "
                                         "not in the catalog (default: warn and ignore).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the plan as JSON on stdout "
                                           "(and nothing else).")] = False,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON plan to this file, "
                                                "atomically and under a lock.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False,
) -> None:
    """Plan the next stage: which models to deploy and the routing table among them."""
    with _errors():
        from stageroute.plan import PlanConfig, make_plan, plan_document

        config = PlanConfig(
            budget=budget, max_deployed=max_deployed, as_of=parse_datetime(as_of),
            stage_length=parse_duration(stage_length), solver=solver,
            gamma=_gamma(gamma), radius=radius, delta=delta, cost_scale=cost_scale,
            allow_drop=allow_drop, canary_share=canary_share, min_samples=min_samples,
            strict=strict,
            deployed=tuple(m.strip() for m in deployed.split(",") if m.strip()) if deployed else None,
        )
        result = make_plan(logs, catalog, config, feedback=feedback, progress=_progress(quiet))
        for note in result.notes:
            _progress(quiet)(f"warning: {note}")
        _emit(plan_document(result), json_out, output)
        if not json_out:
            from rich.console import Console

            from stageroute.report import render_plan

            render_plan(result, Console(width=None if sys.stdout.isatty() else 120))
        if result.over_budget and not allow_over_budget:
            _fail(
                f"budget {budget:.6g} cannot be met: even the cheapest mixture of the available "
                f"models costs {result.expected['cost_lcb']:.6g} per request under the cost lower "
                "bounds; the cheapest plan was produced and flagged over_budget; raise --budget, "
                "pass --allow-drop to refuse part of the traffic, or --allow-over-budget",
                ExitCode.INFEASIBLE,
            )


def _gamma(text: str) -> float | str:
    if text.strip().lower() == "theory":
        return "theory"
    try:
        return float(text)
    except ValueError:
        return text  # PlanConfig rejects it with a clear message


def run() -> None:
    """Console-script entry point: Typer's usage errors also become one ``Error:`` line."""
    usage_error = typer.BadParameter.__mro__[1]  # click's UsageError, without importing click
    try:
        code = app(standalone_mode=False)
    except usage_error as exc:  # type: ignore[misc]
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        sys.stderr.write(f"Error: {exc.format_message()}{where}\n")  # type: ignore[attr-defined]
        sys.exit(ExitCode.USAGE)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("Error: aborted\n")
        sys.exit(130)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
