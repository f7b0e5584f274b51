"""How replay judges a policy (SPEC 8), recomputed independently: the oracle's value at any budget
by brute force over every set with an LP solved by vertex enumeration (no code under test), then
sub-optimality at cost, budget violation, intervals, ranking, the report and the plot."""

from __future__ import annotations

import datetime as dt
import io
import itertools

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from stageroute.inputs.outcomes import OutcomeMatrix
from stageroute.options import Policy
from stageroute.render.plots import plot_replay
from stageroute.render.report import render_replay
from stageroute.simulate import evaluate
from stageroute.simulate.evaluate import Frontier, ci95, frontier_curve, ranks, score
from stageroute.simulate.replay import ReplayConfig, ReplayResult, replay, replay_document

UTC = dt.UTC
TOL = 1e-12


# ---------------------------------------------------------------------------------------------
# the independent oracle: every set, its LP by enumerating basic solutions


def basic_solutions(c, a, budget):
    """Every basic solution of {sum p = 1, 0 <= p <= a, c p <= budget}: at most two variables
    strictly between their bounds (budget None: no budget row, at most one)."""
    n = len(c)
    for free in itertools.chain.from_iterable(
            itertools.combinations(range(n), k) for k in ((0, 1) if budget is None else (0, 1, 2))):
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
                if c[i] == c[j]:
                    continue
                p[j] = (budget - p @ c - c[i] * rest) / (c[j] - c[i])
                p[i] = rest - p[j]
            if (np.all(p >= -1e-12) and np.all(p <= a + 1e-12) and abs(p.sum() - 1) < 1e-9
                    and (budget is None or p @ c <= budget + 1e-12)):
                yield p


def lp_value(u, c, a, budget):
    values = [float(p @ u) for p in basic_solutions(c, a, budget)]
    return max(values) if values else None


def brute_value(mu, cost, alpha, members, max_deployed, budget, allow_drop=False):
    """The oracle's value per query at ``budget``: the best set of at most M members and its LP;
    if no set meets the budget, the cheapest mixture of any set, then the most reward at its cost."""
    sets = []
    for k in range(1, min(max_deployed, len(members)) + 1):
        for subset in itertools.combinations(members, k):
            s = list(subset)
            u, c, a = mu[s], cost[s], alpha[s]
            if allow_drop:  # the null option: reward 0, cost 0, any share
                u, c, a = np.append(u, 0.0), np.append(c, 0.0), np.append(a, 1.0)
            if a.sum() >= 1 - 1e-12:
                sets.append((u, c, a))
    values = [v for u, c, a in sets if (v := lp_value(u, c, a, budget)) is not None]
    if values:
        return max(values)
    cheapest = [min(float(p @ c) for p in basic_solutions(c, a, None)) for u, c, a in sets]
    floor = min(cheapest)
    return max(lp_value(u, c, a, floor + 1e-12) for (u, c, a), low in zip(sets, cheapest, strict=True)
               if low <= floor + 1e-12)


# ---------------------------------------------------------------------------------------------
# the frontier


def random_pool(rng):
    n = int(rng.integers(2, 7))
    mu = rng.uniform(0.1, 0.95, n)
    cost = rng.uniform(0.05, 1.0, n)
    alpha = rng.choice([1.0, 1.0, 0.6, 0.5, 0.4, 0.3], n)
    return mu, cost, alpha


@pytest.mark.parametrize("seed", range(40))
def test_the_frontier_equals_a_brute_force_over_every_set(seed):
    rng = np.random.default_rng(seed)
    mu, cost, alpha = random_pool(rng)
    n = mu.size
    allow_drop = seed % 4 == 3
    max_deployed = int(rng.integers(1, 4))
    if not allow_drop and np.sort(alpha)[::-1][:min(max_deployed, n)].sum() < 1:
        alpha[:] = 1.0  # the caps must let some set carry all traffic
    budgets = np.concatenate([rng.uniform(0.0, 1.1, 12), cost, [0.0, 2.0]])
    frontier = Frontier(mu, cost, alpha, np.ones((1, n), dtype=bool), max_deployed, allow_drop)
    got = frontier.values(budgets[:, None])[:, 0]
    expected = [brute_value(mu, cost, alpha, list(range(n)), max_deployed, b, allow_drop)
                for b in budgets]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_the_frontier_is_the_same_when_deployopt_solves_each_budget(seed, monkeypatch):
    """Pools too large to enumerate the sets' value functions fall back to DeployOPT per budget."""
    rng = np.random.default_rng(100 + seed)
    mu, cost, alpha = random_pool(rng)
    alpha[:] = 0.4  # the caps make the LP need more models than M_max: the cardinality binds
    n = mu.size
    budgets = rng.uniform(0.0, 1.1, 10)
    pools = np.ones((1, n), dtype=bool)
    fast = Frontier(mu, cost, alpha, pools, 3).values(budgets[:, None])
    monkeypatch.setattr(evaluate, "CHAIN_LIMIT", 0)
    slow = Frontier(mu, cost, alpha, pools, 3).values(budgets[:, None])
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    expected = [brute_value(mu, cost, alpha, list(range(n)), 3, b) for b in budgets]
    np.testing.assert_allclose(fast[:, 0], expected, rtol=0, atol=1e-9)


