"""PORT as a replay baseline (simulate.port): routing, budgets, the one-off dual prices."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from stageroute.errors import UsageError
from stageroute.simulate import port
from stageroute.simulate.port import (
    budget_split,
    dual_prices,
    neighbour_estimates,
    route_queries,
    run_port,
    split_reference,
    top_k,
)


def clusters(per: int, n_clusters: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Unit feature rows in ``n_clusters`` tight clusters (one axis each) and each row's cluster."""
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(n_clusters), per)
    features = np.eye(n_clusters)[label] + 0.05 * rng.normal(size=(label.size, n_clusters))
    return features / np.linalg.norm(features, axis=1, keepdims=True), label


def random_table(p: int, n: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                                    NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(p, 8))
    R = (rng.random((p, n)) < np.linspace(0.3, 0.9, n)).astype(np.float64)
    C = rng.random((p, n)) * np.linspace(1e-4, 3e-3, n)
    return features, R, C


def stream(rows: NDArray[np.int64], horizon: int, seed: int) -> NDArray[np.int64]:
    return rows[np.random.default_rng(seed).integers(0, rows.size, horizon)]


def one_stage(n: int, horizon: int) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    return np.ones((1, n), dtype=bool), np.array([0, horizon], dtype=np.int64)


def test_each_cluster_goes_to_its_best_model_under_a_loose_budget() -> None:
    features, label = clusters(60, 3, 0)
    R = np.where(np.eye(3, dtype=bool)[label], 0.95, 0.2)  # model c is the best on cluster c
    C = np.full(R.shape, 1e-3)
    reference, rest = split_reference(label.size, 0)
    prompts = stream(rest, 4000, 1)
    pools, bounds = one_stage(3, prompts.size)
    run = run_port(features, R, C, prompts, pools, bounds, 0.01, reference)
    n_warm = int(np.ceil(port.WARMUP * prompts.size))
    np.testing.assert_array_equal(run.served[n_warm:], label[prompts[n_warm:]])
    assert run.reward[n_warm:].min() == 0.95


def test_a_tight_budget_is_never_exceeded_per_model_nor_in_total() -> None:
    features, R, C = random_table(400, 5, 2)
    reference, rest = split_reference(400, 3)
    for seed in range(4):
        prompts = stream(rest, 3000, seed)
        pools, bounds = one_stage(5, prompts.size)
        b = 0.2 * float(C.mean(axis=0).max())
        run = run_port(features, R, C, prompts, pools, bounds, b, reference, seed=seed)
        served = run.served >= 0
        spent = np.bincount(run.served[served], weights=run.cost[served], minlength=5)
        assert (spent <= run.model_budget * (1 + 1e-12)).all()
        assert run.cost.sum() <= b * prompts.size * (1 + 1e-12)
        assert np.isclose(run.model_budget.sum(), b * prompts.size)
        assert (~served).sum() > 0  # the budget binds: some queries are dropped


def test_dropped_queries_earn_and_cost_nothing_and_served_ones_their_outcome() -> None:
    features, R, C = random_table(300, 4, 4)
    reference, rest = split_reference(300, 5)
    prompts = stream(rest, 2000, 6)
    pools, bounds = one_stage(4, prompts.size)
    run = run_port(features, R, C, prompts, pools, bounds, 0.1 * float(C.mean()), reference)
    dropped = run.served < 0
    assert dropped.any() and (run.reward[dropped] == 0).all() and (run.cost[dropped] == 0).all()
    ok = ~dropped
    np.testing.assert_array_equal(run.reward[ok], R[prompts[ok], run.served[ok]])
    np.testing.assert_array_equal(run.cost[ok], C[prompts[ok], run.served[ok]])


