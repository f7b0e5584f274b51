import datetime as dt
import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.outcomes import load_outcomes, simulate_log, to_matrix
from stageroute.optimize.route import solve_route
from stageroute.options import Solver
from stageroute.plan import PlanConfig, make_plan, plan_document

AS_OF = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)  # all 11 models released, none retired


@pytest.fixture(scope="module")
def routerbench_log(tmp_path_factory, routerbench):
    """300k requests, each a random prompt served by a model drawn uniformly among those
    released by then, with that pair's real RouterBench reward and cost."""
    matrix = to_matrix(load_outcomes(routerbench / "outcomes.parquet"))
    catalog = load_catalog(routerbench / "catalog.csv")
    log = simulate_log(matrix, catalog, 300_000, dt.datetime(2023, 3, 14, tzinfo=dt.UTC), AS_OF, seed=1)
    path = tmp_path_factory.mktemp("rb") / "log.parquet"
    log.write_parquet(path)
    return path, matrix, routerbench / "catalog.csv"


def true_optimum(matrix, budget, k):
    """Brute force over every k-subset with the true means; ties: higher mean, then lower cost."""
    mu, c = matrix.mean_reward, matrix.mean_cost
    pref = {j: r for r, j in enumerate(np.lexsort((np.arange(mu.size), c, -mu)))}
    best = None
    for subset in itertools.combinations(range(mu.size), k):
        s = list(subset)
        r = solve_route(mu[s], c[s], np.ones(k), budget)
        key = (round(r.objective, 9), -sum(pref[j] for j in s))
        if best is None or key > best[0]:
            best = (key, s, r)
    return best


@pytest.mark.parametrize("solver", list(Solver))
def test_plan_on_routerbench_matches_the_true_means_optimum(routerbench_log, solver):
    path, matrix, catalog = routerbench_log
    budget = 0.3 * matrix.mean_cost.max()
    plan = make_plan(path, catalog,
                     PlanConfig(budget=budget, max_deployed=3, as_of=AS_OF, solver=solver))
    _, subset, routing = true_optimum(matrix, budget, 3)
    expected = {matrix.models[j]: routing.probability[i] for i, j in enumerate(subset)}
    got = {m.model: m.probability for m in plan.deployment}
    assert sorted(got) == sorted(expected)
    for model, prob in expected.items():
        assert got[model] == pytest.approx(prob, abs=0.02), model
    assert not plan.over_budget
    assert plan.expected["reward_mean"] == pytest.approx(routing.objective, abs=0.01)


def test_same_inputs_give_the_same_bytes(tmp_path):
    cfg = PlanConfig(budget=0.002, max_deployed=3, as_of=dt.datetime(2026, 11, 16, 2, tzinfo=dt.UTC))
    sample = Path(__file__).resolve().parents[1] / "sample_logs"
    docs = [json.dumps(plan_document(make_plan(sample / "logs.parquet", sample / "catalog.csv", cfg)))
            for _ in range(2)]
    assert docs[0] == docs[1]
    doc = json.loads(docs[0])
    fixed = {"schema_version", "window", "budget", "max_deployed", "solver", "deployment",
             "evicted", "routing", "expected", "over_budget"}
    assert fixed <= doc.keys()
    assert sum(r["probability"] for r in doc["routing"]) == pytest.approx(1.0)
    assert all(d["action"] in ("keep", "add") for d in doc["deployment"])


def small_log(tmp_path, catalog_rows, log_rows):
    cat = tmp_path / "catalog.csv"
    pl.DataFrame(catalog_rows, schema=["model", "released", "retired", "max_share"],
                 orient="row").write_csv(cat)
    # The log ends just before the as_of of the tests (2026-03-01): not stale.
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC) - dt.timedelta(hours=len(log_rows))
    log = pl.DataFrame(
        [(f"r{i}", t0 + dt.timedelta(hours=i), m, r, c) for i, (m, r, c) in enumerate(log_rows)],
        schema={"request_id": pl.String, "timestamp": pl.Datetime("us", "UTC"), "model": pl.String,
                "reward": pl.Float64, "cost": pl.Float64},
        orient="row",
    )
    path = tmp_path / "log.parquet"
    log.write_parquet(path)
    return path, cat


def test_mid_stage_retirement_is_excluded_with_its_reason_and_new_models_explored(tmp_path):
    rows = [("old", 0.9, 0.001)] * 50 + [("steady", 0.6, 0.001)] * 50
    logs, cat = small_log(tmp_path, [
        ("old", "2025-01-01", "2026-03-05", 1.0),
        ("steady", "2025-01-01", None, 1.0),
        ("fresh", "2026-02-01", None, 1.0),
        ("future", "2026-06-01", None, 1.0),
    ], rows)
    plan = make_plan(logs, cat, PlanConfig(budget=0.01, max_deployed=2,
                                           as_of=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)))
    excluded = dict(plan.excluded)
    assert excluded["old"].startswith("retires mid-stage on 2026-03-05")
    assert excluded["future"].startswith("not released until 2026-06-01")
    assert dict(plan.evicted)["old"].startswith("retires mid-stage")
    actions = {m.model: m.action for m in plan.deployment}
    assert actions == {"fresh": "add", "steady": "keep"}  # the untried model gets a slot
    fresh = next(m for m in plan.deployment if m.model == "fresh")
    assert fresh.n_reward == 0 and fresh.reward_ucb == 1.0


