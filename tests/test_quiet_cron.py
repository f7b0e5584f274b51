"""Quiet cron (SPEC 10): with --output and -q a successful run prints nothing, warnings still
reach stderr, and the exit-code tables name exactly the codes the tool returns."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

from stageroute.errors import ExitCode, StagerouteError

SAMPLE = REPO_ROOT / "sample_logs"
CLI = [sys.executable, "-m", "stageroute_cli"]
PLAN = [*CLI, "plan", "--logs", str(SAMPLE / "logs.parquet"), "--budget", "0.002",
        "--max-deployed", "3", "--as-of", "2026-11-16T02:00:00Z"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def test_a_clean_cron_plan_prints_nothing(tmp_path: Path) -> None:
    result = run([*PLAN, "--catalog", str(SAMPLE / "catalog.csv"), "--output", "plan.json", "-q"],
                 tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    doc = json.loads((tmp_path / "plan.json").read_text())
    assert doc["warnings"] == [] and doc["deployment"]  # a clean run, and a plan was written


def test_a_cron_plan_with_a_warning_prints_the_warning_on_stderr_only(tmp_path: Path) -> None:
    """A catalog without atlas-lite-1: its 377 log rows are ignored, with a warning."""
    lines = (SAMPLE / "catalog.csv").read_text().splitlines()
    (tmp_path / "catalog.csv").write_text(
        "\n".join(line for line in lines if not line.startswith("atlas-lite-1,")) + "\n")
    result = run([*PLAN, "--catalog", "catalog.csv", "--output", "plan.json", "-q"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    warnings = json.loads((tmp_path / "plan.json").read_text())["warnings"]
    assert any("'atlas-lite-1' (377 rows)" in w for w in warnings), warnings
    assert result.stderr.splitlines() == [f"stageroute: warning: {w}" for w in warnings]


def test_a_cron_replay_prints_nothing(tmp_path: Path, routerbench: Path) -> None:
    result = run([*CLI, "replay", "--outcomes", str(routerbench / "outcomes.parquet"), "--catalog",
                  str(routerbench / "catalog.csv"), "--relative-budget", "0.3", "--max-deployed", "2",
                  "--horizon", "2000", "--seeds", "1", "--output", "replay.json", "-q"], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert json.loads((tmp_path / "replay.json").read_text())["horizon"] == 2000


def codes_in_help(text: str) -> set[int]:
    """The codes of the help's exit-code list ("65   bad data      66  input missing ...")."""
    section = text[text.index("Exit codes"):]
    return {int(code) for code in re.findall(r"(?:^ *| {2,})(\d+) {2,}\S", section, flags=re.M)}


def codes_in_table(markdown: str) -> set[int]:
    """The codes of a Markdown table whose rows start with the code: ``| 65 | bad data ... |``."""
    return {int(code) for code in re.findall(r"^\| (\d+) \|", markdown, flags=re.M)}


def test_the_exit_code_tables_list_exactly_the_codes_of_exit_code() -> None:
    codes = {int(code) for code in ExitCode}
    assert {130, 143} <= codes
    result = run([*CLI, "--help"], REPO_ROOT)
    assert result.returncode == 0
    assert codes_in_help(result.stdout) == codes
    assert codes_in_table((REPO_ROOT / "docs" / "errors.md").read_text()) == codes
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Errors and exit codes"):]
    assert codes_in_table(section[:section.index("\n## ")]) == codes


def _subclasses(cls: type) -> set[type]:
    return {cls, *(c for sub in cls.__subclasses__() for c in _subclasses(sub))}


def test_every_code_the_tool_can_return_is_an_exit_code() -> None:
    """Errors carry an ExitCode; the signals the CLI handles exit 128 + signum, which are
    ExitCode's 130 and 143; every literal exit status in cli/ is an ExitCode."""
    for cls in _subclasses(StagerouteError):
        assert isinstance(cls.exit_code, ExitCode), cls
    assert 128 + signal.SIGINT == ExitCode.INTERRUPTED
    assert 128 + signal.SIGTERM == ExitCode.TERMINATED
    source = "\n".join(p.read_text() for p in sorted((REPO_ROOT / "cli").glob("*.py")))
    handled = set(re.findall(r"signal\.(SIG[A-Z]+)", source)) - {"SIG_IGN", "SIG_DFL"}
    assert handled == {"SIGINT", "SIGTERM"}, handled
    literal = {int(n) for n in re.findall(r"\b(?:Exit|exit|_exit)\((\d+)\)", source)}
    assert literal <= {int(code) for code in ExitCode}, literal
