"""Every bad input to ``stageroute plan`` ends in one ``Error:`` line and its exit code, never a traceback.

The commands run as subprocesses (``python -m stageroute_cli``, which goes through ``stageroute_cli.main.run()`` like the
console script), in a fresh directory so that messages name the files as a user would type them.
``CASES`` also feeds the table of docs/errors.md.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from conftest import CATALOG_CSV, REPO_ROOT, small_logs

from stageroute.errors import ExitCode

RETIRED_BEFORE_RELEASED = CATALOG_CSV.replace("gamma,2026-01-01,2027-01-01", "gamma,2026-01-01,2025-06-30")
DUPLICATE_MODEL = CATALOG_CSV + "beta,2026-02-01,,1.0,0.5,1.0\n"


def _set(column: str, value: object) -> Callable[[pl.DataFrame], pl.DataFrame]:
    def mutate(frame: pl.DataFrame) -> pl.DataFrame:
        hit = pl.col("request_id") == "r0005"
        return frame.with_columns(
            pl.when(hit).then(pl.lit(value, frame.schema[column])).otherwise(pl.col(column)).alias(column))
    return mutate


def _unknown_model(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.when(pl.col("request_id") == "r0005").then(pl.lit("mystery-7b")).otherwise(pl.col("model"))
        .alias("model"))


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, the options that differ from the valid run, what must happen."""

    id: str
    bad_input: str
    code: int
    words: tuple[str, ...]  # must appear in the Error line
    mutate: Callable[[pl.DataFrame], pl.DataFrame] | None = None
    raw_logs: bytes | None = None  # written instead of a valid log
    catalog: str = CATALOG_CSV
    logs: str = "logs.parquet"
    budget: str = "0.01"
    output: str = "out/plan.json"
    extra: tuple[str, ...] = ()
    no_glpk_on_path: bool = False
    hold_lock: bool = False
    shows_plan: bool = False  # the infeasible plan is printed (not written) before the error


CASES = [
    Case("missing-column", "missing column (no `model`)", ExitCode.BAD_DATA,
         ("logs.parquet", "no column 'model'", "add it"), mutate=lambda f: f.drop("model")),
    Case("wrong-dtype", "wrong dtype (`reward` stored as text)", ExitCode.BAD_DATA,
         ("logs.parquet", "column 'reward'", "type String", "expected a number"),
         mutate=lambda f: f.with_columns(pl.col("reward").cast(pl.String))),
    Case("reward-outside", "reward outside [0, 1]", ExitCode.BAD_DATA,
         ("logs.parquet", "column 'reward'", "outside [0, 1]", "1.5", "'r0005'"),
         mutate=_set("reward", 1.5)),
    Case("negative-cost", "negative cost", ExitCode.BAD_DATA,
         ("logs.parquet", "column 'cost'", "negative", "-0.02", "'r0005'"), mutate=_set("cost", -0.02)),
    Case("nan-reward", "NaN reward", ExitCode.BAD_DATA,
         ("logs.parquet", "column 'reward'", "NaN", "'r0005'"), mutate=_set("reward", float("nan"))),
    Case("nan-cost", "NaN cost", ExitCode.BAD_DATA,
         ("logs.parquet", "column 'cost'", "not finite", "nan", "'r0005'"),
         mutate=_set("cost", float("nan"))),
    Case("unknown-model", "model not in the catalog, with `--strict`", ExitCode.BAD_DATA,
         ("logs.parquet", "column 'model'", "'mystery-7b'", "not in the catalog", "--strict"),
         mutate=_unknown_model, extra=("--strict",)),
    Case("empty-log", "empty log (0 rows)", ExitCode.BAD_DATA, ("logs.parquet", "no rows"),
         mutate=lambda f: f.head(0)),
    Case("corrupt-parquet", "corrupt Parquet (not Parquet bytes)", ExitCode.BAD_DATA,
         ("logs.parquet", "cannot be read as Parquet", "really Parquet"), raw_logs=b"\x00garbage" * 64),
    Case("missing-file", "missing log file", ExitCode.INPUT_MISSING,
         ("missing.parquet", "does not exist", "--logs"), logs="missing.parquet"),
    Case("retired-before-released", "catalog: retired before released", ExitCode.BAD_DATA,
         ("catalog.csv", "'gamma'", "retired (2025-06-30) before it is released (2026-01-01)"),
         catalog=RETIRED_BEFORE_RELEASED),
    Case("duplicate-model", "catalog: duplicate model", ExitCode.BAD_DATA,
         ("catalog.csv", "column 'model'", "'beta' twice"), catalog=DUPLICATE_MODEL),
    Case("infeasible-budget", "infeasible budget (`--budget 0.0001`, every model costs more)",
         ExitCode.INFEASIBLE, ("budget 0.0001 cannot be met", "not written", "--allow-drop",
                               "--allow-over-budget"),
         budget="0.0001", shows_plan=True),
    Case("unknown-solver", "unknown solver (`--solver foo`)", ExitCode.USAGE,
         ("--solver", "'foo'", "highs", "glpk"), extra=("--solver", "foo")),
    Case("missing-solver", "solver not installed (`--solver glpk`, no `glpsol` on PATH)",
         ExitCode.NO_SOLVER, ("'glpk'", "glpsol", "apt-get install", "--solver highs"),
         extra=("--solver", "glpk"), no_glpk_on_path=True),
    Case("unwritable-output", "`--output` in a directory that does not exist", ExitCode.CANNOT_WRITE,
         ("nowhere/plan.json", "does not exist", "create it"), output="nowhere/plan.json"),
    Case("locked-output", "`--output` locked by another run", ExitCode.LOCKED,
         ("out/plan.json.lock", "another stageroute run", "wait"), hold_lock=True),
]


