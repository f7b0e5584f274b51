import dataclasses
import datetime as dt
import itertools
import math
from functools import partial

import numpy as np
import polars as pl
import pytest

from stageroute.inputs.outcomes import OutcomeMatrix
from stageroute.optimize.route import solve_route, solve_route_pyomo
from stageroute.options import Policy, Solver
from stageroute.simulate.evaluate import ci95
from stageroute.simulate.reference import reference_kernel
from stageroute.simulate.replay import (
    ReplayConfig,
    make_schedule,
    make_stream,
    oracle_stage,
    replay,
    run_policy,
)

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


@pytest.mark.parametrize(("refresh", "share", "priced"), [
    (None, 0.3, False), (None, 1.0, False), (4, 0.3, True), (1, 0.1, True), (7, 1.0, False)])
@pytest.mark.parametrize("policy", [p for p in Policy if p is not Policy.ORACLE])
def test_compiled_loop_makes_the_reference_loops_decisions(policy, refresh, share, priced):
    outcomes, catalog = small_world(3)
    cfg = ReplayConfig(budget=0.4, max_deployed=3, horizon=3000, stages=6, refresh=refresh,
                       canary_share=share, min_samples=40, allow_drop=policy is Policy.PACED)
    schedule = make_schedule(catalog, outcomes, cfg)
    stream = make_stream(len(outcomes.samples), cfg.horizon, seed=11)
    prices = np.full((2, 5), np.nan)
    if priced:  # untried models priced from the tried ones' cost / list price
        prices = np.vstack([outcomes.mean_cost * 1e6 / 1500, outcomes.mean_cost * 1e6 / 1500])
    args = (policy, outcomes, schedule, stream, cfg, np.ones(5), 1.5, prices)
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
    args = (Policy.STAGEROUTE, outcomes, schedule, stream, cfg, np.ones(5), 1.5, np.full((2, 5), np.nan))
    fast, slow = [], []
    run_policy(*args, served=fast)
    pyomo_route = partial(solve_route_pyomo, solver=Solver.HIGHS, canonical=True)
    run_policy(*args, kernel=reference_kernel(
        lambda u, c, a, b, drop: pyomo_route(u, c, a, b, allow_drop=drop)), served=slow)
    assert np.concatenate(fast).tolist() == np.concatenate(slow).tolist()


# ---------------------------------------------------------------------------------------------
# Replay's summary, recomputed independently: the oracle by brute force with Pyomo, the policies'
# figures and intervals from their per-seed runs, the per-stage totals from the served models.


