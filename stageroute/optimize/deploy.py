"""DeployOPT: the stage's deployment set, a MIP over the candidate pool.

    maximise   sum_m d_m u_m
    subject to sum_m d_m c_m <= b,  sum_m d_m = 1,  0 <= d_m <= a_m z_m,  z_m in {0, 1}
               sum_m z_m = min(M_max, |P|),  sum_m a_m z_m >= 1

The set is chosen deterministically, the same on every solver, by one rule:

1. The canonical set: when the LP over the whole pool (no cardinality limit, solved exactly) needs
   at most M_max models, its support reaches the optimum V* and is the core, and the free slots go
   to the most promising other models (preference order: higher u, then lower c, then model id).
   No MIP is solved then.
2. Otherwise (the caps make the LP need more than M_max models) the MIP gives V*; among the
   sets within a hair of V*, those whose members' preference ranks have the best sum (rank n - r
   for the r-th most preferred model); among those, the one whose members, listed in preference
   order, come first lexicographically (the most preferred model that such a set can hold is in,
   then the next...). Each model ranked above the incumbent's members is tried with one more
   solve, so ties never reach the solver.

Costs enter the Pyomo models in units of the largest cost or budget, so that solver tolerances
(about 1e-7 on feasibility) mean the same thing for USD-per-request costs of 1e-4 as for 1.

The change limit (``plan --max-changes N``): given ``current`` (the pool models deployed now) and
``max_changes``, at most that many models outside ``current`` join the set: a MIP row
sum_{m not current} z_m <= N, a filter in the enumeration, and a canonical set that fills its
free slots within the limit (when its core alone breaks the limit, the MIP decides). The set then
holds min(M_max, |P|, |current| + N) models, so N = 0 keeps the current set whenever it can carry
the traffic. Current models that left the pool (retired, or gone from the catalog) are no change:
``change_allowance`` gives one extra addition per such model, as far as its slot is needed to
reach M_max. The tie rule above is unchanged; it ranks the sets within the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stageroute.errors import InfeasibleError
from stageroute.optimize.route import Routing, cost_unit, solve_route
from stageroute.optimize.solver import Solver, solve

OBJ_TOL = 1e-7  # sets whose value is within this (relative) of V* count as optimal


@dataclass(frozen=True, slots=True)
class Deployment:
    """DeployOPT's answer: the chosen set (a boolean mask over the pool) and the exact RouteOPT
    table on it (no solver tolerance in it, the same on every solver)."""

    chosen: NDArray[np.bool_]
    routing: Routing  # over the chosen models, in pool order
    over_budget: bool  # no set meets the budget: the cheapest-cost sets were searched instead

    @property
    def value(self) -> float:
        """V*: the optimistic expected reward of the best mixture on the set."""
        return self.routing.objective

    @property
    def weights(self) -> NDArray[np.float64]:
        """The mixture over the whole pool (0 outside the set)."""
        weights = np.zeros(self.chosen.size)
        weights[self.chosen] = self.routing.probability
        return weights


@dataclass(frozen=True, slots=True)
class ChangeLimit:
    """At most ``additions`` of the models marked ``outside`` (not deployed now) join the set."""

    outside: NDArray[np.bool_]
    additions: int

    @staticmethod
    def of(n: int, current: ArrayLike | None, max_changes: int | None) -> ChangeLimit | None:
        """The limit over a pool of ``n`` models (``current`` None: none is deployed now); None
        when there is no limit or it cannot bind."""
        if max_changes is None:
            return None
        if max_changes < 0:
            raise ValueError(f"max_changes must be >= 0, got {max_changes}")
        inside = np.zeros(n, dtype=bool) if current is None else np.asarray(current, dtype=bool)
        if inside.shape != (n,):
            raise ValueError(f"current must be a mask over the {n} models, got shape {inside.shape}")
        limit = ChangeLimit(~inside, int(max_changes))
        return None if limit.additions >= int(limit.outside.sum()) else limit

    def size(self, k: int) -> int:
        """The set size: k, or fewer when the current models and the additions cannot fill it."""
        return min(k, int((~self.outside).sum()) + self.additions)

    def allows(self, members: NDArray[np.bool_] | list[int]) -> bool:
        return int(self.outside[members].sum()) <= self.additions

    def best_caps(self, a: NDArray[np.float64], k: int) -> float:
        """The largest sum of max_share over the sets of ``k`` models within the limit."""
        inside = np.concatenate([[0.0], np.cumsum(np.sort(a[~self.outside])[::-1])])
        outside = np.concatenate([[0.0], np.cumsum(np.sort(a[self.outside])[::-1])])
        lo = max(0, k - (inside.size - 1))
        hi = min(self.additions, k, outside.size - 1)
        return max((float(inside[k - j] + outside[j]) for j in range(lo, hi + 1)), default=0.0)


def change_allowance(max_changes: int, kept: int, left: int, k: int) -> int:
    """Additions DeployOPT may make under ``--max-changes``: ``max_changes``, plus one per current
    model that left the pool (``left``) whose slot is needed to fill a set of ``k`` models
    (``kept``: the current models still in the pool). Replacing a retired model is no change."""
    return max_changes + max(0, min(left, k - kept))


def preference_order(u: NDArray[np.float64], c: NDArray[np.float64]) -> NDArray[np.intp]:
    """Indices by u desc, then c asc, then index asc."""
    return np.lexsort((np.arange(u.size), c, -u))


def build_deploy_model(u: NDArray[np.float64], c: NDArray[np.float64], a: NDArray[np.float64],
                       budget: float, k: int, allow_drop: bool = False,
                       limit: ChangeLimit | None = None) -> Any:
    """The DeployOPT MIP with three objectives (reward, cost, preference); ``_use`` picks one.

    ``c`` and ``budget`` should already be in solver units (see ``cost_unit``); ``k`` is the set
    size (``limit.size`` under a change limit).
    """
    import pyomo.environ as pe

    n = u.size
    rank = np.empty(n, dtype=np.int64)
    rank[preference_order(u, c)] = np.arange(n)
    m = pe.ConcreteModel(name="DeployOPT")
    m.I = pe.RangeSet(0, n - 1)
    m.d = pe.Var(m.I, bounds=(0.0, 1.0))
    m.z = pe.Var(m.I, domain=pe.Binary)
    m.budget_value = pe.Param(mutable=True, initialize=float(budget))
    m.floor_value = pe.Param(mutable=True, initialize=0.0)
    m.cap = pe.Constraint(m.I, rule=lambda m, i: m.d[i] <= float(a[i]) * m.z[i])
    total = pe.quicksum(m.d[i] for i in m.I)
    m.simplex = pe.Constraint(expr=total <= 1.0) if allow_drop else pe.Constraint(expr=total == 1.0)
    cost = pe.quicksum(float(c[i]) * m.d[i] for i in m.I)
    reward = pe.quicksum(float(u[i]) * m.d[i] for i in m.I)
    m.budget = pe.Constraint(expr=cost <= m.budget_value)
    m.card = pe.Constraint(expr=pe.quicksum(m.z[i] for i in m.I) == k)
    if limit is not None:
        added = pe.quicksum(m.z[int(i)] for i in np.flatnonzero(limit.outside))
        m.changes = pe.Constraint(expr=added <= limit.additions)
    if not allow_drop:
        m.through = pe.Constraint(expr=pe.quicksum(float(a[i]) * m.z[i] for i in m.I) >= 1.0)
    m.floor = pe.Constraint(expr=reward >= m.floor_value)
    m.floor.deactivate()
    m.reward = pe.Objective(expr=reward, sense=pe.maximize)
    m.cost = pe.Objective(expr=cost, sense=pe.minimize)
    score = pe.quicksum(float(n - rank[i]) * m.z[i] for i in m.I)
    m.preference = pe.Objective(expr=score, sense=pe.maximize)
    m.score_value = pe.Param(mutable=True, initialize=0.0)
    m.score_floor = pe.Constraint(expr=score >= m.score_value)
    m.score_floor.deactivate()
    m.cost.deactivate()
    m.preference.deactivate()
    return m


def _use(m: Any, objective: str) -> None:
    for name in ("reward", "cost", "preference"):
        getattr(m, name).activate() if name == objective else getattr(m, name).deactivate()


def read_deployment(m: Any) -> NDArray[np.bool_]:
    return np.array([round(m.z[i].value or 0.0) == 1 for i in m.I])


def _checked(u: ArrayLike, c: ArrayLike, a: ArrayLike, max_deployed: int, allow_drop: bool,
             limit: ChangeLimit | None = None
             ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], int]:
    """Arrays and the set size k = min(M_max, |P|) (fewer under ``limit``); fails if no such set
    can carry the traffic."""
    u = np.asarray(u, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    if u.size == 0:
        raise InfeasibleError("the candidate pool is empty: no model is available for the stage")
    if max_deployed < 1:
        raise ValueError(f"max_deployed must be >= 1, got {max_deployed}")
    k = min(max_deployed, u.size)
    top = np.sort(a)[::-1][:k].sum()
    if not allow_drop and top < 1.0 - 1e-12:
        whole = float(a.sum())
        fix = ("raise --max-deployed or the catalog's max_share"
               if k < u.size and whole >= 1.0 - 1e-12 else
               f"the pool has only {u.size} model(s), all of them counted: raise the catalog's "
               "max_share or make more models available" if k == u.size else
               f"even all {u.size} models of the pool sum to {whole:.4g}: raise the catalog's "
               "max_share or make more models available")
        raise InfeasibleError(
            f"no {k} models can carry all traffic: the largest {k} max_share values sum to "
            f"{top:.4g} < 1; {fix}, or pass --allow-drop to refuse the rest"
        )
    return u, c, a, k if limit is None else _limited_size(a, k, allow_drop, limit)


def _limited_size(a: NDArray[np.float64], k: int, allow_drop: bool, limit: ChangeLimit) -> int:
    """The set size under the change limit; fails if no set within it can carry the traffic."""
    size = limit.size(k)
    now = int((~limit.outside).sum())
    if size == 0:
        raise InfeasibleError(
            "no model of the pool is deployed now and --max-changes 0 allows no addition, so "
            "nothing can be deployed; raise --max-changes"
        )
    top = limit.best_caps(a, size)
    if not allow_drop and top < 1.0 - 1e-12:
        raise InfeasibleError(
            f"no set within --max-changes can carry all traffic: with {now} model(s) of the pool "
            f"deployed now and at most {limit.additions} added, the max_share values of a "
            f"{size}-model set sum to at most {top:.4g} < 1; raise --max-changes or the catalog's "
            "max_share"
        )
    return size


def solve_deploy(u: ArrayLike, c: ArrayLike, a: ArrayLike, budget: float, max_deployed: int,
                 solver: Solver = Solver.HIGHS, allow_drop: bool = False, *,
                 current: ArrayLike | None = None, max_changes: int | None = None) -> Deployment:
    """Choose the stage's deployment set (the rule of the module docstring).

    ``current`` (a mask over the pool, None: nothing) and ``max_changes`` (None: no limit): at
    most ``max_changes`` models outside ``current`` are added.

    Raises:
        InfeasibleError: no set of at most ``max_deployed`` models (within the change limit) can
            carry all traffic under the max_share caps (the budget alone never makes it fail:
            see ``over_budget``).
    """
    limit = ChangeLimit.of(np.size(u), current, max_changes)
    u, c, a, k = _checked(u, c, a, max_deployed, allow_drop, limit)
    canonical = canonical_set(u, c, a, budget, k, allow_drop, limit)
    if canonical is not None:
        return deployment_on(u, c, a, budget, canonical, allow_drop, False)
    unit = cost_unit(c, budget)
    m = build_deploy_model(u, c / unit, a, budget / unit, k, allow_drop, limit)
    over = False
    # |P| >= k and adding a model never breaks feasibility, so "= k" fails only on the budget
    # (under a change limit too: _checked made sure that a set within it carries the traffic).
    if not solve(m, solver):
        # No set meets the budget even with the cost lower bounds: find the cheapest mixture,
        # then the most rewarding set at that cost.
        over = True
        m.budget.deactivate()
        _use(m, "cost")
        if not solve(m, solver):
            raise InfeasibleError("DeployOPT has no feasible set even without the budget")
        floor_cost = float(m.cost.expr())
        m.budget_value.set_value(floor_cost * (1 + 1e-9) + 1e-12)
        m.budget.activate()
        _use(m, "reward")
        if not solve(m, solver):
            raise InfeasibleError("DeployOPT failed at the cheapest cost")
    best = float(m.reward.expr())
    m.floor_value.set_value(best - OBJ_TOL * max(1.0, abs(best)))
    m.floor.activate()
    chosen = read_deployment(m)
    _use(m, "preference")
    if solve(m, solver):  # else keep the phase-1 set: it is optimal, only not tie-broken
        chosen = read_deployment(m)
        m.score_value.set_value(round(float(m.preference.expr())) - 0.5)  # integer scores
        m.score_floor.activate()
        if _another_set_ties(m, chosen, solver):  # rare: only then walk the preference order
            chosen = _first_in_preference(m, chosen, preference_order(u, c), k, solver)
    return deployment_on(u, c, a, budget, chosen, allow_drop, over)


def _another_set_ties(m: Any, chosen: NDArray[np.bool_], solver: Solver) -> bool:
    """True if a set other than ``chosen`` reaches the same value and rank sum (a no-good cut)."""
    import pyomo.environ as pe

    members = [int(i) for i in np.flatnonzero(chosen)]
    m.other = pe.Constraint(expr=pe.quicksum(m.z[i] for i in members) <= len(members) - 1)
    found = solve(m, solver)
    m.del_component(m.other)
    return found


def _first_in_preference(m: Any, incumbent: NDArray[np.bool_], order: NDArray[np.intp], k: int,
                         solver: Solver) -> NDArray[np.bool_]:
    """Among optimal sets of the best rank sum (both floors active), the lexicographically first.

    Walks the preference order: a model the incumbent holds is fixed in; any other is tried with
    one solve (fixed in if some optimal set holds it with the models fixed so far, out if not).
    """
    chosen = incumbent.copy()
    fixed = 0
    for i in order:
        if fixed == k:
            break
        if not chosen[i]:
            m.z[int(i)].fix(1)
            if solve(m, solver):
                chosen = read_deployment(m)
            else:
                m.z[int(i)].fix(0)
                continue
        m.z[int(i)].fix(1)
        fixed += 1
    return chosen


def canonical_set(u: NDArray[np.float64], c: NDArray[np.float64], a: NDArray[np.float64],
                  budget: float, k: int, allow_drop: bool,
                  limit: ChangeLimit | None = None) -> NDArray[np.bool_] | None:
    """The support of the exact LP over the whole pool plus the best-ranked others, if it fits.

    That LP relaxes DeployOPT (no cardinality or change limit), so when its support has at most
    k models (and at most ``limit.additions`` outside the current set) it is an optimal core (also
    for the over-budget fallback: the cheapest mixture, then the most reward at that cost); None
    when it does not fit. The free slots go by preference to the models the limit still admits.
    """
    relaxed = solve_route(u, c, a, budget, allow_drop)
    core = relaxed.probability > 0
    free = k - int(core.sum())
    if free < 0 or (limit is not None and not limit.allows(core)):
        return None
    chosen = core.copy()
    others = [i for i in preference_order(u, c) if not core[i]]
    if limit is not None:  # the others outside the current set, only while additions are left
        room = limit.additions - int(limit.outside[core].sum())
        outside = np.cumsum(limit.outside[others]) if others else np.zeros(0, dtype=np.int64)
        others = [i for i, n in zip(others, outside, strict=True) if not limit.outside[i] or n <= room]
    chosen[others[:free]] = True
    return chosen


def deployment_on(u: NDArray[np.float64], c: NDArray[np.float64], a: NDArray[np.float64],
                  budget: float, chosen: NDArray[np.bool_], allow_drop: bool = False,
                  over: bool = False) -> Deployment:
    """The set's mixture and value from the exact LP on it: no solver tolerance, same everywhere.

    The one routing table of a deployment: DeployOPT's answer, and ``plan --routing-only``'s
    table on the set it keeps.
    """
    routing = solve_route(u[chosen], c[chosen], a[chosen], budget, allow_drop)
    return Deployment(chosen, routing, over or routing.over_budget)


def solve_deploy_exhaustive(u: ArrayLike, c: ArrayLike, a: ArrayLike, budget: float,
                            max_deployed: int, allow_drop: bool = False,
                            limit: int = 20_000, *, current: ArrayLike | None = None,
                            max_changes: int | None = None) -> Deployment | None:
    """DeployOPT by enumerating every set (same objective, change limit and tie-breaking rule as
    the MIP).

    Exact like the MIP and much faster on small pools; returns None when there are more than
    ``limit`` sets (use ``solve_deploy`` then).
    """
    import itertools
    import math

    from stageroute.optimize.kernels import route

    changes = ChangeLimit.of(np.size(u), current, max_changes)
    u, c, a, k = _checked(u, c, a, max_deployed, allow_drop, changes)
    n = u.size
    canonical = canonical_set(u, c, a, budget, k, allow_drop, changes)
    if canonical is not None:
        return deployment_on(u, c, a, budget, canonical, allow_drop, False)
    if math.comb(n, k) > limit:
        return None
    rank = np.empty(n, dtype=np.int64)
    rank[preference_order(u, c)] = np.arange(n)
    extra = 1 if allow_drop else 0
    uu, cc, aa = np.zeros(k + extra), np.zeros(k + extra), np.ones(k + extra)
    p = np.zeros(k + extra)
    best: tuple[_Key, tuple[int, ...]] | None = None
    for subset in itertools.combinations(range(n), k):
        s = list(subset)
        if (not allow_drop and a[s].sum() < 1.0 - 1e-12) or (changes is not None and not changes.allows(s)):
            continue
        uu[:k], cc[:k], aa[:k] = u[s], c[s], a[s]
        over = route(uu, cc, aa, budget, p)
        value, cost = float(p @ uu), float(p @ cc)
        # feasible first; then value (over budget: lower cost first, then value); then the
        # members' preference ranks, lexicographically (the MIP's rule)
        ranks = tuple(sorted(int(r) for r in rank[s]))
        key: _Key = ((0, -cost, value, -sum(ranks), ranks) if over
                     else (1, 0.0, value, -sum(ranks), ranks))
        if best is None or _better(key, best[0]):
            best = (key, subset)
    if best is None:
        raise InfeasibleError(f"no {k} models can carry all traffic under the max_share caps")
    chosen = np.zeros(n, dtype=bool)
    chosen[list(best[1])] = True
    return deployment_on(u, c, a, budget, chosen, allow_drop, False)


_Key = tuple[int, float, float, int, tuple[int, ...]]


def _better(key: _Key, best: _Key) -> bool:
    """Lexicographic comparison where values within OBJ_TOL count as equal; then the better rank
    sum; then the set whose sorted ranks come first."""
    for x, y in zip(key[:3], best[:3], strict=True):
        tol = OBJ_TOL * max(1.0, abs(y)) if isinstance(x, float) else 0
        if x > y + tol:
            return True
        if x < y - tol:
            return False
    return (key[3], best[4]) > (best[3], key[4])  # better rank sum, then lexicographically first
