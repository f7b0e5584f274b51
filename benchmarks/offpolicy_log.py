"""Turn a full-information table into a bandit log with a known logging policy (for replay --logs).

    python benchmarks/offpolicy_log.py --out out/bandit_log.parquet [--data ../shared/data/routerbench]
        [--rows 200000] [--logger uniform|skewed] [--seed 0] [--start 2023-10-01] [--days 240]
        [--plan plan.json]

Each request is a random prompt of the table, spread evenly over the span; the logger draws a model
among those the catalog has available then (uniformly, or skewed: weights 1..8 over the models in
the table's order) and the log keeps that pair's reward and cost and the propensity. Because the
table has every model's outcome, the true value of a fixed table is known: printed for the uniform
table, the logging policy and a plan's table (``--plan``), to compare with what `stageroute replay --logs` estimates. The shared
data is read in place, never copied.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np

from _common import ROUTERBENCH
from stageroute.inputs.banditlog import LoggingPolicy, bandit_log
from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.outcomes import load_outcomes, simulate_log, to_matrix
from stageroute.simulate.offpolicy import table_probabilities, table_truth, uniform_probabilities
from stageroute.simulate.offreplay import plan_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROUTERBENCH)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--logger", choices=["uniform", "skewed"], default="uniform")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", default="2023-10-01")
    parser.add_argument("--days", type=float, default=240)
    parser.add_argument("--plan", type=Path, help="also print the true value of this plan's table")
    args = parser.parse_args()
    matrix = to_matrix(load_outcomes(args.data / "outcomes.parquet"))
    catalog = load_catalog(args.data / "catalog.csv")
    start = dt.datetime.fromisoformat(args.start).replace(tzinfo=dt.UTC)
    weights = None if args.logger == "uniform" else np.linspace(1.0, 8.0, len(matrix.models))
    frame = simulate_log(matrix, catalog, args.rows, start, start + dt.timedelta(days=args.days),
                         args.seed, weights)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(args.out)
    log = bandit_log(frame, catalog, LoggingPolicy.LOGGED, str(args.out))
    order = [log.models.index(m) for m in matrix.models]
    logger = np.zeros(len(log.models))
    logger[order] = 1.0 if weights is None else weights
    print(f"wrote {args.out}: {frame.height:,} requests, {args.logger} logger")
    tables = [("uniform", uniform_probabilities(log.available)),
              ("logging", table_probabilities(logger, log.available))]
    if args.plan is not None:
        tables.append(("plan", table_probabilities(plan_table(args.plan, log.models),
                                                   log.available)))
    for name, pi in tables:
        reward, cost = table_truth(log, matrix.models, matrix.mean_reward, matrix.mean_cost, pi)
        print(f"true value of {name}: reward {reward:.4f}, cost {cost:.6g} per request")


if __name__ == "__main__":
    main()
