"""stageroute's commands: parse options, make one library call, render, exit.

Heavy modules (Polars, Pyomo, Rich) are imported inside the commands so that ``--help`` is instant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from stageroute.errors import ExitCode, StagerouteError, UsageError
from stageroute.config import parse_gamma, parse_pair, pick_budget
from stageroute.options import Policy, Radius, Solver, choice, parse_datetime, parse_duration
from stageroute_cli import options as opt

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
def _errors(*outputs: Path | None) -> Iterator[None]:
    """Turn library errors into one ``Error:`` line and their exit code.

    The ``outputs``' directories are checked before any work. Bugs (anything else) also get one
    line, and exit 1; STAGEROUTE_DEBUG=1 shows the traceback instead.
    """
    try:
        from stageroute.render.output import check_writable

        for output in outputs:
            if output is not None:
                check_writable(output)
        yield
    except typer.Exit:
        raise
    except StagerouteError as exc:
        _fail(str(exc), int(exc.exit_code))
    except KeyboardInterrupt:
        _fail("interrupted, nothing was written", 130)
    except Exception as exc:  # a bug, not bad input: say so, without a traceback
        if os.environ.get("STAGEROUTE_DEBUG"):
            raise
        _fail(f"internal error ({type(exc).__name__}: {exc}), please report it with the command "
              "you ran; STAGEROUTE_DEBUG=1 shows the traceback", ExitCode.INTERNAL)


def _progress(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            sys.stderr.write(f"stageroute: {message}\n")
            sys.stderr.flush()
    return say


def _warn(warnings: Sequence[str]) -> None:
    """Warnings go to stderr always: --quiet silences progress, not warnings."""
    for warning in warnings:
        sys.stderr.write(f"stageroute: warning: {warning}\n")
    sys.stderr.flush()


def _emit(doc: dict[str, Any], as_json: bool, output: Path | None, quiet: bool) -> None:
    from stageroute.render.output import to_json, write_atomic

    text = to_json(doc)
    if output is not None:
        write_atomic(output, text)
        _progress(quiet)(f"wrote {output}")
    if as_json:
        sys.stdout.write(text)
        sys.stdout.flush()


def _render(what: str, result: object) -> None:
    """Print a Rich report on stdout (``what`` names a ``render.report`` function)."""
    from rich.console import Console

    from stageroute.render import report

    getattr(report, what)(result, Console())  # piped: $COLUMNS or 80


PLAN_EXAMPLES = """Examples:

\b
  stageroute plan --logs sample_logs/logs.parquet --catalog sample_logs/catalog.csv \\
    --budget 0.002 --max-deployed 3 --as-of 2026-11-16T02:00:00Z
  stageroute plan --logs 'logs/date=*/*.parquet' --catalog models.toml --budget 0.002 \\
    --max-deployed 5 --solver glpk --gamma theory --canary-share 0.1 --output plan.json -q
  stageroute plan --logs logs/ --feedback feedback.parquet --catalog models.csv \\
    --budget 0.001 --max-deployed 2 --stage-length 1d --allow-drop --deployed a,b --json
