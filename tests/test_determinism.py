"""Same inputs, same bytes: across processes, hash seeds and thread counts, on stdout and in files.

Within one process a set or dict ordered by string hashes looks deterministic; only separate
interpreters with different ``PYTHONHASHSEED`` values show it. Each command runs in fresh
processes (started together, to share the machine's cores) and their outputs are compared byte
for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "sample_logs"
# The Makefile's demo command.
PLAN = ["plan", "--logs", str(SAMPLE / "logs.parquet"), "--catalog", str(SAMPLE / "catalog.csv"),
        "--budget", "0.002", "--max-deployed", "3", "--as-of", "2026-11-16T02:00:00Z"]
HASH_SEEDS = ["0", "1", "random"]
THREAD_VARIABLES = ("POLARS_MAX_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED")


def replay_args(routerbench: Path) -> list[str]:
    return ["replay", "--outcomes", str(routerbench / "outcomes.parquet"), "--catalog",
            str(routerbench / "catalog.csv"), "--relative-budget", "0.3", "--max-deployed", "3",
            "--horizon", "2000", "--seeds", "2"]


def run_all(args: list[str], envs: list[dict[str, str]], directory: Path) -> list[tuple[bytes, bytes]]:
    """Run ``stageroute <args> --json -q --output out-<i>.json`` once per environment, all at
    once; returns each run's (stdout, output file) bytes."""
    base = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    base["PYTHONPATH"] = str(REPO_ROOT)
    procs = []
    for i, extra in enumerate(envs):
        out = directory / f"out-{i}.json"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "stageroute_cli", *args, "--json", "-q", "--output", str(out)],
            env={**base, **extra}, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = []
    for i, proc in enumerate(procs):
        with proc:
            stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr.decode(errors="replace")
        results.append((stdout, (directory / f"out-{i}.json").read_bytes()))
    return results


def assert_identical(results: list[tuple[bytes, bytes]]) -> None:
    first = results[0][0]
    assert first.startswith(b"{") and json.loads(first)
    for stdout, written in results:
        assert stdout == first
        assert written == first  # the --output file holds exactly what stdout showed


HASH_RUNS = [{"PYTHONHASHSEED": s} for s in HASH_SEEDS]
THREAD_RUNS = [{"POLARS_MAX_THREADS": "1", "PYTHONHASHSEED": "3"}, {"POLARS_MAX_THREADS": "4"}]


@pytest.fixture(scope="module")
def plan_runs(tmp_path_factory) -> list[tuple[bytes, bytes]]:
    """The demo plan in five processes: three hash seeds, then one and four Polars threads."""
    return run_all(PLAN, [*HASH_RUNS, *THREAD_RUNS], tmp_path_factory.mktemp("plan"))


def test_plan_is_byte_identical_across_processes_and_hash_seeds(plan_runs):
    assert_identical(plan_runs[: len(HASH_RUNS)])


def test_plan_with_glpk_is_byte_identical_across_hash_seeds(tmp_path):
    assert_identical(run_all([*PLAN, "--solver", "glpk"], HASH_RUNS[:2], tmp_path))


def test_replay_is_byte_identical_across_processes_hash_seeds_and_threads(tmp_path, routerbench):
    envs = [*HASH_RUNS, {"PYTHONHASHSEED": "2", "NUMBA_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1"}]
    assert_identical(run_all(replay_args(routerbench), envs, tmp_path))


def test_plan_figures_do_not_depend_on_the_number_of_threads(plan_runs):
    docs = [json.loads(stdout) for stdout, _ in plan_runs[len(HASH_RUNS):]]
    for doc in docs:
        doc.pop("run_id")
    assert docs[0] == docs[1]


def test_plan_is_byte_identical_whatever_the_number_of_threads(plan_runs):
    assert_identical(plan_runs[len(HASH_RUNS):])
