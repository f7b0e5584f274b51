import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stageroute.errors import InfeasibleError
from stageroute.optimize.route import solve_route, solve_route_pyomo
from stageroute.options import Solver

FEAS_TOL = 1e-7

# Values on a coarse grid make exact ties (equal rewards, equal costs, cost == budget) common.
grid = st.integers(0, 10).map(lambda k: k / 10)
# Arbitrary values on a 1e-5 grid: no instance sits within HiGHS' feasibility tolerance (1e-7) of
# a budget tie unless it is an exact tie, where both solvers must agree (SPEC 6).
floats = st.integers(0, 10**5).map(lambda k: k / 10**5)


@st.composite
def instances(draw, max_models=6):
    n = draw(st.integers(1, max_models))
    u = np.array(draw(st.lists(st.one_of(grid, floats), min_size=n, max_size=n)))
    c = np.array(draw(st.lists(st.one_of(grid, floats), min_size=n, max_size=n)))
    a = np.array(draw(st.lists(st.one_of(st.just(1.0), st.integers(1, 10).map(lambda k: k / 10)),
                               min_size=n, max_size=n)))
    budget = draw(st.one_of(grid, st.sampled_from(list(c)), floats))
    return u, c, a, float(budget), draw(st.booleans())


def check_feasible(p, c, a, budget, over, allow_drop):
    assert np.all(p >= -FEAS_TOL) and np.all(p <= a + FEAS_TOL)
    if allow_drop:
        assert p.sum() <= 1 + FEAS_TOL
    else:
        assert p.sum() == pytest.approx(1.0, abs=FEAS_TOL)
    if not over:
        assert p @ c <= budget + FEAS_TOL


def compare(u, c, a, budget, allow_drop, solver):
    try:
        fast = solve_route(u, c, a, budget, allow_drop)
    except InfeasibleError:
        fast = None
    try:
        ref = solve_route_pyomo(u, c, a, budget, solver, allow_drop)
    except InfeasibleError:
        ref = None
    assert (fast is None) == (ref is None)
    if fast is None:
        return
    assert fast.over_budget == ref.over_budget
    check_feasible(fast.probability, c, a, budget, fast.over_budget, allow_drop)
    check_feasible(ref.probability, c, a, budget, ref.over_budget, allow_drop)
    if fast.over_budget:
        # The fallback's objective is the cost. Its tie-break (most reward at that cost) is
        # ill-conditioned for a solver: the 1e-7 feasibility slack on the cost row buys
        # 1e-7 x (reward gap / cost gap) of reward, e.g. 1e-4 when costs differ by 1e-5.
        assert fast.cost == pytest.approx(ref.cost, abs=1e-7)
        assert ref.objective <= fast.objective + 1e-7 * (1 + 1 / max(_min_gap(c), 1e-12))
    else:
        assert fast.objective == pytest.approx(ref.objective, abs=1e-7)


def _min_gap(c):
    """Smallest positive difference between two costs."""
    gaps = np.diff(np.unique(c))
    return float(gaps.min()) if gaps.size else 1.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
@example((np.array([0.5, 0.5]), np.array([0.3, 0.3]), np.array([1.0, 1.0]), 0.3, False))
@example((np.array([0.0, 0.1]), np.array([0.999, 1.0]), np.array([1.0, 1.0]), 0.0, False))
@example((np.array([0.0, 1.0]), np.array([0.99999, 1.0]), np.array([1.0, 1.0]), 0.0, False))
@example((np.array([0.9, 0.1]), np.array([0.5, 0.0]), np.array([0.4, 0.4]), 0.1, False))
def test_exact_solver_matches_highs(instance):
    compare(*instance, Solver.HIGHS)


@settings(max_examples=40, deadline=None)
@given(instances(max_models=4))
def test_exact_solver_matches_glpk(instance):
    compare(*instance, Solver.GLPK)


def test_budget_binding_mixture_known_answer():
    r = solve_route([0.9, 0.6], [0.01, 0.001], [1, 1], budget=0.0037)
    assert r.probability == pytest.approx([0.3, 0.7])
    assert r.objective == pytest.approx(0.69)
    assert not r.over_budget


def test_over_budget_uses_the_cheapest_mixture_and_flags_it():
    r = solve_route([0.9, 0.6, 0.7], [0.01, 0.002, 0.002], [1, 1, 1], budget=0.001)
    assert r.over_budget
    assert r.probability == pytest.approx([0, 0, 1])  # cheapest, then the better of the tie


def test_allow_drop_refuses_traffic_instead_of_going_over_budget():
    r = solve_route([0.9], [0.01], [1], budget=0.004, allow_drop=True)
    assert not r.over_budget
    assert r.probability == pytest.approx([0.4])
    assert r.dropped == pytest.approx(0.6)


def test_caps_that_cannot_carry_the_traffic_are_infeasible():
    with pytest.raises(InfeasibleError, match="sum to 0.8"):
        solve_route([0.9, 0.5], [0.1, 0.1], [0.4, 0.4], budget=1.0)


