"""The exploration-aware routing table (optimize.explore) and the price prior (estimate.prior)."""

from __future__ import annotations

import numpy as np
import pytest

from stageroute.estimate.prior import price_cost, typical_tokens
from stageroute.optimize.explore import (
    deploy_caps,
    explorable,
    explore_limits,
    one_newcomer,
    solve_table,
)
from stageroute.optimize.route import solve_route_pyomo
from stageroute.options import Solver


def limits(n_r, alpha, share, min_samples, queries):
    cap, floor = np.empty(len(n_r)), np.empty(len(n_r))
    under = explore_limits(np.array(n_r, float), np.array(alpha, float), share, min_samples,
                           queries, cap, floor)
    return cap, floor, under


def test_under_sampled_models_share_the_slice_and_get_their_floors():
    cap, floor, under = limits([500, 0, 3], [1, 1, 1], 0.3, 20, 1000)
    assert under == 2
    assert cap.tolist() == [1.0, 0.15, 0.15]
    assert floor.tolist() == pytest.approx([0.0, 20 / 1000, 17 / 1000])


def test_share_one_is_the_paper_and_cold_start_has_no_cap():
    cap, floor, _ = limits([500, 0], [1, 1], 1.0, 20, 1000)
    assert cap.tolist() == [1, 1] and floor.tolist() == [0, 0]
    cap, floor, under = limits([0, 0], [1, 1], 0.3, 20, 1000)
    assert under == 2 and cap.tolist() == [1, 1] and floor.tolist() == [0.02, 0.02]


def test_the_slice_rises_only_as_far_as_the_rest_cannot_carry():
    cap, _, _ = limits([500, 0], [0.6, 1.0], 0.3, 20, 1000)
    assert cap.tolist() == pytest.approx([0.6, 0.4])
    cap, _, _ = limits([500, 0, 0], [0.5, 1.0, 0.2], 0.3, 20, 1000)
    assert cap.sum() == pytest.approx(1.0) and cap[2] <= 0.2 and cap[0] == 0.5


def test_floors_never_exceed_caps_nor_sum_above_one():
    cap, floor, _ = limits([500, 0, 0], [1, 1, 1], 0.3, 20, 10)
    assert (floor <= cap + 1e-15).all() and floor.sum() <= 1 + 1e-12
    _, floor, _ = limits([0, 0, 0], [1, 1, 1], 0.3, 20, 5)
    assert floor.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(60))
def test_table_equals_the_pyomo_lp_with_the_same_caps_and_floors(seed):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 7))
    u = rng.uniform(0.2, 1.0, d)
    c = rng.uniform(0.0, 1.0, d)
    n_r = rng.choice([0, 5, 50, 500], d).astype(float)
    alpha = np.where(rng.random(d) < 0.3, rng.uniform(0.3, 1.0, d), 1.0)
    if alpha.sum() < 1:
        alpha[0] = 1.0
    budget = float(rng.uniform(0.05, 0.9))
    drop = bool(rng.random() < 0.2)
    table = solve_table(u, c, alpha, n_r, budget, 0.3, 20, float(rng.integers(30, 3000)), drop)
    p = table.routing.probability
    assert (p >= table.floor - 1e-12).all() and (p <= table.cap + 1e-12).all()
    ref = solve_route_pyomo(u, c, table.cap, budget, Solver.HIGHS, drop, floor=table.floor)
    assert ref.over_budget == table.routing.over_budget
    if table.routing.over_budget:
        assert table.routing.cost == pytest.approx(ref.cost, rel=1e-6, abs=1e-9)
    else:
        assert table.routing.objective == pytest.approx(ref.objective, abs=1e-7)
        assert table.routing.cost <= budget * (1 + 1e-9)


def test_deploy_caps_split_the_slice_over_the_slots_it_could_fill():
    alpha = np.array([1.0, 1.0, 0.2])
    # two under-sampled models, M_max 3: two slots beside a known model, each at most 0.3 / 2
    assert deploy_caps(np.array([50.0, 0, 0]), alpha, 0.3, 20, 3).tolist() == [1.0, 0.15, 0.15]
    assert deploy_caps(np.array([50.0, 0, 0]), alpha, 0.3, 20, 2).tolist() == [1.0, 0.3, 0.2]
    # M_max 1: one slot, the whole slice
    assert deploy_caps(np.array([50.0, 0, 0]), alpha, 0.3, 20, 1).tolist() == [1.0, 0.3, 0.2]
    assert deploy_caps(np.array([0.0, 0, 0]), alpha, 0.3, 20, 3).tolist() == alpha.tolist()
    assert deploy_caps(np.array([50.0, 0, 0]), alpha, 1.0, 20, 3).tolist() == alpha.tolist()


