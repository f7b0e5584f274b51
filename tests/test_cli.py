"""The commands end to end through Typer's CliRunner: exit codes, stdout contracts, files."""

import datetime as dt
import json
import math
from importlib.metadata import version
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from stageroute_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_logs"
PLAN = ["plan", "--logs", str(SAMPLE / "logs.parquet"), "--catalog", str(SAMPLE / "catalog.csv"),
        "--budget", "0.002", "--max-deployed", "3", "--as-of", "2026-11-16T02:00:00Z"]
FIXED_PLAN_KEYS = {"schema_version", "window", "budget", "max_deployed", "solver", "deployment",
                   "evicted", "routing", "expected", "over_budget"}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_plan_json_prints_only_the_document_and_it_is_stable(runner, tmp_path):
    first = runner.invoke(app, [*PLAN, "--json", "--quiet"])
    second = runner.invoke(app, [*PLAN, "--json", "--quiet", "--output", str(tmp_path / "p.json")])
    assert first.exit_code == 0 and second.exit_code == 0
    assert first.stdout == second.stdout  # same inputs, same bytes
    assert (tmp_path / "p.json").read_text() == first.stdout
    doc = json.loads(first.stdout)
    assert FIXED_PLAN_KEYS <= doc.keys()
    assert doc["schema_version"] == 1 and doc["solver"] == "highs"
    assert (doc["budget"], doc["max_deployed"]) == (0.002, 3)
    assert doc["window"] == {"start": "2026-11-16T02:00:00Z", "end": "2026-11-23T02:00:00Z"}
    for row in doc["deployment"]:
        assert {"model", "action", "n", "mean_reward", "reward_ucb", "mean_cost", "cost_lcb"} <= row.keys()
    assert set(doc["expected"]) == {"reward_ucb", "cost_lcb", "reward_mean", "cost_mean"}


def test_plan_json_is_consistent_with_the_logs_and_the_catalog(runner):
    doc = json.loads(runner.invoke(app, [*PLAN, "--json", "-q"]).stdout)
    deployed = [d["model"] for d in doc["deployment"]]
    assert 1 <= len(deployed) <= doc["max_deployed"]
    assert [r["model"] for r in doc["routing"]] == deployed
    # keep = deployed now and again; the others deployed now are evicted
    now = set(doc["currently_deployed"])
    assert {d["model"]: d["action"] for d in doc["deployment"]} == {
        m: "keep" if m in now else "add" for m in deployed}
    assert sorted(e["model"] for e in doc["evicted"]) == sorted(now - set(deployed))
    # the routing table: a distribution within the catalog's max_share
    shares = dict(pl.read_csv(SAMPLE / "catalog.csv").select("model", "max_share").iter_rows())
    p = np.array([r["probability"] for r in doc["routing"]])
    assert p.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(p >= 0)
    for r in doc["routing"]:
        assert r["max_share"] == shares[r["model"]]
        assert r["probability"] <= r["max_share"] + 1e-9
    # the expected figures are the mixture of the deployed models' bounds, within the budget
    ucb = np.array([d["reward_ucb"] for d in doc["deployment"]])
    lcb = np.array([d["cost_lcb"] for d in doc["deployment"]])
    assert doc["expected"]["reward_ucb"] == pytest.approx(float(p @ ucb), rel=1e-9)
    assert doc["expected"]["cost_lcb"] == pytest.approx(float(p @ lcb), rel=1e-9)
    assert not doc["over_budget"] and doc["expected"]["cost_lcb"] <= doc["budget"] * (1 + 1e-9)
    untried = any(d["mean_reward"] is None for d, q in zip(doc["deployment"], p, strict=True) if q > 0)
    assert (doc["expected"]["reward_mean"] is None) == untried
    # every candidate's n and means are those of the log rows before --as-of
    logs = pl.read_parquet(SAMPLE / "logs.parquet").filter(
        pl.col("timestamp") < dt.datetime(2026, 11, 16, 2, tzinfo=dt.UTC))
    by_model = {r["model"]: r for r in logs.group_by("model").agg(
        n=pl.col("reward").count(), mean_reward=pl.col("reward").mean(),
        mean_cost=pl.col("cost").mean()).iter_rows(named=True)}
    assert doc["logs"]["rows_used"] == logs.height
    for row in [*doc["candidates"], *doc["deployment"]]:
        seen = by_model.get(row["model"])
        assert row["n"] == (seen["n"] if seen else 0), row["model"]
        if row["n"]:
            assert row["mean_reward"] == pytest.approx(seen["mean_reward"], rel=1e-9)
            assert row["mean_cost"] == pytest.approx(seen["mean_cost"], rel=1e-9)
            assert row["mean_reward"] <= row["reward_ucb"] <= 1.0
            assert 0.0 <= row["cost_lcb"] <= row["mean_cost"]


