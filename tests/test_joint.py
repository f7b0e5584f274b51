"""Joint (contextual) RouteOPT and DeployOPT: the exact solver against HiGHS, the single-segment
RouteOPT, per-segment decompositions, and the MIP against enumeration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import highspy
import numpy as np
import pytest

from stageroute.errors import InfeasibleError
from stageroute.optimize.joint import (
    JointRouting,
    solve_joint_deploy,
    solve_joint_deploy_exhaustive,
    solve_joint_route,
    solve_joint_route_pyomo,
)
from stageroute.optimize.joint_kernels import (
    best_set,
    joint_route_into,
    joint_route_near,
    joint_workspace,
)
from stageroute.optimize.route import cost_unit, solve_route
from stageroute.options import Solver

FEAS = 1e-9  # constraints of the exact solver (relative to the cost unit for the budget)
OBJ = 1e-7  # objective against HiGHS, relative


def highs_lp(u, c, w, a, floor, budget, allow_drop, minimise_cost=False):
    """The joint LP on highspy directly (a Pyomo model per instance is too slow for 1,000 runs):
    (status optimal?, objective, cost). Costs in units of ``cost_unit``."""
    s, m = u.shape
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)  # as optimize.solver sets it: HiGHS fixes it at its first run
    for key in ("primal_feasibility_tolerance", "dual_feasibility_tolerance"):
        h.setOptionValue(key, 1e-10)
    objective = (w[:, None] * c).ravel() if minimise_cost else (w[:, None] * u).ravel()
    h.addCols(s * m, objective, np.zeros(s * m), np.ones(s * m), 0, np.zeros(0, np.int32),
              np.zeros(0, np.int32), np.zeros(0))
    rows = np.zeros((s + m + 1, s * m))
    for i in range(s):
        rows[i, i * m:(i + 1) * m] = 1.0
        rows[s:s + m, i * m:(i + 1) * m] = np.eye(m) * w[i]
    rows[s + m] = (w[:, None] * c).ravel()
    lower = np.concatenate([np.zeros(s) if allow_drop else np.ones(s), floor, [-np.inf]])
    upper = np.concatenate([np.ones(s), a, [np.inf if budget is None else budget]])
    starts, index, value = [], [], []
    for r in rows:
        starts.append(len(index))
        nz = np.flatnonzero(r)
        index.extend(nz)
        value.extend(r[nz])
    h.addRows(len(rows), lower, upper, len(index), np.array(starts, np.int32),
              np.array(index, np.int32), np.array(value))
    if not minimise_cost:
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return False, np.nan, np.nan
    p = np.array(h.getSolution().col_value).reshape(s, m)
    return True, float(w @ (p * u).sum(axis=1)), float(w @ (p * c).sum(axis=1))


def reference(u, c, w, a, floor, budget, allow_drop):
    """(objective, cost in money, over budget) of the LP, with the over-budget fallback."""
    w = w / w.sum()
    unit = cost_unit(c, budget)
    ok, obj, cost = highs_lp(u, c / unit, w, a, floor, budget / unit, allow_drop)
    if ok:
        return obj, cost * unit, False
    ok, _, least = highs_lp(u, c / unit, w, a, floor, None, allow_drop, minimise_cost=True)
    assert ok
    # at the least cost itself: where reward is dear, a slack of 1e-13 buys 1e-8 of it
    for slack in (0.0, 1e-13):
        ok, obj, cost = highs_lp(u, c / unit, w, a, floor, least + slack, allow_drop)
        if ok:
            break
    assert ok
    return obj, cost * unit, True


def check_constraints(r: JointRouting, c, w, a, floor, budget, allow_drop, tol=FEAS):
    w = w / w.sum()
    p = r.probability
    assert np.all(p >= -tol)
    rows = p.sum(axis=1) + r.dropped
    assert np.allclose(rows, 1.0, atol=tol, rtol=0)
    if not allow_drop:
        assert np.all(r.dropped == 0)
    share = w @ p
    assert np.all(share <= a + tol) and np.all(share >= floor - tol)
    assert r.cost == pytest.approx(float(w @ (p * c).sum(axis=1)), rel=1e-12, abs=1e-15)
    if not r.over_budget:
        assert r.cost <= budget + tol * cost_unit(c, budget)


def random_instance(rng):
    """Random shapes, binding or loose budgets and caps, floors, drop, ties and zero costs."""
    s, m = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    grid = rng.random() < 0.3  # a coarse grid: exact ties in rewards and costs
    u = np.round(rng.random((s, m)), 1) if grid else rng.random((s, m))
    c = np.round(rng.random((s, m)), 1) if grid else rng.random((s, m)) * (u + 0.2)
    if rng.random() < 0.3:
        c[:, rng.random(m) < 0.3] = 0.0  # free models
    if rng.random() < 0.2:
        u[:, -1], c[:, -1] = u[:, 0], c[:, 0]  # a duplicate model
    c *= 1e-4 if rng.random() < 0.3 else 1.0  # USD-like magnitudes
    w = rng.random(s) * (rng.random(s) < 0.9)
    if w.sum() == 0:
        w[0] = 1.0
    allow_drop = bool(rng.random() < 0.25)
    a = np.ones(m) if rng.random() < 0.3 else rng.uniform(0.05, 1.0, m)
    if not allow_drop and a.sum() < 1:
        a = np.minimum(a / a.sum() * rng.uniform(1.0, 1.5), 1.0)
        a[np.argmax(a)] = max(a.max(), 1.0 - (a.sum() - a.max()))
    floor = np.zeros(m)
    if rng.random() < 0.3:
        floor = a * rng.uniform(0, 0.6, m)
        floor *= min(1.0, 0.9 / max(floor.sum(), 1e-12))
    lo, hi = float(c.min(axis=1).mean()), float(c.max(axis=1).mean())
    pick = rng.random()
    budget = (lo * rng.uniform(0.2, 0.9) if pick < 0.15 else hi * 2 if pick < 0.3
              else float(rng.choice(c.ravel())) if pick < 0.4 else rng.uniform(lo, hi))
    return u, c, w, a, floor, float(budget), allow_drop


def test_fast_solver_equals_highs_on_random_instances() -> None:
    rng = np.random.default_rng(12)
    over = 0
    for _ in range(1200):
        u, c, w, a, floor, budget, allow_drop = random_instance(rng)
        r = solve_joint_route(u, c, w, a, budget, floor=floor, allow_drop=allow_drop)
        obj, cost, ref_over = reference(u, c, w, a, floor, budget, allow_drop)
        check_constraints(r, c, w, a, floor, budget, allow_drop)
        assert r.over_budget == ref_over
        assert r.objective == pytest.approx(obj, rel=OBJ, abs=OBJ)
        if ref_over:  # the cheapest mixture: the same least cost
            assert r.cost == pytest.approx(cost, rel=1e-6, abs=1e-12)
        over += ref_over
    assert 20 < over < 600  # both regimes were exercised


def kernel_input(u, c, w, a, floor, allow_drop):
    """The kernels' input: shares that sum to 1, the null option appended for allow-drop."""
    w = w / w.sum()
    if allow_drop:
        s = u.shape[0]
        u, c = np.hstack([u, np.zeros((s, 1))]), np.hstack([c, np.zeros((s, 1))])
        a, floor = np.append(a, 1.0), np.append(floor, 0.0)
    return u, c, w, a, floor


