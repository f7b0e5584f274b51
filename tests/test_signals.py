"""The exit status tells the truth about what was written: signals and a stdout that fails.

A signal is sent at a chosen point of a real run: ``DRIVER`` wraps one function (or an import)
so that the process signals itself when it gets there, then calls ``stageroute_cli.main.run()``
as the console script does. Before the output file is replaced: one ``Error:`` line, exit 130
(SIGINT) or 143 (SIGTERM), the previous output untouched, no temporary file. After: exit 0 and a
warning. stdout is closed, a pipe whose reader is gone, a full device, or ASCII-only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CATALOG_CSV, REPO_ROOT, small_logs
from test_cli_errors import Case, command_args, error_line, prepare, snapshot

from stageroute.errors import ExitCode

DRIVER = """
import builtins, importlib, os, signal, sys
where, signum, args = sys.argv[1], getattr(signal, sys.argv[2]), sys.argv[3:]
module, name = where.split(":")
if module == "import":  # during start-up: the signal arrives while `name` is being imported
    real_import = builtins.__import__
    def hooked(what, *a, **k):
        if what == name:
            os.kill(os.getpid(), signum)
        return real_import(what, *a, **k)
    builtins.__import__ = hooked
else:
    target = importlib.import_module(module)
    original = getattr(target, name)
    def wrapped(*a, **k):
        os.kill(os.getpid(), signum)
        return original(*a, **k)
    setattr(target, name, wrapped)
