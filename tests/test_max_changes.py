"""``--max-changes N``: DeployOPT adds at most N models that are not deployed now.

The solvers (the MIP on HiGHS and GLPK, the enumeration) are checked against a brute force over
every set; the plan against its own reasons and notes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import AS_OF, CATALOG_CSV, REPO_ROOT, small_logs

from stageroute.errors import InfeasibleError, UsageError
from stageroute.optimize.deploy import change_allowance, solve_deploy, solve_deploy_exhaustive
from stageroute.optimize.route import solve_route
from stageroute.options import Solver
from stageroute.plan import PlanConfig, make_plan, plan_document


def brute_force(u, c, a, budget, k, current, n_changes, allow_drop):
    """The best key over every non-empty set of at most k models with at most ``n_changes``
    outside ``current`` (feasible first, then value; over budget: lower cost, then value)."""
    best = None
    for size in range(1, k + 1):
        for subset in itertools.combinations(range(u.size), size):
            s = list(subset)
            if sum(not current[i] for i in s) > n_changes:
                continue
            if not allow_drop and a[s].sum() < 1 - 1e-12:
                continue
            r = solve_route(u[s], c[s], a[s], budget, allow_drop)
            key = (0, -r.cost, r.objective) if r.over_budget else (1, 0.0, r.objective)
            if best is None or _better(key, best):
                best = key
    return best


def _better(key, best):
    for x, y in zip(key, best, strict=True):
        if x > y + 1e-9:
            return True
        if x < y - 1e-9:
            return False
    return False


def instance(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    u = rng.random(n).round(int(rng.integers(1, 3)))
    c = rng.random(n).round(int(rng.integers(1, 3)))
    a = np.where(rng.random(n) < 0.6, 1.0, rng.integers(2, 10, n) / 10)
    budget = float(rng.choice([rng.random() * 0.6, c.min(), 0.0]))
    k = int(rng.integers(1, 5))
    current = rng.random(n) < 0.4
    n_changes = int(rng.integers(0, 3))
    allow_drop = bool(rng.random() < 0.15)
    return u, c, a, budget, k, current, n_changes, allow_drop


@pytest.mark.parametrize("seed", range(60))
def test_both_solvers_and_the_enumeration_agree_with_brute_force(seed):
    u, c, a, budget, k, current, n_changes, drop = instance(seed)
    best = brute_force(u, c, a, budget, min(k, u.size), current, n_changes, drop)
    args = (u, c, a, budget, k)
    limit = {"current": current, "max_changes": n_changes}
    if best is None:
        for solver in Solver:
            with pytest.raises(InfeasibleError, match="max"):
                solve_deploy(*args, solver, drop, **limit)
        with pytest.raises(InfeasibleError):
            solve_deploy_exhaustive(*args, drop, **limit)
        return
    deps = [solve_deploy(*args, s, drop, **limit) for s in Solver]
    deps.append(solve_deploy_exhaustive(*args, drop, **limit))
    size = min(k, u.size, int(current.sum()) + n_changes)
    for dep in deps:
        assert dep.over_budget == (best[0] == 0)
        assert dep.value == pytest.approx(best[2], abs=1e-9)
        assert int(dep.chosen.sum()) == size
        assert int((dep.chosen & ~current).sum()) <= n_changes
    assert all(d.chosen.tolist() == deps[0].chosen.tolist() for d in deps)


@pytest.mark.parametrize("seed", range(30))
def test_zero_changes_keep_the_current_set(seed):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(2, 9))
    u, c = rng.random(n).round(2), rng.random(n).round(2)
    a = np.where(rng.random(n) < 0.7, 1.0, 0.5)
    current = np.zeros(n, dtype=bool)
    current[rng.choice(n, int(rng.integers(1, n + 1)), replace=False)] = True
    k = int(rng.integers(int(current.sum()), n + 2))  # room for the whole current set
    if a[current].sum() < 1:
        a[np.flatnonzero(current)[0]] = 1.0
    for solver in Solver:
        dep = solve_deploy(u, c, a, 0.3, k, solver, current=current, max_changes=0)
        assert dep.chosen.tolist() == current.tolist()
    dep = solve_deploy_exhaustive(u, c, a, 0.3, k, current=current, max_changes=0)
    assert dep.chosen.tolist() == current.tolist()


def test_the_canonical_set_fills_its_free_slots_within_the_limit():
    # Without a limit: the LP needs model 0 (new, best within budget); the free slots go to the
    # best UCBs, models 4 and 3 (both new). With one change allowed: model 0 is that change, the
    # free slots go to the current models 1 and 2.
    u = np.array([0.8, 0.5, 0.55, 0.6, 0.9])
    c = np.array([0.1, 0.1, 0.1, 0.2, 0.9])
    current = np.array([False, True, True, False, False])
    free = solve_deploy(u, c, np.ones(5), 0.1, 3)
    assert np.flatnonzero(free.chosen).tolist() == [0, 3, 4]
    for solver in Solver:
        dep = solve_deploy(u, c, np.ones(5), 0.1, 3, solver, current=current, max_changes=1)
        assert np.flatnonzero(dep.chosen).tolist() == [0, 1, 2]
        assert dep.value == pytest.approx(0.8)
    none = solve_deploy(u, c, np.ones(5), 0.1, 3, current=current, max_changes=0)
    assert np.flatnonzero(none.chosen).tolist() == [1, 2]  # only the current two: M_max unused
    assert none.value == pytest.approx(0.55)


def test_a_limit_that_cannot_carry_the_traffic_names_max_changes():
    # The two current models can take 0.3 + 0.3 of the traffic, and no addition is allowed.
    a = np.array([0.3, 0.3, 1.0])
    current = np.array([True, True, False])
    with pytest.raises(InfeasibleError, match=r"--max-changes.*0\.6 < 1"):
        solve_deploy([0.5, 0.6, 0.7], [0.1, 0.1, 0.1], a, 1.0, 3, current=current, max_changes=0)
    dep = solve_deploy([0.5, 0.6, 0.7], [0.1, 0.1, 0.1], a, 1.0, 3, current=current, max_changes=1)
    assert dep.chosen.tolist() == [True, True, True]
    with pytest.raises(InfeasibleError, match="nothing can be deployed"):
        solve_deploy([0.5, 0.6], [0.1, 0.1], [1, 1], 1.0, 2, current=None, max_changes=0)


def test_change_allowance_refills_the_slots_of_retired_models_only():
    assert change_allowance(0, kept=2, left=1, k=3) == 1  # one retired: its slot is refilled
    assert change_allowance(1, kept=2, left=1, k=3) == 2
    assert change_allowance(0, kept=3, left=2, k=3) == 0  # the set is full without them
    assert change_allowance(0, kept=1, left=3, k=3) == 2  # two slots to refill, not three
    assert change_allowance(2, kept=0, left=0, k=3) == 2


def test_the_limit_is_validated():
    with pytest.raises(ValueError, match="max_changes"):
        solve_deploy([0.5], [0.1], [1.0], 1.0, 1, current=[True], max_changes=-1)
    with pytest.raises(ValueError, match="mask"):
        solve_deploy([0.5, 0.4], [0.1, 0.1], [1.0, 1.0], 1.0, 1, current=[True], max_changes=0)
    for bad in (-1, 1.5, True):
        with pytest.raises(UsageError, match="--max-changes"):
            PlanConfig(budget=0.01, max_deployed=2, as_of=AS_OF, max_changes=bad)


# --- the plan --------------------------------------------------------------------------------

# Five models; delta and epsilon are new (never served) and optimistic: an unlimited plan adds them.
CATALOG5 = CATALOG_CSV + "delta,2026-01-01,,1.0,0.1,0.2\nepsilon,2026-01-01,,1.0,0.2,0.4\n"


@pytest.fixture
def inputs(tmp_path):
    logs = tmp_path / "logs.parquet"
    small_logs(60).write_parquet(logs)
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(CATALOG5)
    return logs, catalog


def plan_with(inputs, **options):
    logs, catalog = inputs
    options = {"budget": 0.01, "max_deployed": 2, "as_of": AS_OF, **options}
    return make_plan(logs, catalog, PlanConfig(**options))


def test_an_unlimited_plan_would_add_both_new_models(inputs):
    plan = plan_with(inputs, deployed=("alpha", "beta", "gamma"), max_deployed=3)
    actions = {m.model: m.action for m in plan.deployment}
    assert actions == {"delta": "add", "epsilon": "add", "alpha": "keep"}


def test_zero_changes_keep_the_deployment_and_say_why(inputs):
    plan = plan_with(inputs, deployed=("alpha", "gamma"), max_changes=0)
    assert sorted(m.model for m in plan.deployment) == ["alpha", "gamma"]
    assert {m.action for m in plan.deployment} == {"keep"}
    assert plan.evicted == ()
    delta = next(m for m in plan.candidates if m.model == "delta")
    assert delta.action == "idle" and "--max-changes 0" in delta.reason
    kept = [m for m in plan.deployment if "kept by --max-changes 0" in m.reason]
    assert kept, [m.reason for m in plan.deployment]
    assert any("--max-changes 0 binds" in note for note in plan.notes)


def test_one_change_adds_one_model_and_the_reasons_name_the_limit(inputs):
    plan = plan_with(inputs, deployed=("alpha", "beta", "gamma"), max_deployed=3, max_changes=1)
    actions = {m.model: m.action for m in plan.deployment}
    assert actions == {"delta": "add", "alpha": "keep", "gamma": "keep"}
    assert [model for model, _ in plan.evicted] == ["beta"]
    assert "--max-changes 1 (1 of at most 1 additions used)" in plan.evicted[0][1]
    assert "added within --max-changes 1" in next(m.reason for m in plan.deployment if m.model == "delta")
    epsilon = next(m for m in plan.candidates if m.model == "epsilon")
    assert epsilon.action == "idle" and epsilon.reason.startswith("not added: --max-changes 1")
    assert any("--max-changes 1 binds: the plan adds 1 model(s) (at most 1)" in n for n in plan.notes)


def test_a_limit_that_does_not_bind_changes_nothing(inputs):
    free = plan_with(inputs, deployed=("alpha", "gamma"))
    limited = plan_with(inputs, deployed=("alpha", "gamma"), max_changes=5)
    assert [(m.model, m.action, m.reason) for m in limited.candidates] == \
        [(m.model, m.action, m.reason) for m in free.candidates]
    assert not any("--max-changes" in note for note in limited.notes)


def test_a_retired_model_is_replaced_without_counting_as_a_change(tmp_path):
    """gamma retires before the stage: with --max-changes 0 its slot is still refilled."""
    logs = tmp_path / "logs.parquet"
    small_logs(60).write_parquet(logs)
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(CATALOG5.replace("gamma,2026-01-01,2027-01-01", "gamma,2026-01-01,2026-03-01"))
    config = PlanConfig(budget=0.01, max_deployed=3, as_of=AS_OF, deployed=("alpha", "beta", "gamma"),
                        max_changes=0)
    plan = make_plan(logs, catalog, config)
    assert sorted(m.model for m in plan.deployment) == ["alpha", "beta", "delta"]
    assert dict(plan.evicted) == {"gamma": "retired on 2026-03-01"}
    assert any("1 of them to replace deployed models that left the pool" in n for n in plan.notes)


def test_the_cli_takes_max_changes(inputs, tmp_path):
    logs, catalog = inputs
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    args = [sys.executable, "-m", "stageroute_cli", "plan", "--logs", str(logs), "--catalog",
            str(catalog), "--budget", "0.01", "--max-deployed", "2", "--as-of", "2026-03-01",
            "--deployed", "alpha,gamma", "--json", "-q"]
    runs = {n: subprocess.run([*args, "--max-changes", n], capture_output=True, text=True, env=env,
                              timeout=300, check=False) for n in ("0", "1")}
    docs = {n: json.loads(r.stdout) for n, r in runs.items() if r.returncode == 0}
    assert sorted(docs) == ["0", "1"], {n: r.stderr for n, r in runs.items()}
    assert sorted(d["model"] for d in docs["0"]["deployment"]) == ["alpha", "gamma"]
    assert "delta" in [d["model"] for d in docs["1"]["deployment"]]
    assert docs["0"]["max_changes"] == 0


def test_the_plan_document_holds_the_limit(inputs):
    doc = plan_document(plan_with(inputs, deployed=("alpha", "gamma"), max_changes=0))
    assert doc["max_changes"] == 0
    assert dt.datetime.fromisoformat(doc["window"]["start"]) == AS_OF