def test_warm_started_solver_equals_the_cold_one_on_drifting_instances() -> None:
    """``joint_route_near`` (started from the last table's price, as the per-query replay
    re-solves) against ``joint_route_into`` from scratch: the same status, reward and cost on
    sequences of instances that drift a little (one cell, the shares) or jump (a new instance),
    so the warm bracket holds, the price falls below it or rises above it."""
    rng = np.random.default_rng(21)
    warm_ws = None
    checked = 0
    for _ in range(300):
        u, c, w, a, floor, budget, allow_drop = random_instance(rng)
        u, c, w, a, floor = kernel_input(u, c, w, a, floor, allow_drop)
        warm_ws = joint_workspace(*u.shape)
        for step in range(8):
            if step:
                s, m = rng.integers(u.shape[0]), rng.integers(u.shape[1])
                scale = 10.0 ** -rng.integers(1, 5)
                u[s, m] = max(u[s, m] + rng.normal(0, scale), 0.0)
                c[s, m] = max(c[s, m] * (1 + rng.normal(0, scale)), 0.0)
                w = w * (1 + rng.random(w.size) * scale)
                w /= w.sum()
            p_warm, p_cold = np.zeros(u.shape), np.zeros(u.shape)
            status = joint_route_near(u, c, w, a, floor, budget, p_warm, warm_ws)
            assert status == joint_route_into(u, c, w, a, floor, budget, p_cold,
                                              joint_workspace(*u.shape))
            if status == 2:
                continue
            for v in (u, c):
                cold, warm = w @ (p_cold * v).sum(axis=1), w @ (p_warm * v).sum(axis=1)
                assert warm == pytest.approx(cold, rel=1e-9, abs=1e-12)
            assert np.allclose(p_warm.sum(axis=1)[w > 0], 1.0, atol=1e-12)
            assert np.all(w @ p_warm <= a + 1e-12) and np.all(w @ p_warm >= floor - 1e-12)
            checked += 1
    assert checked > 1500


