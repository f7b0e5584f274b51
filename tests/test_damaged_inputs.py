"""Damaged inputs found by a hostile-input hunt, one class each: a config file that is not UTF-8,
off-policy logs whose propensity is empty or too small to weigh by, a segment column that is not
a label or not one per prompt, and a statistics store whose rows were damaged after ``stats``
wrote them. Each run ends in exactly one ``Error:`` line and its exit code (as a user runs it: a
subprocess), never an internal error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from conftest import REPO_ROOT

from stageroute.errors import ExitCode

SAMPLE = REPO_ROOT / "sample_logs"
AS_OF = "2026-11-16T00:00:00Z"


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "stageroute_cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def one_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    out = result.stdout + result.stderr
    assert "Traceback" not in out and "internal error" not in out, out
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("Error: ")] == lines[-1:], result.stderr
    for word in words:
        assert word in lines[-1], (word, lines[-1])


def test_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_bytes("[plan]\nbudget = 0.002\n".encode("utf-16"))
    result = run(["plan", "--config", "c.toml", "--logs", str(SAMPLE / "logs.parquet"),
                  "--catalog", str(SAMPLE / "catalog.csv"), "--max-deployed", "3"], tmp_path)
    one_error(result, ExitCode.USAGE, "c.toml", "not UTF-8")
    assert result.stderr.count("got") == 0  # the file is named once, not echoed again


@pytest.mark.parametrize(("value", "words"), [
    (None, ("'propensity' is empty", "request_id")),
    (1e-300, ("'propensity' is below 1e-12", "overflow")),
])
def test_off_policy_propensity_empty_or_too_small(tmp_path: Path, value: float | None,
                                                   words: tuple[str, ...]) -> None:
    logs = pl.read_parquet(SAMPLE / "logs.parquet").tail(3000)
    bad = pl.when(pl.col("reward").is_not_null() & (pl.int_range(pl.len()) % 500 == 3)).then(
        pl.lit(value, pl.Float64))
    logs.with_columns(bad.otherwise(pl.col("propensity")).alias("propensity")).write_parquet(
        tmp_path / "logs.parquet")
    result = run(["replay", "--logs", "logs.parquet", "--catalog", str(SAMPLE / "catalog.csv"),
                  "--budget", "0.002", "--max-deployed", "3", "--seeds", "1", "--quiet"], tmp_path)
    one_error(result, ExitCode.BAD_DATA, *words)


@pytest.mark.parametrize(("column", "change", "words"), [
    ("eval_name", pl.concat_list([pl.col("eval_name")]), ("of type List", "labels")),
    ("reward", None, ("of type Float64",)),
    ("model", None, ("has 11 values", "one per prompt")),
])
def test_a_segment_column_that_is_not_one_label_per_prompt(
        tmp_path: Path, routerbench: Path, column: str, change: pl.Expr | None,
        words: tuple[str, ...]) -> None:
    outcomes = pl.read_parquet(routerbench / "outcomes.parquet")
    if change is not None:
        outcomes = outcomes.with_columns(change.alias(column))
    outcomes.write_parquet(tmp_path / "outcomes.parquet")
    result = run(["replay", "--outcomes", "outcomes.parquet", "--catalog",
                  str(routerbench / "catalog.csv"), "--relative-budget", "0.3",
                  "--max-deployed", "3", "--horizon", "1000", "--seeds", "1", "--contextual",
                  "--segments", column, "--policy", "stageroute-contextual", "--quiet"], tmp_path)
    one_error(result, ExitCode.BAD_DATA, f"--segments '{column}'", *words)


DAMAGE: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] = {
    "cost_bins' is empty": lambda x: x.with_columns(
        pl.lit(None, pl.List(pl.Int32)).alias("cost_bins")),
    "last_seen' is empty": lambda x: x.with_columns(
        pl.lit(None, pl.Datetime("us", "UTC")).alias("last_seen")),
    "mean_reward' is not a finite number": lambda x: x.with_columns(
        pl.lit(float("nan")).alias("mean_reward")),
    "mean_reward' is outside [0, 1]": lambda x: x.with_columns(pl.lit(5.0).alias("mean_reward")),
    "mean_cost' is not a finite number": lambda x: x.with_columns(
        pl.lit(float("inf")).alias("mean_cost")),
    "m2_reward' is negative": lambda x: x.with_columns(-pl.col("m2_reward") - 1),
    "n_reward' is negative": lambda x: x.with_columns(-pl.col("n_reward")),
    "repeats a (window, model, segment)": lambda x: pl.concat([x, x]),
    "cost_bins' holds a bin that no cost": lambda x: x.with_columns(
        pl.col("cost_bins").list.eval(pl.lit(2**31 - 1, pl.Int32))),
    "cost_counts' holds a negative count": lambda x: x.with_columns(
        pl.col("cost_counts").list.eval(-pl.element())),
    "cost_counts' does not count each cost once": lambda x: x.with_columns(
        pl.col("cost_counts").list.eval(pl.element() * 0)),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    result = run(["stats", "--logs", str(SAMPLE / "logs.parquet"), "--out", "stats", "--quiet"],
                 root)
    assert result.returncode == 0, result.stderr
    return root / "stats"


@pytest.mark.parametrize("what", list(DAMAGE))
def test_plan_refuses_a_damaged_store(tmp_path: Path, store: Path, what: str) -> None:
    damaged = tmp_path / "stats"
    shutil.copytree(store, damaged)
    for file in [*damaged.glob("windows/*.parquet"), *damaged.glob("totals-*.parquet")]:
        DAMAGE[what](pl.read_parquet(file)).write_parquet(file)
    for window in ([], ["--window", "28d"]):
        result = run(["plan", "--stats", "stats", "--catalog", str(SAMPLE / "catalog.csv"),
                      "--budget", "0.002", "--max-deployed", "3", "--as-of", AS_OF, "--quiet",
                      *window], tmp_path)
        one_error(result, ExitCode.BAD_DATA, what, "stats --rebuild")
    rebuilt = run(["stats", "--logs", str(SAMPLE / "logs.parquet"), "--out", "stats", "--rebuild",
                   "--quiet"], tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    plan = run(["plan", "--stats", "stats", "--catalog", str(SAMPLE / "catalog.csv"), "--budget",
                "0.002", "--max-deployed", "3", "--as-of", AS_OF, "--quiet"], tmp_path)
    assert plan.returncode == 0, plan.stderr


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plans")
    for name, extra in (("plan.json", []), ("seg.json", ["--segments"])):
        result = run(["plan", "--logs", str(SAMPLE / "logs.parquet"), "--catalog",
                      str(SAMPLE / "catalog.csv"), "--budget", "0.002", "--max-deployed", "3",
                      "--as-of", "2026-11-16T02:00:00Z", "--output", name, "--quiet", *extra],
                     root)
        assert result.returncode == 0, result.stderr
    return root


@pytest.mark.parametrize("fmt", ["litellm", "envoy"])
def test_export_comments_cannot_be_broken_out_of(tmp_path: Path, plans: Path, fmt: str) -> None:
    """A plan's window and model ids reach the YAML header comments: a newline (or YAML's
    other line breaks) in them must not start a line of the config."""
    import json

    import yaml

    doc = json.loads((plans / "plan.json").read_text())
    doc["window"] = {"start": "2026\napiVersion: evil", "end": "x\u2028y: z"}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    result = run(["export", "--plan", "p.json", "--format", fmt, "--output", "out.yaml"],
                 tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out.yaml").read_text()
    config = yaml.safe_load(text)
    assert not {"y", "real"} & set(config) and config.get("apiVersion") != "evil"
    assert all(line.startswith("#") for line in text.splitlines() if "evil" in line)


@pytest.mark.parametrize(("change", "words"), [
    ("seg.json", ("one routing table per segment", "without --segments")),
    ("sum", ("add up to 1.4", "expected 1")),
    ("twice", ("twice in 'routing'",)),
    ("stray", ("routes traffic to", "not in its 'deployment'")),
    ("true", ("each row needs",)),
])
def test_replay_logs_refuses_a_plan_it_cannot_evaluate(tmp_path: Path, plans: Path, change: str,
                                                        words: tuple[str, ...]) -> None:
    import json

    plan = plans / "seg.json"
    if change != "seg.json":
        doc = json.loads((plans / "plan.json").read_text())
        if change == "sum":
            doc["routing"][0]["probability"] = 1.0
        elif change == "stray":  # a catalog model the plan does not deploy
            doc["routing"][0]["model"] = next(
                m for m in pl.read_csv(SAMPLE / "catalog.csv")["model"]
                if m not in {d["model"] for d in doc["deployment"]})
        elif change == "true":
            doc["routing"][0]["probability"] = True
        else:  # the same model again, first at probability 0
            doc["routing"].insert(0, {**doc["routing"][0], "probability": 0.0})
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps(doc))
    result = run(["replay", "--logs", str(SAMPLE / "logs.parquet"), "--catalog",
                  str(SAMPLE / "catalog.csv"), "--budget", "0.002", "--max-deployed", "3",
                  "--seeds", "1", "--policy", "plan", "--plan", str(plan), "--quiet"], tmp_path)
    one_error(result, ExitCode.BAD_DATA, *words)


def test_a_store_of_logs_from_year_1_reads_back(tmp_path: Path) -> None:
    """Window files are named by their start with a four-digit year (%Y gives '1' on Linux)."""
    import datetime as dt

    logs = pl.read_parquet(SAMPLE / "logs.parquet").tail(2000)
    old = pl.lit(dt.datetime(1, 1, 1, tzinfo=dt.UTC))
    logs.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(old)
                      .otherwise(pl.col("timestamp")).alias("timestamp")).write_parquet(
        tmp_path / "logs.parquet")
    assert run(["stats", "--logs", "logs.parquet", "--out", "s", "--quiet"],
               tmp_path).returncode == 0
    assert (tmp_path / "s" / "windows" / "w-00010101T000000Z-g1.parquet").is_file()
    result = run(["plan", "--stats", "s", "--catalog", str(SAMPLE / "catalog.csv"), "--budget",
                  "0.002", "--max-deployed", "3", "--as-of", AS_OF, "--quiet"], tmp_path)
    assert result.returncode == 0, result.stderr


def test_identical_prompts_cluster_without_warnings(tmp_path: Path, routerbench: Path) -> None:
    prompts = pl.read_parquet(routerbench / "prompts.parquet")
    prompts.with_columns(pl.lit("hello world").alias("prompt")).write_parquet(
        tmp_path / "prompts.parquet")
    result = run(["replay", "--outcomes", str(routerbench / "outcomes.parquet"), "--catalog",
                  str(routerbench / "catalog.csv"), "--relative-budget", "0.3",
                  "--max-deployed", "3", "--horizon", "1000", "--seeds", "1", "--contextual",
                  "--segments", "auto", "--prompts", "prompts.parquet", "--policy",
                  "stageroute", "--quiet"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize(("args", "words"), [
    (["replay", "--outcomes", "OUTCOMES", "--catalog", "CATALOG", "--relative-budget", "0.3",
      "--max-deployed", "3", "--horizon", "1000", "--contextual", "--segments", "eval_name",
      "--clusters", "5"], ("--clusters", "--segments 'eval_name'", "drop --clusters")),
    (["plan", "--logs", str(SAMPLE / "logs.parquet"), "--catalog", str(SAMPLE / "catalog.csv"),
      "--budget", "0.002", "--max-deployed", "3", "--as-of", AS_OF, "--routing-only",
      "--deployed", "boreal-70b,boreal-70b"], ("--deployed", "'boreal-70b' twice")),
    (["replay", "--outcomes", "OUTCOMES", "--catalog", "CATALOG", "--relative-budget", "0.3",
      "--max-deployed", "3", "--plan", "plan.json"], ("--plan has no effect with --outcomes",)),
    (["replay", "--logs", str(SAMPLE / "logs.parquet"), "--catalog", str(SAMPLE / "catalog.csv"),
      "--budget", "0.002", "--max-deployed", "3", "--contextual"],
     ("--contextual has no effect with --logs",)),
    (["replay", "--logs", str(SAMPLE / "logs.parquet"), "--catalog", str(SAMPLE / "catalog.csv"),
      "--budget", "0.002", "--max-deployed", "3", "--half-life", "7d"],
     ("--half-life has no effect with --logs",)),
    (["replay", "--outcomes", "OUTCOMES", "--catalog", "CATALOG", "--relative-budget", "0.3",
      "--max-deployed", "3", "--policy", "stageroute", "--epsilon", "0.5"],
     ("--epsilon has no effect without --policy epsilon-greedy",)),
    (["replay", "--logs", str(SAMPLE / "logs.parquet"), "--catalog", str(SAMPLE / "catalog.csv"),
      "--budget", "0.002", "--max-deployed", "3", "--policy", "uniform", "--epsilon", "0.5"],
     ("--epsilon has no effect without --policy epsilon-greedy",)),
])
def test_options_that_do_not_fit_together(tmp_path: Path, routerbench: Path, args: list[str],
                                          words: tuple[str, ...]) -> None:
    paths = {"OUTCOMES": str(routerbench / "outcomes.parquet"),
             "CATALOG": str(routerbench / "catalog.csv")}
    result = run([paths.get(a, a) for a in args], tmp_path)
    one_error(result, ExitCode.USAGE, *words)


def test_prompts_that_are_all_blank(tmp_path: Path, routerbench: Path) -> None:
    prompts = pl.read_parquet(routerbench / "prompts.parquet")
    prompts.with_columns(pl.lit(" ").alias("prompt")).write_parquet(tmp_path / "prompts.parquet")
    result = run(["replay", "--outcomes", str(routerbench / "outcomes.parquet"), "--catalog",
                  str(routerbench / "catalog.csv"), "--relative-budget", "0.3",
                  "--max-deployed", "3", "--horizon", "1000", "--seeds", "1", "--contextual",
                  "--segments", "auto", "--prompts", "prompts.parquet", "--quiet"], tmp_path)
    one_error(result, ExitCode.BAD_DATA, "every prompt is empty or whitespace")


@pytest.mark.parametrize(("change", "code", "words"), [
    ("half", ExitCode.BAD_DATA, ("add up to", "expected 1;")),
    ("stray", ExitCode.BAD_DATA, ("routes traffic to 'ghost'", "not in its 'deployment'")),
    ("dropped", 0, ()),
    ("dropped 2", ExitCode.BAD_DATA, ("'dropped' is 2", "in [0, 1]")),
    ("dropped true", ExitCode.BAD_DATA, ("'dropped' is true",)),
    ("no deployment", ExitCode.BAD_DATA, ("no 'deployment' list",)),
    ("model bo\nreal: 1", ExitCode.BAD_DATA, ("control or invisible character",)),
    ("model bo\u200breal", ExitCode.BAD_DATA, ("control or invisible character",)),
    ("model bo\ud800real", ExitCode.BAD_DATA, ("control or invisible character",)),
])
@pytest.mark.parametrize("command", ["export", "diff"])
def test_a_plan_whose_table_a_gateway_cannot_run(tmp_path: Path, plans: Path, change: str,
                                                 code: int, words: tuple[str, ...],
                                                 command: str) -> None:
    """Probabilities that do not add up to 1 (less the share the plan drops), traffic to a
    model the plan does not deploy, a plan without its deployment or with a 'dropped' that is
    no share, a model id no catalog holds (a newline, a zero-width space, a lone surrogate):
    export would renormalise, route or write them silently."""
    import json

    doc = json.loads((plans / "plan.json").read_text())
    if change == "stray":
        doc["routing"][0]["model"] = "ghost"
    elif change.startswith("dropped "):
        doc["dropped"] = {"dropped 2": 2, "dropped true": True}[change]
    elif change == "no deployment":
        del doc["deployment"]
    elif change.startswith("model "):  # in the routing and the deployment alike
        for entry in (doc["routing"][0], *[d for d in doc["deployment"]
                                           if d["model"] == doc["routing"][0]["model"]]):
            entry["model"] = change.removeprefix("model ")
    else:
        for row in doc["routing"]:
            row["probability"] /= 2
        doc["dropped"] = 0.5 if change == "dropped" else 0.0
    (tmp_path / "p.json").write_text(json.dumps(doc))  # a lone surrogate stays \ud800 here
    args = (["export", "--plan", "p.json", "--format", "litellm"] if command == "export"
            else ["diff", str(plans / "plan.json"), "p.json"])
    result = run(args, tmp_path)
    if code:
        one_error(result, code, *words)
    else:
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("value", "code"), [("   ", 0), ("openai/gpt\n-4o", ExitCode.BAD_DATA)])
def test_catalog_gateway_names_blank_or_broken(tmp_path: Path, plans: Path, value: str,
                                               code: int) -> None:
    """A blank litellm_model is not given (the model id is exported); one with a control
    character is refused rather than written into the gateway's config."""
    import json

    import yaml

    catalog = pl.read_csv(SAMPLE / "catalog.csv").with_columns(
        pl.lit(value).alias("litellm_model"))
    catalog.write_parquet(tmp_path / "catalog.parquet")
    result = run(["export", "--plan", str(plans / "plan.json"), "--format", "litellm",
                  "--catalog", "catalog.parquet"], tmp_path)
    if code:
        one_error(result, code, "column 'litellm_model'", "control or invisible character")
        return
    assert result.returncode == 0, result.stderr
    routed = {row["model"] for row in json.loads((plans / "plan.json").read_text())["routing"]}
    params = {e["litellm_params"]["model"] for e in yaml.safe_load(result.stdout)["model_list"]}
    assert params == routed


