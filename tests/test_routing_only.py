"""``plan --routing-only``: the deployment stays, the routing table is re-solved from the latest
statistics (the hourly or daily refresh inside a weekly stage)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import AS_OF, CATALOG_CSV, REPO_ROOT, small_logs

from stageroute.errors import BadDataError, InfeasibleError, InputMissingError, UsageError
from stageroute.optimize.route import solve_route_pyomo
from stageroute.options import Solver
from stageroute.plan import PlanConfig, make_plan, make_routing_plan, plan_document

KEPT = ("alpha", "beta")  # a full plan would deploy alpha and gamma on these logs


def alpha_fails(frame: pl.DataFrame, rows: int = 40) -> pl.DataFrame:
    """``frame`` plus ``rows`` requests on the last day before AS_OF where alpha earns nothing."""
    start = dt.datetime(2026, 2, 28, 6, tzinfo=dt.UTC)
    extra = pl.DataFrame({
        "request_id": [f"x{i:04d}" for i in range(rows)],
        "timestamp": [start + dt.timedelta(minutes=10 * i) for i in range(rows)],
        "model": ["alpha"] * rows, "reward": [0.0] * rows, "cost": [0.001] * rows,
        "input_tokens": [100] * rows, "output_tokens": [50] * rows,
    }, schema=frame.schema)
    return pl.concat([frame, extra])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(CATALOG_CSV)
    before, after = tmp_path / "before.parquet", tmp_path / "after.parquet"
    small_logs(60).write_parquet(before)
    alpha_fails(small_logs(60)).write_parquet(after)
    return {"catalog": catalog, "before": before, "after": after}


def config(**options) -> PlanConfig:
    """The paper's exploration (no slice, no floors): the tables below are the plain RouteOPT."""
    return PlanConfig(**{"budget": 0.0015, "max_deployed": 2, "as_of": AS_OF,
                         "canary_share": 1.0, **options})


def table(plan) -> dict[str, float]:
    return {m.model: m.probability for m in plan.deployment}


def test_the_deployment_is_kept_and_the_table_follows_the_statistics(files):
    full = make_plan(files["before"], files["catalog"], config(deployed=KEPT))
    assert sorted(table(full)) == ["alpha", "gamma"]  # DeployOPT would swap beta for gamma
    plans = [make_plan(files[log], files["catalog"], config(routing_only=True, deployed=KEPT))
             for log in ("before", "after")]
    for plan in plans:
        assert sorted(table(plan)) == list(KEPT)
        assert {m.action for m in plan.deployment} == {"keep"}
        assert plan.evicted == ()
        assert [m.action for m in plan.candidates if not m.deployed] == ["idle"]
        assert any(note.startswith("routing refresh (--routing-only)") for note in plan.notes)
    before, after = (table(p) for p in plans)
    assert before == {"alpha": 1.0, "beta": 0.0}
    assert after["alpha"] == pytest.approx(0.5) and after["beta"] == pytest.approx(0.5)
    assert plans[0].run_id != plans[1].run_id


@pytest.mark.parametrize("solver", list(Solver))
@pytest.mark.parametrize("budget", [0.0009, 0.0015, 0.01])
def test_the_table_is_the_routing_lp_on_the_kept_set(files, solver, budget):
    """The table is RouteOPT's optimum on the kept set with the plan's bounds (Pyomo as reference)."""
    plan = make_routing_plan(files["after"], files["catalog"],
                             config(routing_only=True, deployed=KEPT, budget=budget, solver=solver))
    lines = sorted(plan.deployment, key=lambda m: m.model)
    u, c, a = (np.array([getattr(m, f) for m in lines]) for f in ("reward_ucb", "cost_lcb", "max_share"))
    reference = solve_route_pyomo(u, c, a, budget, solver)
    got = np.array([m.probability for m in lines])
    assert got @ u == pytest.approx(reference.objective, abs=1e-6)
    assert got @ c <= budget * (1 + 1e-9) or plan.over_budget
    assert plan.over_budget == reference.over_budget
    assert got.sum() == pytest.approx(1.0) and np.all(got <= a + 1e-12)


def test_a_model_that_left_the_pool_is_dropped_with_a_warning(files, tmp_path):
    catalog = tmp_path / "retiring.csv"
    catalog.write_text(CATALOG_CSV.replace("gamma,2026-01-01,2027-01-01", "gamma,2026-01-01,2026-03-04"))
    plan = make_plan(files["before"], catalog, config(routing_only=True, deployed=("alpha", "gamma")))
    assert table(plan) == {"alpha": 1.0}
    assert plan.evicted == ()
    assert [w for w in plan.warnings if "'gamma'" in w] == [
        "model 'gamma' of --deployed is not available for the stage (retires mid-stage on "
        "2026-03-04): dropped from the deployment, the table routes among the others"]


def write_previous(path: Path, models: list[str], **extra) -> Path:
    path.write_text(json.dumps({"schema_version": 1, "deployment": [{"model": m} for m in models],
                                **extra}))
    return path