def plan_args(case: Case) -> list[str]:
    """The arguments after ``stageroute`` (paths relative to the case directory)."""
    return ["plan", "--logs", case.logs, "--catalog", "catalog.csv", "--budget", case.budget,
            "--max-deployed", "2", "--as-of", "2026-03-01", "--output", case.output, *case.extra]


def prepare(case: Case, directory: Path) -> None:
    """Write the case's log and catalog into ``directory`` (and the output directory)."""
    (directory / "out").mkdir(exist_ok=True)
    (directory / "catalog.csv").write_text(case.catalog)
    if case.raw_logs is not None:
        (directory / "logs.parquet").write_bytes(case.raw_logs)
    else:
        frame = small_logs()
        (case.mutate(frame) if case.mutate else frame).write_parquet(directory / "logs.parquet")


@contextmanager
def _lock_held(path: Path, hold: bool) -> Iterator[None]:
    if not hold:
        yield
        return
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def run_case(case: Case, directory: Path, program: list[str]) -> subprocess.CompletedProcess[str]:
    """Prepare ``case`` in ``directory`` and run ``program + plan_args(case)`` there."""
    prepare(case, directory)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if case.no_glpk_on_path:
        empty = directory / "empty-bin"
        empty.mkdir(exist_ok=True)
        env["PATH"] = str(empty)
    with _lock_held(directory / case.output, case.hold_lock):
        return subprocess.run([*program, *plan_args(case)], cwd=directory, env=env,
                              capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_error_line(case: Case, tmp_path: Path) -> None:
    result = run_case(case, tmp_path, [sys.executable, "-m", "stageroute_cli"])
    assert result.returncode == case.code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0]
    # Everything else on stderr is progress ("stageroute: ...").
    assert all(line.startswith("stageroute: ") for line in lines[:-1]), result.stderr
    for word in case.words:
        assert word in errors[0], f"{word!r} not in {errors[0]!r}"

    assert not (tmp_path / case.output).exists()
    assert not list(tmp_path.rglob("*.tmp"))
    if case.shows_plan:
        assert "Routing table" in result.stdout  # the cheapest plan is shown for the operator


def test_allow_over_budget_writes_the_cheapest_plan_and_exits_0(tmp_path: Path) -> None:
    case = Case("over", "none", ExitCode.OK, (), budget="0.0001", extra=("--allow-over-budget",))
    result = run_case(case, tmp_path, [sys.executable, "-m", "stageroute_cli"])
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out" / "plan.json").read_text())["over_budget"] is True


def test_glpk_is_installed_here() -> None:
    # The missing-solver case must fail because of PATH, not because GLPK is absent.
    from stageroute.options import Solver
    from stageroute.optimize.solver import solver_available

    assert solver_available(Solver.GLPK)


def test_valid_run_writes_the_output(tmp_path: Path) -> None:
    case = Case("valid", "none", ExitCode.OK, ())
    result = run_case(case, tmp_path, [sys.executable, "-m", "stageroute_cli"])
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out" / "plan.json").read_text())["over_budget"] is False
