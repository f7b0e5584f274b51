"""Replay speed: queries/s of the compiled loop, against the Pyomo-per-query loop in the same run.

    python benchmarks/bench_replay.py

Worlds: RouterBench (11 models, ../shared/data/routerbench) and a synthetic 32-model table. Each
figure is one learning policy (stageroute) over the whole stream, DeployOPT at every stage start
included, on one core (the kernel is single-threaded): per query (`--refresh query`, the paper) and
as deployed (`--refresh 7`: seven fixed tables per stage).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

import numpy as np
import polars as pl

from _common import ROOT, ROUTERBENCH, best_of
from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.outcomes import OutcomeMatrix, load_outcomes, to_matrix
from stageroute.optimize.route import solve_route, solve_route_pyomo
from stageroute.options import Policy, Solver
from stageroute.simulate.reference import reference_kernel
from stageroute.simulate.replay import (
    ReplayConfig,
    default_stages,
    make_schedule,
    make_stream,
    run_policy,
)


def synthetic(n_models: int, prompts: int = 2000, seed: int = 0) -> tuple[OutcomeMatrix, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0.4, 0.9, n_models)
    price = rng.lognormal(np.log(5e-4), 1.0, n_models)
    reward = (rng.random((prompts, n_models)) < quality).astype(float)
    cost = price * rng.lognormal(0, 0.3, (prompts, n_models))
    models = tuple(f"model-{j:02d}" for j in range(n_models))
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    catalog = pl.DataFrame({
        "model": list(models),
        "released": [start + dt.timedelta(days=int(d)) for d in np.sort(rng.integers(0, 300, n_models))],
        "retired": [None] * n_models,
        "max_share": [1.0] * n_models,
    }, schema_overrides={"retired": pl.Datetime("us", "UTC")})
    return OutcomeMatrix(tuple(map(str, range(prompts))), models, reward, cost), catalog


def speed(matrix: OutcomeMatrix, catalog: pl.DataFrame, m_max: int, horizon: int,
          kernel=None, refresh: int | None = None, share: float | None = None) -> float:
    """Queries per second of one stageroute run (relative budget 0.3); ``share`` 1 is the
    paper's exploration (an LP for every query, none skipped for exploration floors)."""
    cfg = ReplayConfig(budget=0.3 * float(matrix.mean_cost.max()), max_deployed=m_max,
                       horizon=horizon, stages=default_stages(horizon), refresh=refresh,
                       **({} if share is None else {"canary_share": share}))
    schedule = make_schedule(catalog, matrix, cfg)
    stream = make_stream(len(matrix.samples), horizon, seed=0)
    n = len(matrix.models)
    scale = float(np.quantile(matrix.cost, 0.999))

    def run() -> None:
        run_policy(Policy.STAGEROUTE, matrix, schedule, stream, cfg, np.ones(n), scale,
                   np.full((2, n), np.nan), kernel=kernel)

    return horizon / best_of(run, repeat=3 if kernel is None else 1)


def loop_only(matrix: OutcomeMatrix, m_max: int, horizon: int = 1_000_000) -> float:
    """Queries per second of the per-query kernel alone, on a fixed deployed set."""
    from stageroute.simulate import loop as compiled

    n = len(matrix.models)
    deployed = np.argsort(-matrix.mean_reward)[:m_max].astype(np.int64)
    stream = make_stream(len(matrix.samples), horizon, seed=0)
    out = (np.empty(horizon, dtype=np.int64), np.empty(horizon), np.empty(horizon))

    def run() -> None:
        kn = compiled.knobs(1.0, 1.0, False, float(matrix.cost.max()), (0.0, 1.0), False)
        compiled.run_queries(deployed, np.ones(n), stream.prompts, stream.draws, stream.explore,
                             matrix.reward, matrix.cost, np.zeros((6, n)), np.full(n, np.nan), kn,
                             0.3 * float(matrix.mean_cost.max()), False,
                             np.array([0.0, 0.0, float(horizon)]), compiled.MODE_ROUTE, 0.1,
                             False, 1.0, 0.0, 0, *out)

    return horizon / best_of(run)


def main() -> None:
    rb = to_matrix(load_outcomes(ROUTERBENCH / "outcomes.parquet"))
    rb_catalog = load_catalog(ROUTERBENCH / "catalog.csv")
    wide, wide_catalog = synthetic(32)
    pyomo = reference_kernel(lambda u, c, a, b, drop: solve_route_pyomo(u, c, a, b, Solver.HIGHS, drop))
    speed(rb, rb_catalog, 3, 10_000)  # compile (or load the cache) outside the timings
    python_loop = reference_kernel(solve_route)
    print("| world | deployed (M_max) | compiled replay, queries/s (T = 1,000,000) | as deployed "
          "(--refresh 7), queries/s | per-query kernel alone, queries/s | compiled, the paper's "
          "exploration (--canary-share 1) | same exact solver in a Python loop, queries/s "
          "(T = 20,000, --canary-share 1) | Pyomo per query, queries/s (T = 300, --canary-share 1) "
          "| ratio (compiled / Pyomo, both --canary-share 1) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, matrix, catalog, m_max in (("RouterBench, 11 models", rb, rb_catalog, 3),
                                         ("RouterBench, 11 models", rb, rb_catalog, 11),
                                         ("synthetic, 32 models", wide, wide_catalog, 8),
                                         ("synthetic, 32 models", wide, wide_catalog, 32)):
        fast = speed(matrix, catalog, m_max, 1_000_000)
        deployed = speed(matrix, catalog, m_max, 1_000_000, refresh=7)
        kernel = loop_only(matrix, m_max)
        paper = speed(matrix, catalog, m_max, 1_000_000, share=1.0)
        plain = speed(matrix, catalog, m_max, 20_000, kernel=python_loop, share=1.0)
        slow = speed(matrix, catalog, m_max, 300, kernel=pyomo, share=1.0)
        print(f"| {name} | {m_max} | {fast:,.0f} | {deployed:,.0f} | {kernel:,.0f} | {paper:,.0f} "
              f"| {plain:,.0f} | {slow:,.0f} | {paper / slow:,.0f}x |", flush=True)

    # Compilation is cached on disk: a new process loads it instead of compiling again.
    code = ("import time, numpy as np; t = time.perf_counter(); from stageroute.optimize.kernels import route; "
            "route(np.array([.5, .6]), np.array([.1, .2]), np.ones(2), .15, np.zeros(2)); "
            "print(time.perf_counter() - t)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, check=True).stdout)
    print(f"\nimport + first call of the compiled kernel in a new process: {first:.2f} s "
          "(numba cache on disk; a cold compile of the whole kernel set costs several seconds once)")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "stageroute_cli", "replay", "--outcomes", str(ROUTERBENCH / "outcomes.parquet"),
                    "--catalog", str(ROUTERBENCH / "catalog.csv"), "--relative-budget", "0.3",
                    "--max-deployed", "3", "--seeds", "1", "--quiet", "--json"],
                   env=env, capture_output=True, check=True, cwd=ROOT)
    print(f"stageroute replay, T = 100,000, one seed, all 7 policies, whole command: "
          f"{time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
