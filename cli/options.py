"""Options that several commands share, defined once (sqlite-utils' ``output_options`` idea).

Each is an ``Annotated`` type: a command lists it in its signature and gets the same name, help,
default and parsing as every other command that takes it, so ``plan`` and ``replay`` cannot drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stageroute_cli import config

Catalog = Annotated[Path, typer.Option(
    help="Model catalog (CSV, Parquet, JSON or TOML) with model, released, retired, max_share, "
    "prices. E.g. --catalog models.csv")]
MaxDeployed = Annotated[int, typer.Option(
    help="At most this many models deployed at once. E.g. --max-deployed 3")]
Budget = Annotated[float | None, typer.Option(
    help="Cost budget per request, in the data's currency. E.g. --budget 0.002")]
Solver = Annotated[str, typer.Option(metavar="highs|glpk", help="MIP/LP solver used through Pyomo.")]
Gamma = Annotated[str, typer.Option(
    help="Confidence-radius scale: a number > 0, or 'theory' for log(N T / delta). "
    "E.g. --gamma 0.5")]
Radius = Annotated[str, typer.Option(
    metavar="variance|mean",
    help="v in the radius: the empirical variance or the mean (Bandits-with-Knapsacks style).")]
Delta = Annotated[float, typer.Option(help="Confidence level delta of --gamma theory.")]
CostScale = Annotated[float | None, typer.Option(
    help="Per-request cost that normalises costs for the radius. Default: the 99.9th percentile "
    "of the data's costs. E.g. --cost-scale 0.05")]
CostClip = Annotated[str, typer.Option(
    help="Range [c_lo, c_hi] of the normalised cost bound, as LO,HI in units of --cost-scale "
    "(an observed mean above c_hi is never clipped below itself). E.g. --cost-clip 0.01,1")]
AllowDrop = Annotated[bool, typer.Option(
    "--allow-drop", help="Allow refusing/queuing a share of requests (reward 0, cost 0) instead "
    "of going over budget.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (and "
                                    "nothing else).")]
Output = Annotated[Path | None, typer.Option(
    help="Also write the JSON document to this file, atomically and under a lock.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr (warnings and "
                                     "errors still go there).")]
CostGamma = Annotated[float | None, typer.Option(
    help="gamma of the cost radius (costs are far less noisy than rewards; 0 puts the plain mean "
    "in the budget row). E.g. --cost-gamma 0.1")]
BudgetSafe = Annotated[bool, typer.Option(
    "--budget-safe", help="Put cost upper bounds (not lower bounds) in the budget row: spends "
    "less than the budget while costs are uncertain.")]
CanaryShare = Annotated[float, typer.Option(
    help="Share of traffic that the models with fewer than --min-samples rewards share (each "
    "gets at least what it needs to reach --min-samples in the stage); 1 turns the cap off "
    "(the paper). E.g. --canary-share 0.1")]
MinSamples = Annotated[int, typer.Option(
    help="Rewards a model needs to leave the exploration slice. E.g. --min-samples 100")]

# plan only: the deployment stage and the routing refresh inside it
MaxChanges = Annotated[int | None, typer.Option(
    help="At most N models not deployed now are added (and so at most N evicted); replacing a "
    "retired model is no change. Default: no limit. E.g. --max-changes 1")]
RoutingOnly = Annotated[bool, typer.Option(
    "--routing-only", help="Keep the deployment (--deployed or --previous) and re-solve only the "
    "routing table from the latest statistics: the hourly or daily refresh inside a stage.")]
Previous = Annotated[Path | None, typer.Option(
    help="With --routing-only: a plan JSON (from plan --output or --json) whose deployment is "
    "kept; may be the --output file itself. E.g. --previous plans/current.json")]
History = Annotated[Path | None, typer.Option(
    help="Keep every plan in this directory as plan-<window start>-<input digest>.json; a rerun "
    "of a planned window with the same inputs is a no-op (exit 0). Its lock is held for the "
    "whole run. E.g. --history plans/")]
Anchor = Annotated[str | None, typer.Option(
    help="A stage boundary (ISO 8601, UTC if no offset; stages start at anchor + k x "
    "--stage-length) or a cron expression (its times, UTC); the run plans the stage whose start "
    "is nearest to --as-of (see --grace). E.g. --anchor 2026-11-16T02:00Z or --anchor "
    "'0 2 * * 1'")]
Grace = Annotated[str | None, typer.Option(
    help="With --anchor: a run at most this long after a boundary plans the stage that began "
    "there, a later one the next stage. Default: half the stage length; 0s: the next boundary "
    "at or after --as-of. E.g. --grace 6h")]
ConfigFile = Annotated[Path | None, typer.Option(
    "--config", is_eager=True, callback=config.use_config,
    help="Option values from a TOML file (tables [plan], [replay] and shared keys); flags "
    "override it. Default: ./stageroute.toml when it exists. E.g. --config stageroute.toml")]

# Drift (plan; the statistics' windows): which windows count, and how much
DriftWindow = Annotated[str | None, typer.Option(
    help="Only statistics of the last DURATION before --as-of count (whole windows: days with "
    "--logs, the store's windows with --stats). Default: all. E.g. --window 28d")]
HalfLife = Annotated[str | None, typer.Option(
    help="Weight each window's statistics by 2^(-age / DURATION), age from the window's end to "
    "--as-of; counts become effective counts in the confidence radius. Default: no decay. "
    "E.g. --half-life 14d")]


def refuse_unused(ctx: typer.Context, names: tuple[str, ...], reason: str) -> None:
    """Raise a usage error when one of the parameters ``names`` was given on the command line
    although it has no effect in this mode (``reason``: e.g. "with --logs"). Values that come
    from a ``--config`` file or a default are left alone: a shared file may hold them."""
    from stageroute.errors import UsageError

    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            flag = "--" + name.removesuffix("_file").replace("_", "-")
            raise UsageError(f"{flag} has no effect {reason}; leave it out")