@pytest.mark.parametrize("make", ["fifo", "deep"])
def test_a_store_manifest_that_would_hang_or_recurse_is_refused(tmp_path: Path, store: Path,
                                                              make: str) -> None:
    damaged = tmp_path / "stats"
    shutil.copytree(store, damaged)
    (damaged / "manifest.json").unlink()
    if make == "fifo":
        os.mkfifo(damaged / "manifest.json")
    else:
        (damaged / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    result = run(["plan", "--stats", "stats", "--catalog", str(SAMPLE / "catalog.csv"),
                  "--budget", "0.002", "--max-deployed", "3", "--as-of", AS_OF, "--quiet"],
                 tmp_path)
    one_error(result, ExitCode.BAD_DATA, "manifest.json", "stats --rebuild")


def test_a_failed_first_stats_run_leaves_no_store_behind(tmp_path: Path) -> None:
    """A first run that fails (here on a file that is not Parquet) removes the directory it
    made, lock included; a later failure leaves an existing store as it was."""
    (tmp_path / "bad.parquet").write_text("not parquet")
    result = run(["stats", "--logs", "bad.parquet", "--out", "store", "--quiet"], tmp_path)
    one_error(result, ExitCode.BAD_DATA, "cannot be read as Parquet")
    assert not (tmp_path / "store").exists()
    made = run(["stats", "--logs", str(SAMPLE / "logs.parquet"), "--out", "store", "--quiet"],
               tmp_path)
    assert made.returncode == 0, made.stderr
    before = sorted(p.name for p in (tmp_path / "store").rglob("*"))
    result = run(["stats", "--logs", "bad.parquet", "--out", "store", "--quiet"], tmp_path)
    assert result.returncode != 0
    assert sorted(p.name for p in (tmp_path / "store").rglob("*")) == before


@pytest.mark.parametrize(("args", "env", "words"), [
    (["plan", "--logs", "", "--catalog", "c.csv", "--budget", "1", "--max-deployed", "2"], {},
     ("argument 3 is empty after --logs", "unset shell variable")),
    (["plan", "--logs=", "--catalog", "c.csv", "--budget", "1", "--max-deployed", "2"], {},
     ("argument 2 is empty (--logs)",)),
    (["plan", "--logs", "l.parquet", "--catalog", "c.csv", "--budget", "1", "--max-deployed", "2",
      "--output", "plans/"], {}, ("--output plans/ names a directory", "--output plans/NAME")),
    (["replay", "--outcomes", "o.parquet", "--catalog", "c.csv", "--budget", "1",
      "--max-deployed", "2", "--plot=figs/"], {}, ("--plot figs/ names a directory",)),
    (["--help"], {"POLARS_MAX_THREADS": "0"}, ("POLARS_MAX_THREADS='0'", "positive whole")),
    (["--help"], {"NUMBA_NUM_THREADS": "many"}, ("NUMBA_NUM_THREADS='many'",)),
])
def test_empty_arguments_and_thread_counts_fail_before_any_work(
        tmp_path: Path, args: list[str], env: dict[str, str], words: tuple[str, ...]) -> None:
    """An unset variable in a crontab (``--logs $LOGS``) read the working directory; a thread
    count of 0 made Polars panic with a Rust backtrace and Numba raise; ``--output plans/``
    wrote a file named ``plans`` (nothing is written)."""
    result = subprocess.run([sys.executable, "-m", "stageroute_cli", *args], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
                            capture_output=True, text=True, timeout=300, check=False)
    one_error(result, ExitCode.USAGE, *words)
    assert not list(tmp_path.iterdir())


PLAN = ["plan", "--logs", str(SAMPLE / "logs.parquet"), "--catalog", str(SAMPLE / "catalog.csv"),
        "--budget", "0.002", "--max-deployed", "3", "--as-of", "2026-11-16T02:00:00Z", "-q"]


def test_a_damaged_history_entry_is_planned_again_not_copied_out(tmp_path: Path) -> None:
    first = run([*PLAN, "--history", "h", "--output", "p.json"], tmp_path)
    assert first.returncode == 0, first.stderr
    good = (tmp_path / "p.json").read_text()
    (entry,) = (tmp_path / "h").glob("plan-*.json")
    entry.write_text("{corrupt")
    again = run([*PLAN, "--history", "h", "--output", "p.json"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "planned again and the file replaced" in again.stderr
    assert (tmp_path / "p.json").read_text() == entry.read_text()
    assert json.loads(entry.read_text())["run_id"] == json.loads(good)["run_id"]
    third = run([*PLAN, "--history", "h", "--json"], tmp_path)
    assert "already planned" in third.stderr and json.loads(third.stdout)["budget"] == 0.002


def test_history_paths_that_would_clash(tmp_path: Path) -> None:
    """--output into the history, a history whose files the --logs glob reads back, and a
    history given as '.'."""
    assert run([*PLAN, "--history", "h"], tmp_path).returncode == 0
    (entry,) = (tmp_path / "h").glob("plan-*.json")
    result = run([*PLAN[:6], "0.003", *PLAN[7:], "--history", "h", "--output", str(entry)],
                 tmp_path)
    one_error(result, ExitCode.USAGE, "is a file of the --history h")
    (tmp_path / "g").mkdir()
    shutil.copy(SAMPLE / "logs.parquet", tmp_path / "g")
    result = run([*PLAN[:2], "g/*", *PLAN[3:], "--history", "g"], tmp_path)
    one_error(result, ExitCode.USAGE, "--history g/history.lock", "matches the glob")
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["logs.parquet"]
    (tmp_path / "here").mkdir()
    assert run([*PLAN, "--history", "."], tmp_path / "here").returncode == 0
    assert list((tmp_path / "here").glob("plan-*.json"))


def test_replay_refuses_outcome_models_the_catalog_lacks(tmp_path: Path,
                                                        routerbench: Path) -> None:
    catalog = pl.read_csv(routerbench / "catalog.csv")
    catalog.filter(pl.col("model") != "claude-v1").write_csv(tmp_path / "c.csv")
    result = run(["replay", "--outcomes", str(routerbench / "outcomes.parquet"), "--catalog",
                  "c.csv", "--relative-budget", "0.3", "--max-deployed", "2", "--horizon",
                  "1000", "--seeds", "1", "-q"], tmp_path)
    one_error(result, ExitCode.BAD_DATA, "'claude-v1' is not in the catalog")
    result = run(["replay", "--outcomes", str(routerbench / "outcomes.parquet"), "--catalog",
                  str(SAMPLE / "catalog.csv"), "--relative-budget", "0.3", "--max-deployed",
                  "2", "--horizon", "1000", "--seeds", "1", "-q"], tmp_path)
    one_error(result, ExitCode.BAD_DATA, "is not in the catalog (nor are 10 more)")


@pytest.mark.parametrize(("row", "words"), [
    ("s1,e,2,0.1", ("column 'a' is outside [0, 1]: 2.0", "'s1'")),
    ("s1,e,0.5,-0.1", ("column 'a|total_cost' is negative: -0.1", "'s1'")),
    ("s1,e,0.5,inf", ("column 'a|total_cost' is empty or not finite: inf",)),
    ("s1,e,0.5,1e-200", ("column 'a|total_cost' is outside the range", "1e-200")),
    (",e,0.5,0.1", ("column 'sample_id' is empty",)),
])
def test_import_routerbench_refuses_what_the_outcomes_loader_refuses(
        tmp_path: Path, row: str, words: tuple[str, ...]) -> None:
    """The importer applies the loader's value rules before writing: a file it writes always
    loads in replay, and a refused import leaves --output as it was."""
    (tmp_path / "w.csv").write_text(f"sample_id,eval_name,a,a|total_cost\ns0,e,1,0\n{row}\n")
    (tmp_path / "o.parquet").write_bytes(b"before")
    result = run(["import", "routerbench", "w.csv", "--output", "o.parquet"], tmp_path)
    one_error(result, ExitCode.BAD_DATA, "RouterBench file w.csv", "(0-based row 1",
              "nothing was written", *words)
    assert (tmp_path / "o.parquet").read_bytes() == b"before"
    assert {p.name for p in tmp_path.iterdir()} - {"o.parquet.lock"} == {"o.parquet", "w.csv"}


@pytest.mark.parametrize(("model", "why"), [("", "is empty"), (" a", "surrounding whitespace"),
                                           ("a\nb", "control or invisible"),
                                           ("OK", "differ only in case")])
def test_import_routerbench_refuses_columns_that_name_no_model(tmp_path: Path, model: str,
                                                              why: str) -> None:
    """A score column's name is the model id written: one no catalog can list is refused."""
    pl.DataFrame({"sample_id": ["s0"], "eval_name": ["e"], "ok": [1.0], "ok|total_cost": [0.1],
                  model: [0.5], f"{model}|total_cost": [0.1]}).write_parquet(tmp_path / "w.parquet")
    result = run(["import", "routerbench", "w.parquet", "--output", "o.parquet"], tmp_path)
    one_error(result, ExitCode.BAD_DATA, "RouterBench file w.parquet", why, "rename")
    assert not (tmp_path / "o.parquet").exists()


def test_import_routerbench_output_loads_in_replay(tmp_path: Path) -> None:
    (tmp_path / "w.csv").write_text("sample_id,eval_name,a,a|total_cost,b,b|total_cost\n"
                                    "s1,e,1,0.1,0,0\ns2,e,0.5,0.2,1,1e-100\n")
    result = run(["import", "routerbench", "w.csv", "--output", "o.parquet"], tmp_path)
    assert result.returncode == 0, result.stderr
    from stageroute.inputs.outcomes import load_outcomes

    assert load_outcomes(tmp_path / "o.parquet").height == 4


@pytest.fixture(scope="module")
def tiny_values(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample logs with boreal-70b's rewards scaled by 1e-300 and boreal-8b's costs 5e-324
    (subnormal): settling such means once overflowed its decimal scale into NaN (JSON null)."""
    root = tmp_path_factory.mktemp("tiny")
    logs = pl.read_parquet(SAMPLE / "logs.parquet")
    logs.with_columns(
        pl.when(pl.col("model") == "boreal-70b").then(pl.col("reward") * 1e-300)
        .otherwise(pl.col("reward")).alias("reward"),
        pl.when(pl.col("model") == "boreal-8b").then(pl.lit(5e-324))
        .otherwise(pl.col("cost")).alias("cost"),
    ).write_parquet(root / "logs.parquet")
    return root


@pytest.mark.parametrize("source", ["logs", "stats"])
def test_tiny_and_subnormal_means_reach_the_plan(tiny_values: Path, source: str) -> None:
    import json

    from schema_guard import problems

    if source == "stats":
        made = run(["stats", "--logs", "logs.parquet", "--out", "store", "--quiet"], tiny_values)
        assert made.returncode == 0 and made.stderr == "", made.stderr
    result = run(["plan", f"--{source}", "logs.parquet" if source == "logs" else "store",
                  "--catalog", str(SAMPLE / "catalog.csv"), "--max-deployed", "3",
                  "--as-of", "2026-11-16T02:00:00Z", "-q", "--budget", "0.002", "--json"],
                 tiny_values)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no RuntimeWarning
    doc = json.loads(result.stdout)
    assert problems("plan", doc, source) == []
    for entry in doc["deployment"]:  # null only for a model without samples
        assert isinstance(entry["mean_reward"], float) or entry["n"] == 0, entry
        assert isinstance(entry["mean_cost"], float) or entry["n_cost"] == 0, entry
    means = {c["model"]: c for c in doc["candidates"]}
    assert 0 < means["boreal-70b"]["mean_reward"] < 1e-299
    assert means["boreal-8b"]["mean_cost"] == 5e-324


@pytest.mark.parametrize("change", ["twice", "version-true"])
def test_a_previous_plan_that_lists_a_model_twice_or_says_true(tmp_path: Path, plans: Path,
                                                              change: str) -> None:
    """--previous reads the deployment as --deployed does (a model twice is refused there), and
    a schema_version of true is no version 1 (true == 1 in Python)."""
    doc = json.loads((plans / "plan.json").read_text())
    if change == "twice":
        doc["deployment"].append(dict(doc["deployment"][0]))
        words: tuple[str, ...] = ("twice in 'deployment'",)
    else:
        doc["schema_version"] = True
        words = ("has schema_version True", "reads version 1")
    (tmp_path / "prev.json").write_text(json.dumps(doc))
    result = run([*PLAN, "--routing-only", "--previous", "prev.json"], tmp_path)
    one_error(result, ExitCode.BAD_DATA, *words)


def test_a_config_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    """Windows editors save UTF-8 with a BOM; TOML is UTF-8, and the BOM is no key."""
    (tmp_path / "c.toml").write_text("[plan]\nbudget = 0.002\n", encoding="utf-8-sig")
    result = run([*PLAN[:5], "--max-deployed", "3", "--as-of", "2026-11-16T02:00:00Z", "-q",
                  "--config", "c.toml", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["budget"] == 0.002


@pytest.mark.parametrize("damage", ["totals-fifo", "rows-overflow"])
def test_store_files_that_are_not_files_or_count_past_int64(tmp_path: Path, store: Path,
                                                          damage: str) -> None:
    """A totals file that is a FIFO is not "missing"; counts whose sum wraps int64 are not
    "no rows": both are named for what they are."""
    damaged = tmp_path / "stats"
    shutil.copytree(store, damaged)
    totals = next(damaged.glob("totals-*.parquet"))
    if damage == "totals-fifo":
        totals.unlink()
        os.mkfifo(totals)
        words: tuple[str, ...] = (totals.name, "is not a regular file")
    else:
        for path in [totals, *sorted((damaged / "windows").glob("*.parquet"))]:
            frame = pl.read_parquet(path)
            frame.with_columns(pl.lit(2**62, pl.Int64).alias("rows")).write_parquet(path)
        words = ("column 'rows' is above 1e+12",)
    result = run(["plan", "--stats", "stats", "--catalog", str(SAMPLE / "catalog.csv"),
                  "--budget", "0.002", "--max-deployed", "3", "--as-of", AS_OF, "--quiet"],
                 tmp_path)
    one_error(result, ExitCode.BAD_DATA, *words, "stats --rebuild")


@pytest.mark.parametrize("damage", ["shifted-start", "window-seconds", "late-request",
                                    "swapped-files", "totals-9999"])
def test_store_rows_outside_their_window_are_refused(tmp_path: Path, store: Path,
                                                     damage: str) -> None:
    """Window files must sit where the manifest's anchor and window_seconds put them, with
    their requests inside; totals no later than the manifest's last_seen."""
    import datetime as dt
    import json

    damaged = tmp_path / "stats"
    shutil.copytree(store, damaged)
    first = sorted((damaged / "windows").glob("*.parquet"))[0]
    frame = pl.read_parquet(first)
    hour = dt.timedelta(hours=1)
    if damage == "shifted-start":
        frame.with_columns(pl.col("window_start") + hour).write_parquet(first)
        words: tuple[str, ...] = ("does not start where",)
    elif damage == "window-seconds":
        manifest = json.loads((damaged / "manifest.json").read_text())
        manifest["window_seconds"] = 3600
        (damaged / "manifest.json").write_text(json.dumps(manifest))
        words = ("does not start where",)
    elif damage == "swapped-files":  # each file holds the other's window, both listed
        second = sorted((damaged / "windows").glob("*.parquet"))[1]
        other = pl.read_parquet(second)
        frame.write_parquet(second)
        other.write_parquet(first)
        words = ("is not the window its manifest lists the file for",)
    elif damage == "late-request":
        frame.with_columns(pl.col("last_seen") + dt.timedelta(days=30)).write_parquet(first)
        words = ("has a request outside the window",)
    else:
        totals = next(damaged.glob("totals-*.parquet"))
        pl.read_parquet(totals).with_columns(
            pl.lit(dt.datetime(9999, 1, 1, tzinfo=dt.UTC)).alias("last_seen")).write_parquet(totals)
        words = ("9999", "after the manifest's last_seen")
    # A drift window makes the plan read the window files (otherwise the totals stand for them).
    drift = [] if damage == "totals-9999" else ["--window", "365d"]
    result = run(["plan", "--stats", "stats", "--catalog", str(SAMPLE / "catalog.csv"),
                  "--budget", "0.002", "--max-deployed", "3", "--as-of", AS_OF, "--quiet",
                  *drift], tmp_path)
    one_error(result, ExitCode.BAD_DATA, *words, "stats --rebuild")