def t_quantile_975(df: int) -> float:
    """Student t 0.975 quantile, from the density (Simpson's rule) and bisection: no table."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(t: float) -> float:
        x = np.linspace(0.0, t, 20_001)
        pdf = np.exp(log_norm - (df + 1) / 2 * np.log1p(x * x / df))
        h = x[1] - x[0]
        return 0.5 + h / 3 * float(pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())

    lo, hi = 0.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < 0.975 else (lo, mid)
    return (lo + hi) / 2


def test_the_t_quantile_helper_matches_closed_forms():
    assert t_quantile_975(1) == pytest.approx(math.tan(0.475 * math.pi), rel=1e-6)  # Cauchy
    assert t_quantile_975(2) == pytest.approx(math.sqrt(0.9025 * 2 / 0.0975), rel=1e-6)
    z = 1.959963984540054  # the normal limit, with the first Cornish-Fisher term
    assert t_quantile_975(10_000) == pytest.approx(z + (z**3 + z) / 40_000, rel=1e-7)


def assert_student_interval(interval, values):
    values = np.asarray(values, dtype=float)
    n = values.size
    half = t_quantile_975(n - 1) * values.std(ddof=1) / math.sqrt(n)
    lo, hi = interval
    assert (lo + hi) / 2 == pytest.approx(values.mean(), rel=1e-12, abs=1e-12)
    # the library's quantiles have 3 decimals (12.706, 4.303, ...)
    assert (hi - lo) / 2 == pytest.approx(half, rel=5e-4, abs=1e-15)


@pytest.mark.parametrize("n", [3, 4, 7, 12, 31])
def test_ci95_is_mean_plus_minus_t_sd_over_root_n(n):
    values = np.random.default_rng(n).normal(0.4, 0.1, n)
    assert_student_interval(ci95(values), values)


@pytest.mark.parametrize("n", [32, 60, 500])
def test_ci95_uses_the_t_quantile_beyond_the_table(n):
    values = np.random.default_rng(n).normal(0.4, 0.1, n)
    assert_student_interval(ci95(values), values)


@pytest.fixture(scope="module")
def learned():
    """A replay with the oracle over budget in the first stages (one expensive model in the pool)
    and within it once cheaper models arrive; throughput caps make the best sets need 3 models."""
    outcomes, catalog = small_world(1, n_models=6, n_prompts=200)
    catalog = catalog.with_columns(max_share=pl.Series([1.0, 0.5, 0.5, 0.4, 0.6, 1.0]))
    budget = 0.5 * outcomes.mean_cost.max()
    cfg = ReplayConfig(budget=budget, max_deployed=3, horizon=20_000, stages=27, seeds=3)
    return outcomes, catalog, replay(outcomes, catalog, cfg)


def test_stageroute_learns_from_bandit_feedback_and_keeps_the_budget():
    outcomes, catalog = small_world(1, n_models=6, n_prompts=200)
    budget = 0.5 * outcomes.mean_cost.max()
    cfg = ReplayConfig(budget=budget, max_deployed=3, horizon=20_000, stages=27, seeds=3)
    result = replay(outcomes, catalog, cfg)
    by = {p.policy: p for p in result.policies}
    assert by[Policy.STAGEROUTE].suboptimality < by[Policy.UNIFORM].suboptimality
    assert by[Policy.STAGEROUTE].suboptimality < 0.05
    assert by[Policy.STATIC].suboptimality > by[Policy.STAGEROUTE].suboptimality
    assert by[Policy.PACED].cost_over_budget == pytest.approx(1.0, abs=0.02)


def brute_force_stage(mu, c, alpha, budget, max_deployed, members):
    """The oracle's stage by enumeration: every set of at most ``max_deployed`` members, its LP
    solved by Pyomo/HiGHS; within-budget sets first (most reward), else the cheapest mixture."""
    best = None
    for k in range(1, min(max_deployed, len(members)) + 1):
        for subset in itertools.combinations(members, k):
            s = list(subset)
            if alpha[s].sum() < 1 - 1e-12:
                continue
            r = solve_route_pyomo(mu[s], c[s], alpha[s], budget, Solver.HIGHS)
            key = (0, -round(r.cost, 9), r.objective) if r.over_budget else (1, 0.0, r.objective)
            if best is None or key > best[0]:
                best = (key, r)
    assert best is not None
    return best[0][0] == 0, best[1]


def test_stage_pools_follow_the_catalog_dates(learned):
    outcomes, catalog, result = learned
    info = {r["model"]: r for r in catalog.iter_rows(named=True)}
    for window, pool in zip(result.schedule.windows, result.schedule.pools, strict=True):
        expected = [info[m]["released"] <= window.start
                    and (info[m]["retired"] is None or info[m]["retired"] >= window.end)
                    for m in outcomes.models]
        assert pool.tolist() == expected


def test_oracle_value_equals_a_brute_force_over_every_set_with_pyomo(learned):
    outcomes, catalog, result = learned
    cfg = result.config
    mu, c = outcomes.mean_reward, outcomes.mean_cost
    alpha = caps(outcomes, catalog)
    sizes = np.diff(result.schedule.bounds)
    cache, total, verdicts = {}, 0.0, set()
    for k, pool in enumerate(result.schedule.pools):
        key = pool.tobytes()
        if key not in cache:
            cache[key] = brute_force_stage(mu, c, alpha, cfg.budget, cfg.max_deployed,
                                           np.flatnonzero(pool).tolist())
        over, best = cache[key]
        verdicts.add(over)
        stage = result.oracle[k]
        assert stage.over_budget == over, k
        assert stage.value == pytest.approx(best.objective, abs=1e-7), k
        assert len(stage.models) <= cfg.max_deployed and all(pool[j] for j in stage.models)
        if over:  # the cheapest mixture there is
            assert stage.cost == pytest.approx(best.cost, rel=1e-7)
        else:
            assert stage.cost <= cfg.budget * (1 + 1e-9)
        total += best.objective * sizes[k]
    assert verdicts == {True, False}  # both kinds of stage are exercised
    oracle = next(p for p in result.policies if p.policy is Policy.ORACLE)
    assert result.oracle_value == pytest.approx(total / cfg.horizon, abs=1e-7)
    assert oracle.mean_reward == pytest.approx(total / cfg.horizon, abs=1e-7)


def caps(outcomes, catalog):
    shares = dict(catalog.select("model", "max_share").iter_rows())
    return np.array([shares[m] for m in outcomes.models], dtype=float)


def test_no_learning_policy_deploys_a_set_better_than_the_oracles(learned):
    outcomes, catalog, result = learned
    cfg = result.config
    mu, c, alpha = outcomes.mean_reward, outcomes.mean_cost, caps(outcomes, catalog)
    for summary in result.policies:
        for run in summary.runs:
            for k, chosen in enumerate(run.deployed):
                stage = result.oracle[k]
                s = list(chosen)
                assert 1 <= len(s) <= cfg.max_deployed
                assert all(result.schedule.pools[k][j] for j in s)
                assert alpha[s].sum() >= 1 - 1e-12  # the set can carry all traffic
                r = solve_route(mu[s], c[s], alpha[s], cfg.budget)
                if not stage.over_budget:
                    assert r.over_budget or r.objective <= stage.value + 1e-9


def test_summaries_are_recomputed_from_the_per_seed_runs(learned):
    _, _, result = learned
    cfg = result.config
    t = cfg.horizon
    oracle_total = result.oracle_value * t
    for p in result.policies:
        # the same definitions for every policy, the oracle included
        assert p.regret == pytest.approx(oracle_total - p.mean_reward * t, abs=1e-6)
        assert p.suboptimality == pytest.approx(1 - p.mean_reward / result.oracle_value, abs=1e-12)
        assert p.regret == pytest.approx(p.suboptimality * oracle_total, abs=1e-6)
        assert p.cost_over_budget == pytest.approx(p.mean_cost / cfg.budget, rel=1e-12)
        if p.policy is Policy.ORACLE:
            continue
        assert len(p.runs) == cfg.seeds
        rewards = np.array([run.reward.sum() for run in p.runs])
        costs = np.array([run.cost.sum() for run in p.runs])
        assert p.mean_reward == pytest.approx(rewards.mean() / t, rel=1e-12)
        assert p.mean_cost == pytest.approx(costs.mean() / t, rel=1e-12)
        assert p.regret == pytest.approx(oracle_total - rewards.mean(), abs=1e-6)
        assert_student_interval(p.ci95["mean_reward"], rewards / t)
        assert_student_interval(p.ci95["mean_cost"], costs / t)
        assert_student_interval(p.ci95["suboptimality"], 1 - rewards / oracle_total)
        lo, hi = p.ci95["mean_reward"]
        assert hi > lo  # three different streams: the interval has a width


def test_the_oracle_spends_within_the_budget_where_it_can(learned):
    _, _, result = learned
    sizes = np.diff(result.schedule.bounds)
    feasible = [k for k, s in enumerate(result.oracle) if not s.over_budget]
    spend = sum(result.oracle[k].cost * sizes[k] for k in feasible) / sizes[feasible].sum()
    assert spend <= result.config.budget * (1 + 1e-9)


@pytest.mark.parametrize(("policy", "allow_drop"), [
    (Policy.STAGEROUTE, False), (Policy.PACED, True), (Policy.EPSILON, False), (Policy.UNIFORM, False),
])
def test_stage_totals_are_the_served_models_outcomes(policy, allow_drop):
    outcomes, catalog = small_world(6)
    cfg = ReplayConfig(budget=0.3, max_deployed=2, horizon=1500, stages=5, allow_drop=allow_drop)
    schedule = make_schedule(catalog, outcomes, cfg)
    stream = make_stream(len(outcomes.samples), cfg.horizon, seed=4)
    served: list[np.ndarray] = []
    run = run_policy(policy, outcomes, schedule, stream, cfg, np.ones(5), 1.5, np.full((2, 5), np.nan),
                     served=served)
    for k, models in enumerate(served):
        lo, hi = schedule.bounds[k], schedule.bounds[k + 1]
        assert models.size == hi - lo
        prompts = stream.prompts[lo:hi]
        kept = models >= 0
        assert set(models[kept].tolist()) <= set(run.deployed[k])
        assert run.reward[k] == pytest.approx(outcomes.reward[prompts[kept], models[kept]].sum())
        assert run.cost[k] == pytest.approx(outcomes.cost[prompts[kept], models[kept]].sum())
        assert run.dropped[k] == int((~kept).sum())
    if policy is Policy.UNIFORM:  # every deployed model serves about 1/|set| of each stage
        for k, models in enumerate(served):
            counts = np.bincount(models, minlength=5)[list(run.deployed[k])]
            assert counts.min() >= 0.6 * models.size / len(run.deployed[k])


def test_intervals_narrow_with_more_seeds():
    outcomes, catalog = small_world(4, n_models=5, n_prompts=100)
    widths = []
    for seeds in (3, 48):  # fewer than 3 seeds: no interval
        cfg = ReplayConfig(budget=0.4 * outcomes.mean_cost.max(), max_deployed=2, horizon=3000,
                           stages=6, seeds=seeds)
        result = replay(outcomes, catalog, cfg)
        widths.append(np.mean([hi - lo for p in result.policies if p.runs
                               for lo, hi in (p.ci95["mean_reward"], p.ci95["suboptimality"])]))
    assert 0 < widths[1] < widths[0] / 1.5


def test_same_seed_same_runs_and_another_seed_other_runs():
    outcomes, catalog = small_world(2)
    cfg = ReplayConfig(budget=0.4, max_deployed=2, horizon=2000, stages=5, seeds=2)
    a, b = replay(outcomes, catalog, cfg), replay(outcomes, catalog, cfg)
    other = replay(outcomes, catalog, dataclasses.replace(cfg, first_seed=7))
    for pa, pb in zip(a.policies, b.policies, strict=True):
        assert (pa.mean_reward, pa.mean_cost, pa.ci95) == (pb.mean_reward, pb.mean_cost, pb.ci95)
        for ra, rb in zip(pa.runs, pb.runs, strict=True):
            assert ra.reward.tolist() == rb.reward.tolist() and ra.deployed == rb.deployed
    learning = [(pa, po) for pa, po in zip(a.policies, other.policies, strict=True) if pa.runs]
    assert any(pa.mean_reward != po.mean_reward for pa, po in learning)
    # seeds 0 and 1 of a two-seed run are the one-seed runs with first_seed 0 and 1
    for first in (0, 1):
        single = replay(outcomes, catalog, dataclasses.replace(cfg, seeds=1, first_seed=first))
        for pa, ps in zip(a.policies, single.policies, strict=True):
            if pa.runs:
                assert pa.runs[first].reward.tolist() == ps.runs[0].reward.tolist()


def test_a_table_per_query_is_the_paper_and_fixed_tables_differ():
    outcomes, catalog = small_world(4)
    served = {}
    for refresh in (None, 3000, 2):
        cfg = ReplayConfig(budget=0.4, max_deployed=3, horizon=3000, stages=6, refresh=refresh)
        schedule = make_schedule(catalog, outcomes, cfg)
        stream = make_stream(len(outcomes.samples), cfg.horizon, seed=1)
        out: list[np.ndarray] = []
        run_policy(Policy.STAGEROUTE, outcomes, schedule, stream, cfg, np.ones(5), 1.5,
                   np.full((2, 5), np.nan), served=out)
        served[refresh] = np.concatenate(out).tolist()
    assert served[3000] == served[None]  # at least one table per query: per query
    assert served[2] != served[None]
