"""Joint (contextual) RouteOPT and DeployOPT over segments (SPEC 12).

Segments s = 1..S with traffic shares w_s (sum 1), deployed models m = 1..M:

    maximise   sum_s w_s sum_m p_sm u_sm
    subject to sum_s w_s sum_m p_sm c_sm <= b                (one budget)
               sum_m p_sm = 1 for each s                     (<= 1 with allow_drop)
               floor_m <= sum_s w_s p_sm <= a_m              (shared throughput caps, floors)
               p_sm >= 0

The exact solver (``solve_joint_route``, compiled in ``joint_kernels``). With flows
x_sm = w_s p_sm, dualising the budget row with a price lambda >= 0 leaves a transportation problem
(supplies w_s, column bounds [floor_m, a_m], profit u_sm - lambda c_sm), solved exactly by a
min-cost flow: each segment sends its share to its best column, then successive shortest paths
(Dijkstra with potentials, real capacities) move what overflows the caps; the reduced costs stay
>= 0 throughout, the optimality condition of a min-cost flow. Every flow x gives a dual line
L_x(lambda) = U(x) - lambda (C(x) - b); the dual function is their upper envelope, convex and
piecewise linear. Start from the reward-maximising flow (lambda = 0; if it meets the budget it is
optimal) and the cheapest flow (minimum C; if that breaks the budget, the budget becomes its cost
and the answer is the most reward at that cost: the over-budget contract of ``solve_route``).
Then Newton steps: solve at the price where the lines of the bracketing flows cross; if no flow
rises above them there, both flows are optimal for the Lagrangian at lambda*, and their mixture
that spends exactly b is feasible, complementary-slack and therefore LP-optimal; else the new flow
replaces the bracket end on its side of the budget. The kernel returns finitely many flows, so
the search ends (5 to 9 flows on the benchmark's instances). A segment with w_s = 0 gets its best model at
lambda* (score u - lambda* c). Shares are normalised to sum 1; ties go to the lowest index, so
the same input gives the same tables.

``solve_joint_route_pyomo`` is the same LP in Pyomo (the reference the tests compare against);
``solve_joint_deploy`` (a MIP) and ``solve_joint_deploy_exhaustive`` choose one deployment set
for all segments on the same objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stageroute.errors import InfeasibleError
from stageroute.optimize.deploy import (
    _another_set_ties,
    _checked,
    _first_in_preference,
    read_deployment,
)
from stageroute.optimize.joint_kernels import INFEASIBLE, OVER_BUDGET, best_set, joint_route
from stageroute.optimize.route import cost_unit, throughput_check
from stageroute.optimize.solver import Solver, solve

Floats = NDArray[np.float64]
TIE_TOL = 1e-9  # exhaustive DeployOPT: objectives within this (relative) tie


@dataclass(frozen=True, slots=True)
class JointRouting:
    """One routing table per segment: ``probability`` [S, M]; ``dropped`` [S] the refused share."""

    probability: Floats
    objective: float  # sum_s w_s sum_m p_sm u_sm
    cost: float  # sum_s w_s sum_m p_sm c_sm
    over_budget: bool  # no mixture met the budget: the cheapest one (most reward at its cost)
    dropped: Floats


@dataclass(frozen=True, slots=True)
class JointInput:
    """Checked arrays: u, c [S, M], shares w [S] (normalised to sum 1), caps a and floors [M]."""

    u: Floats
    c: Floats
    w: Floats
    a: Floats
    floor: Floats

    @staticmethod
    def of(u: ArrayLike, c: ArrayLike, w: ArrayLike, a: ArrayLike,
           floor: ArrayLike | None = None) -> JointInput:
        uu = np.atleast_2d(np.asarray(u, dtype=np.float64))
        cc = np.atleast_2d(np.asarray(c, dtype=np.float64))
        ww = np.asarray(w, dtype=np.float64).reshape(-1)
        aa = np.asarray(a, dtype=np.float64).reshape(-1)
        ff = np.zeros(aa.size) if floor is None else np.asarray(floor, dtype=np.float64).reshape(-1)
        s, m = uu.shape
        if cc.shape != (s, m) or ww.shape != (s,) or aa.shape != (m,) or ff.shape != (m,) or uu.size == 0:
            raise ValueError(f"u and c must be [S, M], w [S], a and floor [M]: got u {uu.shape}, "
                             f"c {cc.shape}, w {ww.shape}, a {aa.shape}, floor {ff.shape}")
        if not all(np.all(np.isfinite(v)) for v in (uu, cc, aa, ff)) or np.any(aa < 0) or np.any(ff < 0):
            raise ValueError("u, c, a and floor must be finite, a and floor >= 0")
        if not np.all(np.isfinite(ww)) or np.any(ww < 0) or ww.sum() <= 0:
            raise ValueError(f"segment shares w must be >= 0 with a positive sum, got {ww}")
        return JointInput(uu, cc, ww / ww.sum(), aa, ff)


def joint_check(a: Floats, floor: Floats, allow_drop: bool) -> None:
    """Raise ``InfeasibleError`` when the caps and floors admit no table."""
    if not allow_drop:
        throughput_check(a)
    if np.any(floor > a + 1e-12):
        bad = int(np.argmax(floor - a))
        raise InfeasibleError(
            f"model {bad}'s exploration floor {floor[bad]:.4g} is above its max_share "
            f"{a[bad]:.4g}; lower the floor or raise max_share"
        )
    if floor.sum() > 1.0 + 1e-12:
        raise InfeasibleError(
            f"the exploration floors sum to {floor.sum():.4g} > 1, more than all traffic; "
            "lower them"
        )


def _with_drop(x: JointInput) -> tuple[Floats, Floats, Floats, Floats]:
    """The arrays with the null option (reward 0, cost 0, any share) as the last column."""
    s = x.w.size
    return (np.hstack([x.u, np.zeros((s, 1))]), np.hstack([x.c, np.zeros((s, 1))]),
            np.append(x.a, 1.0), np.append(x.floor, 0.0))


def _routing(x: JointInput, p: Floats, over: bool, dropped: Floats) -> JointRouting:
    return JointRouting(p, float(x.w @ (p * x.u).sum(axis=1)), float(x.w @ (p * x.c).sum(axis=1)),
                        over, dropped)


def solve_joint_route(u: ArrayLike, c: ArrayLike, w: ArrayLike, a: ArrayLike, budget: float,
                      floor: ArrayLike | None = None, allow_drop: bool = False) -> JointRouting:
    """Exact joint RouteOPT (the module's algorithm); over budget, the cheapest mixture with the
    most reward at its cost. ``w`` is normalised to sum 1.

    Raises:
        InfeasibleError: the caps sum to less than 1 (without ``allow_drop``), a floor is above
            its cap, or the floors sum to more than 1.
    """
    x = JointInput.of(u, c, w, a, floor)
    joint_check(x.a, x.floor, allow_drop)
    uu, cc, aa, ff = _with_drop(x) if allow_drop else (x.u, x.c, x.a, x.floor)
    p = np.zeros(uu.shape)
    status = joint_route(uu, cc, x.w, aa, ff, float(budget), p)
    if status == INFEASIBLE:  # joint_check makes this unreachable but for rounding at the edge
        raise InfeasibleError("joint RouteOPT: the throughput caps cannot carry the traffic")
    m = x.a.size
    dropped = p[:, m].copy() if allow_drop else np.zeros(x.w.size)
    return _routing(x, np.ascontiguousarray(p[:, :m]), status == OVER_BUDGET, dropped)


def build_joint_route_model(x: JointInput, budget: float | None, allow_drop: bool = False,
                            minimise_cost: bool = False, deploy: int | None = None) -> Any:
    """The joint RouteOPT LP in Pyomo (``budget=None``: no budget row); with ``deploy`` = k the
    joint DeployOPT MIP (binary z_m, p_sm <= z_m, sum z = k). ``x.c`` and ``budget`` in solver
    units (see ``cost_unit``)."""
    import pyomo.environ as pe

    n_s, n_m = x.u.shape
    m = pe.ConcreteModel(name="JointDeployOPT" if deploy else "JointRouteOPT")
    m.S = pe.RangeSet(0, n_s - 1)
    m.I = pe.RangeSet(0, n_m - 1)  # the models (named as in DeployOPT: its helpers apply)
    m.p = pe.Var(m.S, m.I, bounds=(0.0, 1.0))
    rows = {s: pe.quicksum(m.p[s, j] for j in m.I) for s in m.S}
    m.simplex = pe.Constraint(m.S, rule=lambda _, s: rows[s] <= 1.0 if allow_drop else rows[s] == 1.0)
    share = {j: pe.quicksum(float(x.w[s]) * m.p[s, j] for s in m.S) for j in m.I}
    m.cap = pe.Constraint(m.I, rule=lambda _, j: share[j] <= float(x.a[j]))
    m.low = pe.Constraint(m.I, rule=lambda _, j: share[j] >= float(x.floor[j]) if x.floor[j] > 0
                          else pe.Constraint.Skip)
    cost = pe.quicksum(float(x.w[s] * x.c[s, j]) * m.p[s, j] for s in m.S for j in m.I)
    reward = pe.quicksum(float(x.w[s] * x.u[s, j]) * m.p[s, j] for s in m.S for j in m.I)
    if budget is not None:
        m.budget = pe.Constraint(expr=cost <= budget)
    if deploy is not None:
        m.z = pe.Var(m.I, domain=pe.Binary)
        m.on = pe.Constraint(m.S, m.I, rule=lambda m, s, j: m.p[s, j] <= m.z[j])
        m.card = pe.Constraint(expr=pe.quicksum(m.z[j] for j in m.I) == deploy)
    m.obj = pe.Objective(expr=cost, sense=pe.minimize) if minimise_cost else \
        pe.Objective(expr=reward, sense=pe.maximize)
    return m


def _solve_budgeted(x: JointInput, budget: float, allow_drop: bool, solver: Solver,
                    deploy: int | None = None) -> tuple[Any, bool]:
    """Solve the model in solver units; over budget, at the least cost. Returns (model, over)."""
    unit = cost_unit(x.c, budget)
    scaled = JointInput(x.u, x.c / unit, x.w, x.a, x.floor)
    m = build_joint_route_model(scaled, budget / unit, allow_drop, deploy=deploy)
    if solve(m, solver):
        return m, False
    cheapest = build_joint_route_model(scaled, None, allow_drop, minimise_cost=True, deploy=deploy)
    if not solve(cheapest, solver):
        raise InfeasibleError("joint RouteOPT has no feasible table even without the budget")
    least = float(cheapest.obj.expr())
    m = build_joint_route_model(scaled, least * (1 + 1e-9) + 1e-12, allow_drop, deploy=deploy)
    if not solve(m, solver):
        raise InfeasibleError("joint RouteOPT failed at the cheapest cost")
    return m, True


def solve_joint_route_pyomo(u: ArrayLike, c: ArrayLike, w: ArrayLike, a: ArrayLike, budget: float,
                            floor: ArrayLike | None = None, allow_drop: bool = False,
                            solver: Solver = Solver.HIGHS) -> JointRouting:
    """Joint RouteOPT with Pyomo: the reference for ``solve_joint_route`` (same contract; ties
    are broken by the solver)."""
    x = JointInput.of(u, c, w, a, floor)
    joint_check(x.a, x.floor, allow_drop)
    m, over = _solve_budgeted(x, budget, allow_drop, solver)
    p = _read_table(m, x.u.shape)
    dropped = np.maximum(1.0 - p.sum(axis=1), 0.0) if allow_drop else np.zeros(x.w.size)
    return _routing(x, p, over, dropped)


def _read_table(m: Any, shape: tuple[int, ...]) -> Floats:
    p = np.zeros(shape)
    for (s, j), var in m.p.items():
        p[s, j] = max(var.value or 0.0, 0.0)
    return p


def _on_set(x: JointInput, budget: float, chosen: NDArray[np.bool_],
            allow_drop: bool) -> JointRouting:
    """The exact joint table on the chosen columns (in pool order)."""
    return solve_joint_route(x.u[:, chosen], x.c[:, chosen], x.w, x.a[chosen], budget,
                             allow_drop=allow_drop)


def solve_joint_deploy(u: ArrayLike, c: ArrayLike, w: ArrayLike, a: ArrayLike, budget: float,
                       max_deployed: int, solver: Solver = Solver.HIGHS,
                       allow_drop: bool = False) -> tuple[NDArray[np.bool_], JointRouting]:
    """Joint DeployOPT: one set of min(max_deployed, M) models for all segments (a MIP), and the
    exact joint table on it (over the chosen columns, in pool order).

    Among sets within ``TIE_TOL`` of the optimum the lexicographically smallest is kept (a
    no-good cut checks for another; only then are models fixed in index order), as DeployOPT's
    helpers do it with the index order as the preference order.

    Raises:
        InfeasibleError: no such set can carry the traffic under the caps.
    """
    import pyomo.environ as pe

    x = JointInput.of(u, c, w, a)
    k = _deploy_size(x, max_deployed, allow_drop)
    m, _ = _solve_budgeted(x, budget, allow_drop, solver, deploy=k)
    chosen = read_deployment(m)
    best = float(m.obj.expr())
    m.keep = pe.Constraint(expr=m.obj.expr >= best - TIE_TOL * max(1.0, abs(best)))
    if _another_set_ties(m, chosen, solver):
        chosen = _first_in_preference(m, chosen, np.arange(x.a.size), k, solver)
    return chosen, _on_set(x, budget, chosen, allow_drop)


def _deploy_size(x: JointInput, max_deployed: int, allow_drop: bool) -> int:
    """k = min(M_max, M); fails if no k models can carry the traffic (DeployOPT's check)."""
    return _checked(x.u[0], x.c[0], x.a, max_deployed, allow_drop)[3]


def solve_joint_deploy_exhaustive(u: ArrayLike, c: ArrayLike, w: ArrayLike, a: ArrayLike,
                                  budget: float, max_deployed: int, allow_drop: bool = False,
                                  limit: int = 20_000
                                  ) -> tuple[NDArray[np.bool_], JointRouting] | None:
    """Joint DeployOPT by enumerating every set of min(max_deployed, M) models with the exact
    solver; None when there are more than ``limit`` sets. Feasible sets first, then (over budget)
    the least cost, then the most reward; ties within ``TIE_TOL``: the lexicographically
    smallest set."""
    x = JointInput.of(u, c, w, a)
    k = _deploy_size(x, max_deployed, allow_drop)
    n = x.a.size
    if math.comb(n, k) > limit:
        return None
    idx = np.empty(k, dtype=np.int64)
    if not best_set(x.u, x.c, x.w, x.a, float(budget), k, allow_drop, TIE_TOL, idx):
        raise InfeasibleError(f"no {k} models can carry all traffic under the max_share caps")
    chosen = np.zeros(n, dtype=bool)
    chosen[idx] = True
    return chosen, _on_set(x, budget, chosen, allow_drop)


def deploy_joint(u: ArrayLike, c: ArrayLike, w: ArrayLike, a: ArrayLike, budget: float,
                 max_deployed: int, solver: Solver = Solver.HIGHS, allow_drop: bool = False,
                 order: ArrayLike | None = None) -> tuple[NDArray[np.bool_], JointRouting]:
    """Joint DeployOPT: by enumeration when the pool is small (exact, fast), the MIP otherwise.

    ``order`` (a permutation of the models, most preferred first; default: index order) breaks
    ties between sets of the same value: the set first in that order wins, as DeployOPT's
    preference order does for one segment. The table's columns are the chosen models in index
    order.
    """
    x = JointInput.of(u, c, w, a)
    n = x.a.size
    perm = np.arange(n) if order is None else np.asarray(order, dtype=np.int64)
    found = solve_joint_deploy_exhaustive(x.u[:, perm], x.c[:, perm], x.w, x.a[perm], budget,
                                          max_deployed, allow_drop)
    if found is None:
        found = solve_joint_deploy(x.u[:, perm], x.c[:, perm], x.w, x.a[perm], budget,
                                   max_deployed, solver, allow_drop)
    picked, table = found
    chosen = np.zeros(n, dtype=bool)
    chosen[perm[picked]] = True
    columns = np.argsort(perm[picked], kind="stable")  # back to index order
    return chosen, JointRouting(np.ascontiguousarray(table.probability[:, columns]),
                                table.objective, table.cost, table.over_budget, table.dropped)