def test_throughput_caps_and_canary_share(tmp_path):
    rows = [("a", 0.9, 0.001)] * 200 + [("b", 0.5, 0.001)] * 200
    logs, cat = small_log(tmp_path, [
        ("a", "2025-01-01", None, 0.7), ("b", "2025-01-01", None, 1.0),
        ("new", "2026-01-05", None, 1.0),
    ], rows)
    cfg = {"budget": 0.01, "max_deployed": 3, "as_of": dt.datetime(2026, 3, 1, tzinfo=dt.UTC)}
    plan = make_plan(logs, cat, PlanConfig(**cfg, canary_share=1.0))
    probs = {m.model: m.probability for m in plan.deployment}
    assert probs["new"] == pytest.approx(1.0)  # the paper's optimism: an untried model looks perfect
    # ~168 requests in the stage: 10% of them reach 10 samples (not the default 20)
    canary = make_plan(logs, cat, PlanConfig(**cfg, canary_share=0.1, min_samples=10))
    probs = {m.model: m.probability for m in canary.deployment}
    assert probs == pytest.approx({"new": 0.1, "a": 0.7, "b": 0.2})


def _newcomer_log(tmp_path):
    rows = [("steady", 0.6, 0.001), ("strong", 0.8, 0.004)] * 300
    return small_log(tmp_path, [
        ("steady", "2025-01-01", None, 1.0),
        ("strong", "2025-01-01", None, 1.0),
        ("newcomer", "2026-02-27", None, 1.0),  # released four days before as_of, never served
        ("another", "2026-02-28", None, 1.0),
    ], rows)


def test_never_served_newcomers_get_at_most_the_exploration_share(tmp_path):
    from stageroute.config import DEFAULT_CANARY_SHARE, DEFAULT_MIN_SAMPLES

    logs, cat = _newcomer_log(tmp_path)
    plan = make_plan(logs, cat, PlanConfig(budget=0.003, max_deployed=3,
                                           as_of=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)))
    under = [m for m in plan.deployment if m.n_reward < DEFAULT_MIN_SAMPLES]
    assert under, "an untried model should be explored"
    assert sum(m.probability for m in under) <= DEFAULT_CANARY_SHARE + 1e-12
    for m in under:  # each explored model gets at least what it needs in the stage
        assert m.probability > 0 and m.reason.startswith("exploration:")
    # the paper's optimism (--canary-share 1) gives the untried model the lion's share
    paper = make_plan(logs, cat, PlanConfig(budget=0.003, max_deployed=3, canary_share=1.0,
                                            as_of=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)))
    assert sum(m.probability for m in paper.deployment if m.n_reward == 0) > DEFAULT_CANARY_SHARE


@pytest.mark.parametrize("max_deployed", [1, 2, 3, 4])
@pytest.mark.parametrize("canary_share", [0.05, 0.3, 1.0])
def test_no_deployed_model_sits_at_zero_without_a_reason(tmp_path, max_deployed, canary_share):
    logs, cat = _newcomer_log(tmp_path)
    plan = make_plan(logs, cat, PlanConfig(budget=0.003, max_deployed=max_deployed,
                                           canary_share=canary_share,
                                           as_of=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)))
    for m in plan.deployment:
        assert m.probability > 0 or m.reason.startswith(("standby", "exploration slot")), m
    doc = plan_document(plan)
    assert {r["model"] for r in doc["routing"]} == {m.model for m in plan.deployment}
    for line in plan.candidates:  # a model the stage cannot explore says so
        if not line.deployed and line.n_reward < 20 and line.reason.startswith("not deployed"):
            assert "exploration share" in line.reason


@pytest.mark.parametrize("min_samples", [4100, 10**9])
def test_leaving_out_unexplorable_models_refills_their_slots_within_budget(min_samples):
    """Dropping a model the stage cannot explore re-solves DeployOPT (its slot goes to another
    model) instead of leaving a set that breaks the budget; a set of only under-sampled models
    (the cold start) drops nothing."""
    sample = Path(__file__).resolve().parents[1] / "sample_logs"
    cfg = PlanConfig(budget=0.002, max_deployed=4, canary_share=0.25, min_samples=min_samples,
                     as_of=dt.datetime(2026, 11, 16, 2, tzinfo=dt.UTC))
    plan = make_plan(sample / "logs.parquet", sample / "catalog.csv", cfg)
    assert not plan.over_budget
    under = [m for m in plan.deployment if m.n_reward < min_samples]
    if len(under) < len(plan.deployment):
        assert sum(m.probability for m in under) <= 0.25 + 1e-12
    assert len(plan.deployment) >= 2