def test_tables_kept_from_the_last_solve_give_the_cold_optimum() -> None:
    """Without binding caps or floors the last solve's two flows are kept (one column per
    segment) and Newton's steps start from them with the new shares: the same reward and cost
    as from scratch, on drifting instances where that path is taken."""
    rng = np.random.default_rng(5)
    kept = checked = 0
    for _ in range(200):
        s, n = int(rng.integers(2, 30)), int(rng.integers(2, 8))
        u, c = rng.random((s, n)), rng.random((s, n)) * 10.0 ** rng.integers(-3, 3)
        w = rng.dirichlet(np.ones(s))
        a, floor = np.ones(n), np.zeros(n)
        budget = float(np.quantile(c, rng.uniform(0.1, 0.6)))
        ws = joint_workspace(s, n)
        for step in range(10):
            if step:
                i, j = rng.integers(s), rng.integers(n)
                u[i, j] = max(u[i, j] + rng.normal(0, 1e-3), 0.0)
                c[i, j] *= 1 + rng.normal(0, 1e-3)
                w = w * (1 + rng.random(s) * 1e-3)
                w /= w.sum()
            kept += ws[12][1] > 0
            p_warm, p_cold = np.zeros((s, n)), np.zeros((s, n))
            status = joint_route_near(u, c, w, a, floor, budget, p_warm, ws)
            assert status == joint_route_into(u, c, w, a, floor, budget, p_cold,
                                              joint_workspace(s, n))
            for v in (u, c):
                cold, warm = w @ (p_cold * v).sum(axis=1), w @ (p_warm * v).sum(axis=1)
                assert warm == pytest.approx(cold, rel=1e-9, abs=1e-12)
            assert np.allclose(p_warm.sum(axis=1), 1.0, atol=1e-12)
            checked += 1
    assert kept > checked // 2


def test_pyomo_reference_agrees() -> None:
    rng = np.random.default_rng(3)
    for _ in range(15):
        u, c, w, a, floor, budget, allow_drop = random_instance(rng)
        r = solve_joint_route(u, c, w, a, budget, floor=floor, allow_drop=allow_drop)
        q = solve_joint_route_pyomo(u, c, w, a, budget, floor=floor, allow_drop=allow_drop)
        check_constraints(q, c, w, a, floor, budget, allow_drop, tol=1e-6)  # HiGHS' tolerances
        assert q.over_budget == r.over_budget
        assert q.objective == pytest.approx(r.objective, rel=OBJ, abs=OBJ)


@pytest.mark.parametrize("allow_drop", [False, True])
def test_one_segment_is_route_opt(allow_drop: bool) -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        m = int(rng.integers(1, 9))
        u, c = rng.random(m), rng.random(m)
        a = rng.uniform(0.1, 1.0, m) if rng.random() < 0.5 else np.ones(m)
        if not allow_drop and a.sum() < 1:
            a = np.ones(m)
        budget = float(rng.uniform(0, 1))
        single = solve_route(u, c, a, budget, allow_drop)
        joint = solve_joint_route(u[None], c[None], [1.0], a, budget, allow_drop=allow_drop)
        np.testing.assert_allclose(joint.probability[0], single.probability, atol=1e-9)
        assert joint.objective == pytest.approx(single.objective, rel=1e-9, abs=1e-12)
        assert joint.over_budget == single.over_budget
        assert joint.dropped[0] == pytest.approx(single.dropped, abs=1e-9)