sys.argv = ["stageroute", *args]
from stageroute_cli.main import run
run()
"""
PREVIOUS = '{"previous": "plan"}\n'


@dataclass(frozen=True)
class SignalCase:
    """A signal at ``where`` (``module:function``, or ``import:module`` during start-up)."""

    id: str
    bad_input: str
    where: str
    signal: str
    code: int
    command: str = "plan"
    extra: tuple[str, ...] = ()
    written: bool = False  # the new output is in place (exit 0, a warning)


SIGNAL_CASES = [
    SignalCase("sigint-during-start-up", "SIGINT while the CLI imports Typer", "import:typer", "SIGINT",
               ExitCode.INTERRUPTED),
    SignalCase("sigterm-during-start-up", "SIGTERM while the CLI imports Typer", "import:typer", "SIGTERM",
               ExitCode.TERMINATED),
    SignalCase("sigint-while-parsing-options", "SIGINT while the options are parsed",
               "stageroute.options:parse_duration", "SIGINT", ExitCode.INTERRUPTED),
    SignalCase("sigint-before-the-write", "SIGINT while planning (before the write)",
               "stageroute.plan:make_plan", "SIGINT", ExitCode.INTERRUPTED),
    SignalCase("sigterm-before-the-write", "SIGTERM while planning (before the write)",
               "stageroute.plan:make_plan", "SIGTERM", ExitCode.TERMINATED),
    SignalCase("sigint-inside-the-write", "SIGINT inside the write (at the fsync)", "os:fsync", "SIGINT",
               ExitCode.INTERRUPTED),
    SignalCase("sigterm-inside-the-write", "SIGTERM inside the write (at the fsync)", "os:fsync", "SIGTERM",
               ExitCode.TERMINATED),
    SignalCase("sigterm-at-the-rename", "SIGTERM at the rename: it waits, the plan is in place", "os:replace",
               "SIGTERM", ExitCode.OK, written=True),
    SignalCase("sigint-after-the-write", "SIGINT after the plan is in place (while the report prints)",
               "stageroute_cli.common:render", "SIGINT", ExitCode.OK, written=True),
    SignalCase("sigterm-after-the-write", "SIGTERM after the plan is in place (while the report prints)",
               "stageroute_cli.common:render", "SIGTERM", ExitCode.OK, written=True),
    SignalCase("sigint-during-replay", "SIGINT during the replay's simulation",
               "stageroute.simulate.replay:run_policy", "SIGINT", ExitCode.INTERRUPTED, command="replay"),
    SignalCase("sigterm-inside-the-plot-write", "SIGTERM inside the write of `replay --plot`", "os:fsync",
               "SIGTERM", ExitCode.TERMINATED, command="replay", extra=("--plot", "out/replay.png")),
    SignalCase("sigint-inside-the-import-write", "SIGINT inside the write of `import routerbench`",
               "os:fsync", "SIGINT", ExitCode.INTERRUPTED, command="import"),
]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("STAGEROUTE_DEBUG", None)
    return env


@pytest.mark.parametrize("case", SIGNAL_CASES, ids=[c.id for c in SIGNAL_CASES])
def test_a_signal_gives_the_exit_status_of_what_was_written(case: SignalCase, tmp_path: Path) -> None:
    plain = Case(case.id, case.bad_input, case.code, (), command=case.command, extra=case.extra)
    prepare(plain, tmp_path)
    (tmp_path / "out" / "plan.json").write_text(PREVIOUS)  # the previous plan, to keep or replace
    before = snapshot(tmp_path)
    result = subprocess.run([sys.executable, "-c", DRIVER, case.where, case.signal, *command_args(plain)],
                            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == case.code, result.stderr
    after = snapshot(tmp_path)
    assert not [name for name in after if name.endswith(".tmp")]
    assert {n for n in set(after) - set(before) if not n.endswith(".lock")} == set()
    if case.written:
        assert "Traceback" not in result.stderr and "Error:" not in result.stderr, result.stderr
        assert f"stageroute: warning: interrupted by {case.signal} after the output was written" in \
            result.stderr
        assert json.loads((tmp_path / "out" / "plan.json").read_text())["schema_version"] == 1
        assert {n: after[n] for n in before if n != "out/plan.json"} == \
            {n: d for n, d in before.items() if n != "out/plan.json"}
    else:
        error = error_line(result)
        assert f"interrupted by {case.signal}" in error and "nothing was written" in error
        assert after == {**before, **{n: after[n] for n in after if n.endswith(".lock")}}


# --- stdout that cannot take the report ------------------------------------------------------

@dataclass(frozen=True)
class StdoutCase:
    id: str
    bad_input: str
    stdout: str  # closed, broken-pipe, full, ascii
    code: int
    args: tuple[str, ...] = ()  # after the plan's inputs
    written: bool = False


STDOUT_CASES = [
    StdoutCase("stdout-closed-with-output", "stdout closed (`>&-`), with `--output`", "closed", ExitCode.OK,
               ("--output", "out/plan.json"), written=True),
    StdoutCase("stdout-closed-without-output", "stdout closed (`>&-`), `--json` only", "closed",
               ExitCode.CANNOT_WRITE, ("--json",)),
    StdoutCase("stdout-broken-pipe-with-output", "stdout a pipe whose reader is gone (`| head`), with "
               "`--output`", "broken-pipe", ExitCode.OK, ("--output", "out/plan.json"), written=True),
    StdoutCase("stdout-broken-pipe-without-output", "stdout a pipe whose reader is gone (`| head`), "
               "no `--output`", "broken-pipe", ExitCode.CANNOT_WRITE),
    StdoutCase("stdout-full-with-output", "stdout on a full device (`>/dev/full`), with `--output`", "full",
               ExitCode.OK, ("--output", "out/plan.json"), written=True),
    StdoutCase("stdout-full-json", "stdout on a full device (`>/dev/full`), `--json` only", "full",
               ExitCode.CANNOT_WRITE, ("--json",)),
    StdoutCase("version-stdout-closed", "`stageroute --version` with stdout closed", "closed",
               ExitCode.CANNOT_WRITE),
]
UNICODE_CATALOG = CATALOG_CSV.replace("alpha", "modèle-α")


def _plan_inputs(directory: Path) -> list[str]:
    (directory / "out").mkdir()
    (directory / "catalog.csv").write_text(UNICODE_CATALOG)
    small_logs().with_columns(small_logs()["model"].replace({"alpha": "modèle-α"})).write_parquet(
        directory / "logs.parquet")
    return ["plan", "--logs", "logs.parquet", "--catalog", "catalog.csv", "--budget", "0.01",
            "--max-deployed", "2", "--as-of", "2026-03-01"]


def _run_with_stdout(how: str, args: list[str], directory: Path) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with stdout closed, a pipe nobody reads any more, or /dev/full."""
    command = [sys.executable, "-m", "stageroute_cli", *args]
    options = {"cwd": directory, "env": _env(), "stderr": subprocess.PIPE, "timeout": 300}
    if how == "closed":
        return subprocess.run(command, preexec_fn=lambda: os.close(1), **options)  # type: ignore[call-overload]
    if how == "full":
        with open("/dev/full", "wb") as full:
            return subprocess.run(command, stdout=full, **options)  # type: ignore[call-overload]
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write gets EPIPE
    try:
        return subprocess.run(command, stdout=write, **options)  # type: ignore[call-overload]
    finally:
        os.close(write)


