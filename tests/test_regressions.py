"""Regression tests for the correctness bugs of issue 7 section 2; each failed on the old code."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_replay import small_world

from stageroute.optimize.route import solve_route
from stageroute.options import Policy
from stageroute.plan import PlanConfig, make_plan
from stageroute.simulate.reference import reference_kernel
from stageroute.simulate.replay import (
    ReplayConfig,
    make_schedule,
    make_stream,
    run_policy,
)

UTC = dt.UTC
AS_OF = dt.datetime(2026, 3, 1, tzinfo=UTC)
CATALOG = """model,released,retired,max_share
cheap-a,2026-01-01,,1.0
cheap-b,2026-01-01,,1.0
rare-x,2026-01-01,,1.0
"""


def rare_expensive_log(rows: int = 20_000) -> pl.DataFrame:
    """Cheap models at $0.001 (reward 0.5-0.6) and 10 requests of rare-x at $0.05 (reward 1).

    The p99.9 of all costs (the cost scale) is $0.001, 50x below rare-x's real cost.
    """
    rng = np.random.default_rng(0)
    start = AS_OF - dt.timedelta(days=10)  # spread over the ten days before AS_OF
    step = dt.timedelta(days=10) / rows
    model = np.where(np.arange(rows) % 2 == 0, "cheap-a", "cheap-b").astype(object)
    model[:10] = "rare-x"
    reward = np.where(model == "cheap-a", rng.random(rows) < 0.5, rng.random(rows) < 0.6).astype(float)
    reward[:10] = 1.0
    cost = np.where(model == "rare-x", 0.05, 0.001)
    return pl.DataFrame({
        "request_id": [f"r{i}" for i in range(rows)],
        "timestamp": [start + step * i for i in range(rows)],
        "model": model.tolist(), "reward": reward, "cost": cost,
    }, schema_overrides={"timestamp": pl.Datetime("us", "UTC")})


def test_a_rarely_used_expensive_model_keeps_its_cost_and_the_plan_keeps_the_budget(tmp_path):
    logs, catalog = tmp_path / "logs.parquet", tmp_path / "catalog.csv"
    rare_expensive_log().write_parquet(logs)
    catalog.write_text(CATALOG)
    budget = 0.002
    plan = make_plan(logs, catalog, PlanConfig(budget=budget, max_deployed=3, as_of=AS_OF))
    lines = {m.model: m for m in plan.candidates}
    # the bound stays near what the data say rare-x costs, not at the $0.001 scale
    assert lines["rare-x"].cost_lcb > 0.04
    assert not plan.over_budget
    # under the plain means (every deployed model has served) the table keeps the budget
    assert plan.expected["cost_mean"] is not None
    assert plan.expected["cost_mean"] <= budget * 1.01  # the LCB is a little optimistic (was 5x)
    assert lines["rare-x"].probability < 0.03


@pytest.mark.parametrize("clip", [(0.0, 1.0), (0.3, 1.0), (0.0, 0.2)])
def test_the_compiled_replay_uses_the_cost_clip(clip):
    """The compiled loop hard-wired [0, 1]: its decisions must equal the reference loop's,
    which applies the configured clip through ``bounds_of``."""
    outcomes, catalog = small_world(3)
    cfg = ReplayConfig(budget=0.4, max_deployed=3, horizon=2000, stages=5, cost_clip=clip)
    schedule = make_schedule(catalog, outcomes, cfg)
    stream = make_stream(len(outcomes.samples), cfg.horizon, seed=4)
    args = (Policy.STAGEROUTE, outcomes, schedule, stream, cfg, np.ones(5), 1.5, np.full((2, 5), np.nan))
    fast: list[np.ndarray] = []
    slow: list[np.ndarray] = []
    run_policy(*args, served=fast)
    run_policy(*args, kernel=reference_kernel(solve_route), served=slow)
    assert np.concatenate(fast).tolist() == np.concatenate(slow).tolist()


def test_a_raised_cost_floor_changes_the_replay():
    outcomes, catalog = small_world(3)
    served = {}
    for clip in [(0.0, 1.0), (0.6, 1.0)]:
        cfg = ReplayConfig(budget=0.4, max_deployed=3, horizon=2000, stages=5, cost_clip=clip)
        schedule = make_schedule(catalog, outcomes, cfg)
        stream = make_stream(len(outcomes.samples), cfg.horizon, seed=4)
        out: list[np.ndarray] = []
        run_policy(Policy.STAGEROUTE, outcomes, schedule, stream, cfg, np.ones(5), 1.5,
                   np.full((2, 5), np.nan), served=out)
        served[clip] = np.concatenate(out)
    assert served[(0.0, 1.0)].tolist() != served[(0.6, 1.0)].tolist()


def test_warnings_go_to_stderr_even_with_json_and_quiet(tmp_path):
    frame = rare_expensive_log(200).with_columns(
        pl.when(pl.col("request_id") == "r50").then(pl.lit("Mystery-7B")).otherwise(pl.col("model"))
        .alias("model"))
    frame.write_parquet(tmp_path / "logs.parquet")
    (tmp_path / "catalog.csv").write_text(CATALOG)
    base = [sys.executable, "-m", "stageroute_cli", "plan", "--logs", "logs.parquet",
            "--catalog", "catalog.csv", "--budget", "0.01", "--max-deployed", "2",
            "--as-of", "2026-03-01"]
    quiet = subprocess.run([*base, "--json", "-q"], cwd=tmp_path, capture_output=True, text=True,
                           check=False)
    assert quiet.returncode == 0, quiet.stderr
    assert "warning" in quiet.stderr and "'Mystery-7B'" in quiet.stderr
    assert json.loads(quiet.stdout)["warnings"]  # and in the document
    table = subprocess.run(base, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert "Mystery-7B" in table.stderr and "Mystery-7B" not in table.stdout


def test_output_says_where_it_wrote_unless_quiet(tmp_path):
    rare_expensive_log(200).write_parquet(tmp_path / "logs.parquet")
    (tmp_path / "catalog.csv").write_text(CATALOG)
    base = [sys.executable, "-m", "stageroute_cli", "plan", "--logs", "logs.parquet",
            "--catalog", "catalog.csv", "--budget", "0.01", "--max-deployed", "2",
            "--as-of", "2026-03-01", "--output", "plan.json"]
    loud = subprocess.run(base, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert loud.returncode == 0 and "wrote plan.json" in loud.stderr
    quiet = subprocess.run([*base, "-q"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
    assert Path(tmp_path / "plan.json").is_file()
