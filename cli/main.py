"""stageroute's commands: parse options, make one library call, render, exit.

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
import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from stageroute.config import (
    DEFAULT_CANARY_SHARE,
    DEFAULT_COST_GAMMA,
    DEFAULT_GAMMA,
    DEFAULT_MIN_SAMPLES,
    parse_gamma,
    parse_models,
    parse_pair,
    parse_refresh,
    pick_budget,
)
from stageroute.errors import BadDataError, ExitCode, one_line, shown
from stageroute.options import (
    Policy,
    Radius,
    Solver,
    choice,
    parse_anchor,
    parse_datetime,
    parse_duration,
    parse_grace,
    replay_policies,
)
from stageroute_cli import options as opt
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


def _emit(doc: dict[str, Any], as_json: bool, output: Path | None, session: process.Session,
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


def _history_lock(history: Path | None, inputs: dict[str, Path | None], output: Path | None,
                  ) -> contextlib.AbstractContextManager[None]:
    """The history's lock, held for the whole run (``--history``), or nothing. A history inside
    the ``--stats`` store is refused (exit 2): the store is the stats command's; so is one whose
    files (its lock, its plans) the ``--logs`` or ``--feedback`` glob would read back, and an
    ``--output`` that is one of those files (a current plan beside them is fine)."""
    if history is None:
        return contextlib.nullcontext()
    from stageroute.errors import UsageError
    from stageroute.history import history_locked, is_history_file, own_files
    from stageroute.render.output import check_not_input

    if output is not None and is_history_file(history, output):
        raise UsageError(f"--output {output} is a file of the --history {history}, which only "
                         "plan --history writes; give --output another name, e.g. "
                         f"{history / 'current.json'}")

    check_not_input("--history", history, {"--stats": inputs["--stats"]})
    scanned = {k: inputs[k] for k in ("--logs", "--feedback")}
    for written in own_files(history):
        check_not_input("--history", written, scanned)

    return history_locked(history)


def _replanned(path: Path, text: str, as_json: bool, output: Path | None,
               session: process.Session) -> None:
    """A rerun of a planned window and inputs: the stored plan ``text``, byte for byte, to
    --output and --json; nothing new in the history."""
    from stageroute.render.output import write_atomic

    process.stderr(f"stageroute: already planned: {path} holds this window's plan for these "
                   "inputs; nothing recomputed\n")
    if output is not None:
        write_atomic(output, text, lock=False, guard=session.committing(output))
    if as_json:
        process.print_out(text)


def _render(what: str, result: object) -> None:
    """Print a Rich report on stdout (``what`` names a ``render.report`` function)."""
    from stageroute.render import report

    def broken() -> None:
        raise process.StdoutError("Broken pipe")

    try:
        getattr(report, what)(result, report.stdout_console(broken))
        sys.stdout.flush()
    except OSError as exc:
        raise process.StdoutError(exc.strerror or str(exc)) from None


PLAN_EXAMPLES = """Examples:

\b
  stageroute plan --logs sample_logs/logs.parquet --catalog sample_logs/catalog.csv \\
    --budget 0.002 --max-deployed 3 --as-of 2026-11-16T02:00:00Z
  stageroute plan --logs 'logs/date=*/*.parquet' --catalog models.toml --budget 0.002 \\
    --max-deployed 5 --solver glpk --gamma theory --canary-share 0.1 --output plan.json -q
  stageroute plan --logs logs/ --feedback feedback.parquet --catalog models.csv \\
    --budget 0.001 --max-deployed 2 --stage-length 1d --allow-drop --deployed a,b --json
  stageroute plan --logs logs/ --catalog models.csv --budget 0.002 --max-deployed 5 \\
    --routing-only --previous plan.json --stage-length 1d --output plan.json -q