def test_deploy_caps_rise_just_enough_where_the_known_models_cannot_carry_the_rest():
    """One well-sampled model with max_share 0.6 beside untried ones at 1.0, M_max 3: the slice
    split over two slots (0.15 each) would carry 0.9 at most, yet the pool's max_share values can
    carry all traffic; each under-sampled cap rises by the same fraction of its room until the
    best three carry exactly 1 (as ``explore_limits`` raises a deployed set's slice)."""
    from stageroute.optimize.deploy import solve_deploy

    n_r = np.array([0.0, 777, 37, 0, 0, 0])
    alpha = np.array([1.0, 0.6, 1.0, 0.5, 1.0, 1.0])
    caps = deploy_caps(n_r, alpha, 0.3, 40, 3)
    assert np.sort(caps)[::-1][:3].sum() == pytest.approx(1.0, abs=1e-12)
    assert np.sort(caps)[::-1][:3].sum() >= 1.0 - 1e-12
    assert caps[1] == 0.6 and (caps <= alpha).all()
    lift = (caps[[0, 2, 3, 4, 5]] - 0.15) / (alpha[[0, 2, 3, 4, 5]] - 0.15)
    assert lift == pytest.approx(np.full(5, 0.1 / 1.7))
    dep = solve_deploy(np.ones(6), np.zeros(6), caps, 1.0, 3)
    assert caps[dep.chosen].sum() >= 1.0 - 1e-12
    # a pool that max_share cannot carry either keeps the plain slice (DeployOPT refuses it)
    low = np.full(4, 0.3)
    assert deploy_caps(np.array([50.0, 0, 0, 0]), low, 0.3, 40, 3).tolist() == [0.3, 0.15, 0.15, 0.15]
    rng = np.random.default_rng(0)
    for _ in range(2000):  # whenever max_share can carry the traffic, so can the caps
        n = int(rng.integers(1, 8))
        a = rng.choice([0.1, 0.25, 0.4, 0.5, 0.6, 0.7, 1.0], n)
        m = int(rng.integers(1, 5))
        cap = deploy_caps(rng.choice([0.0, 10.0, 100.0], n), a, float(rng.choice([0.1, 0.3, 0.6])),
                          40, m)
        assert (cap <= a).all()
        if np.sort(a)[::-1][:m].sum() >= 1.0 - 1e-12:
            assert np.sort(cap)[::-1][:m].sum() >= 1.0 - 1e-12


def test_deployopt_keeps_a_known_model_when_untried_ones_crowd_the_pool():
    """Four untried models and M_max 4: the slice must not hand the stage to them."""
    from stageroute.optimize.deploy import solve_deploy

    u, c = np.array([0.8, 1, 1, 1, 1]), np.zeros(5)
    n_r, alpha = np.array([5000.0, 0, 0, 0, 0]), np.ones(5)
    caps = deploy_caps(n_r, alpha, 0.3, 40, 4)
    dep = solve_deploy(u, c, caps, 1.0, 4)
    assert dep.chosen[0]
    chosen = np.flatnonzero(dep.chosen)
    table = solve_table(u[chosen], c[chosen], alpha[chosen], n_r[chosen], 1.0, 0.3, 40, 1000)
    under = n_r[chosen] < 40
    assert table.routing.probability[under].sum() <= 0.3 + 1e-12


def test_a_model_the_stage_cannot_explore_is_not_deployed():
    n_r = np.array([500.0, 0.0, 0.0, 10.0])
    alpha = np.ones(4)
    # 100 requests: a share of 0.3 over three under-sampled models is 10 each; the untried ones
    # need 20, so the least preferred goes (2); then 15 each is still short of 20 for model 1
    kept, dropped = explorable(np.array([0, 1, 2, 3]), n_r, alpha, 0.3, 20, 100)
    assert dropped.tolist() == [2, 1] and kept.tolist() == [0, 3]
    # enough traffic: everybody stays
    kept, dropped = explorable(np.array([0, 1, 2, 3]), n_r, alpha, 0.3, 20, 1000)
    assert dropped.size == 0
    # the paper's setting never drops
    _, dropped = explorable(np.array([0, 1, 2]), n_r, alpha, 1.0, 20, 10)
    assert dropped.size == 0


def test_typical_tokens_recover_the_tokens_behind_the_costs():
    rng = np.random.default_rng(3)
    p_in, p_out = rng.uniform(0.1, 10, 6), rng.uniform(0.1, 30, 6)
    cost = (p_in * 800 + p_out * 300) / 1e6
    t_in, t_out = typical_tokens(cost, np.full(6, 40.0), p_in, p_out)
    assert (t_in, t_out) == pytest.approx((800, 300), rel=1e-9)
    prior = price_cost(np.array([2.0, np.nan]), np.array([4.0, 1.0]), (t_in, t_out))
    assert prior[0] == pytest.approx((2 * 800 + 4 * 300) / 1e6) and np.isnan(prior[1])


def test_typical_tokens_need_a_tried_priced_model():
    nan = np.array([np.nan])
    assert typical_tokens(np.array([0.001]), np.array([0.0]), np.ones(1), np.ones(1)) is None
    assert typical_tokens(np.array([0.001]), np.array([9.0]), nan, nan) is None
    # one model: the split is not identified, tokens split evenly
    assert typical_tokens(np.array([0.002]), np.array([9.0]), np.ones(1), np.ones(1)) == \
        pytest.approx((1000, 1000))


