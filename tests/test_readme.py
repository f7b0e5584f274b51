"""The README's examples run, and its error table lists every bad input the CLI tests cover."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from test_cli_errors import CASES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def examples() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith("stageroute ")]


def test_the_first_lines_give_the_two_set_up_commands():
    head = README.split("## ")[0]
    assert re.search(r"^make demo\b", head, flags=re.M)
    assert re.search(r"^make test\b", head, flags=re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert "stageroute plan --logs sample_logs/logs.parquet" in makefile
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")


@pytest.fixture
def out_dir():
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    yield out
    for name in ("plan.json", "plan.json.lock", "replay.png", "outcomes.parquet",
                 "outcomes.parquet.lock", "routerbench_0shot.csv"):
        (out / name).unlink(missing_ok=True)


def wide_routerbench(routerbench: Path, out: Path) -> None:
    """RouterBench's wide layout, rebuilt from the shared long table, for the import example."""
    long = pl.read_parquet(routerbench / "outcomes.parquet")
    wide = long.pivot(on="model", index=["sample_id", "eval_name"], values="reward")
    costs = long.pivot(on="model", index="sample_id", values="cost")
    costs = costs.rename({m: f"{m}|total_cost" for m in costs.columns if m != "sample_id"})
    wide.join(costs, on="sample_id").write_csv(out / "routerbench_0shot.csv")


@pytest.mark.parametrize("line", examples())
def test_readme_example_runs(line, out_dir, request):
    if "../shared" in line or "routerbench" in line:
        routerbench = request.getfixturevalue("routerbench")
        if line.startswith("stageroute import routerbench"):
            wide_routerbench(routerbench, out_dir)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "stageroute_cli", *shlex.split(line)[1:]], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_examples_cover_every_command():
    commands = {line.split()[1] for line in examples()}
    assert {"plan", "replay", "import"} <= commands


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error_table_lists_each_bad_input_with_its_exit_code(case):
    rows = [line for line in README.splitlines() if line.startswith(f"| {case.bad_input} |")]
    assert rows, f"README has no row for {case.bad_input!r}"
    assert rows[0].rstrip().endswith(f"| {int(case.code)} |")
