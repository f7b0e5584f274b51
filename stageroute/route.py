"""RouteOPT: the per-query routing LP over the deployed set.

    maximise   sum_m p_m u_m
    subject to sum_m p_m c_m <= b,  sum_m p_m = 1 (<= 1 with allow_drop),  0 <= p_m <= a_m

Two solvers with one contract: ``solve_route`` is exact and combinatorial (parametric greedy on the
Lagrangian, O(M^2 log M)), deterministic on ties; ``solve_route_pyomo`` builds the same LP in Pyomo
and is the reference it is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stageroute.errors import InfeasibleError
from stageroute.solver import Solver, solve

# Budget comparisons tolerate floating-point noise in sum(p * c), nothing more.
REL_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Routing:
    """A routing table: probability per deployed model; ``dropped`` is the refused share."""

    probability: NDArray[np.float64]
    objective: float  # expected reward bound  sum p u
    cost: float  # expected cost bound  sum p c
    over_budget: bool  # no mixture met the budget: the cheapest one is used
    dropped: float = 0.0


def cost_unit(c: NDArray[np.float64], budget: float) -> float:
    """The unit costs are expressed in inside the solvers: the largest cost or the budget.

    Solver tolerances are absolute (about 1e-7): in these units they mean the same thing for
    USD-per-request costs of 1e-4 as for costs of 1.
    """
    unit = max(float(np.max(np.abs(c))) if c.size else 0.0, abs(budget))
    return unit if unit > 0 and np.isfinite(unit) else 1.0


def _as_arrays(u: ArrayLike, c: ArrayLike, a: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    u = np.asarray(u, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    if not (u.shape == c.shape == a.shape) or u.ndim != 1 or u.size == 0:
        raise ValueError("u, c and a must be non-empty 1-d arrays of the same length")
    return u, c, a


def _fill(order: NDArray[np.intp], a: NDArray[np.float64]) -> NDArray[np.float64]:
    """Greedy: give each model in ``order`` its full cap until one unit of traffic is placed."""
    p = np.zeros_like(a)
    left = 1.0
    for i in order:
        take = min(a[i], left)
        p[i] = take
        left -= take
        if left <= 0.0:
            break
    return p


def _order(score: NDArray[np.float64], c: NDArray[np.float64]) -> NDArray[np.intp]:
    """Indices by score desc, then cost asc, then index asc (the deterministic tie-break)."""
    return np.lexsort((np.arange(score.size), c, -score))


def throughput_check(a: NDArray[np.float64]) -> None:
    if a.sum() < 1.0 - 1e-12:
        raise InfeasibleError(
            f"the deployed models' max_share values sum to {a.sum():.4g} < 1, so they cannot "
            "carry all traffic; raise max_share in the catalog or deploy more models"
        )


def solve_route(u: ArrayLike, c: ArrayLike, a: ArrayLike, budget: float,
                allow_drop: bool = False) -> Routing:
    """Exact RouteOPT; the over-budget fallback is the cheapest mixture with the most reward.

    Raises:
        InfeasibleError: the caps sum to less than 1 (without ``allow_drop``).
    """
    u, c, a = _as_arrays(u, c, a)
    n = u.size
    if allow_drop:  # the null option: reward 0, cost 0, any share; last in the tie order
        u, c, a = np.append(u, 0.0), np.append(c, 0.0), np.append(a, 1.0)
    throughput_check(a)
    eps = REL_EPS * max(1.0, abs(budget), float(np.max(np.abs(c))))
    best = _fill(_order(u, c), a)  # most reward, least cost among those
    over = False
    if best @ c <= budget + eps:
        p = best
    else:
        cheapest = _fill(np.lexsort((np.arange(u.size), -u, c)), a)
        if cheapest @ c > budget + eps:
            p, over = cheapest, True
        else:
            p = _mix_at_budget(u, c, a, budget, eps)
    dropped = float(p[n]) if allow_drop else 0.0
    p = p[:n]
    return Routing(p, float(p @ u[:n]), float(p @ c[:n]), over, dropped)


def _mix_at_budget(u: NDArray[np.float64], c: NDArray[np.float64], a: NDArray[np.float64],
                   budget: float, eps: float) -> NDArray[np.float64]:
    """The budget binds: find the Lagrange price lambda* and mix its two greedy solutions."""
    du = u[:, None] - u[None, :]
    dc = c[:, None] - c[None, :]
    mask = (du > 0) & (dc > 0)
    with np.errstate(over="ignore", divide="ignore"):
        ratios = du[mask] / dc[mask]
    lambdas = np.unique(ratios[np.isfinite(ratios)])  # subnormal cost gaps: no finite breakpoint
    # The greedy order is constant strictly between breakpoints: evaluate there, never at one.
    top = lambdas[-1] * 2.0 + 1.0 if lambdas.size else 1.0
    edges = np.concatenate(([0.0], lambdas, [top]))
    mids = (edges[:-1] + edges[1:]) / 2.0  # mids[k] lies left of lambdas[k], mids[k+1] right
    last = mids.size - 1

    def cost_at(k: int) -> tuple[float, NDArray[np.float64]]:
        # The end intervals use their exact orders (no rounding in u - lambda c): reward first,
        # and beyond every breakpoint the cheapest order, which meets the budget.
        if k == last:
            p = _fill(np.lexsort((np.arange(u.size), -u, c)), a)
        elif k == 0:
            p = _fill(_order(u, c), a)
        else:
            p = _fill(_order(u - mids[k] * c, c), a)
        return float(p @ c), p

    lo, hi = 1, mids.size - 1  # smallest k >= 1 whose greedy meets the budget
    while lo < hi:
        mid = (lo + hi) // 2
        if cost_at(mid)[0] <= budget + eps:
            hi = mid
        else:
            lo = mid + 1
    cost_right, right = cost_at(lo)
    cost_left, left = cost_at(lo - 1)
    # Near-equal rewards can make both sides cost the same after rounding: then the right one,
    # which meets the budget, is optimal up to that rounding.
    gap = cost_left - cost_right
    theta = min(max((budget - cost_right) / gap, 0.0), 1.0) if gap > 0 else 0.0
    return right + theta * (left - right)


def build_route_model(u: NDArray[np.float64], c: NDArray[np.float64], a: NDArray[np.float64],
                      budget: float | None, allow_drop: bool = False, minimise_cost: bool = False):
    """The RouteOPT LP in Pyomo (``budget=None`` drops the budget row)."""
    import pyomo.environ as pe

    m = pe.ConcreteModel(name="RouteOPT")
    m.I = pe.RangeSet(0, u.size - 1)
    m.p = pe.Var(m.I, bounds=lambda _, i: (0.0, float(a[i])))
    total = pe.quicksum(m.p[i] for i in m.I)
    m.simplex = pe.Constraint(expr=total <= 1.0) if allow_drop else pe.Constraint(expr=total == 1.0)
    cost = pe.quicksum(float(c[i]) * m.p[i] for i in m.I)
    if budget is not None:
        m.budget = pe.Constraint(expr=cost <= budget)
    if minimise_cost:
        m.obj = pe.Objective(expr=cost, sense=pe.minimize)
    else:
        m.obj = pe.Objective(expr=pe.quicksum(float(u[i]) * m.p[i] for i in m.I), sense=pe.maximize)
    return m


def read_routing(m) -> NDArray[np.float64]:
    return np.array([max(m.p[i].value or 0.0, 0.0) for i in m.I])


def solve_route_pyomo(u: ArrayLike, c: ArrayLike, a: ArrayLike, budget: float,
                      solver: Solver = Solver.HIGHS, allow_drop: bool = False,
                      canonical: bool = False) -> Routing:
    """RouteOPT with Pyomo; same contract as ``solve_route``.

    Ties are broken by the solver unless ``canonical``: then two more LPs pick, among optimal
    tables, the cheapest and then the one that favours lower indices (``solve_route``'s rule
    wherever models tie exactly).
    """
    u, c_money, a = _as_arrays(u, c, a)
    if not allow_drop:
        throughput_check(a)
    unit = cost_unit(c_money, budget)  # solver tolerances are absolute: work in O(1) units
    c, b = c_money / unit, budget / unit
    over = False
    m = build_route_model(u, c, a, b, allow_drop)
    if not solve(m, solver):
        cheapest = build_route_model(u, c, a, None, allow_drop, minimise_cost=True)
        if not solve(cheapest, solver):
            raise InfeasibleError("RouteOPT has no feasible mixture even without the budget")
        floor = float(sum(c[i] * (cheapest.p[i].value or 0.0) for i in cheapest.I))
        m = build_route_model(u, c, a, floor * (1 + 1e-9) + 1e-12, allow_drop)
        if not solve(m, solver):
            raise InfeasibleError("RouteOPT fallback at the cheapest cost failed")
        over = True
    if canonical:
        _canonicalise(m, u, c, solver)
    p = read_routing(m)
    c = c_money
    return Routing(p, float(p @ u), float(p @ c), over, float(max(0.0, 1.0 - p.sum())) if allow_drop else 0.0)


def _canonicalise(m, u: NDArray[np.float64], c: NDArray[np.float64], solver: Solver) -> None:
    import pyomo.environ as pe

    tol = 1e-10
    best = float(sum(u[i] * (m.p[i].value or 0.0) for i in m.I))
    m.keep_reward = pe.Constraint(expr=pe.quicksum(float(u[i]) * m.p[i] for i in m.I) >= best - tol)
    m.obj.deactivate()
    m.by_cost = pe.Objective(expr=pe.quicksum(float(c[i]) * m.p[i] for i in m.I), sense=pe.minimize)
    if not solve(m, solver):
        raise InfeasibleError("RouteOPT tie-breaking (cost) failed")
    cheapest = float(sum(c[i] * (m.p[i].value or 0.0) for i in m.I))
    m.keep_cost = pe.Constraint(expr=pe.quicksum(float(c[i]) * m.p[i] for i in m.I) <= cheapest + tol)
    m.by_cost.deactivate()
    m.by_index = pe.Objective(expr=pe.quicksum(float(i + 1) * m.p[i] for i in m.I), sense=pe.minimize)
    if not solve(m, solver):
        raise InfeasibleError("RouteOPT tie-breaking (index) failed")
