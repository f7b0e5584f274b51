"""Off-policy replay speed: logged events/s of the replay method, and the fixed-table estimators.

    python benchmarks/bench_offpolicy.py [--rows 10000000] [--logger uniform|skewed]

The log is generated from the RouterBench table (../shared/data/routerbench; never copied): each
request a random prompt, served by a model drawn among those available then by the logging policy
(uniform, or skewed with weights 1..8), with that pair's reward and cost and the propensity
(``inputs.outcomes.simulate_log``, the generator the tests use). Timed on one core: the replay
method of each adaptive policy over the whole log (DeployOPT at every stage start included), and
IPS/SNIPS/DR with their bootstrap for the uniform table, the logging policy and a three-model plan.
Making the log is not timed (printed apart).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

import numpy as np

from _common import ROUTERBENCH, best_of
from stageroute.inputs.banditlog import LoggingPolicy, bandit_log
from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.outcomes import load_outcomes, simulate_log, to_matrix
from stageroute.options import Policy
from stageroute.simulate.offpolicy import fixed_tables, table_probabilities, uniform_probabilities
from stageroute.simulate.offreplay import OffPolicyConfig, evaluate_log

START = dt.datetime(2023, 10, 1, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=240)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--logger", choices=["uniform", "skewed"], default="uniform")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    matrix = to_matrix(load_outcomes(ROUTERBENCH / "outcomes.parquet"))
    catalog = load_catalog(ROUTERBENCH / "catalog.csv")
    weights = None if args.logger == "uniform" else np.linspace(1.0, 8.0, len(matrix.models))
    t0 = time.perf_counter()
    log = bandit_log(simulate_log(matrix, catalog, args.rows, START, START + SPAN, 0, weights),
                     catalog, LoggingPolicy.LOGGED, "generated")
    made = time.perf_counter() - t0
    print(f"log: {log.size:,} events from RouterBench ({len(matrix.models)} models), "
          f"{args.logger} logger, smallest propensity {log.propensity.min():.3g}; made in "
          f"{made:.1f} s (not timed below)")
    print()
    print("| what | kept | time (s) | logged events/s |")
    print("|---|---|---|---|")
    for policy, refresh in ((Policy.STAGEROUTE, None), (Policy.STAGEROUTE, 7), (Policy.GREEDY, None),
                            (Policy.EPSILON, None)):
        config = OffPolicyConfig(budget=0.3, relative_budget=True, max_deployed=3,
                                 policies=(str(policy),), refresh=refresh)
        evaluate_log(log, catalog, config)  # compile (numba caches to disk) and warm up
        result = None

        def run(config: OffPolicyConfig = config) -> None:
            nonlocal result
            result = evaluate_log(log, catalog, config)

        seconds = best_of(run, args.repeat)
        assert result is not None
        kept = result.estimates[0].diagnostics.kept
        label = f"replay method, {policy}, refresh {'query' if refresh is None else refresh}"
        print(f"| {label} | {kept:,} | {seconds:.2f} | {log.size / seconds:,.0f} |")
    plan = np.zeros(len(log.models))
    plan[[log.models.index(m) for m in ("claude-v1", "gpt-3.5-turbo-1106", "zero-one-ai/Yi-34B-Chat")]] = (
        0.3, 0.5, 0.2)
    targets = {"uniform": uniform_probabilities(log.available), "logging": None,
               "plan": table_probabilities(plan, log.available)}
    seconds = best_of(lambda: fixed_tables(log, targets, 0, 200), args.repeat)
    print(f"| IPS, SNIPS, DR + 1,000 bootstrap resamples, 3 tables | {log.size:,} | {seconds:.2f} | "
          f"{log.size / seconds:,.0f} |")


if __name__ == "__main__":
    sys.exit(main())