def test_previous_models_no_longer_in_the_catalog_are_dropped(files, tmp_path):
    previous = write_previous(tmp_path / "prev.json", ["beta", "omega", "alpha"])
    plan = make_plan(files["before"], files["catalog"], config(routing_only=True, previous=previous))
    assert sorted(table(plan)) == ["alpha", "beta"]
    assert any("'omega'" in w and "no longer in the catalog" in w for w in plan.warnings)
    assert plan_document(plan)["routing_only"] is True


def test_the_run_id_follows_the_kept_set(files, tmp_path):
    ids = {make_plan(files["before"], files["catalog"],
                     config(routing_only=True,
                            previous=write_previous(tmp_path / "prev.json", models))).run_id
           for models in (["alpha", "beta"], ["alpha", "gamma"])}
    assert len(ids) == 2


@pytest.mark.parametrize(("content", "error", "words"), [
    (None, InputMissingError, "does not exist"),
    ("{", BadDataError, "not valid JSON"),
    ("[1, 2]", BadDataError, "holds an array"),
    ('{"schema_version": 1}', BadDataError, "no 'deployment' list"),
    ('{"schema_version": 2, "deployment": []}', BadDataError, "schema_version 2"),
    ('{"schema_version": 1, "deployment": [{"n": 3}]}', BadDataError, "entry 1 has no model id"),
    ('{"schema_version": 1, "deployment": []}', BadDataError, "deploys no model"),
    ('{"schema_version": 1, "deployment": [{"model": "omega"}]}', InfeasibleError,
     "'omega' is no longer in the catalog"),
    (b"\xff\xfe", BadDataError, "not UTF-8"),
])
def test_a_bad_previous_plan_names_the_file(files, tmp_path, content, error, words):
    previous = tmp_path / "prev.json"
    if isinstance(content, bytes):
        previous.write_bytes(content)
    elif content is not None:
        previous.write_text(content)
    with pytest.raises(error, match="previous plan .*prev.json") as info:
        make_plan(files["before"], files["catalog"], config(routing_only=True, previous=previous))
    assert words in str(info.value)


def test_a_directory_is_no_previous_plan(files, tmp_path):
    with pytest.raises(InputMissingError, match="is a directory"):
        make_plan(files["before"], files["catalog"], config(routing_only=True, previous=tmp_path))


@pytest.mark.parametrize(("options", "words"), [
    ({"routing_only": True}, "neither was given"),
    ({"routing_only": True, "deployed": KEPT, "previous": "p.json"}, "both were given"),
    ({"previous": "p.json"}, "add --routing-only"),
    ({"routing_only": True, "deployed": KEPT, "max_changes": 1}, "drop one of them"),
])
def test_options_that_make_no_sense_together(options, words):
    with pytest.raises(UsageError, match=words):
        config(**options)


def test_more_kept_models_than_max_deployed_is_a_usage_error(files):
    with pytest.raises(UsageError, match="--max-deployed 3"):
        make_plan(files["before"], files["catalog"],
                  config(routing_only=True, deployed=("alpha", "beta", "gamma")))


def test_make_routing_plan_needs_a_routing_only_config(files):
    with pytest.raises(ValueError, match="routing_only"):
        make_routing_plan(files["before"], files["catalog"], config())


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "stageroute_cli", "plan", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


COMMON = ["--catalog", "catalog.csv", "--budget", "0.0015", "--max-deployed", "2", "--as-of",
          "2026-03-01", "--canary-share", "1"]


def test_previous_round_trip_from_a_real_plan(files, tmp_path):
    """A weekly plan (--json), then a daily refresh that reads it and rewrites its own output."""
    (tmp_path / "plans").mkdir()
    weekly = run(["--logs", "before.parquet", *COMMON, "--json", "-q"], tmp_path)
    assert weekly.returncode == 0, weekly.stderr
    (tmp_path / "plans" / "current.json").write_text(weekly.stdout)
    week = json.loads(weekly.stdout)
    refresh = ["--logs", "after.parquet", *COMMON, "--routing-only", "--previous",
               "plans/current.json", "--stage-length", "1d", "--output", "plans/current.json", "-q"]
    for _ in range(2):  # the second refresh reads the first one's output
        result = run(refresh, tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "" and result.stderr == ""  # a silent cron run
        day_plan = json.loads((tmp_path / "plans" / "current.json").read_text())
        assert day_plan.keys() - week.keys() == set() and week.keys() - day_plan.keys() == set()
        assert day_plan["routing_only"] is True and week["routing_only"] is False
        assert sorted(d["model"] for d in day_plan["deployment"]) == ["alpha", "gamma"]
        assert {d["action"] for d in day_plan["deployment"]} == {"keep"}
        assert day_plan["evicted"] == []
        assert day_plan["window"]["end"] == "2026-03-02T00:00:00Z"
    assert {r["model"]: r["probability"] for r in week["routing"]} == {"alpha": 1.0, "gamma": 0.0}
    day = {r["model"]: r["probability"] for r in day_plan["routing"]}
    assert day["alpha"] < 1.0 and day["gamma"] > 0.0  # alpha failed since: the table moved
