"""RouteOPT: the per-query routing LP over the deployed set.

    maximise   sum_m p_m u_m
    subject to sum_m p_m c_m <= b,  sum_m p_m = 1 (<= 1 with allow_drop),  0 <= p_m <= a_m

Two solvers with one contract: ``solve_route`` wraps the exact compiled kernel
(``kernels.route``: parametric greedy on the Lagrangian, deterministic on ties), the one
implementation that plan, DeployOPT and replay use; ``solve_route_pyomo`` builds the same LP in
Pyomo and is the reference it is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stageroute.errors import InfeasibleError
from stageroute.optimize.kernels import dot, route
from stageroute.optimize.solver import Solver, solve


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


def throughput_check(a: NDArray[np.float64]) -> None:
    if a.sum() < 1.0 - 1e-12:
        raise InfeasibleError(
            f"the deployed models' max_share values sum to {a.sum():.4g} < 1, so they cannot "
            "carry all traffic; raise max_share in the catalog or deploy more models"
        )


def solve_route(u: ArrayLike, c: ArrayLike, a: ArrayLike, budget: float,
                allow_drop: bool = False) -> Routing:
    """Exact RouteOPT (``kernels.route``); over budget, the cheapest mixture with the most reward.

    Raises:
        InfeasibleError: the caps sum to less than 1 (without ``allow_drop``).
    """
    u, c, a = _as_arrays(u, c, a)
    n = u.size
    if allow_drop:  # the null option: reward 0, cost 0, any share; last in the tie order
        u, c, a = np.append(u, 0.0), np.append(c, 0.0), np.append(a, 1.0)
    throughput_check(a)
    p = np.zeros(u.size)
    over = bool(route(u, c, a, float(budget), p))
    dropped = float(p[n]) if allow_drop else 0.0
    p = p[:n]
    return Routing(p, dot(p, u[:n]), dot(p, c[:n]), over, dropped)


def build_route_model(u: NDArray[np.float64], c: NDArray[np.float64], a: NDArray[np.float64],
                      budget: float | None, allow_drop: bool = False, minimise_cost: bool = False,
                      floor: NDArray[np.float64] | None = None) -> Any:
    """The RouteOPT LP in Pyomo (``budget=None`` drops the budget row; ``floor``: lower bounds)."""
    import pyomo.environ as pe

    low = np.zeros(u.size) if floor is None else floor
    m = pe.ConcreteModel(name="RouteOPT")
    m.I = pe.RangeSet(0, u.size - 1)
    m.p = pe.Var(m.I, bounds=lambda _, i: (float(low[i]), float(a[i])))
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


def read_routing(m: Any) -> NDArray[np.float64]:
    return np.array([max(m.p[i].value or 0.0, 0.0) for i in m.I])


def solve_route_pyomo(u: ArrayLike, c: ArrayLike, a: ArrayLike, budget: float,
                      solver: Solver = Solver.HIGHS, allow_drop: bool = False,
                      canonical: bool = False, floor: ArrayLike | None = None) -> Routing:
    """RouteOPT with Pyomo; same contract as ``solve_route`` (``floor``: lower bounds on p, as
    the exploration table of ``optimize.explore`` has).

    Ties are broken by the solver unless ``canonical``: then two more LPs pick, among optimal
    tables, the cheapest and then the one that favours lower indices (``solve_route``'s rule
    wherever models tie exactly).
    """
    u, c_money, a = _as_arrays(u, c, a)
    if not allow_drop:
        throughput_check(a)
    unit = cost_unit(c_money, budget)  # solver tolerances are absolute: work in O(1) units
    c, b = c_money / unit, budget / unit
    low = None if floor is None else np.asarray(floor, dtype=np.float64)
    over = False
    m = build_route_model(u, c, a, b, allow_drop, floor=low)
    if not solve(m, solver):
        cheapest = build_route_model(u, c, a, None, allow_drop, minimise_cost=True, floor=low)
        if not solve(cheapest, solver):
            raise InfeasibleError("RouteOPT has no feasible mixture even without the budget")
        least = float(sum(c[i] * (cheapest.p[i].value or 0.0) for i in cheapest.I))
        m = build_route_model(u, c, a, least * (1 + 1e-9) + 1e-12, allow_drop, floor=low)
        if not solve(m, solver):
            raise InfeasibleError("RouteOPT fallback at the cheapest cost failed")
        over = True
    if canonical:
        _canonicalise(m, u, c, solver)
    p = read_routing(m)
    c = c_money
    return Routing(p, float(p @ u), float(p @ c), over, float(max(0.0, 1.0 - p.sum())) if allow_drop else 0.0)


def _canonicalise(m: Any, u: NDArray[np.float64], c: NDArray[np.float64], solver: Solver) -> None:
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