def test_prices_come_from_the_warm_up_queries_alone() -> None:
    features, R, C = random_table(500, 4, 7)
    reference, rest = split_reference(500, 8)
    warm_rows, late_rows = rest[: rest.size // 2], rest[rest.size // 2:]
    horizon = 2000
    n_warm = int(np.ceil(port.WARMUP * horizon))
    prompts = np.concatenate([stream(warm_rows, n_warm, 9), stream(late_rows, horizon - n_warm, 10)])
    pools, bounds = one_stage(4, horizon)
    b = 0.3 * float(C.mean(axis=0).max())
    base = run_port(features, R, C, prompts, pools, bounds, b, reference)
    rng = np.random.default_rng(11)
    R2, C2, f2 = R.copy(), C.copy(), features.copy()
    R2[late_rows] = 1.0 - R2[late_rows]
    C2[late_rows] *= 5.0
    f2[late_rows] = rng.normal(size=(late_rows.size, features.shape[1]))
    other = run_port(f2, R2, C2, prompts, pools, bounds, b, reference)
    np.testing.assert_array_equal(base.prices, other.prices)
    assert base.dual_value == other.dual_value
    assert base.prices.max() > 0  # the prices are not trivially zero
    # ... and they do change when a warm-up query's features do
    f3 = features.copy()
    f3[warm_rows] = rng.normal(size=(warm_rows.size, features.shape[1]))
    assert not np.array_equal(run_port(f3, R, C, prompts, pools, bounds, b, reference).prices,
                              base.prices)


def test_a_model_outside_the_pool_is_never_chosen_and_the_cap_holds() -> None:
    features, R, C = random_table(400, 5, 12)
    reference, rest = split_reference(400, 13)
    prompts = stream(rest, 3000, 14)
    pools = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=bool)
    bounds = np.array([0, 1200, 3000], dtype=np.int64)
    b = 0.5 * float(C.mean(axis=0).max())
    for cap in (None, 2):
        run = run_port(features, R, C, prompts, pools, bounds, b, reference, max_deployed=cap)
        for k in range(2):
            got = run.served[bounds[k]:bounds[k + 1]]
            got = np.unique(got[got >= 0])
            assert pools[k, got].all() and run.allowed[k, got].all()
            if cap is not None:
                assert got.size <= cap and run.allowed[k].sum() == cap
        assert run.model_budget[~run.allowed.any(axis=0)].sum() == 0


def test_the_compiled_loop_equals_its_python_function() -> None:
    features, R, C = random_table(200, 4, 15)
    reference, rest = split_reference(200, 16)
    prompts = stream(rest, 600, 17)
    rows, est = np.unique(prompts, return_inverse=True)
    d_hat, g_hat = neighbour_estimates(features, R, C, reference, rows.astype(np.int64), 5)
    allowed = np.array([[1, 1, 1, 0], [0, 1, 1, 1]], dtype=bool)
    bounds = np.array([0, 250, 600], dtype=np.int64)
    prices = np.array([50.0, 200.0, 10.0, 400.0])
    budget = np.array([0.02, 0.05, 0.1, 0.05])
    draws = np.random.default_rng(18).random(600)
    outs = []
    for fn in (route_queries, route_queries.py_func):
        out = (np.empty(600, dtype=np.int64), np.empty(600), np.empty(600))
        fn(allowed, bounds, prompts, est.astype(np.int64), R, C, d_hat, g_hat, prices, budget, 40,
           draws, *out)
        outs.append(out)
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (outs[0][0][:40] == -1).any() and (outs[0][0] >= 0).any()


def test_neighbours_are_the_k_most_similar_reference_rows() -> None:
    features, R, C = random_table(120, 3, 19)
    reference, rest = split_reference(120, 20)
    d_hat, g_hat = neighbour_estimates(features, R, C, reference, rest, 5)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    for n, row in enumerate(rest):
        near = reference[np.argsort(-(unit[reference] @ unit[row]), kind="stable")[:5]]
        np.testing.assert_allclose(d_hat[n], R[near].mean(axis=0))
        np.testing.assert_allclose(g_hat[n], C[near].mean(axis=0))
    sims = np.array([[0.5, 0.9, 0.9, 0.1, 0.9]])
    np.testing.assert_array_equal(top_k(sims, 3), [[1, 2, 4]])  # ties: the lower column first
    np.testing.assert_array_equal(top_k.py_func(sims, 4), [[1, 2, 4, 0]])


def grid_minimum(d: NDArray[np.float64], g: NDArray[np.float64], budget: NDArray[np.float64],
                 warmup: float, cap: float, steps: int) -> float:
    """min of the dual over a grid of [0, cap]^2 (two models), written out independently."""
    lam = np.linspace(0.0, cap, steps)
    l0, l1 = np.meshgrid(lam, lam, indexing="ij")
    s0 = d[:, 0, None, None] - l0[None] * g[:, 0, None, None]
    s1 = d[:, 1, None, None] - l1[None] * g[:, 1, None, None]
    value = warmup * (l0 * budget[0] + l1 * budget[1]) + np.maximum(s0, s1).sum(axis=0)
    return float(value.min())


@pytest.mark.parametrize("alpha", [1e-4, 1e-2])  # 1e-2: the box lambda <= 100 binds
def test_the_dual_minimum_matches_a_brute_force_grid(alpha: float) -> None:
    rng = np.random.default_rng(21)
    d = rng.random((40, 2))
    g = rng.random((40, 2)) * np.array([1e-3, 4e-3])
    budget = np.array([0.4, 2.0])
    warmup = 0.025
    lam, value = dual_prices(d, g, np.ones(2, dtype=bool), budget, warmup, alpha)
    direct = warmup * lam @ budget + (d - lam * g).max(axis=1).sum()
    assert value == pytest.approx(direct, rel=1e-9)
    cap, steps = 1.0 / alpha, 2001
    grid = grid_minimum(d, g, budget, warmup, cap, steps)
    lipschitz = warmup * budget.sum() + g.sum()  # |dG/dlambda_i| <= warmup B_i + sum_j g_ji
    assert value <= grid + 1e-9
    assert grid - value <= lipschitz * cap / (steps - 1)
    assert (lam >= 0).all() and (lam <= 1.0 / alpha + 1e-9).all()
    if alpha == 1e-2:
        assert lam.max() == pytest.approx(100.0)
    else:
        assert 0 < lam.max() < 1.0 / alpha  # an interior minimum