@pytest.mark.parametrize("case", STDOUT_CASES, ids=[c.id for c in STDOUT_CASES])
def test_stdout_failing_fails_the_run_only_if_nothing_was_written(case: StdoutCase, tmp_path: Path) -> None:
    args = ["--version"] if case.id.startswith("version") else [*_plan_inputs(tmp_path), *case.args]
    result = _run_with_stdout(case.stdout, args, tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == case.code, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr and "Exception ignored" not in stderr
    assert not list(tmp_path.rglob("*.tmp"))
    if case.written:
        assert "Error:" not in stderr and "stageroute: warning: could not print the report" in stderr
        assert json.loads((tmp_path / "out" / "plan.json").read_text())["routing"]
    else:
        error = error_line(subprocess.CompletedProcess(args, result.returncode, "", stderr))
        assert "stdout" in error
        assert not (tmp_path / "out" / "plan.json").exists()


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_an_ascii_stdout_prints_non_ascii_model_ids_escaped(as_json: bool, tmp_path: Path) -> None:
    args = [*_plan_inputs(tmp_path), "--output", "out/plan.json", *(["--json"] if as_json else [])]
    env = {**_env(), "PYTHONIOENCODING": "ascii"}
    result = subprocess.run([sys.executable, "-m", "stageroute_cli", *args], cwd=tmp_path, env=env,
                            capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads((tmp_path / "out" / "plan.json").read_text(encoding="utf-8"))["routing"][0][
        "model"] == "modèle-α"
    if as_json:  # \u escapes: still JSON, and the same document as the file
        assert json.loads(result.stdout) == json.loads((tmp_path / "out" / "plan.json").read_bytes())
    else:
        assert b"mod\\xe8le-\\u03b1" in result.stdout


def test_every_case_is_in_the_matrix_of_docs_errors_md() -> None:
    matrix = (REPO_ROOT / "docs" / "errors.md").read_text()
    for case in [*SIGNAL_CASES, *STDOUT_CASES]:
        rows = [line for line in matrix.splitlines() if line.startswith(f"| `{case.id}` |")]
        assert rows, f"docs/errors.md has no row for {case.id}"
        assert rows[0].rstrip().endswith(f"| {int(case.code)} |"), rows[0]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def matrix_rows() -> list[str]:
    """Rows of the docs/errors.md matrix, from real runs (``python tests/test_signals.py``)."""
    import tempfile

    rows = []
    for case in SIGNAL_CASES:
        plain = Case(case.id, case.bad_input, case.code, (), command=case.command, extra=case.extra)
        with tempfile.TemporaryDirectory() as tmp:
            prepare(plain, Path(tmp))
            result = subprocess.run([sys.executable, "-c", DRIVER, case.where, case.signal,
                                     *command_args(plain)], cwd=tmp, env=_env(), capture_output=True,
                                    text=True, timeout=300)
        line = [x for x in result.stderr.splitlines() if x.startswith(("Error:", "stageroute: warning"))]
        command = f"stageroute {' '.join(command_args(plain)[:2 if case.command == 'import' else 1])} " \
                  f"${case.command.upper()} {' '.join(case.extra)}".rstrip()
        rows.append(f"| `{case.id}` | {_cell(case.bad_input)} | `{command}`, {case.signal} at "
                    f"`{case.where}` | `{line[-1]}` | {result.returncode} |")
    for stdout_case in STDOUT_CASES:
        with tempfile.TemporaryDirectory() as tmp:
            args = (["--version"] if stdout_case.id.startswith("version") else
                    [*_plan_inputs(Path(tmp)), *stdout_case.args])
            done = _run_with_stdout(stdout_case.stdout, args, Path(tmp))
        line = [x for x in done.stderr.decode().splitlines() if x.startswith(("Error:", "stageroute: warn"))]
        shown = "stageroute --version" if args == ["--version"] else \
            f"stageroute plan $INPUTS {' '.join(stdout_case.args)}".rstrip()
        rows.append(f"| `{stdout_case.id}` | {_cell(stdout_case.bad_input)} | `{shown}` | `{line[-1]}` | "
                    f"{done.returncode} |")
    return rows


if __name__ == "__main__":
    print("\n".join(matrix_rows()))
