"""The README works as a new user meets it: its set-up commands, its examples (run as shown, in a
scratch copy of the checkout), its error table, and the pins behind `make test`."""

import os
import re
import shlex
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import polars as pl
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from test_cli_errors import CASES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def commands(block: str) -> list[list[str]]:
    """The block's command lines, split as the shell would (comments dropped)."""
    return [words for line in block.splitlines() if (words := shlex.split(line, comments=True))]


def examples() -> list[list[str]]:
    return [words for block in SH_BLOCKS for words in commands(block) if words[0] == "stageroute"]


def test_the_first_lines_give_the_two_set_up_commands():
    head = README.split("## ")[0]
    assert re.search(r"^make demo\b", head, flags=re.M)
    assert re.search(r"^make test\b", head, flags=re.M)
    assert len(re.findall(r"^make \w+", head, flags=re.M)) == 2
    makefile = (ROOT / "Makefile").read_text()
    assert "stageroute plan --logs sample_logs/logs.parquet" in makefile
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")


def test_the_readme_says_where_the_command_is_before_using_it():
    """`make demo` installs into .venv: the README says so before its first `stageroute` line."""
    head = README.split("## ")[0]
    assert ".venv/bin/stageroute" in head and "source .venv/bin/activate" in head
    first_block = commands(SH_BLOCKS[0])
    assert first_block[0] == ["source", ".venv/bin/activate"]
    assert first_block[1][0] == "stageroute"


def test_make_alone_lists_every_target_with_one_line_each():
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, flags=re.M)
    assert phony
    result = subprocess.run(["make", "--no-print-directory"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    listed = [line.split()[1] for line in result.stdout.splitlines() if line.strip()]
    assert listed == list(dict.fromkeys(listed))  # one line per target
    assert set(listed) == set(phony.group(1).split())
    assert all(len(line.split(maxsplit=2)) == 3 for line in result.stdout.splitlines() if line.strip())


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A scratch working directory laid out like a clone: the examples write only in here."""
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "sample_logs").symlink_to(ROOT / "sample_logs", target_is_directory=True)
    return work


def wide_routerbench(routerbench: Path, out: Path) -> None:
    """RouterBench's wide layout, rebuilt from the shared long table, for the import example."""
    long = pl.read_parquet(routerbench / "outcomes.parquet")
    wide = long.pivot(on="model", index=["sample_id", "eval_name"], values="reward")
    costs = long.pivot(on="model", index="sample_id", values="cost")
    costs = costs.rename({m: f"{m}|total_cost" for m in costs.columns if m != "sample_id"})
    wide.join(costs, on="sample_id").write_csv(out)


def run_example(words: list[str], cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "stageroute_cli", *words[1:]], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{shlex.join(words)}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    for flag in ("--output", "--plot"):
        if flag in words:
            assert (cwd / words[words.index(flag) + 1]).is_file(), f"{flag} was not written"


@pytest.mark.parametrize("block", SH_BLOCKS, ids=[f"block{k}" for k in range(len(SH_BLOCKS))])
def test_readme_examples_run_as_shown(block: str, checkout: Path, request) -> None:
    """Each ```sh block, line by line, in a directory laid out like a fresh clone."""
    if "../shared" in block or "routerbench" in block:
        routerbench = request.getfixturevalue("routerbench")
        (checkout.parent / "shared").symlink_to(routerbench.parents[1], target_is_directory=True)
    for words in commands(block):
        if words == ["source", ".venv/bin/activate"]:
            continue  # the test runs the installed command with this interpreter
        if words[:2] == ["mkdir", "-p"]:
            for folder in words[2:]:
                (checkout / folder).mkdir(parents=True, exist_ok=True)
        elif words[0] == "stageroute":
            if words[1:3] == ["import", "routerbench"]:  # the file the README says to download
                wide_routerbench(request.getfixturevalue("routerbench"), checkout / words[3])
            run_example(words, checkout)
        else:
            pytest.fail(f"README example line this test cannot run: {shlex.join(words)}")


def test_examples_cover_every_command():
    assert {words[1] for words in examples()} >= {"plan", "replay", "import"}


def test_examples_write_only_below_a_folder_they_create():
    """A fresh clone has no out/: every example that writes a file creates its folder first."""
    for block in SH_BLOCKS:
        made: set[str] = set()
        for words in commands(block):
            if words[:2] == ["mkdir", "-p"]:
                made.update(words[2:])
            for flag in ("--output", "--plot"):
                if flag in words:
                    parent = str(Path(words[words.index(flag) + 1]).parent)
                    assert parent in made | {"."}, f"{shlex.join(words)}: create {parent}/ first"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error_table_lists_each_bad_input_with_its_exit_code(case):
    rows = [line for line in README.splitlines() if line.startswith(f"| {case.bad_input} |")]
    assert rows, f"README has no row for {case.bad_input!r}"
    assert rows[0].rstrip().endswith(f"| {int(case.code)} |")


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    found = [re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip()) for line in lines
             if line.strip() and not line.startswith("#")]
    assert all(found), "constraints.txt holds only name==version lines and comments"
    return {canonicalize_name(m.group(1)): m.group(2) for m in found if m}


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in project["dependencies"] + [r for rs in extras.values() for r in rs]]


def test_constraints_pin_every_dependency_within_its_range():
    pinned = pins()
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for req in project_requirements() + [Requirement(r) for r in build]:
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not pinned in constraints.txt (run make lock)"
        assert req.specifier.contains(pinned[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pinned[name]} outside pyproject.toml's {req}"


def test_constraints_pin_what_the_dependencies_pull_in():
    """Walk the installed dependency tree: every package it reaches is pinned (transitively)."""
    pinned = pins()
    seen: set[str] = set()
    todo = list(project_requirements())
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        assert name in pinned, f"{name} (needed via {req}) is not pinned in constraints.txt"
        todo += [Requirement(r) for r in metadata.requires(req.name) or []]
    assert len(seen) > 20