def test_the_frontier_is_nondecreasing_and_flat_beyond_the_best_mixture():
    rng = np.random.default_rng(7)
    mu, cost, alpha = rng.uniform(0.2, 0.9, 6), rng.uniform(0.1, 1.0, 6), np.full(6, 0.5)
    frontier = Frontier(mu, cost, alpha, np.ones((1, 6), dtype=bool), 3)
    grid = np.linspace(0.0, 1.2, 400)
    values = frontier.values(grid[:, None])[:, 0]
    assert np.all(np.diff(values) >= -1e-12)
    lo, hi = frontier.levels()
    assert values[-1] == pytest.approx(values[grid >= hi][0], abs=1e-12)
    assert 0 < lo < hi <= cost.max()


# ---------------------------------------------------------------------------------------------
# a small replay, recomputed


def world(seed=0, n_models=4, n_prompts=120, caps=None):
    """Four models, the last two released during the run; binary rewards, noisy costs."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0.3, 0.9, n_models)
    price = rng.uniform(0.1, 1.0, n_models)
    reward = (rng.random((n_prompts, n_models)) < quality).astype(float)
    cost = price * rng.uniform(0.5, 1.5, (n_prompts, n_models))
    models = tuple(f"m{j}" for j in range(n_models))
    outcomes = OutcomeMatrix(tuple(f"s{i}" for i in range(n_prompts)), models, reward, cost)
    start = dt.datetime(2025, 1, 1, tzinfo=UTC)
    catalog = pl.DataFrame({
        "model": list(models),
        "released": [start + dt.timedelta(days=max(0, j - 1) * 10) for j in range(n_models)],
        "retired": [None] * n_models,
        "max_share": caps or [1.0] * n_models,
    }, schema_overrides={"retired": pl.Datetime("us", "UTC"), "released": pl.Datetime("us", "UTC")})
    return outcomes, catalog


@pytest.fixture(scope="module", params=[None, [1.0, 0.5, 0.5, 0.6]], ids=["uncapped", "capped"])
def small(request):
    outcomes, catalog = world(3, caps=request.param)
    cfg = ReplayConfig(budget=0.45 * float(outcomes.mean_cost.max()), max_deployed=2,
                       horizon=3000, stages=3, seeds=3)
    return outcomes, catalog, replay(outcomes, catalog, cfg)


def test_suboptimality_at_cost_against_a_brute_force_oracle(small):
    outcomes, catalog, result = small
    cfg = result.config
    mu, cost = outcomes.mean_reward, outcomes.mean_cost
    alpha = catalog["max_share"].to_numpy().astype(float)
    sizes = np.diff(result.schedule.bounds)
    pools = [np.flatnonzero(pool).tolist() for pool in result.schedule.pools]
    assert len({tuple(p) for p in pools}) == 3  # three different pools
    for p in result.policies:
        if not p.runs:
            continue
        at_cost = np.array([
            sum(n * brute_value(mu, cost, alpha, members, cfg.max_deployed, run.cost[k] / n)
                for k, (n, members) in enumerate(zip(sizes, pools, strict=True)))
            for run in p.runs])
        rewards = np.array([run.reward.sum() for run in p.runs])
        assert p.suboptimality_at_cost == pytest.approx(np.mean(1 - rewards / at_cost), abs=1e-9)
        assert p.oracle_value_at_cost == pytest.approx(at_cost.mean() / cfg.horizon, abs=1e-12)
        lo, hi = p.ci95["suboptimality_at_cost"]
        assert lo < p.suboptimality_at_cost < hi


def test_the_frontier_at_the_budget_is_the_oracles_value_in_every_stage(small):
    outcomes, catalog, result = small
    alpha = catalog["max_share"].to_numpy().astype(float)
    frontier = Frontier(outcomes.mean_reward, outcomes.mean_cost, alpha, result.schedule.pools,
                        result.config.max_deployed)
    at_budget = frontier.values(np.full((1, result.schedule.pools.shape[0]), result.config.budget))
    np.testing.assert_allclose(at_budget[0], [v.value for v in result.oracle], rtol=0, atol=1e-12)
    oracle = next(p for p in result.policies if p.policy is Policy.ORACLE)
    assert oracle.suboptimality_at_cost == pytest.approx(0.0, abs=1e-12)
    assert oracle.rank is None


def test_the_worst_stage_and_the_budget_violation_are_recomputed(small):
    _, _, result = small
    cfg = result.config
    sizes = np.diff(result.schedule.bounds)
    for p in result.policies:
        if not p.runs:
            continue
        worst = [max(run.cost / sizes) / cfg.budget for run in p.runs]
        assert p.worst_stage_cost_over_budget == pytest.approx(np.mean(worst), rel=1e-12)
        assert p.worst_stage_cost_over_budget >= p.cost_over_budget - 1e-12
        assert p.budget_violation == max(0.0, p.cost_over_budget - 1.0)


def test_policies_are_ranked_on_suboptimality_at_cost(small):
    _, _, result = small
    learners = sorted((p for p in result.policies if p.runs), key=lambda p: p.suboptimality_at_cost)
    assert [p.rank for p in learners] == list(range(1, len(learners) + 1))
    doc = replay_document(result)
    by_name = {d["policy"]: d for d in doc["policies"]}
    assert by_name["oracle"]["rank"] is None
    assert by_name[str(learners[0].policy)]["rank"] == 1
    for d in doc["policies"]:
        assert {"suboptimality_at_cost", "budget_violation", "worst_stage_cost_over_budget",
                "rank", "ci95"} <= d.keys()
        assert {"suboptimality_at_cost", "budget_violation", "worst_stage_cost_over_budget",
                "mean_reward", "suboptimality"} <= d["ci95"].keys()


def test_ranks_skip_the_reference_and_keep_the_order_of_ties():
    assert ranks([0.02, None, 0.01, 0.03]) == [2, None, 1, 3]
    assert ranks([0.5, 0.5, None]) == [1, 2, None]
    assert ranks([None]) == [None]


# ---------------------------------------------------------------------------------------------
# scores from constructed runs


def constructed(costs_per_query, rewards_per_query, sizes=(100.0, 300.0)):
    """Per-seed, per-stage totals from per-query means: [S, K] arrays."""
    sizes = np.array(sizes)
    return (np.array(rewards_per_query) * sizes, np.array(costs_per_query) * sizes, sizes)


def test_budget_violation_is_the_overspend_and_its_interval_maps_the_same_way():
    reward, cost, sizes = constructed([[1.0, 1.2], [1.1, 1.1], [1.3, 1.0]],
                                      [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    s = score(reward, cost, sizes, budget=1.0, oracle_total=200.0, at_cost=np.full(3, 200.0))
    over = (cost.sum(axis=1) / sizes.sum()).mean()
    assert s.cost_over_budget == pytest.approx(over)
    assert s.budget_violation == pytest.approx(over - 1.0)
    lo, hi = s.ci95["cost_over_budget"]
    assert s.ci95["budget_violation"] == pytest.approx((max(0.0, lo - 1), hi - 1))
    # the worst stage per seed: 1.2, 1.1, 1.3
    assert s.worst_stage_cost_over_budget == pytest.approx(1.2)
    under = score(reward, cost * 0.5, sizes, 1.0, 200.0, np.full(3, 200.0))
    assert under.budget_violation == 0.0 and under.ci95["budget_violation"] == (0.0, 0.0)


@pytest.mark.parametrize("seeds", [1, 2])
def test_fewer_than_three_seeds_give_no_interval(seeds):
    assert ci95(np.arange(seeds, dtype=float)) is None
    reward, cost, sizes = constructed([[0.4, 0.6]] * seeds, [[0.5, 0.7]] * seeds)
    s = score(reward, cost, sizes, 1.0, 300.0, np.full(seeds, 300.0))
    assert s.ci95 and all(ci is None for ci in s.ci95.values())


def test_an_overspending_policy_is_not_better_than_the_oracle_at_its_own_cost():
    """Uniform over a strong, an almost as strong and a cheap weak model at a tight budget spends
    twice the budget: the paper's sub-optimality is very negative, at its own cost it is not."""
    rng = np.random.default_rng(5)
    prompts = 400
    quality, price = np.array([0.9, 0.85, 0.2]), np.array([1.0, 0.9, 0.05])
    reward = (rng.random((prompts, 3)) < quality).astype(float)
    cost = price * rng.uniform(0.9, 1.1, (prompts, 3))
    models = ("strong", "good", "weak")
    outcomes = OutcomeMatrix(tuple(f"s{i}" for i in range(prompts)), models, reward, cost)
    catalog = pl.DataFrame({
        "model": list(models), "released": [dt.datetime(2025, 1, 1, tzinfo=UTC)] * 3,
        "retired": [None] * 3, "max_share": [1.0] * 3,
    }, schema_overrides={"retired": pl.Datetime("us", "UTC"), "released": pl.Datetime("us", "UTC")})
    cfg = ReplayConfig(budget=0.3, max_deployed=3, horizon=6000, stages=3, seeds=4,
                       policies=(Policy.UNIFORM, Policy.ORACLE, Policy.STAGEROUTE))
    result = replay(outcomes, catalog, cfg)
    uniform = next(p for p in result.policies if p.policy is Policy.UNIFORM)
    assert uniform.cost_over_budget > 1.8 and uniform.budget_violation > 0.8
    assert uniform.suboptimality < -0.4  # "beats" the oracle that keeps the budget
    lo, hi = uniform.ci95["suboptimality_at_cost"]
    assert hi > 0 and uniform.suboptimality_at_cost > -0.01  # not better than the frontier
    assert uniform.worst_stage_cost_over_budget > 1.8


