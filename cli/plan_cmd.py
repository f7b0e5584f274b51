"""``stageroute plan`` and ``stageroute stats``: a stage's plan from the logs or a statistics
store, and the store itself."""

from __future__ import annotations

import contextlib
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
)
from stageroute.options import (
    Radius,
    Solver,
    choice,
    parse_anchor,
    parse_datetime,
    parse_duration,
    parse_grace,
)
from stageroute_cli import common, process
from stageroute_cli import options as opt

from .common import app


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
            common.emit(plan_document(result), json_out, output, session, quiet, history, result.run_id)
        if not json_out and not (quiet and output is not None and not failed):
            common.render("render_plan", result)  # a cron run (--output -q) prints nothing
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
            common.render("render_store", report)


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