def test_counted_rows_equal_repeated_rows_in_the_dual() -> None:
    rng = np.random.default_rng(22)
    d, g = rng.random((30, 3)), rng.random((30, 3)) * 1e-3
    count = rng.integers(1, 4, 30)
    budget = np.array([0.1, 0.2, 0.3])
    every = np.ones(3, dtype=bool)
    _, counted = dual_prices(d, g, every, budget, 0.05, 1e-4, count.astype(np.float64))
    _, repeated = dual_prices(np.repeat(d, count, axis=0), np.repeat(g, count, axis=0), every,
                              budget, 0.05, 1e-4)
    assert counted == pytest.approx(repeated, rel=1e-9)


def test_the_weighted_split_follows_reward_over_cost_and_serving_share() -> None:
    got = budget_split(np.array([0.4, 0.9, 0.5, 0.0]), np.array([1e-4, 9e-4, 0.0, 1e-3]),
                       np.array([1.0, 0.5, 1.0, 1.0]), 10.0, "weighted")
    w = np.array([np.sqrt(0.4 / 1e-4), 0.5 * np.sqrt(0.9 / 9e-4), 0.0, 0.0])
    np.testing.assert_allclose(got, 10.0 * w / w.sum())
    np.testing.assert_allclose(budget_split(np.ones(2), np.ones(2), np.array([1.0, 0.25]), 5.0,
                                            "uniform"), [4.0, 1.0])


def test_the_stream_may_not_visit_the_reference_rows() -> None:
    features, R, C = random_table(100, 3, 23)
    reference, rest = split_reference(100, 24)
    assert np.intersect1d(reference, rest).size == 0 and reference.size + rest.size == 100
    prompts = np.concatenate([stream(rest, 50, 25), reference[:1]])
    pools, bounds = one_stage(3, prompts.size)
    with pytest.raises(UsageError, match="reference"):
        run_port(features, R, C, prompts, pools, bounds, 1e-3, reference)


def plain_port(features: NDArray[np.float64], R: NDArray[np.float64], C: NDArray[np.float64],
               prompts: NDArray[np.int64], budget: float, reference: NDArray[np.int64],
               seed: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """PORT as algo.py and test.py run it (one stage, every model), query by query in plain
    Python; only the dual minimisation is shared (it has a test of its own)."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    n_models, horizon = R.shape[1], prompts.size
    d, g = np.empty((horizon, n_models)), np.empty((horizon, n_models))
    for t, row in enumerate(prompts):
        near = reference[np.argsort(-(unit[reference] @ unit[row]), kind="stable")[:5]]
        d[t], g[t] = R[near].mean(axis=0), C[near].mean(axis=0)
    w = np.sqrt(R[reference].mean(axis=0) / C[reference].mean(axis=0))
    model_budget = budget * horizon * w / w.sum()
    n_warm = int(np.ceil(port.WARMUP * horizon))
    rows, first, count = np.unique(prompts[:n_warm], return_index=True, return_counts=True)
    prices, _ = dual_prices(d[first], g[first], np.ones(n_models, dtype=bool), model_budget,
                            port.WARMUP, port.ALPHA, count.astype(np.float64))
    draws = np.random.default_rng(seed).random(horizon)
    spent, served = np.zeros(n_models), np.full(horizon, -1)
    for t, row in enumerate(prompts):
        pick = int(draws[t] * (n_models + 1)) if t < n_warm else int(np.argmax(d[t] - prices * g[t]))
        if pick < n_models and spent[pick] + C[row, pick] <= model_budget[pick]:
            spent[pick] += C[row, pick]
            served[t] = pick
    return served, prices


def test_run_port_equals_a_plain_query_by_query_port() -> None:
    features, R, C = random_table(300, 4, 26)
    reference, rest = split_reference(300, 27)
    prompts = stream(rest, 1500, 28)
    pools, bounds = one_stage(4, prompts.size)
    b = 0.25 * float(C.mean(axis=0).max())
    run = run_port(features, R, C, prompts, pools, bounds, b, reference, seed=29)
    served, prices = plain_port(features, R, C, prompts, b, reference, 29)
    np.testing.assert_array_equal(run.prices, prices)
    np.testing.assert_array_equal(run.served, served)
    assert (served == -1).sum() > 0 and len(set(served[served >= 0])) > 1 and prices.max() > 0