def test_one_model_billed_far_below_list_price_does_not_make_untried_models_free():
    p_in, p_out = np.array([1.0, 1.0, 2.0, 5.0]), np.array([2.0, 6.0, 3.0, 10.0])
    cost = (p_in * 300 + p_out * 450) / 1e6
    cost[3] = 9e-7  # cached or self-hosted: about 1/200 of its list price
    t_in, t_out = typical_tokens(cost, np.full(4, 9.0), p_in, p_out)
    assert t_in == pytest.approx(300, rel=1e-6) and t_out == pytest.approx(450, rel=1e-6)


@pytest.mark.parametrize("cost", [[1e300, 0.0031], [1e-310, 1e-310], [np.inf, np.nan]])
def test_typical_tokens_never_return_non_finite_or_zero_tokens(cost):
    got = typical_tokens(np.array(cost), np.full(2, 9.0), np.array([1.0, 1.0]),
                         np.array([2.0, 6.0]))
    assert got is None or (all(np.isfinite(got)) and max(got) > 0)


def test_one_newcomer_keeps_the_most_sampled_then_the_priciest_under_sampled_model():
    u = np.array([0.8, 0.7, 1.0, 1.0, 1.0, 0.9])
    c = np.array([0.1, 0.2, 0.3, 0.9, 0.5, 0.1])
    n_r = np.array([500.0, 300.0, 0.0, 0.0, 0.0, 12.0])
    # model 5 has rewards already: it is finished first, the untried ones wait
    out = one_newcomer(u, c, n_r, 40.0, 0.3, 3, 2)
    assert out.tolist() == [0.8, 0.7, -1.0, -1.0, -1.0, 0.9]
    # among untried models the highest cost bound (list price) goes first, ties by index
    n_r[5] = 40.0
    assert one_newcomer(u, c, n_r, 40.0, 0.3, 3, 2).tolist() == [0.8, 0.7, -1.0, 1.0, -1.0, 0.9]
    c[2] = 0.9
    assert one_newcomer(u, c, n_r, 40.0, 0.3, 3, 2).tolist() == [0.8, 0.7, 1.0, -1.0, -1.0, 0.9]
    assert u.tolist() == [0.8, 0.7, 1.0, 1.0, 1.0, 0.9]  # not modified in place


def test_one_newcomer_applies_only_to_bounded_exploration_beside_enough_known_models():
    u = np.array([0.8, 1.0, 1.0])
    c = np.array([0.1, 0.2, 0.3])
    n_r = np.array([500.0, 0.0, 0.0])
    assert one_newcomer(u, c, n_r, 40.0, 1.0, 2, 2) is u  # share 1: the paper, no slice
    assert one_newcomer(u, c, n_r, 40.0, 0.3, 3, 2) is u  # 1 known < M_max - 1 = 2: cold start
    assert one_newcomer(u, c, n_r, 40.0, 0.3, 2, 2).tolist() == [0.8, -1.0, 1.0]
    assert one_newcomer(u, c, np.array([500.0, 50.0, 0.0]), 40.0, 0.3, 2, 2) is u  # one under
    assert one_newcomer(u, c, n_r, 40.0, 0.3, 2, 1) is u  # one segment: the one-table plan


def test_a_declined_newcomer_does_not_keep_the_newer_ones_out():
    """one_newcomer picks model 2 (it has rewards); DeployOPT declines it (its bounds are
    poor), so the next under-sampled model, 3, is explored instead of none for ever."""
    from stageroute.optimize.explore import refill_one_newcomer

    u = np.array([0.8, 0.7, 0.3, 1.0, 1.0])
    c = np.array([0.1, 0.2, 0.1, 0.5, 0.3])
    n_r = np.array([500.0, 300.0, 12.0, 0.0, 0.0])
    alpha = np.ones(5)

    def solve(bounds):  # the best 3 by bound, model 2 never (declined)
        mask = np.zeros(bounds.size, dtype=bool)
        mask[[i for i in np.argsort(-bounds, kind="stable") if i != 2 and bounds[i] >= 0][:3]] = True
        return mask, mask

    answer, excluded, bounds, held = refill_one_newcomer(solve, u, c, n_r, alpha, 0.3, 40.0, 1000.0,
                                                  3, 2, lambda m: m)
    assert answer.tolist() == [True, True, False, True, False]
    assert bounds.tolist() == [0.8, 0.7, -1.0, 1.0, -1.0]  # 4 waits: one newcomer at a time
    assert held.tolist() == [False, False, False, False, True]  # 2 was declined, not held
    assert excluded.size == 0  # neither is unexplorable: 2 was declined, 4 is held
    declined_only = refill_one_newcomer(solve, u[:3], c[:3], n_r[:3], alpha[:3], 0.3, 40.0,
                                        1000.0, 3, 2, lambda m: m)
    assert declined_only[0].tolist() == [True, True, False]  # none left to try: the known ones
