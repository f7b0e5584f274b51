"""The README's "Results on RouterBench": replay grid and gamma sweep, printed as Markdown.

    python benchmarks/routerbench_results.py            # full grid: T=100,000, 10 seeds
    python benchmarks/routerbench_results.py --quick    # T=20,000, 3 seeds

Reads ../shared/data/routerbench (outside the repository). The gamma sweep also runs on a
synthetic outcome table built from sample_logs/generate.py's models (graded rewards, a different
cost structure), so that the default is not tuned to one dataset.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sample_logs"))

from stageroute.inputs.catalog import load_catalog  # noqa: E402
from stageroute.inputs.outcomes import OutcomeMatrix, load_outcomes, to_matrix  # noqa: E402
from stageroute.options import Policy  # noqa: E402
from stageroute.simulate.replay import ReplayConfig, default_stages, replay  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "routerbench"


def synthetic_world(seed: int = 0, prompts: int = 3000) -> tuple[OutcomeMatrix, pl.DataFrame]:
    """Outcomes of the sample generator's ten models: judge scores on a 5-point scale."""
    import generate

    rng = np.random.default_rng(seed)
    models = [m[0] for m in generate.MODELS]
    quality = np.array([m[4] for m in generate.MODELS])
    difficulty = rng.normal(0, 0.12, prompts)[:, None]
    p = np.clip(quality[None, :] - difficulty, 0.02, 0.98)
    reward = rng.binomial(4, p) / 4.0
    tokens_in = rng.lognormal(np.log(600), 0.6, prompts)[:, None]
    tokens_out = rng.lognormal(np.log(250), 0.7, prompts)[:, None]
    price_in = np.array([m[5] for m in generate.MODELS])[None, :]
    price_out = np.array([m[6] for m in generate.MODELS])[None, :]
    cost = (tokens_in * price_in + tokens_out * price_out) / 1e6
    order = np.argsort(models)
    catalog = generate.catalog().with_columns(
        pl.col("released").str.to_datetime().dt.replace_time_zone("UTC"),
        pl.col("retired").str.to_datetime().dt.replace_time_zone("UTC"),
    )
    matrix = OutcomeMatrix(tuple(f"s{i}" for i in range(prompts)), tuple(np.array(models)[order]),
                           reward[:, order], cost[:, order])
    return matrix, catalog


def run(matrix, catalog, rel, m, horizon, seeds, gamma=1.0, policies=tuple(Policy)):
    cfg = ReplayConfig(budget=rel * float(matrix.mean_cost.max()), max_deployed=m, horizon=horizon,
                       stages=default_stages(horizon), seeds=seeds, policies=policies, gamma=gamma)
    return {p.policy: p for p in replay(matrix, catalog, cfg).policies}


def cell(p) -> str:
    """Sub-optimality with its 95% CI, then realised cost / budget."""
    lo, hi = p.ci95["suboptimality"]
    return f"{p.suboptimality:.2%} [{lo:.2%}, {hi:.2%}] ({p.cost_over_budget:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    horizon, seeds = (20_000, 3) if args.quick else (100_000, 10)
    rb = to_matrix(load_outcomes(DATA / "outcomes.parquet"))
    rb_catalog = load_catalog(DATA / "catalog.csv")
    t0 = time.perf_counter()
    print(f"## RouterBench grid (T={horizon:,}, {seeds} seeds, gamma 1): sub-optimality vs the "
          "oracle [95% CI] (realised cost / budget)\n")
    cols = [Policy.STAGEROUTE, Policy.PACED, Policy.STATIC, Policy.GREEDY, Policy.EPSILON, Policy.UNIFORM]
    print("| rel. budget | M_max | oracle reward/query | " + " | ".join(str(c) for c in cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for rel in (0.3, 0.7):
        for m in (2, 3, 5):
            res = run(rb, rb_catalog, rel, m, horizon, seeds)
            print(f"| {rel} | {m} | {res[Policy.ORACLE].mean_reward:.4f} | "
                  + " | ".join(cell(res[c]) for c in cols) + " |", flush=True)
    print(f"\n(grid took {time.perf_counter() - t0:.0f} s)\n")

    synth, synth_catalog = synthetic_world()
    theory = math.log(len(rb.models) * horizon / 0.05)
    gammas = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, round(theory, 1)]
    print(f"## gamma sweep (M_max 3, T={horizon:,}, {seeds} seeds; "
          f"theory = log(N T / 0.05) = {theory:.1f})\n")
    print("Each cell: stageroute / stageroute-paced sub-optimality (realised cost / budget).\n")
    print("| gamma | RouterBench 0.3 | RouterBench 0.7 | synthetic 0.3 | synthetic 0.7 |")
    print("|---|---|---|---|---|")
    for g in gammas:
        row = []
        for matrix, catalog in ((rb, rb_catalog), (synth, synth_catalog)):
            for rel in (0.3, 0.7):
                res = run(matrix, catalog, rel, 3, horizon, seeds, gamma=g,
                          policies=(Policy.ORACLE, Policy.STAGEROUTE, Policy.PACED))
                a, b = res[Policy.STAGEROUTE], res[Policy.PACED]
                row.append(f"{a.suboptimality:.2%} ({a.cost_over_budget:.3f}) / "
                           f"{b.suboptimality:.2%} ({b.cost_over_budget:.3f})")
        print(f"| {g} | " + " | ".join(row) + " |", flush=True)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
