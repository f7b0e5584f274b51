"""PORT baseline (simulate.port): queries/s of run_port, and its reward and cost per query.

    python benchmarks/bench_port.py [--horizon 30000] [--features hash|random] [--repeat 3]

RouterBench (../shared/data/routerbench; never copied): PORT's labelled reference set is a random
26,497/36,497 of the prompt rows (``split_reference``), the stream draws the other rows uniformly.
Features: until the project has a text embedding, a signed hashing of each prompt's words into 64
dimensions (``--features hash``), or random unit vectors (``--features random``); they are made
here, not in the library. Timed on one core: ``run_port`` end to end (kNN, the dual LP, the loop)
and the compiled loop alone. Results at relative budgets 0.3 and 0.7 (budget = rel x the largest
per-model mean cost, as ``replay --relative-budget``), one stage with every model (PORT's setting)
and replay's default stages on the catalog's dates, uncapped and with max_deployed 3, next to the
oracle's expected reward per query on the stream's rows (true means, best mixture of at most M).
"""

from __future__ import annotations

import argparse
import re
import zlib

import numpy as np
import polars as pl
from numpy.typing import NDArray

from _common import ROUTERBENCH, best_of
from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.outcomes import OutcomeMatrix, load_outcomes, to_matrix
from stageroute.simulate.port import neighbour_estimates, route_queries, run_port, split_reference
from stageroute.simulate.replay import ReplayConfig, make_schedule, oracle_stage

DIM = 64
WORD = re.compile(r"[a-z0-9]+")


def hashed_features(texts: list[str], dim: int = DIM) -> NDArray[np.float64]:
    """Signed word hashing (crc32: stable across runs), rows scaled to unit length."""
    out = np.zeros((len(texts), dim))
    for row, text in enumerate(texts):
        for word in WORD.findall(text.lower()):
            h = zlib.crc32(word.encode())
            out[row, h % dim] += 1.0 if (h >> 16) & 1 else -1.0
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norm > 0, norm, 1.0)


def features_of(matrix: OutcomeMatrix, kind: str) -> NDArray[np.float64]:
    if kind == "random":
        f = np.random.default_rng(0).normal(size=(len(matrix.samples), DIM))
        return f / np.linalg.norm(f, axis=1, keepdims=True)
    prompts = pl.read_parquet(ROUTERBENCH / "prompts.parquet")
    text = dict(zip(prompts["sample_id"], prompts["prompt"], strict=True))
    return hashed_features([text.get(s, "") for s in matrix.samples])


def oracle_value(matrix: OutcomeMatrix, rows: NDArray[np.int64], pool: NDArray[np.bool_],
                 budget: float, m_max: int) -> float:
    sub = OutcomeMatrix(tuple(matrix.samples[i] for i in rows), matrix.models, matrix.reward[rows],
                        matrix.cost[rows])
    cfg = ReplayConfig(budget=budget, max_deployed=m_max, horizon=1, stages=1)
    return oracle_stage(sub, pool, cfg, np.ones(len(matrix.models))).value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=30_000)
    parser.add_argument("--features", choices=["hash", "random"], default="hash")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    matrix = to_matrix(load_outcomes(ROUTERBENCH / "outcomes.parquet"))
    catalog = load_catalog(ROUTERBENCH / "catalog.csv")
    features = features_of(matrix, args.features)
    R, C, n, t = matrix.reward, matrix.cost, len(matrix.models), args.horizon
    reference, rest = split_reference(len(matrix.samples), 0)
    prompts = rest[np.random.default_rng(1).integers(0, rest.size, t)]
    one = (np.ones((1, n), dtype=bool), np.array([0, t], dtype=np.int64))
    staged = make_schedule(catalog, matrix, ReplayConfig(budget=1.0, max_deployed=3, horizon=t))
    print(f"RouterBench: {len(matrix.samples):,} prompts ({reference.size:,} reference, "
          f"{rest.size:,} for the stream), {n} models, {args.features} features (d = {DIM}), "
          f"T = {t:,}, {len(staged.windows)} stages in the staged runs")
    top = float(matrix.mean_cost.max())
    b = 0.3 * top
    seconds = best_of(lambda: run_port(features, R, C, prompts, *one, b, reference), args.repeat)
    print(f"\nrun_port end to end (one stage, rel. budget 0.3): {seconds:.3f} s, "
          f"{t / seconds:,.0f} queries/s")
    print(f"compiled loop alone: {t / loop_seconds(features, R, C, prompts, reference, args.repeat):,.0f}"
          " queries/s")
    print("\n| stages | rel. budget | max_deployed | mean reward | mean cost / budget | dropped "
          "| oracle reward (true means) |")
    print("|---|---|---|---|---|---|---|")
    for label, (pools, bounds) in (("one", one), ("staged", (staged.pools, staged.bounds))):
        for rel in (0.3, 0.7):
            for cap in (None, 3):
                run = run_port(features, R, C, prompts, pools, bounds, rel * top, reference,
                               max_deployed=cap)
                oracle = oracle_value(matrix, rest, pools[-1], rel * top, cap or n)
                print(f"| {label} | {rel} | {cap or 'none'} | {run.reward.mean():.4f} | "
                      f"{run.cost.mean() / (rel * top):.3f} | {(run.served < 0).mean():.3f} | "
                      f"{oracle:.4f}{' (last stage)' if label == 'staged' else ''} |")


def loop_seconds(features: NDArray[np.float64], R: NDArray[np.float64], C: NDArray[np.float64],
                 prompts: NDArray[np.int64], reference: NDArray[np.int64], repeat: int) -> float:
    """Best time of the compiled per-query loop alone (estimates and prices made beforehand)."""
    rows, est = np.unique(prompts, return_inverse=True)
    d_hat, g_hat = neighbour_estimates(features, R, C, reference, rows.astype(np.int64), 5)
    n, t = R.shape[1], prompts.size
    allowed, bounds = np.ones((1, n), dtype=bool), np.array([0, t], dtype=np.int64)
    prices, budget = np.full(n, 100.0), np.full(n, 1e9)
    draws = np.random.default_rng(0).random(t)
    out = (np.empty(t, dtype=np.int64), np.empty(t), np.empty(t))
    return best_of(lambda: route_queries(allowed, bounds, prompts, est.astype(np.int64), R, C, d_hat,
                                         g_hat, prices, budget, 750, draws, *out), repeat)


if __name__ == "__main__":
    main()
