"""Coverage of the off-policy intervals: how often the 95% interval of each fixed-table estimate
(IPS, SNIPS, DR, and the logging policy's on-policy mean; reward and cost) covers the true value.

    python benchmarks/offpolicy_coverage.py [--seeds 400] [--rows 3000] [--data DIR ...]

For each shared table (RouterBench, MMLU-Pro) and each logger (uniform; skewed, with logged
propensities), every seed simulates a bandit log of ``--rows`` requests from the full table
(``inputs.outcomes.simulate_log``), estimates three tables (a plan-like 0.5/0.3/0.2 table, uniform,
the logging policy) and checks each interval against the truth computed from the full table
(``simulate.offpolicy.table_truth``). Prints, per cell, the share of seeds covered and how often the
truth fell below / above the interval. tests/test_offpolicy.py runs the same function.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np

from _common import ROUTERBENCH
from stageroute.inputs.banditlog import LoggingPolicy, bandit_log
from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.outcomes import OutcomeMatrix, load_outcomes, simulate_log, to_matrix
from stageroute.simulate.offpolicy import (
    fixed_tables,
    table_probabilities,
    table_truth,
    uniform_probabilities,
)

SPAN = dt.timedelta(days=240)
# A start inside each table's catalog history (models arrive and leave during the span).
START = {"routerbench": dt.datetime(2023, 10, 1, tzinfo=dt.UTC),
         "mmlupro": dt.datetime(2024, 6, 1, tzinfo=dt.UTC)}
RESAMPLES = 200

Cell = tuple[str, str, str]  # (table, estimator, "reward" | "cost")


def skewed(n: int) -> np.ndarray:
    """A skewed logger: weights 1..8 spread over the models (a fixed order)."""
    return np.linspace(1.0, 8.0, n)[np.random.default_rng(7).permutation(n)]


def plan_weights(n: int) -> np.ndarray:
    """A plan-like table over the table's n models: 0.5 / 0.3 / 0.2 on three of them."""
    w = np.zeros(n)
    w[0], w[-1], w[n // 2] = 0.5, 0.3, 0.2
    return w


def on_log(log_models: tuple[str, ...], models: tuple[str, ...], w: np.ndarray | None) -> np.ndarray:
    """Weights over the log's (catalog) models from weights over the table's ``models``."""
    out = np.zeros(len(log_models))
    out[[log_models.index(m) for m in models]] = 1.0 if w is None else w
    return out


def coverage(matrix: OutcomeMatrix, catalog, start: dt.datetime, logger: np.ndarray | None,
             seeds: range, rows: int) -> dict[Cell, tuple[int, int, int]]:
    """Per cell: (seeds covered, truth below the interval, truth above it)."""
    out: dict[Cell, list[int]] = {}
    for seed in seeds:
        frame = simulate_log(matrix, catalog, rows, start, start + SPAN, seed, logger)
        log = bandit_log(frame, catalog, LoggingPolicy.LOGGED, f"seed-{seed}")
        targets = {"plan": table_probabilities(
                       on_log(log.models, matrix.models, plan_weights(len(matrix.models))),
                       log.available),
                   "uniform": uniform_probabilities(log.available), "logging": None}
        logging_pi = table_probabilities(on_log(log.models, matrix.models, logger), log.available)
        for e in fixed_tables(log, targets, seed, RESAMPLES):
            pi = targets[e.policy]
            truth = table_truth(log, matrix.models, matrix.mean_reward, matrix.mean_cost,
                                logging_pi if pi is None else pi)
            for kind, value, (lo, hi) in zip(("reward", "cost"), truth, (e.ci_reward, e.ci_cost),
                                             strict=True):
                cell = out.setdefault((e.policy, str(e.estimator), kind), [0, 0, 0])
                cell[0 if lo <= value <= hi else (1 if value < lo else 2)] += 1
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--data", type=Path, nargs="*",
                        default=[ROUTERBENCH, ROUTERBENCH.parent / "mmlupro"])
    args = parser.parse_args()
    for root in args.data:
        matrix = to_matrix(load_outcomes(root / "outcomes.parquet"))
        catalog = load_catalog(root / "catalog.csv")
        for name, logger in (("uniform", None), ("skewed", skewed(len(matrix.models)))):
            t0 = time.perf_counter()
            cells = coverage(matrix, catalog, START[root.name], logger, range(args.seeds),
                             args.rows)
            print(f"\n{root.name}, {name} logger: {args.seeds} seeds of {args.rows} requests "
                  f"({time.perf_counter() - t0:.1f} s)")
            print(f"  {'table':8} {'estimator':10} {'outcome':7} {'covered':>8}  below  above")
            for (table, est, kind), (hit, below, above) in sorted(cells.items()):
                print(f"  {table:8} {est:10} {kind:7} {hit / args.seeds:8.3f}  {below:5d}  "
                      f"{above:5d}")
            shares = [hit / args.seeds for hit, _, _ in cells.values()]
            print(f"  lowest cell {min(shares):.3f}, pooled {np.mean(shares):.3f}")


if __name__ == "__main__":
    main()