"""


@app.command(epilog=PLAN_EXAMPLES)
def plan(
    catalog: opt.Catalog,
    budget: Annotated[float, typer.Option(help="Cost budget per request, in the logs' currency. "
                                          "E.g. --budget 0.002")],
    max_deployed: opt.MaxDeployed,
    logs: Annotated[Path | None, typer.Option(help="Request logs: a Parquet file, a glob or a "
                                              "directory (hive-partitioned or not); or --stats. "
                                              "E.g. --logs 'logs/*.parquet'")] = None,
    stats: Annotated[Path | None, typer.Option(help="Plan from a statistics store (built by "
                                               "stageroute stats) instead of --logs: the same "
                                               "plan, without reading the logs. "
                                               "E.g. --stats stats/")] = None,
    window: opt.DriftWindow = None,
    half_life: opt.HalfLife = None,
    as_of: Annotated[str | None, typer.Option(help="Start of the stage to plan (ISO 8601, UTC if no "
                                              "offset); only earlier log rows are used. Default: now. "
                                              "E.g. --as-of 2026-11-16T02:00:00Z")] = None,
    stage_length: Annotated[str, typer.Option(help="Length of the stage: 7d, 12h, 2w, ...")] = "7d",
    solver: opt.Solver = "highs",
    gamma: opt.Gamma = str(DEFAULT_GAMMA),
    radius: opt.Radius = "variance",
    delta: opt.Delta = 0.05,
    cost_scale: opt.CostScale = None,
    cost_gamma: opt.CostGamma = DEFAULT_COST_GAMMA,
    budget_safe: opt.BudgetSafe = False,
    feedback: Annotated[Path | None, typer.Option(help="Separate Parquet of (request_id, reward) "
                                                  "joined on request_id.")] = None,
    deployed: Annotated[str | None, typer.Option(help="Models deployed now, comma-separated (default: "
                                                 "those that served traffic in the log's last stage "
                                                 "length; with --routing-only, the set kept). "
                                                 "E.g. --deployed a,b,c")] = None,
    max_changes: opt.MaxChanges = None,
    routing_only: opt.RoutingOnly = False,
    previous: opt.Previous = None,
    segments: Annotated[bool, typer.Option("--segments", help="One routing table per value of "
                                           "the logs' segment column (one deployment set, one "
                                           "budget, shared max_share caps).")] = False,
    allow_drop: opt.AllowDrop = False,
    allow_over_budget: Annotated[bool, typer.Option("--allow-over-budget", help="Exit 0 (not 10) "
                                                    "when the budget cannot be met and the cheapest "
                                                    "mixture is planned.")] = False,
    cost_clip: opt.CostClip = "0,1",
    canary_share: opt.CanaryShare = DEFAULT_CANARY_SHARE,
    min_samples: opt.MinSamples = DEFAULT_MIN_SAMPLES,
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
    history: opt.History = None,
    anchor: opt.Anchor = None,
    grace: opt.Grace = None,
    config_file: opt.ConfigFile = None,
) -> None:
    """Plan the next stage: which models to deploy and the routing table among them."""
    inputs = {"--logs": logs, "--stats": stats, "--catalog": catalog, "--feedback": feedback}
    with (process.command({"--output": output}, inputs) as session,
          _history_lock(history, inputs, output)):
        from stageroute.history import AlreadyPlanned
        from stageroute.plan import PlanConfig, make_plan, over_budget_error, plan_document

        config = PlanConfig(
            budget=budget, max_deployed=max_deployed, as_of=parse_datetime(as_of),
            stage_length=parse_duration(stage_length), solver=choice(Solver, solver, "--solver"),
            gamma=parse_gamma(gamma), radius=choice(Radius, radius, "--radius"), delta=delta,
            cost_scale=cost_scale, cost_clip=parse_pair(cost_clip, "--cost-clip"),
            allow_drop=allow_drop, canary_share=canary_share, min_samples=min_samples,
            cost_gamma=cost_gamma, budget_safe=budget_safe, strict=strict, full_check=full_check,
            deployed=parse_models(deployed, "--deployed"),
            max_staleness=parse_duration(max_staleness, "--max-staleness") if max_staleness else None,
            max_unknown_share=max_unknown_share, max_changes=max_changes,
            routing_only=routing_only, previous=previous,
            anchor=parse_anchor(anchor) if anchor else None,
            grace=parse_grace(grace), drift=_drift(window, half_life), segments=segments,
        )
        try:
            result = make_plan(_log_input(logs, stats), catalog, config, feedback=feedback,
                               progress=process.progress(quiet), history=history)
        except AlreadyPlanned as done:
            return _replanned(done.path, done.text, json_out, output, session)
        process.warn(result.warnings)
        failed = result.over_budget and not allow_over_budget
        if not failed:  # a plan that breaks the budget is shown, never written as the new plan
            _emit(plan_document(result), json_out, output, session, quiet, history, result.run_id)
        if not json_out and not (quiet and output is not None and not failed):
            _render("render_plan", result)  # a cron run (--output -q) prints nothing
        if failed:
            raise over_budget_error(result, shown=not json_out)


STATS_EXAMPLES = """Examples:

\b
  stageroute stats --logs sample_logs/logs.parquet --out stats/
  stageroute stats --logs 'logs/date=*/*.parquet' --out stats/ --anchor 2026-01-05T02:00Z -q
  stageroute stats --logs logs/ --out stats/ --engine duckdb --memory-limit 2GB
  stageroute stats --logs logs/ --out stats/ --engine spark --spark-master spark://host:7077
"""


@app.command(epilog=STATS_EXAMPLES)
def stats(
    logs: Annotated[Path, typer.Option(help="Request logs: a Parquet file, a glob or a directory "
                                       "(hive-partitioned or not). E.g. --logs 'logs/*.parquet'")],
    out: Annotated[Path, typer.Option(help="The statistics store (a directory; created if "
                                      "needed). A store that exists is extended with the files "
                                      "it has not summarised. E.g. --out stats/")],
    catalog: Annotated[Path | None, typer.Option(help="Catalog whose prices price each request "
                                                 "from its tokens, when the logs have no cost "
                                                 "column (not needed otherwise).")] = None,
    feedback: Annotated[Path | None, typer.Option(help="Separate Parquet of (request_id, reward) "
                                                  "joined on request_id.")] = None,
    engine: Annotated[str, typer.Option(metavar="polars|duckdb|spark", help="What computes the "
                                        "aggregation: Polars (embedded, streaming), DuckDB "
                                        "(spills to disk: logs larger than memory), Spark (a "
                                        "cluster). The stores are the same.")] = "polars",
    window_length: Annotated[str, typer.Option(help="Length of the store's windows: 1d, 6h, 7d, "
                                               "...")] = "1d",
    anchor: Annotated[str | None, typer.Option(help="A window boundary (ISO 8601, UTC if no "
                                               "offset): windows start at anchor + k x "
                                               "--window-length. Put it at your stage boundaries "
                                               "(plan --stats cannot split a window). Default: "
                                               "midnight UTC. E.g. --anchor 2026-01-05T02:00Z"
                                               )] = None,
    memory_limit: Annotated[str | None, typer.Option(help="--engine duckdb: DuckDB's memory "
                                                     "limit, beyond which it spills to disk. "
                                                     "E.g. --memory-limit 2GB")] = None,
    spark_master: Annotated[str, typer.Option(help="--engine spark: the Spark master URL.")
                            ] = "local[*]",
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Summarise every file again, "
                                          "replacing the store's windows.")] = False,
    json_out: opt.Json = False,
    quiet: opt.Quiet = False,
    config_file: opt.ConfigFile = None,
) -> None:
    """Build or extend the statistics store that plan --stats reads (SPEC 9)."""
    inputs = {"--logs": logs, "--catalog": catalog, "--feedback": feedback}
    with process.command({}, inputs, solves=False):
        from stageroute.inputs.catalog import read_catalog
        from stageroute.render.output import to_json
        from stageroute.store.build import StoreOptions, build_store, store_document

        options = StoreOptions(
            length=parse_duration(window_length, "--window-length"),
            anchor=parse_datetime(anchor, "--anchor") if anchor else StoreOptions().anchor,
            engine=engine, memory_limit=memory_limit, spark_master=spark_master,
            rebuild=rebuild)
        prices = read_catalog(catalog)[0] if catalog is not None else None
        report = build_store(logs, out, options, prices, feedback, say=process.progress(quiet))
        if json_out:
            process.print_out(to_json(store_document(report)))
        elif not quiet:
            _render("render_store", report)


def _drift(window: str | None, half_life: str | None) -> Any:
    from stageroute.store.read import Drift

    return Drift(window=parse_duration(window, "--window") if window else None,
                 half_life=parse_duration(half_life, "--half-life") if half_life else None)


def _log_input(logs: Path | None, stats: Path | None) -> Any:
    """--logs or --stats (exactly one)."""
    from stageroute.errors import UsageError
    from stageroute.store.read import StoreInput

    if (logs is None) == (stats is None):
        raise UsageError("give the request logs with --logs PATH, or a statistics store with "
                         "--stats DIR (one of the two)")
    return logs if logs is not None else StoreInput(stats)  # type: ignore[arg-type]


@app.command(epilog="""Examples:

\b
  stageroute replay --outcomes outcomes.parquet --catalog catalog.csv \\
    --relative-budget 0.3 --max-deployed 3 --seeds 10 --plot replay.png
  stageroute replay --outcomes outcomes.parquet --catalog catalog.csv --budget 0.0035 \\
    --max-deployed 2 --horizon 20000 --policy stageroute --policy oracle --json
""")
def replay(
    ctx: typer.Context,
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
    refresh: Annotated[str, typer.Option(
        metavar="query|R", help="Routing tables per stage, each held fixed until the next "
        "(as a gateway executes a plan); 'query' re-solves for every query (the paper). "
        "E.g. --refresh 7")] = "query",
    gamma: opt.Gamma = str(DEFAULT_GAMMA),
    delta: opt.Delta = 0.05,
    radius: opt.Radius = "variance",
    cost_gamma: opt.CostGamma = DEFAULT_COST_GAMMA,
    budget_safe: opt.BudgetSafe = False,
    canary_share: opt.CanaryShare = DEFAULT_CANARY_SHARE,
    min_samples: opt.MinSamples = DEFAULT_MIN_SAMPLES,
    epsilon: Annotated[float, typer.Option(help="Exploration rate of epsilon-greedy.")] = 0.1,
    window: Annotated[str | None, typer.Option(help="Drift: a stage's bounds count only the "
                                               "stages that ended less than this before it "
                                               "(e.g. 28d). Default: all (stationary).")] = None,
    half_life: Annotated[str | None, typer.Option(help="Drift: weight each earlier stage's "
                                                  "statistics by 2^(-age / half-life) (e.g. "
                                                  "14d). Default: none (stationary).")] = None,
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
    plot: Annotated[Path | None, typer.Option(help="Write a PNG: the oracle's reward-cost "
                                              "frontier with each policy, the cumulative regret "
                                              "curves and the deployment timeline.")] = None,
    quiet: opt.Quiet = False,
    config_file: opt.ConfigFile = None,
    outcomes: Annotated[Path | None, typer.Option(
        help="Full-information outcomes (long format: sample_id, model, reward, cost), Parquet or "
        "CSV; or --logs.")] = None,
    logs: Annotated[Path | None, typer.Option(
        help="Off-policy replay on request logs with propensities (see README, Off-policy "
        "replay) instead of --outcomes. E.g. --logs 'logs/*.parquet'")] = None,
    plan_file: Annotated[Path | None, typer.Option(
        "--plan", help="With --logs: a plan JSON whose routing table is estimated (--policy "
        "plan).")] = None,
    logging_policy: Annotated[str, typer.Option(
        metavar="logged|uniform", help="With --logs: the logger's probabilities, from the "
        "'propensity' column (logged) or 1 / the models available (uniform).")] = "logged",
    min_kept: Annotated[int, typer.Option(
        help="With --logs: warn when a policy keeps fewer events (or has a smaller effective "
        "sample size).")] = 200,
    contextual: Annotated[bool, typer.Option(
        "--contextual", help="Add per-segment routing (stageroute-contextual), PORT (with "
        "--prompts) and the contextual oracle (see README, Contextual routing).")] = False,
    segments: Annotated[str, typer.Option(
        metavar="COLUMN|auto", help="With --contextual: the outcomes column that names each "
        "prompt's segment, or 'auto' (clusters of the --prompts text).")] = "eval_name",
    prompts: Annotated[Path | None, typer.Option(
        help="With --contextual: prompt text (sample_id, prompt; Parquet or CSV), embedded "
        "locally for --segments auto and for PORT's neighbours.")] = None,
    clusters: Annotated[int | None, typer.Option(
        help="With --segments auto: the number of clusters (default: chosen by replay, see "
        "README).")] = None,
) -> None:
    """Simulate StageRoute, the oracle and baselines on a full-information outcome table, or
    estimate them off-policy from request logs (--logs)."""
    if logs is not None or outcomes is None:
        return _replay_logs(locals())
    outputs = {"--output": output, "--plot": plot}
    with process.command(outputs, {"--outcomes": outcomes, "--catalog": catalog}) as session:
        from stageroute.simulate.replay import ReplayConfig, replay_document, replay_from_files

        opt.refuse_unused(ctx, ("plan_file", "logging_policy", "min_kept"),
                          "with --outcomes (it is for --logs, off-policy replay)")

        value, relative = pick_budget(budget, relative_budget)
        policies = replay_policies(policy, contextual, prompts is not None)
        if Policy.EPSILON not in policies:
            opt.refuse_unused(ctx, ("epsilon",), "without --policy epsilon-greedy")
        config = ReplayConfig(
            budget=value, relative_budget=relative, max_deployed=max_deployed, horizon=horizon,
            stages=stages, seeds=seeds, first_seed=seed, policies=policies,
            gamma=parse_gamma(gamma), delta=delta, radius=choice(Radius, radius, "--radius"),
            epsilon=epsilon, solver=choice(Solver, solver, "--solver"), allow_drop=allow_drop,
            cost_scale=cost_scale, cost_clip=parse_pair(cost_clip, "--cost-clip"),
            start=parse_datetime(start, "--start") if start is not None else None,
            end=parse_datetime(end, "--end") if end is not None else None,
            refresh=parse_refresh(refresh), cost_gamma=cost_gamma, budget_safe=budget_safe,
            canary_share=canary_share, min_samples=min_samples,
            window=parse_duration(window, "--window") if window is not None else None,
            half_life=parse_duration(half_life, "--half-life") if half_life is not None else None,
            contextual=contextual, segments=segments, prompts=prompts, clusters=clusters,
        )
        with _progress_bar(quiet, "replaying") as advance:
            result = replay_from_files(outcomes, catalog, config, progress=advance)
        if plot is not None:
            from stageroute.render.plots import plot_replay

            plot_replay(result, plot, lock=False, guard=session.committing(plot))
        _emit(replay_document(result), json_out, output, session, quiet)
        if not json_out and not (quiet and output is not None):
            _render("render_replay", result)


def _replay_logs(a: dict[str, Any]) -> None:
    """replay --logs: off-policy estimates from request logs (SPEC 11)."""
    with process.command({"--output": a["output"]}, {"--logs": a["logs"], "--catalog": a["catalog"],
                                                     "--plan": a["plan_file"]}) as session:
        from stageroute.errors import UsageError
        from stageroute.inputs.banditlog import LoggingPolicy
        from stageroute.simulate.offreplay import (
            DEFAULT_POLICIES,
            OffPolicyConfig,
            evaluate_log_files,
            offpolicy_document,
        )

        if (a["logs"] is None) == (a["outcomes"] is None):
            raise UsageError("give a full-information table with --outcomes PATH, or request logs "
                             "with --logs PATH (one of the two)")
        if a["plot"] is not None:
            raise UsageError("--plot needs --outcomes (an oracle frontier); leave it out with --logs")
        opt.refuse_unused(a["ctx"], ("horizon", "contextual", "segments", "prompts", "clusters",
                                     "start", "end", "window", "half_life"),
                          "with --logs (the log's own events and times are replayed)")
        value, relative = pick_budget(a["budget"], a["relative_budget"])
        default = DEFAULT_POLICIES + (("plan",) if a["plan_file"] is not None else ())
        if "epsilon-greedy" not in {p.lower() for p in (a["policy"] or default)}:
            opt.refuse_unused(a["ctx"], ("epsilon",), "without --policy epsilon-greedy")
        config = OffPolicyConfig(
            budget=value, relative_budget=relative, max_deployed=a["max_deployed"],
            policies=tuple(dict.fromkeys(a["policy"] or default)), plan=a["plan_file"],
            logging=choice(LoggingPolicy, a["logging_policy"], "--logging-policy"),
            stages=a["stages"], refresh=parse_refresh(a["refresh"]), epsilon=a["epsilon"],
            seed=a["seed"], seeds=a["seeds"], min_kept=a["min_kept"], gamma=parse_gamma(a["gamma"]),
            delta=a["delta"], radius=choice(Radius, a["radius"], "--radius"),
            solver=choice(Solver, a["solver"], "--solver"), allow_drop=a["allow_drop"],
            cost_scale=a["cost_scale"], cost_clip=parse_pair(a["cost_clip"], "--cost-clip"),
            cost_gamma=a["cost_gamma"], budget_safe=a["budget_safe"],
            canary_share=a["canary_share"], min_samples=a["min_samples"])
        result = evaluate_log_files(a["logs"], a["catalog"], config)
        doc = offpolicy_document(result)
        process.warn(doc["warnings"])
        _emit(doc, a["json_out"], a["output"], session, a["quiet"])
        if not a["json_out"] and not (a["quiet"] and a["output"] is not None):
            _render("render_offpolicy", result)


@app.command(epilog="""Examples:

\b
  stageroute init
  stageroute plan --config stageroute.toml
""")
def init(
    path: Annotated[Path, typer.Option("--path", help="Where to write the example.")] = Path(
        "stageroute.toml"),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write a commented example stageroute.toml that plans on sample_logs/."""
    with process.command({}, {}, solves=False) as session:  # no lock file beside the example
        from stageroute.errors import CannotWriteError
        from stageroute.render.output import write_atomic
        from stageroute_cli.config import EXAMPLE

        if path.exists() and not force:
            raise CannotWriteError(f"{path} exists, it was left as it is; pass --force to replace "
                                   "it with the example")
        write_atomic(path, EXAMPLE, lock=False, guard=session.committing(path))
        process.stderr(f"stageroute: wrote {path}; try: stageroute plan --config {path}\n")


@contextmanager
def _progress_bar(quiet: bool, label: str) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar on stderr (only on a terminal); yields advance(done, total)."""
    if quiet or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from stageroute.render.report import progress_bar

    with progress_bar(label) as advance:
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
    with process.command({"--output": output}, {"SOURCE": source}, solves=False) as session:
        from stageroute.inputs.outcomes import import_routerbench
        from stageroute.render.output import write_atomic

        long, counts = import_routerbench(source)
        if long.height == 0:  # never replace a good outcomes file with an empty one
            raise BadDataError(
                f"RouterBench file {source} gives 0 rows: every prompt was dropped "
                f"({counts['dropped_repeated_ids']} with a repeated sample_id, "
                f"{counts['dropped_incomplete']} with a missing score or cost), {output} was not "
                "written; check the file's score and '<model>|total_cost' columns"
            )
        buffer = io.BytesIO()
        long.write_parquet(buffer)
        write_atomic(output, buffer.getvalue(), lock=False, guard=session.committing(output))
        process.stderr(one_line(
            f"stageroute: wrote {long.height:,} rows ({counts['prompts']:,} prompts x "
            f"{counts['models']} models) to {output}; dropped {counts['dropped_repeated_ids']} "
            f"repeated and {counts['dropped_incomplete']} incomplete prompts") + "\n")


EXPORT_EXAMPLES = """Examples:

\b
  stageroute export --plan out/plan.json --format litellm --output litellm.yaml
  stageroute export --plan out/plan.json --format envoy --catalog models.csv --model-name chat
  stageroute export --plan out/plan.json --format portkey --output portkey.json -q
"""


@app.command(epilog=EXPORT_EXAMPLES)
def export(
    plan_file: Annotated[Path, typer.Option("--plan", help="A plan JSON (plan --output or --json). "
                                            "E.g. --plan out/plan.json")],
    fmt: Annotated[str, typer.Option("--format", help="litellm (proxy config YAML), envoy "
                                     "(AIGatewayRoute YAML) or portkey (config JSON).")],
    output: opt.Output = None,
    model_name: Annotated[str, typer.Option(help="The model name clients send, one group of "
                                            "the routed models.")] = "stageroute",
    catalog: Annotated[Path | None, typer.Option(help="Catalog with the optional litellm_model, "
                                                 "rpm and tpm columns (and provider, for "
                                                 "Portkey).")] = None,
    quiet: opt.Quiet = False,
) -> None:
    """Turn a plan's routing table into a gateway config with integer weights."""
    inputs = {"--plan": plan_file, "--catalog": catalog}
    with process.command({"--output": output}, inputs, solves=False) as session:
        from stageroute.export import ExportFormat, export_plan
        from stageroute.render.output import write_atomic

        result = export_plan(plan_file, choice(ExportFormat, fmt, "--format"), model_name, catalog)
        say = process.progress(quiet)
        for note in result.notes:
            say(f"note: {note}")
        if output is None:
            process.print_out(result.text)
        else:
            write_atomic(output, result.text, lock=False, guard=session.committing(output))
            say(f"wrote {output}")


@app.command(epilog="""Examples:

\b
  stageroute diff plans/last-week.json plans/this-week.json
  stageroute diff --history plans/ --json
""")
def diff(
    plans: Annotated[list[Path] | None, typer.Argument(help="Two plan JSON files: before, after.",
                                                       show_default=False)] = None,
    history: Annotated[Path | None, typer.Option(help="Compare the last two plans of this plan "
                                                 "--history directory (by window start).")] = None,
    json_out: opt.Json = False,
) -> None:
    """Show the models added, evicted and kept, and the routing shares that moved."""
    with process.command({}, {"--history": history}, solves=False):
        from stageroute.diff import diff_document, diff_plans, latest_two
        from stageroute.errors import UsageError

        given = list(plans or [])
        if not ((history is None and len(given) == 2) or (history is not None and not given)):
            raise UsageError("diff takes two plan files (stageroute diff A.json B.json) or "
                             "--history DIR alone")
        before, after = latest_two(history) if history is not None else (given[0], given[1])
        result = diff_plans(before, after)
        if json_out:
            from stageroute.render.output import to_json

            process.print_out(to_json(diff_document(result)))
        else:
            _render("render_diff", result)


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
    process.stderr(f"Error: {one_line(exc.format_message())}{got}{where}\n")
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
