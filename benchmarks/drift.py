"""Drift (issue 10): ``replay --window`` and ``--half-life`` against the stationary estimator.

    python benchmarks/drift.py            # 10 seeds: the degrading scenario, then the stationary cost
    python benchmarks/drift.py --quick    # 3 seeds

The degrading scenario: RouterBench's outcome table with every model available throughout (a
fixed pool, no arrivals or retirements), 30 weekly stages, T = 30,000, relative budget 0.3,
M_max 3, 7 routing tables per stage (as deployed). The good model (the oracle's best model that
the budget affords alone) serves from phase-1 rows for the first half of the queries; from the
change on the stream draws phase-2 rows, where that model's rewards are those of the worst model
on the same prompt (its cost unchanged). The outcome table stays stationary within each phase, so
``replay``'s machinery is unchanged: the stream's prompts index the two phases.

The stationary cost: the same estimators on both shared tables (RouterBench, MMLU-Pro; their
default spans, 30 stages, relative budgets 0.3 and 0.7, both refresh settings), reported as
sub-optimality at cost (SPEC 8) next to the stationary estimator's.

Reads ../shared/data/routerbench and ../shared/data/mmlupro (outside the repository).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stageroute.inputs.catalog import load_catalog  # noqa: E402
from stageroute.inputs.outcomes import OutcomeMatrix, load_outcomes, to_matrix  # noqa: E402
from stageroute.options import Policy, format_duration  # noqa: E402
from stageroute.simulate.evaluate import ci95  # noqa: E402
from stageroute.simulate.replay import (  # noqa: E402
    ReplayConfig,
    Stream,
    make_stream,
    oracle_stage,
    prepare,
    replay,
    run_policy,
)

SHARED = ROOT.parent / "shared" / "data"
SOON = 3  # stages after the change in which recovery shows
SHARE_GONE = 0.10  # the degraded model's traffic share that counts as "moved off"
# Estimators, in stages: (window, half-life); None = not used.
ESTIMATORS: dict[str, tuple[float | None, float | None]] = {
    "stationary (default)": (None, None),
    "window 4 stages": (4, None),
    "window 8 stages": (8, None),
    "half-life 2 stages": (None, 2),
    "half-life 4 stages": (None, 4),
}


@dataclass(frozen=True)
class Scenario:
    """A two-phase world: rows [0, S) are phase 1, rows [S, 2S) phase 2 (the degraded model)."""

    outcomes: OutcomeMatrix
    catalog: pl.DataFrame
    degraded: int  # the model's index
    prompts: int  # S, prompts per phase


def degrading(matrix: OutcomeMatrix, catalog: pl.DataFrame, config: ReplayConfig) -> Scenario:
    """The scenario on ``matrix``: a fixed pool, and the oracle's best affordable model degraded
    to the worst model's rewards in phase 2."""
    models = list(matrix.models)
    first = catalog.filter(pl.col("model").is_in(models))["released"].min()
    fixed = catalog.with_columns(pl.lit(first).alias("released"),
                                 pl.lit(None).cast(catalog.schema["retired"]).alias("retired"))
    setup = prepare(matrix, fixed, config)
    cfg = setup.config
    best = oracle_stage(matrix, np.ones(len(models), dtype=bool), cfg, setup.alpha).models
    mu, cost = matrix.mean_reward, matrix.mean_cost
    affordable = [j for j in best if cost[j] <= cfg.budget] or list(best)
    good = max(affordable, key=lambda j: mu[j])
    worst = int(np.argmin(mu))
    reward2 = matrix.reward.copy()
    reward2[:, good] = matrix.reward[:, worst]
    samples = matrix.samples + tuple(f"{s}@phase2" for s in matrix.samples)
    both = OutcomeMatrix(samples, matrix.models, np.vstack([matrix.reward, reward2]),
                         np.vstack([matrix.cost, matrix.cost]))
    return Scenario(both, fixed, good, len(matrix.samples))


def phased_stream(scenario: Scenario, horizon: int, change: int, seed: int) -> Stream:
    """``make_stream`` over one phase's prompts, moved to phase 2 from query ``change`` on."""
    stream = make_stream(scenario.prompts, horizon, seed)
    prompts = stream.prompts.copy()
    prompts[change:] += scenario.prompts
    return replace(stream, prompts=prompts)


@dataclass(frozen=True)
class DriftRun:
    """One estimator on one seed of the scenario."""

    reward_before: float  # per query, before the change
    reward_after: float  # per query, from the change on
    reward_soon: float  # per query, in the SOON stages from the change on
    stages_to_leave: int | None  # stages from the change until the share < SHARE_GONE (1: the
    # first stage after the change); None: never within the run
    cost_over_budget: float


def run_scenario(scenario: Scenario, config: ReplayConfig, seed: int) -> DriftRun:
    """StageRoute on one seed; the change is at the start of the middle stage."""
    setup = prepare(scenario.outcomes, scenario.catalog, config)
    bounds = setup.schedule.bounds
    half = bounds.size // 2
    change = int(bounds[half])
    stream = phased_stream(scenario, setup.config.horizon, change, seed)
    served: list[NDArray[np.int64]] = []
    run = run_policy(Policy.STAGEROUTE, scenario.outcomes, setup.schedule, stream, setup.config,
                     setup.alpha, setup.scale, setup.prices, served=served)
    shares = [float((s == scenario.degraded).mean()) for s in served[half:]]
    gone = next((k + 1 for k, share in enumerate(shares) if share < SHARE_GONE), None)
    t = setup.config.horizon
    soon = float(bounds[half + SOON] - change)
    return DriftRun(float(run.reward[:half].sum()) / change,
                    float(run.reward[half:].sum()) / (t - change),
                    float(run.reward[half:half + SOON].sum()) / soon, gone,
                    float(run.cost.sum()) / t / setup.config.budget)


