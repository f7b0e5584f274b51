import datetime as dt
import itertools
from functools import partial

import numpy as np
import polars as pl
import pytest

from stageroute.options import Policy, Solver
from stageroute.inputs.outcomes import OutcomeMatrix
from stageroute.simulate.replay import (
    ReplayConfig,
    make_schedule,
    make_stream,
    oracle_stage,
    reference_kernel,
    replay,
    run_policy,
)
from stageroute.optimize.route import solve_route, solve_route_pyomo

UTC = dt.UTC


def lp_by_vertices(u, c, a, budget):
    """Independent LP solver: enumerate basic solutions (at most two variables off their bounds)."""
    n = len(u)
    best = None
    for free in itertools.chain.from_iterable(itertools.combinations(range(n), k) for k in (0, 1, 2)):
        others = [i for i in range(n) if i not in free]
        for at_cap in itertools.product((False, True), repeat=len(others)):
            p = np.zeros(n)
            for i, cap in zip(others, at_cap, strict=True):
                p[i] = a[i] if cap else 0.0
            rest = 1.0 - p.sum()
            if len(free) == 1:
                p[free[0]] = rest
            elif len(free) == 2:
                i, j = free
                spend = budget - p @ c
                if c[i] == c[j]:
                    continue
                p[j] = (spend - c[i] * rest) / (c[j] - c[i])
                p[i] = rest - p[j]
            if np.all(p >= -1e-12) and np.all(p <= a + 1e-12) and abs(p.sum() - 1) < 1e-9 \
                    and p @ c <= budget + 1e-12:
                best = max(best or -np.inf, float(p @ u))
    return best


def small_world(seed=0, n_models=5, n_prompts=60):
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0.3, 0.9, n_models)
    price = rng.uniform(0.1, 1.0, n_models)
    reward = (rng.random((n_prompts, n_models)) < quality).astype(float)
    cost = price * rng.uniform(0.5, 1.5, (n_prompts, n_models))
    models = tuple(f"m{j}" for j in range(n_models))
    outcomes = OutcomeMatrix(tuple(f"s{i}" for i in range(n_prompts)), models, reward, cost)
    released = [dt.datetime(2025, 1, 1, tzinfo=UTC) + dt.timedelta(days=10 * j) for j in range(n_models)]
    catalog = pl.DataFrame({
        "model": list(models),
        "released": released,
        "retired": [None] * (n_models - 1) + [dt.datetime(2025, 3, 1, tzinfo=UTC)],
        "max_share": [1.0] * n_models,
    }, schema_overrides={"retired": pl.Datetime("us", "UTC"), "released": pl.Datetime("us", "UTC")})
    return outcomes, catalog


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("relative", [0.2, 0.5, 0.9])
def test_oracle_is_exact_against_brute_force_with_an_independent_lp(seed, relative):
    outcomes, catalog = small_world(seed, n_models=5)
    mu, c = outcomes.mean_reward, outcomes.mean_cost
    budget = relative * c.max()
    pool = np.ones(5, dtype=bool)
    cfg = ReplayConfig(budget=budget, max_deployed=2, horizon=100, stages=2)
    got = oracle_stage(outcomes, pool, cfg, np.ones(5))
    values = [lp_by_vertices(mu[list(s)], c[list(s)], np.ones(2), budget)
              for s in itertools.combinations(range(5), 2)]
    feasible = [v for v in values if v is not None]
    if feasible:
        assert not got.over_budget
        assert got.value == pytest.approx(max(feasible), abs=1e-12)
    else:
        assert got.over_budget


def test_catalog_timeline_gives_each_stage_its_pool():
    outcomes, catalog = small_world(0)
    cfg = ReplayConfig(budget=0.5, max_deployed=2, horizon=1000, stages=10)
    schedule = make_schedule(catalog, outcomes, cfg)
    # m0 from the start; m4 released day 40 and retired on 2025-03-01
    assert schedule.pools[0].tolist() == [True, False, False, False, False]
    assert schedule.pools[-1][:4].all()
    starts = [w.start for w in schedule.windows]
    assert starts[-1] == dt.datetime(2025, 2, 10, tzinfo=UTC)  # the last release opens the last stage


@pytest.mark.parametrize("policy", [p for p in Policy if p is not Policy.ORACLE])
def test_compiled_loop_makes_the_reference_loops_decisions(policy):
    outcomes, catalog = small_world(3)
    cfg = ReplayConfig(budget=0.4, max_deployed=3, horizon=3000, stages=6, allow_drop=policy is Policy.PACED)
    schedule = make_schedule(catalog, outcomes, cfg)
    stream = make_stream(len(outcomes.samples), cfg.horizon, seed=11)
    args = (policy, outcomes, schedule, stream, cfg, np.ones(5), 1.5, np.full(5, np.nan))
    fast, slow = [], []
    run_fast = run_policy(*args, served=fast)
    run_slow = run_policy(*args, kernel=reference_kernel(solve_route), served=slow)
    assert np.concatenate(fast).tolist() == np.concatenate(slow).tolist()
    assert run_fast.deployed == run_slow.deployed
    assert run_fast.reward.tolist() == run_slow.reward.tolist()


def test_compiled_replay_equals_the_pyomo_replay_on_a_short_stream():
    outcomes, catalog = small_world(5)
    cfg = ReplayConfig(budget=0.35, max_deployed=3, horizon=160, stages=4)
    schedule = make_schedule(catalog, outcomes, cfg)
    stream = make_stream(len(outcomes.samples), cfg.horizon, seed=2)
    args = (Policy.STAGEROUTE, outcomes, schedule, stream, cfg, np.ones(5), 1.5, np.full(5, np.nan))
    fast, slow = [], []
    run_policy(*args, served=fast)
    pyomo_route = partial(solve_route_pyomo, solver=Solver.HIGHS, canonical=True)
    run_policy(*args, kernel=reference_kernel(
        lambda u, c, a, b, drop: pyomo_route(u, c, a, b, allow_drop=drop)), served=slow)
    assert np.concatenate(fast).tolist() == np.concatenate(slow).tolist()


def test_stageroute_learns_from_bandit_feedback_and_keeps_the_budget():
    outcomes, catalog = small_world(1, n_models=6, n_prompts=200)
    budget = 0.5 * outcomes.mean_cost.max()
    cfg = ReplayConfig(budget=budget, max_deployed=3, horizon=20_000, stages=27, seeds=3)
    result = replay(outcomes, catalog, cfg)
    by = {p.policy: p for p in result.policies}
    assert by[Policy.ORACLE].suboptimality == 0.0
    assert by[Policy.STAGEROUTE].suboptimality < by[Policy.UNIFORM].suboptimality
    assert by[Policy.STAGEROUTE].suboptimality < 0.05
    assert by[Policy.PACED].cost_over_budget == pytest.approx(1.0, abs=0.02)
    lo, hi = by[Policy.STAGEROUTE].ci95["suboptimality"]
    assert lo <= by[Policy.STAGEROUTE].suboptimality <= hi


def test_same_seed_same_result():
    outcomes, catalog = small_world(2)
    cfg = ReplayConfig(budget=0.4, max_deployed=2, horizon=2000, stages=5, seeds=2)
    a, b = replay(outcomes, catalog, cfg), replay(outcomes, catalog, cfg)
    assert [p.mean_reward for p in a.policies] == [p.mean_reward for p in b.policies]