def test_plan_table_output_and_progress_on_stderr(runner):
    result = runner.invoke(app, PLAN)
    assert result.exit_code == 0
    for part in ("Deployment", "Routing table", "Expected per request", "Budget"):
        assert part in result.stdout
    doc = json.loads(runner.invoke(app, [*PLAN, "--json", "-q"]).stdout)
    for row in doc["deployment"]:  # the table shows the plan of the JSON document
        assert row["model"] in result.stdout
    assert "stageroute: scanning logs" in result.stderr


def test_both_solvers_give_the_same_plan(runner):
    docs = [json.loads(runner.invoke(app, [*PLAN, "--json", "-q", "--solver", s]).stdout)
            for s in ("highs", "glpk")]
    for key in ("deployment", "routing", "expected", "over_budget"):
        assert docs[0][key] == docs[1][key]


def test_deployed_option_sets_keep_add_and_evict(runner):
    doc = json.loads(runner.invoke(app, [*PLAN, "--json", "-q", "--deployed",
                                         "boreal-70b,atlas-pro-2"]).stdout)
    actions = {d["model"]: d["action"] for d in doc["deployment"]}
    assert actions["boreal-70b"] == "keep"
    assert all(a == "add" for m, a in actions.items() if m != "boreal-70b")
    assert [e["model"] for e in doc["evicted"]] == ["atlas-pro-2"]
    bad = runner.invoke(app, [*PLAN, "--deployed", "nope"])
    assert bad.exit_code == 2 and "Error: --deployed names 'nope'" in bad.stderr


def test_allow_drop_refuses_traffic_instead_of_going_over_budget(runner):
    tight = [*PLAN[:-6], "--budget", "0.00005", "--max-deployed", "3", "--as-of", "2026-11-16T02:00:00Z"]
    over = runner.invoke(app, [*tight, "--json", "-q"])
    assert over.exit_code == 10 and over.stdout == ""
    dropped = runner.invoke(app, [*tight, "--json", "-q", "--allow-drop"])
    assert dropped.exit_code == 0
    doc = json.loads(dropped.stdout)
    assert not doc["over_budget"] and doc["dropped"] > 0
    assert doc["expected"]["cost_lcb"] <= 0.00005 + 1e-12


def test_feedback_file_and_token_pricing(runner, tmp_path):
    logs = pl.read_parquet(SAMPLE / "logs.parquet")
    logs.drop("reward", "cost").write_parquet(tmp_path / "requests.parquet")
    logs.select("request_id", "reward").drop_nulls().write_parquet(tmp_path / "feedback.parquet")
    joined = runner.invoke(app, ["plan", "--logs", str(tmp_path / "requests.parquet"), "--catalog",
                                 str(SAMPLE / "catalog.csv"), "--budget", "0.002", "--max-deployed",
                                 "3", "--as-of", "2026-11-16T02:00:00Z", "--feedback",
                                 str(tmp_path / "feedback.parquet"), "--json", "-q"])
    assert joined.exit_code == 0, joined.stderr
    doc = json.loads(joined.stdout)
    assert doc["logs"]["cost_source"] == "tokens"
    original = json.loads(runner.invoke(app, [*PLAN, "--json", "-q"]).stdout)
    # Same rewards; costs re-priced from tokens equal the logged ones (the sample prices them so).
    got = {d["model"]: d for d in doc["candidates"]}
    for row in original["candidates"]:
        assert got[row["model"]]["n"] == row["n"]
        assert got[row["model"]]["mean_reward"] == pytest.approx(row["mean_reward"])
        if row["mean_cost"] is not None:
            assert got[row["model"]]["mean_cost"] == pytest.approx(row["mean_cost"], rel=1e-6)


REPLAY_OPTIONS = ["--relative-budget", "0.3", "--max-deployed", "3", "--horizon", "5000",
                  "--policy", "stageroute", "--policy", "oracle", "--policy", "uniform", "--json", "-q"]
T975_2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # Student t quantile, 2 degrees of freedom (4.3027)