"""


@app.command(epilog=PLAN_EXAMPLES)
def plan(
    logs: Annotated[Path, typer.Option(help="Request logs: a Parquet file, a glob or a directory "
                                       "(hive-partitioned or not). E.g. --logs 'logs/*.parquet'")],
    catalog: opt.Catalog,
    budget: Annotated[float, typer.Option(help="Cost budget per request, in the logs' currency. "
                                          "E.g. --budget 0.002")],
    max_deployed: opt.MaxDeployed,
    as_of: Annotated[str | None, typer.Option(help="Start of the stage to plan (ISO 8601, UTC if no "
                                              "offset); only earlier log rows are used. Default: now. "
                                              "E.g. --as-of 2026-11-16T02:00:00Z")] = None,
    stage_length: Annotated[str, typer.Option(help="Length of the stage: 7d, 12h, 2w, ...")] = "7d",
    solver: opt.Solver = "highs",
    gamma: opt.Gamma = "1.0",
    radius: opt.Radius = "variance",
    delta: opt.Delta = 0.05,
    cost_scale: opt.CostScale = None,
    feedback: Annotated[Path | None, typer.Option(help="Separate Parquet of (request_id, reward) "
                                                  "joined on request_id.")] = None,
    deployed: Annotated[str | None, typer.Option(help="Models deployed now, comma-separated (default: "
                                                 "those that served traffic in the log's last stage "
                                                 "length). E.g. --deployed a,b,c")] = None,
    allow_drop: opt.AllowDrop = False,
    allow_over_budget: Annotated[bool, typer.Option("--allow-over-budget", help="Exit 0 (not 10) "
                                                    "when the budget cannot be met and the cheapest "
                                                    "mixture is planned.")] = False,
    cost_clip: opt.CostClip = "0,1",
    canary_share: Annotated[float | None, typer.Option(help="Cap the share of models with fewer "
                                                       "than --min-samples rewards. E.g. 0.1")] = None,
    min_samples: Annotated[int, typer.Option(help="Rewards a model needs to leave the canary cap.")] = 30,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on log rows of models that are "
                                         "not in the catalog (default: warn and ignore).")] = False,
    full_check: Annotated[bool, typer.Option("--full-check", help="Also check what the plan "
                                             "does not use: request_id uniqueness and NaN "
                                             "propensities (several times the scan on large "
                                             "logs).")] = False,
    max_staleness: Annotated[str | None, typer.Option(help="Fail (exit 67) when the newest log "
                                                      "row is older than this before --as-of: "
                                                      "7d, 36h, ... Default: one --stage-length."
                                                      )] = None,
    max_unknown_share: Annotated[float, typer.Option(help="Fail (exit 67) when more than this "
                                                     "share of the rows before --as-of name "
                                                     "models missing from the catalog. "
                                                     "E.g. 0.2")] = 0.5,
    json_out: opt.Json = False,
    output: opt.Output = None,
    quiet: opt.Quiet = False,
) -> None:
    """Plan the next stage: which models to deploy and the routing table among them."""
    with _errors(output):
        from stageroute.plan import PlanConfig, make_plan, over_budget_error, plan_document

        config = PlanConfig(
            budget=budget, max_deployed=max_deployed, as_of=parse_datetime(as_of),
            stage_length=parse_duration(stage_length), solver=choice(Solver, solver, "--solver"),
            gamma=parse_gamma(gamma), radius=choice(Radius, radius, "--radius"), delta=delta,
            cost_scale=cost_scale, cost_clip=parse_pair(cost_clip, "--cost-clip"),
            allow_drop=allow_drop, canary_share=canary_share, min_samples=min_samples,
            strict=strict, full_check=full_check, deployed=parse_list(deployed),
            max_staleness=parse_duration(max_staleness, "--max-staleness") if max_staleness else None,
            max_unknown_share=max_unknown_share,
        )
        result = make_plan(logs, catalog, config, feedback=feedback, progress=_progress(quiet))
        _warn(result.warnings)
        failed = result.over_budget and not allow_over_budget
        if not failed:  # a plan that breaks the budget is shown, never written as the new plan
            _emit(plan_document(result), json_out, output, quiet)
        if not json_out and not (quiet and output is not None and not failed):
            _render("render_plan", result)  # a cron run (--output -q) prints nothing
        if failed:
            raise over_budget_error(result, shown=not json_out)


@app.command(epilog="""Examples:

\b
  stageroute replay --outcomes outcomes.parquet --catalog catalog.csv \\
    --relative-budget 0.3 --max-deployed 3 --seeds 10 --plot replay.png
  stageroute replay --outcomes outcomes.parquet --catalog catalog.csv --budget 0.0035 \\
    --max-deployed 2 --horizon 20000 --policy stageroute --policy oracle --json