def test_loose_budget_and_caps_give_each_segment_its_own_table() -> None:
    rng = np.random.default_rng(6)
    for _ in range(100):
        s, m = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        u, c, w = rng.random((s, m)), rng.random((s, m)), rng.random(s) + 0.01
        joint = solve_joint_route(u, c, w, np.ones(m), 2.0)
        for i in range(s):
            own = solve_route(u[i], c[i], np.ones(m), 2.0)
            np.testing.assert_allclose(joint.probability[i], own.probability, atol=1e-12)


def test_binding_budget_and_caps_beat_every_decomposition() -> None:
    """Per-segment budgets b_s (sum_s w_s b_s = b) and the caps a_m in every segment make a
    feasible joint table, so the joint optimum is at least as good; here it is often better."""
    rng = np.random.default_rng(7)
    better = 0
    for _ in range(60):
        s, m = int(rng.integers(2, 7)), int(rng.integers(2, 7))
        u = rng.random((s, m))
        c = rng.random((s, m)) * (u + 0.1)
        w = rng.random(s) + 0.05
        w /= w.sum()
        a = np.minimum(rng.uniform(0.2, 0.8, m), 1.0)
        if a.sum() < 1:
            a[0] = 1.0
        budget = float(np.quantile(c, 0.4))
        joint = solve_joint_route(u, c, w, a, budget)
        check_constraints(joint, c, w, a, np.zeros(m), budget, False)
        best_split = -np.inf
        for _ in range(20):
            share = rng.dirichlet(np.ones(s))
            b = budget * share / (w @ share)
            parts = [solve_route(u[i], c[i], a, float(b[i])) for i in range(s)]
            if any(p.over_budget for p in parts):
                continue
            value = float(sum(w[i] * parts[i].objective for i in range(s)))
            assert joint.objective >= value - 1e-12
            best_split = max(best_split, value)
        better += joint.objective > best_split + 1e-6
    assert better > 10


def test_over_budget_serves_the_cheapest_table_with_the_most_reward() -> None:
    u = np.array([[0.9, 0.5, 0.5], [0.8, 0.6, 0.2]])
    c = np.array([[1.0, 0.3, 0.3], [1.0, 0.5, 0.4]])
    w = np.array([0.5, 0.5])
    r = solve_joint_route(u, c, w, np.ones(3), 0.1)
    assert r.over_budget
    # the cheapest: column 1 or 2 in segment 0 (both 0.3), column 2 in segment 1 (0.4)
    assert r.cost == pytest.approx(0.35)
    assert r.objective == pytest.approx(0.5 * 0.5 + 0.5 * 0.2)
    # the caps make it dearer: column 2 holds at most 0.25 of all traffic
    r = solve_joint_route(u, c, w, np.array([1.0, 1.0, 0.25]), 0.1)
    assert r.over_budget
    assert r.cost == pytest.approx(0.5 * 0.3 + 0.25 * 0.4 + 0.25 * 0.5)
    # with allow_drop nothing is over budget: refusing costs 0
    r = solve_joint_route(u, c, w, np.ones(3), 0.1, allow_drop=True)
    assert not r.over_budget and r.cost == pytest.approx(0.1) and r.dropped.sum() > 0


@pytest.mark.parametrize(("a", "floor", "message"), [
    ([0.3, 0.3], None, "sum to 0.6 < 1"),
    ([1.0, 0.3], [0.0, 0.5], "floor 0.5 is above its max_share 0.3"),
    ([1.0, 1.0], [0.6, 0.6], "floors sum to 1.2 > 1"),
])
def test_infeasible_caps_and_floors(a, floor, message) -> None:
    u = c = np.ones((2, 2))
    with pytest.raises(InfeasibleError, match=message):
        solve_joint_route(u, c, [0.5, 0.5], a, 1.0, floor=floor)


