"""stageroute.toml and --config (option values from a file, flags override), and stageroute init."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stageroute_cli.config import EXAMPLE
from stageroute_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_logs"
PLAN_TOML = f"""
max-deployed = 3
[plan]
logs = "{SAMPLE / 'logs.parquet'}"
catalog = "{SAMPLE / 'catalog.csv'}"
budget = 0.002
as-of = 2026-11-16T02:00:00Z
quiet = true
json = true
"""
FLAGS = ["--logs", str(SAMPLE / "logs.parquet"), "--catalog", str(SAMPLE / "catalog.csv"),
         "--budget", "0.002", "--max-deployed", "3", "--as-of", "2026-11-16T02:00:00Z", "-q",
         "--json"]


@pytest.fixture
def in_tmp(tmp_path: Path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(cwd)


def test_the_file_gives_the_same_plan_as_the_flags(in_tmp):
    runner = CliRunner()
    (in_tmp / "mine.toml").write_text(PLAN_TOML)
    by_flags = runner.invoke(app, ["plan", *FLAGS])
    by_file = runner.invoke(app, ["plan", "--config", "mine.toml"])
    assert by_flags.exit_code == by_file.exit_code == 0, by_file.output
    assert by_file.stdout == by_flags.stdout
    (in_tmp / "stageroute.toml").write_text(PLAN_TOML)  # found in the working directory
    assert runner.invoke(app, ["plan"]).stdout == by_flags.stdout


def test_flags_override_the_file(in_tmp):
    (in_tmp / "stageroute.toml").write_text(PLAN_TOML)
    result = CliRunner().invoke(app, ["plan", "--budget", "0.0025", "--max-deployed", "2"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["budget"], doc["max_deployed"]) == (0.0025, 2)


def test_relative_paths_are_relative_to_the_file(in_tmp):
    (in_tmp / "conf").mkdir()
    (in_tmp / "conf" / "s.toml").write_text(PLAN_TOML.replace(str(SAMPLE / "logs.parquet"),
                                                              "../data/logs.parquet"))
    (in_tmp / "data").mkdir()
    (in_tmp / "data" / "logs.parquet").symlink_to(SAMPLE / "logs.parquet")
    result = CliRunner().invoke(app, ["plan", "--config", "conf/s.toml"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("content", "words"), [
    ("[plan]\nbudgett = 0.002\n", ["'budgett'", "[plan]", "unknown key"]),
    ("[plan]\nbudget = 'cheap'\n", ["'budget'", "[plan]", "must be a number", "'cheap'"]),
    ("[plan]\nmax-deployed = 2.5\n", ["'max-deployed'", "must be an integer"]),
    ("[plan]\nstrict = 'yes'\n", ["'strict'", "true or false"]),
    ("max_deployed = true\n", ["'max_deployed'", "must be an integer"]),
    ("colour = 'blue'\n", ["'colour'", "no command has the option --colour"]),
    ("[plam]\nbudget = 1\n", ["[plam]", "unknown table"]),
    ("[replay]\nhistory = 'plans'\n", ["'history'", "[replay]", "unknown key"]),
    ("[plan\n", ["not valid TOML", "line 1"]),
    ("[plan]\nmax-deployed = 3\nmax_deployed = 2\n", ["'max-deployed' and 'max_deployed'",
                                                      "[plan]", "keep one"]),
    ("seeds = 3\nmax_deployed = 2\nmax-deployed = 3\n", ["'max_deployed' and 'max-deployed'"]),
    ("ctx = 1\n", ["'ctx'", "no command has the option --ctx"]),
    ("[plan]\noutput = 'plans/'\n", ["'output'", "a directory", "plans/NAME"]),
    ("[plan]\nbudget = 1" + "0" * 400 + "\n", ["'budget'", "too large for a number"]),
    ("[[plan]]\nbudget = 0.01\n", ["[[plan]] is an array of tables", "[plan]"]),
    ("[plan]\nlogs = ''\n", ["'logs'", "is empty"]),
    ("[plan]\nanchor = ' '\n", ["'anchor'", "is empty"]),
    ("x = " + "[" * 5000 + "]" * 5000 + "\n", ["nests arrays or tables too deeply"]),
])
def test_bad_files_are_usage_errors_naming_the_key_and_the_file(in_tmp, content, words):
    (in_tmp / "bad.toml").write_text(content)
    result = CliRunner().invoke(app, ["plan", *FLAGS, "--config", "bad.toml"])
    assert result.exit_code == 2
    error = result.stderr if result.stderr else result.output
    for word in ["bad.toml", *words]:
        assert word in error, error


def test_a_config_that_is_no_regular_file_is_refused_without_reading(in_tmp):
    """A FIFO would block the run for ever; a device such as /dev/zero would never end."""
    os.mkfifo(in_tmp / "fifo.toml")
    for path in ("fifo.toml", "/dev/zero"):
        result = CliRunner().invoke(app, ["plan", *FLAGS, "--config", path])
        assert result.exit_code == 2
        error = result.stderr if result.stderr else result.output
        assert "not a regular file" in error and error.count("--help") == 1, error


def test_a_missing_config_file_is_a_usage_error(in_tmp):
    result = CliRunner().invoke(app, ["plan", *FLAGS, "--config", "nope.toml"])
    assert result.exit_code == 2 and "nope.toml" in result.output


def test_replay_takes_its_table_and_the_shared_keys(in_tmp):
    from stageroute_cli.config import option_kinds, read_config
    from stageroute_cli.plan_cmd import plan
    from stageroute_cli.replay_cmd import replay

    (in_tmp / "s.toml").write_text("max-deployed = 4\nseeds = 3\n[replay]\npolicy = ['oracle']\n"
                                   "relative-budget = 0.3\n")
    values = read_config(in_tmp / "s.toml", {"plan": plan, "replay": replay})
    assert values["plan"] == {"max_deployed": 4}  # seeds is replay's only
    assert values["replay"] == {"max_deployed": 4, "seeds": 3, "policy": ["oracle"],
                                "relative_budget": 0.3}
    assert option_kinds(plan)["json"] == ("json_out", bool)


def test_init_then_plan_with_its_config_works_in_a_fresh_directory(in_tmp):
    (in_tmp / "sample_logs").symlink_to(SAMPLE)  # the checkout's sample, as in a fresh clone
    runner = CliRunner()
    made = runner.invoke(app, ["init"])
    assert made.exit_code == 0, made.output
    assert (in_tmp / "stageroute.toml").read_text() == EXAMPLE
    assert sorted(p.name for p in in_tmp.iterdir()) == ["sample_logs", "stageroute.toml"]
    result = runner.invoke(app, ["plan", "--config", "stageroute.toml", "--json", "-q"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["window"]["start"] == "2026-11-16T02:00:00Z" and doc["routing"]
    stored = list((in_tmp / "plans").glob("plan-*.json"))  # the example keeps a history
    assert [p.read_text() for p in stored] == [result.stdout]


def test_init_refuses_to_overwrite_unless_forced(in_tmp):
    (in_tmp / "stageroute.toml").write_text("# mine\n")
    refused = CliRunner().invoke(app, ["init"])
    assert refused.exit_code == 73 and "--force" in refused.output
    assert (in_tmp / "stageroute.toml").read_text() == "# mine\n"
    assert CliRunner().invoke(app, ["init", "--force"]).exit_code == 0
    assert (in_tmp / "stageroute.toml").read_text() == EXAMPLE