def test_ties_are_broken_by_index():
    r = solve_route([0.7, 0.7, 0.7], [0.1, 0.1, 0.1], [1, 1, 1], budget=1.0)
    assert r.probability.tolist() == [1.0, 0.0, 0.0]


def highs_direct(u, c, a, budget, allow_drop):
    """RouteOPT straight in HiGHS (no Pyomo), so that 10,000 instances take seconds.

    Returns (status, objective, cost); on an infeasible budget, the cheapest cost instead.
    """
    import highspy

    n = u.size

    def lp(objective, with_budget, sense):
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        # Tight tolerances: at HiGHS' defaults (1e-7) a vertex 1e-8 below the optimum is
        # "optimal" (e.g. u = (1, 2e-5, 0.99503), c = (1, 0, 0.99503), b = 0.1).
        h.setOptionValue("dual_feasibility_tolerance", 1e-10)
        h.setOptionValue("primal_feasibility_tolerance", 1e-10)
        model = highspy.HighsLp()
        model.num_col_ = n
        model.num_row_ = 2 if with_budget else 1
        model.col_cost_ = np.asarray(objective, dtype=float)
        model.col_lower_ = np.zeros(n)
        model.col_upper_ = np.asarray(a, dtype=float)
        rows_lo = [0.0 if allow_drop else 1.0] + ([-highspy.kHighsInf] if with_budget else [])
        rows_hi = [1.0] + ([budget] if with_budget else [])
        model.row_lower_ = np.array(rows_lo)
        model.row_upper_ = np.array(rows_hi)
        model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        model.a_matrix_.start_ = np.arange(0, (model.num_row_) * n + 1, model.num_row_)
        model.a_matrix_.index_ = np.tile(np.arange(model.num_row_), n)
        values = np.column_stack([np.ones(n), c])[:, : model.num_row_]
        model.a_matrix_.value_ = values.ravel().astype(float)
        model.sense_ = sense
        h.passModel(model)
        h.run()
        status = h.getModelStatus()
        x = np.array(h.getSolution().col_value) if status == highspy.HighsModelStatus.kOptimal else None
        return status, x

    status, x = lp(u, True, highspy.ObjSense.kMaximize)
    if status == highspy.HighsModelStatus.kOptimal:
        return "optimal", float(x @ u), float(x @ c)
    status, x = lp(c, False, highspy.ObjSense.kMinimize)
    if status == highspy.HighsModelStatus.kOptimal:
        return "over_budget", None, float(x @ c)
    return "infeasible", None, None


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_models=8))
@example((np.array([0.1, 1e-5, 0.1, 0.0, 0.1, 1.0, 2e-5, 0.99503]),
          np.array([0.1, 0.0, 0.2, 0.0, 0.3, 1.0, 0.0, 0.99503]), np.ones(8), 0.1, False))
def test_exact_solvers_match_highs_on_10000_instances(instance):
    """SPEC 6: the fast optimum equals HiGHS' within 1e-9, with the same feasibility verdict;
    the compiled kernel run interpreted (``py_func``) gives the same table (to rounding: the
    interpreter and LLVM may order floating-point sums differently)."""
    from stageroute.optimize.kernels import route_into, workspace

    u, c, a, budget, allow_drop = instance
    status, objective, cost = highs_direct(u, c, a, budget, allow_drop)
    try:
        fast = solve_route(u, c, a, budget, allow_drop)
    except InfeasibleError:
        assert status == "infeasible"
        return
    assert status == ("over_budget" if fast.over_budget else "optimal")
    check_feasible(fast.probability, c, a, budget, fast.over_budget, allow_drop)
    if fast.over_budget:
        assert fast.cost == pytest.approx(cost, abs=1e-9)
    else:
        assert fast.objective == pytest.approx(objective, abs=1e-9)
    uu, cc, aa = (np.append(x, y) for x, y in ((u, 0.0), (c, 0.0), (a, 1.0))) if allow_drop \
        else (u, c, a)
    p = np.zeros(uu.size)
    over = route_into.py_func(uu, cc, aa, budget, p, *workspace(uu.size))
    assert over == fast.over_budget
    assert p[: u.size] == pytest.approx(fast.probability, abs=1e-12)


@pytest.mark.parametrize("solver", list(Solver))
@pytest.mark.parametrize("seed", range(40))
def test_pyomo_route_with_usd_sized_costs(solver, seed):
    """GLPK once called a budget-infeasible LP optimal at costs of 1e-4: costs are now scaled."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 7))
    u, c = rng.random(n), rng.random(n) * 10.0 ** -rng.integers(3, 7)
    a = np.full(n, 1.0 / n) if rng.random() < 0.5 else np.ones(n)  # caps that fix p, or free
    budget = float(rng.choice([c.min() * 0.5, c.mean(), c.max()]))
    compare(u, c, a, budget, bool(rng.random() < 0.2), solver)