""")
def replay(
    outcomes: Annotated[Path, typer.Option(help="Full-information outcomes (long format: sample_id, "
                                           "model, reward, cost), Parquet or CSV.")],
    catalog: opt.Catalog,
    max_deployed: opt.MaxDeployed,
    budget: opt.Budget = None,
    relative_budget: Annotated[float | None, typer.Option(help="Budget as a fraction of the "
                                                          "largest per-model mean cost. "
                                                          "E.g. --relative-budget 0.3")] = None,
    horizon: Annotated[int, typer.Option(help="Queries T in the stream.")] = 100_000,
    stages: Annotated[int | None, typer.Option(help="Stages K (default: round(T^(1/3))).")] = None,
    seeds: Annotated[int, typer.Option(help="Independent streams; results are mean and 95% CI.")] = 5,
    seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    policy: Annotated[list[str] | None, typer.Option(
        metavar="|".join(Policy), help="Policy to simulate; repeat the option for several. "
        "Default: all.")] = None,
    gamma: opt.Gamma = "1.0",
    delta: opt.Delta = 0.05,
    radius: opt.Radius = "variance",
    epsilon: Annotated[float, typer.Option(help="Exploration rate of epsilon-greedy.")] = 0.1,
    start: Annotated[str | None, typer.Option(help="Time of the first query (default: the first "
                                              "release in the catalog).")] = None,
    end: Annotated[str | None, typer.Option(help="Time after the last query (default: one stage "
                                            "past the last release).")] = None,
    cost_scale: opt.CostScale = None,
    cost_clip: opt.CostClip = "0,1",
    allow_drop: opt.AllowDrop = False,
    solver: opt.Solver = "highs",
    json_out: opt.Json = False,
    output: opt.Output = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG: cumulative regret per policy and "
                                              "the deployment timeline.")] = None,
    quiet: opt.Quiet = False,
) -> None:
    """Simulate StageRoute, the oracle and baselines on a full-information outcome table."""
    with _errors(output, plot):
        from stageroute.simulate.replay import ReplayConfig, replay_document, replay_from_files

        value, relative = pick_budget(budget, relative_budget)
        config = ReplayConfig(
            budget=value, relative_budget=relative, max_deployed=max_deployed, horizon=horizon,
            stages=stages, seeds=seeds, first_seed=seed,
            policies=tuple(dict.fromkeys(choice(Policy, p, "--policy") for p in policy or Policy)),
            gamma=parse_gamma(gamma), delta=delta, radius=choice(Radius, radius, "--radius"),
            epsilon=epsilon, solver=choice(Solver, solver, "--solver"), allow_drop=allow_drop,
            cost_scale=cost_scale, cost_clip=parse_pair(cost_clip, "--cost-clip"),
            start=parse_datetime(start, "--start") if start else None,
            end=parse_datetime(end, "--end") if end else None,
        )
        with _progress_bar(quiet, "replaying") as advance:
            result = replay_from_files(outcomes, catalog, config, progress=advance)
        if plot is not None:
            from stageroute.render.plots import plot_replay

            plot_replay(result, plot)
        _emit(replay_document(result), json_out, output, quiet)
        if not json_out and not (quiet and output is not None):
            _render("render_replay", result)


@contextmanager
def _progress_bar(quiet: bool, label: str) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar on stderr (only on a terminal); yields advance(done, total)."""
    if quiet or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(f"[bold]{label}[/]", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


import_app = typer.Typer(help="Convert third-party data into stageroute's formats.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("routerbench")
def import_routerbench_cmd(
    source: Annotated[Path, typer.Argument(help="RouterBench's wide table: CSV, Parquet or the "
                                           "original .pkl (needs pandas; only open pickles you "
                                           "trust).")],
    output: Annotated[Path, typer.Option(help="Where to write the long outcomes table (Parquet). "
                                         "E.g. --output outcomes.parquet")],
) -> None:
    """Turn RouterBench's wide layout (score and '<model>|total_cost' per model) into outcomes."""
    with _errors(output):
        import io

        from stageroute.inputs.outcomes import import_routerbench
        from stageroute.render.output import write_atomic

        long, counts = import_routerbench(source)
        buffer = io.BytesIO()
        long.write_parquet(buffer)
        write_atomic(output, buffer.getvalue())
        sys.stderr.write(
            f"stageroute: wrote {long.height:,} rows ({counts['prompts']:,} prompts x "
            f"{counts['models']} models) to {output}; dropped {counts['dropped_repeated_ids']} "
            f"repeated and {counts['dropped_incomplete']} incomplete prompts\n"
        )


def parse_list(text: str | None) -> tuple[str, ...] | None:
    """'a, b,c' -> ('a', 'b', 'c'); None stays None."""
    return tuple(m.strip() for m in text.split(",") if m.strip()) if text else None


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