def run_replay(runner, routerbench, *options):
    result = runner.invoke(app, ["replay", "--outcomes", str(routerbench / "outcomes.parquet"),
                                 "--catalog", str(routerbench / "catalog.csv"), *REPLAY_OPTIONS,
                                 *options])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_replay_json_plot_and_policies(runner, tmp_path, routerbench):
    doc = run_replay(runner, routerbench, "--seeds", "3", "--plot", str(tmp_path / "r.png"))
    assert {"schema_version", "horizon", "stages", "seeds", "budget", "max_deployed", "oracle_value",
            "policies"} <= doc.keys()
    assert doc["stages"] == 17 and doc["horizon"] == 5000  # round(5000 ** (1/3))
    assert [p["policy"] for p in doc["policies"]] == ["stageroute", "oracle", "uniform"]
    outcomes = pl.read_parquet(routerbench / "outcomes.parquet")
    max_mean_cost = outcomes.group_by("model").agg(pl.col("cost").mean())["cost"].max()
    assert doc["budget"] == pytest.approx(0.3 * max_mean_cost, rel=1e-9)
    oracle = doc["policies"][1]
    assert oracle["mean_reward"] == pytest.approx(doc["oracle_value"], rel=1e-9)
    assert oracle["mean_cost"] <= doc["budget"] * (1 + 1e-9)
    # each seed alone, through the same command: the three-seed figures are their mean and
    # Student-t interval (t = 4.303 with two degrees of freedom); one seed has no interval
    singles = [run_replay(runner, routerbench, "--seeds", "1", "--seed", str(s)) for s in (0, 1, 2)]
    for i, p in enumerate(doc["policies"]):
        assert {"mean_reward", "mean_cost", "cost_over_budget", "regret", "suboptimality", "ci95",
                "suboptimality_at_cost", "budget_violation", "worst_stage_cost_over_budget",
                "rank"} <= p.keys()
        assert p["budget_violation"] == pytest.approx(max(0.0, p["cost_over_budget"] - 1), abs=1e-9)
        assert p["ci95"].keys() == singles[0]["policies"][i]["ci95"].keys()
        assert all(ci is None for ci in singles[0]["policies"][i]["ci95"].values())
        assert p["regret"] == pytest.approx(
            (doc["oracle_value"] - p["mean_reward"]) * doc["horizon"], rel=1e-6, abs=1e-6)
        assert p["suboptimality"] == pytest.approx(1 - p["mean_reward"] / doc["oracle_value"],
                                                   rel=1e-6, abs=1e-9)
        assert p["cost_over_budget"] == pytest.approx(p["mean_cost"] / doc["budget"], rel=1e-9)
        per_seed = [s["policies"][i] for s in singles]
        for key in ("mean_reward", "suboptimality"):
            values = np.array([s[key] for s in per_seed])
            assert p[key] == pytest.approx(values.mean(), rel=1e-9, abs=1e-12)
            if p["policy"] == "oracle":
                continue
            lo, hi = p["ci95"][key]
            half = T975_2 * values.std(ddof=1) / math.sqrt(3)
            assert half > 0
            assert (lo + hi) / 2 == pytest.approx(values.mean(), rel=1e-9, abs=1e-12)
            assert (hi - lo) / 2 == pytest.approx(half, rel=1e-3)
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_replay_usage_errors(runner, routerbench):
    base = ["replay", "--outcomes", str(routerbench / "outcomes.parquet"), "--catalog",
            str(routerbench / "catalog.csv"), "--max-deployed", "3"]
    neither = runner.invoke(app, base)
    assert neither.exit_code == 2 and "exactly one of --budget and --relative-budget" in neither.stderr
    bad_policy = runner.invoke(app, [*base, "--budget", "0.001", "--policy", "magic"])
    assert bad_policy.exit_code == 2 and "--policy 'magic'" in bad_policy.stderr


def test_import_routerbench_round_trip(runner, tmp_path, routerbench):
    long = pl.read_parquet(routerbench / "outcomes.parquet")
    wide = long.pivot(on="model", index=["sample_id", "eval_name"], values="reward")
    costs = long.pivot(on="model", index="sample_id", values="cost")
    costs = costs.rename({m: f"{m}|total_cost" for m in costs.columns if m != "sample_id"})
    wide = wide.join(costs, on="sample_id")
    # A repeated id and a missing score are dropped and counted, as in the upstream file.
    extra = wide.head(1).with_columns(pl.lit(None, pl.Float64).alias("claude-v1"),
                                      pl.lit("extra-1").alias("sample_id"))
    pl.concat([wide, wide.head(1), extra]).write_csv(tmp_path / "wide.csv")
    result = runner.invoke(app, ["import", "routerbench", str(tmp_path / "wide.csv"), "--output",
                                 str(tmp_path / "long.parquet")])
    assert result.exit_code == 0, result.stderr
    assert "dropped 1 repeated and 1 incomplete" in result.stderr
    got = pl.read_parquet(tmp_path / "long.parquet").sort("sample_id", "model")
    kept = long.filter(pl.col("sample_id") != wide["sample_id"][0]).sort("sample_id", "model")
    assert got.select("sample_id", "model", "reward", "cost").equals(
        kept.select("sample_id", "model", "reward", "cost"))


def test_version_and_help(runner):
    assert runner.invoke(app, ["--version"]).stdout == f"stageroute {version('stageroute')}\n"
    help_text = runner.invoke(app, ["plan", "--help"]).stdout
    for option in ("--logs", "--catalog", "--budget", "--max-deployed", "--as-of", "--stage-length",
                   "--solver", "--gamma", "--json", "--output"):
        assert option in help_text