# ---------------------------------------------------------------------------------------------
# the report and the plot


def rendered(result: ReplayResult, width: int = 80) -> list[str]:
    buffer = io.StringIO()
    render_replay(result, Console(file=buffer, width=width, color_system=None))
    return buffer.getvalue().splitlines()


def test_the_report_ranks_marks_the_best_and_shows_the_oracle_as_reference(small):
    _, _, result = small
    lines = rendered(result)
    assert max(map(len, lines)) <= 80
    rows = [line for line in lines if line[:1].isdigit() or line.startswith("ref ")]
    best = min((p for p in result.policies if p.runs), key=lambda p: p.suboptimality_at_cost)
    assert rows[0].startswith("1 *") and str(best.policy) in rows[0]
    assert [int(r.split()[0]) for r in rows[:-1]] == list(range(1, len(rows)))
    assert rows[-1].startswith("ref") and "oracle" in rows[-1]
    assert f"{best.suboptimality_at_cost:.2%}" in rows[0]
    assert any("±" in line for line in lines)  # three seeds: intervals
    assert any("reward units" in line for line in lines)


def test_the_report_says_no_interval_below_three_seeds():
    outcomes, catalog = world(1)
    cfg = ReplayConfig(budget=0.5, max_deployed=2, horizon=600, stages=3, seeds=2)
    lines = rendered(replay(outcomes, catalog, cfg))
    assert any("no interval (2 seeds < 3)" in line for line in lines)
    assert not any("±" in line for line in lines)


@pytest.mark.parametrize("seeds", [1, 3])
def test_the_plot_is_a_png(tmp_path, seeds):
    outcomes, catalog = world(2)
    cfg = ReplayConfig(budget=0.5, max_deployed=2, horizon=900, stages=3, seeds=seeds)
    result = replay(outcomes, catalog, cfg)
    path = tmp_path / "replay.png"
    plot_replay(result, path, lock=False)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1210, 1540)
    # the frontier drawn in it: from the cheapest level to beyond every policy's cost
    sizes = np.diff(result.schedule.bounds).astype(float)
    costs = [p.mean_cost for p in result.policies]
    curve = frontier_curve(result.frontier, sizes, costs)
    assert curve.budget[0] <= min(costs) and curve.budget[-1] >= max(costs)
    per_stage = [result.frontier.values(np.full((1, sizes.size), b))[0] for b in curve.budget[::40]]
    np.testing.assert_allclose(curve.value[::40], [v @ sizes / sizes.sum() for v in per_stage],
                               rtol=0, atol=1e-12)