def durations(stages: tuple[float | None, float | None], length: dt.timedelta
              ) -> dict[str, dt.timedelta | None]:
    """ReplayConfig's window / half_life for an estimator given in stages."""
    window, half = stages
    return {"window": None if window is None else window * length,
            "half_life": None if half is None else half * length}


def mean_ci(values: list[float], fmt: str) -> str:
    arr = np.array(values, dtype=np.float64)
    ci = ci95(arr)
    inner = "" if ci is None else f" [{format(ci[0], fmt)}, {format(ci[1], fmt)}]"
    return f"{format(float(arr.mean()), fmt)}{inner}"


def scenario_table(seeds: int) -> None:
    matrix = to_matrix(load_outcomes(SHARED / "routerbench" / "outcomes.parquet"))
    catalog = load_catalog(SHARED / "routerbench" / "catalog.csv")
    length = dt.timedelta(days=7)
    start = dt.datetime(2025, 1, 6, tzinfo=dt.UTC)
    base = ReplayConfig(budget=0.3, relative_budget=True, max_deployed=3, horizon=30_000,
                        stages=30, refresh=7, start=start, end=start + 30 * length)
    scenario = degrading(matrix, catalog, base)
    setup = prepare(scenario.outcomes, scenario.catalog, base)
    pool = np.ones(len(matrix.models), dtype=bool)
    phase2 = OutcomeMatrix(matrix.samples, matrix.models,
                           scenario.outcomes.reward[scenario.prompts:], matrix.cost)
    v1 = oracle_stage(matrix, pool, setup.config, setup.alpha).value
    v2 = oracle_stage(phase2, pool, setup.config, setup.alpha).value
    print(f"degraded model: {matrix.models[scenario.degraded]} (reward "
          f"{matrix.mean_reward[scenario.degraded]:.3f} -> "
          f"{phase2.mean_reward[scenario.degraded]:.3f} at query 15,000); oracle reward/query "
          f"{v1:.4f} before, {v2:.4f} after\n")
    print("| estimator | replay options | reward/query before | reward/query after | "
          "sub-optimality after | reward/query, first 3 stages after | stages until its share < 10% | cost / budget |")
    print("|---|---|---|---|---|---|---|---|")
    for label, stages in ESTIMATORS.items():
        opts = durations(stages, length)
        cfg = replace(base, **opts)  # type: ignore[arg-type]
        runs = [run_scenario(scenario, cfg, seed) for seed in range(seeds)]
        left = [r.stages_to_leave for r in runs]
        never = sum(x is None for x in left)
        gone = [float(x) for x in left if x is not None]
        leave = (mean_ci(gone, ".1f") if gone else "-") + (f" ({never} never)" if never else "")
        print(f"| {label} | {flags(opts)} | {mean_ci([r.reward_before for r in runs], '.4f')} | "
              f"{mean_ci([r.reward_after for r in runs], '.4f')} | "
              f"{mean_ci([1 - r.reward_after / v2 for r in runs], '.2%')} | "
              f"{mean_ci([r.reward_soon for r in runs], '.4f')} | {leave} | "
              f"{mean_ci([r.cost_over_budget for r in runs], '.3f')} |", flush=True)


def flags(opts: dict[str, dt.timedelta | None]) -> str:
    out = [f"--{k.replace('_', '-')} {format_duration(v)}" for k, v in opts.items() if v is not None]
    return " ".join(out) or "-"


def stationary_cost(seeds: int) -> None:
    print("| data | rel. budget | refresh | stage length | " + " | ".join(ESTIMATORS) + " |")
    print("|---|---|---|---|" + "---|" * len(ESTIMATORS))
    for name in ("routerbench", "mmlupro"):
        matrix = to_matrix(load_outcomes(SHARED / name / "outcomes.parquet"))
        catalog = load_catalog(SHARED / name / "catalog.csv")
        for rel in (0.3, 0.7):
            for refresh in (None, 7):
                base = ReplayConfig(budget=rel, relative_budget=True, max_deployed=3,
                                    horizon=30_000, stages=30, seeds=seeds, refresh=refresh,
                                    policies=(Policy.ORACLE, Policy.STAGEROUTE))
                w = prepare(matrix, catalog, base).schedule.windows[0]
                length = w.end - w.start
                cells = []
                for stages in ESTIMATORS.values():
                    cfg = replace(base, **durations(stages, length))  # type: ignore[arg-type]
                    p = replay(matrix, catalog, cfg).policies[1]
                    ci = p.ci95.get("suboptimality_at_cost")
                    inner = "" if ci is None else f" [{ci[0]:.2%}, {ci[1]:.2%}]"
                    cells.append(f"{p.suboptimality_at_cost:.2%}{inner} ({p.cost_over_budget:.3f})")
                print(f"| {name} | {rel} | {refresh or 'query'} | {length / dt.timedelta(days=1):.1f}d | "
                      + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=None)
    args = parser.parse_args()
    seeds = args.seeds or (3 if args.quick else 10)
    print(f"## Degrading model (RouterBench, fixed pool, T=30,000, 30 weekly stages, relative "
          f"budget 0.3, M_max 3, --refresh 7, {seeds} seeds)\n")
    scenario_table(seeds)
    print(f"\n## Stationary cost (T=30,000, 30 stages, M_max 3, {seeds} seeds): sub-optimality "
          "at cost [95% interval] (cost / budget); windows in stages of each table\n")
    stationary_cost(seeds)


if __name__ == "__main__":
    main()
