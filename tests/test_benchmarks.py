"""The benchmark scripts run (on small inputs): the figures in the README come from code that works.

They print timings, which no test asserts on; these runs only check that each script completes and
prints its table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

BENCH = REPO_ROOT / "benchmarks"


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bench_plan_runs_on_a_small_log(tmp_path: Path) -> None:
    out = run("bench_plan.py", "--rows", "20000", "--dir", str(tmp_path))
    assert "bare Polars scan" in out and "make_plan" in out


def test_bench_deploy_prints_both_paths() -> None:
    out = run("bench_deploy.py")
    assert "canonical set" in out and "MIP" in out


def test_bench_joint_runs_a_few_instances() -> None:
    out = run("bench_joint.py", "--instances", "2", "--calls", "200")
    assert "50 segments x 32 models" in out and "HiGHS / exact" in out and "| 14 x 3 |" in out


def test_bench_help_runs() -> None:
    assert "--help" in run("bench_help.py")


def test_bench_replay_kernels_run(routerbench: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import bench_replay
    finally:
        sys.path.remove(str(BENCH))
    from stageroute.inputs.catalog import load_catalog
    from stageroute.inputs.outcomes import load_outcomes, to_matrix

    matrix = to_matrix(load_outcomes(routerbench / "outcomes.parquet"))
    catalog = load_catalog(routerbench / "catalog.csv")
    assert bench_replay.speed(matrix, catalog, 3, 2000) > 0
    assert bench_replay.loop_only(matrix, 3, horizon=2000) > 0


def test_bench_port_runs_on_a_short_stream(routerbench: Path) -> None:
    out = run("bench_port.py", "--horizon", "2000", "--repeat", "1")
    assert "queries/s" in out and out.count("| staged |") == 4


@pytest.mark.parametrize("script", ["bench_replay.py", "deployed_results.py", "scenarios.py",
                                    "drift.py"])
def test_benchmark_scripts_import(script: str) -> None:
    code = f"import runpy; runpy.run_path({str(BENCH / script)!r}, run_name='not_main')"
    result = subprocess.run([sys.executable, "-c", code], cwd=BENCH, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr


def test_every_synthetic_scenario_replays() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import scenarios
    finally:
        sys.path.remove(str(BENCH))
    from stageroute.options import Policy
    from stageroute.simulate.replay import ReplayConfig, replay

    for name, make in scenarios.SCENARIOS.items():
        matrix, catalog = make(0)
        cfg = ReplayConfig(budget=0.3, relative_budget=True, max_deployed=3, horizon=3000,
                           stages=6, refresh=3, policies=(Policy.ORACLE, Policy.STAGEROUTE))
        result = replay(matrix, catalog, cfg)
        ours = next(p for p in result.policies if p.policy is Policy.STAGEROUTE)
        assert 0 < ours.mean_reward <= 1 and ours.cost_over_budget < 1.5, name
        # arrivals happen during the run: the last stage's pool is larger than the first's
        assert result.schedule.pools[-1].sum() > result.schedule.pools[0].sum(), name


def test_bench_store_runs_a_few_small_weeks(tmp_path: Path) -> None:
    out = run("bench_store.py", "--weeks", "4", "--rows", "20000", "--dir", str(tmp_path / "store"))
    assert "| 4 |" in out and "plan --stats" in out and "weeks 2-4" in out


def test_bench_offpolicy_runs_on_a_small_log(routerbench: Path) -> None:
    out = run("bench_offpolicy.py", "--rows", "30000", "--repeat", "1")
    assert "replay method, stageroute, refresh query" in out and "IPS, SNIPS, DR" in out


def test_offpolicy_coverage_prints_its_table() -> None:
    out = run("offpolicy_coverage.py", "--seeds", "3", "--rows", "1000")
    assert out.count("lowest cell") == 4 and "snips" in out


def test_segments_quality_runs_on_a_sample(routerbench: Path) -> None:
    out = run("segments_quality.py", "--rows", "300")
    assert "| routerbench | 300 | 3 |" in out and "| mmlupro | 300 |" in out


def test_contextual_benchmarks_run_small() -> None:
    out = run("bench_contextual.py", "--horizon", "3000", "--repeat", "1", "--tables", "routerbench")
    assert "routerbench" in out and "contextual q/s" in out
    out = run("contextual_results.py", "--seeds", "2", "--horizon", "3000", "--tables",
              "routerbench", "--segments", "eval_name", "--budgets", "0.3", "--refresh", "query")
    assert "| routerbench | eval_name | 0.3 | query |" in out