def test_caps_below_one_are_fine_with_drop() -> None:
    r = solve_joint_route(np.ones((2, 2)), np.zeros((2, 2)), [0.5, 0.5], [0.3, 0.3], 1.0,
                          allow_drop=True)
    assert r.objective == pytest.approx(0.6) and r.dropped.sum() == pytest.approx(0.8)


def test_a_segment_without_traffic_gets_its_best_model_at_the_budget_price() -> None:
    """Segment 1 has no share: the caps and budget do not see it; at the budget's price
    lambda* = 0.5 (segment 0 mixes 0.9 @ 1.0 and 0.5 @ 0.2) its best score u - lambda c is
    model 1's (0.5 - 0.1 > 0.6 - 0.5), not the most rewarding model 0."""
    u = np.array([[0.9, 0.5], [0.6, 0.5]])
    c = np.array([[1.0, 0.2], [1.0, 0.2]])
    r = solve_joint_route(u, c, [1.0, 0.0], [1.0, 1.0], 0.6)
    np.testing.assert_allclose(r.probability, [[0.5, 0.5], [0.0, 1.0]], atol=1e-12)
    assert r.objective == pytest.approx(0.7) and r.cost == pytest.approx(0.6)


def test_same_input_same_table() -> None:
    u = np.full((3, 4), 0.5)
    c = np.full((3, 4), 0.2)
    first = solve_joint_route(u, c, [0.2, 0.3, 0.5], [0.5] * 4, 0.2)
    again = solve_joint_route(u, c, [0.2, 0.3, 0.5], [0.5] * 4, 0.2)
    assert np.array_equal(first.probability, again.probability)


def deploy_instances(n: int):
    rng = np.random.default_rng(9)
    for i in range(n):
        s, m = int(rng.integers(1, 5)), int(rng.integers(2, 7))
        u = rng.random((s, m))
        c = rng.random((s, m)) * (u + 0.1)
        if i % 5 == 0:  # a duplicate model: two optimal sets, the tie rule decides
            u[:, -1], c[:, -1] = u[:, 0], c[:, 0]
        a = rng.uniform(0.3, 1.0, m)
        k = int(rng.integers(1, m + 1))
        allow_drop = i % 4 == 3
        if not allow_drop and np.sort(a)[::-1][:k].sum() < 1:
            a[np.argsort(-a)[0]] = 1.0
        budget = float(np.quantile(c, rng.uniform(0.0, 0.6)))
        yield u, c, rng.random(s) + 0.1, a, budget, k, allow_drop


@pytest.mark.parametrize("solver", [Solver.HIGHS, Solver.GLPK])
def test_exhaustive_deploy_equals_the_mip(solver: Solver) -> None:
    if solver is Solver.GLPK and shutil.which("glpsol") is None:
        pytest.skip("glpsol (GLPK) is not on PATH")
    for u, c, w, a, budget, k, allow_drop in deploy_instances(30):
        enum = solve_joint_deploy_exhaustive(u, c, w, a, budget, k, allow_drop)
        assert enum is not None
        chosen, table = solve_joint_deploy(u, c, w, a, budget, k, solver, allow_drop)
        assert table.objective == pytest.approx(enum[1].objective, rel=1e-7, abs=1e-9)
        assert table.over_budget == enum[1].over_budget
        assert np.array_equal(chosen, enum[0])


def test_exhaustive_deploy_gives_up_on_large_pools() -> None:
    u = np.random.default_rng(0).random((2, 30))
    assert solve_joint_deploy_exhaustive(u, u, [0.5, 0.5], np.ones(30), 0.5, 10, limit=1000) is None


def test_deploy_fails_when_no_set_carries_the_traffic() -> None:
    with pytest.raises(InfeasibleError, match="largest 2 max_share values sum to 0.8 < 1"):
        solve_joint_deploy_exhaustive(np.ones((1, 3)), np.ones((1, 3)), [1.0], [0.4] * 3, 1.0, 2)


CASES = [(2, 3, 0.3), (5, 4, 0.5), (8, 8, 0.4), (3, 3, 0.05)]


def kernel_tables(u_all, c_all, w_all, a_all, floor_all, budgets):
    out = []
    for u, c, w, a, floor, b in zip(u_all, c_all, w_all, a_all, floor_all, budgets, strict=True):
        p = np.zeros(u.shape)
        status = joint_route_into(u, c, w, a, floor, b, p, joint_workspace(*u.shape))
        out.append((int(status), p.tolist()))
    return out


def test_kernel_compiled_and_interpreted_agree() -> None:
    """The same code compiled, as ``py_func``, and fully interpreted (NUMBA_DISABLE_JIT in a
    child process) gives the same tables, to rounding."""
    rng = np.random.default_rng(4)
    args: list[list] = [[], [], [], [], [], []]
    for s, m, q in CASES:
        u, c = rng.random((s, m)), rng.random((s, m))
        w = rng.random(s)
        for x, v in zip(args, (u, c, w / w.sum(), np.full(m, 1.5 / m + 0.1), np.full(m, 0.2 / m),
                                float(np.quantile(c, q))), strict=True):
            x.append(v)
    compiled = kernel_tables(*args)
    p = np.zeros(args[0][0].shape)
    status = joint_route_into.py_func(args[0][0], args[1][0], args[2][0], args[3][0], args[4][0],
                                      args[5][0], p, joint_workspace(*p.shape))
    assert status == compiled[0][0]
    np.testing.assert_allclose(p, compiled[0][1], atol=1e-12)
    code = ("import json, sys, numpy as np; from test_joint import kernel_tables; "
            "a = json.load(sys.stdin); "
            "print(json.dumps(kernel_tables(*[[np.array(v) if isinstance(v, list) else v "
            "for v in x] for x in a])))")
    payload = json.dumps([[v.tolist() if isinstance(v, np.ndarray) else v for v in x] for x in args])
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    result = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                            text=True, env=env, cwd=os.path.dirname(__file__), check=True)
    interpreted = json.loads(result.stdout)
    for (s1, p1), (s2, p2) in zip(compiled, interpreted, strict=True):
        assert s1 == s2
        np.testing.assert_allclose(p1, p2, atol=1e-12)


def test_compiled_enumeration_equals_a_plain_loop_over_the_sets() -> None:
    """``best_set`` (the exhaustive DeployOPT's compiled loop) against a Python loop over
    itertools.combinations with ``solve_joint_route``, on instances with ties, over budget and
    with some columns capped (on up to 9 columns, where the priced ceilings and the greedy bar
    skip sets)."""
    import itertools

    rng = np.random.default_rng(11)
    for trial in range(200):
        s, n, k = int(rng.integers(1, 6)), int(rng.integers(2, 10)), int(rng.integers(1, 4))
        k = min(k, n)
        u = np.round(rng.random((s, n)), 1)  # coarse: ties between sets
        c = np.round(rng.random((s, n)), 1) + 0.05
        w = rng.random(s) + 0.1
        w /= w.sum()
        a = np.full(n, 1.0 if trial % 3 else 0.6)
        if trial % 5 == 1:  # some columns capped (an explored newcomer), the others not
            a = np.where(rng.random(n) < 0.4, np.round(rng.uniform(0.1, 0.9, n), 2), 1.0)
        budget = float(np.quantile(c, [0.05, 0.4, 0.9][trial % 3]))
        drop = trial % 4 == 0
        best, key = None, None
        for subset in itertools.combinations(range(n), k):
            cols = list(subset)
            if not drop and a[cols].sum() < 1 - 1e-12:
                continue
            r = solve_joint_route(u[:, cols], c[:, cols], w, a[cols], budget, allow_drop=drop)
            this = (0, -r.cost, r.objective) if r.over_budget else (1, 0.0, r.objective)
            if key is None or this[0] > key[0] or (this[0] == key[0] and (
                    this[1] > key[1] + 1e-9 or (abs(this[1] - key[1]) <= 1e-9
                                               and this[2] > key[2] + 1e-9))):
                best, key = cols, this
        idx = np.empty(k, dtype=np.int64)
        found = best_set(u, c, w, a, budget, k, drop, 1e-9, idx)
        assert found == (best is not None)
        if found:
            assert idx.tolist() == best, (trial, idx, best)
