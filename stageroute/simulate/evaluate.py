"""How replay judges a policy (SPEC 8): the oracle's reward-cost frontier, sub-optimality at the
policy's own cost, budget violation, intervals over seeds and the ranking.

The paper's sub-optimality, 1 - reward / oracle reward, compares a policy with an oracle that keeps
the budget: a policy that overspends can beat it. ``suboptimality_at_cost`` compares it instead with
the oracle given the policy's own realised mean cost in each stage,

    1 - R / sum_k n_k V_k(b'_k),    b'_k = the policy's cost in stage k / n_k,

where V_k(b) is the oracle's value per query in stage k at budget b: the best set of at most M_max
models of the stage's pool and its best mixture, with the true means (the over-budget fallback, the
cheapest mixture with the most reward, below the cheapest level). Every figure is computed per seed,
then averaged over seeds with a 95% Student-t interval (none with fewer than ``MIN_SEEDS`` seeds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

from stageroute.optimize.deploy import solve_deploy, solve_deploy_exhaustive
from stageroute.optimize.kernels import route_into, workspace
from stageroute.optimize.route import solve_route
from stageroute.options import Solver

MIN_SEEDS = 3  # fewer seeds: no interval (a t interval on 2 values is 12.7 standard errors wide)

Interval = tuple[float, float] | None


# ---------------------------------------------------------------------------------------------
# intervals over seeds

# two-sided 95% Student t quantiles for 1..30 degrees of freedom
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
_Z975 = 1.959963984540054


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t: the table to 30 degrees of freedom, beyond it the
    Cornish-Fisher expansion around the normal quantile (Abramowitz & Stegun 26.7.5; error
    below 1e-6 there).

    >>> round(t975(31), 4), round(t975(120), 4)
    (2.0395, 1.9799)
    """
    if df <= len(_T95):
        return _T95[df - 1]
    z = _Z975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def ci95(values: NDArray[np.float64]) -> Interval:
    """Student-t 95% interval of the mean over seeds; None with fewer than ``MIN_SEEDS`` values."""
    if values.size < MIN_SEEDS:
        return None
    m = float(np.mean(values))
    half = t975(values.size - 1) * float(np.std(values, ddof=1)) / math.sqrt(values.size)
    return (m - half, m + half)


# ---------------------------------------------------------------------------------------------
# the oracle's value at any budget


@njit(cache=True)
def _relaxed_values(u, c, a, budgets, n_models, k, values, fits):  # type: ignore[no-untyped-def]
    """The LP over the whole pool at each budget (the RouteOPT kernel): its value, and whether its
    optimum uses at most k models (then it is DeployOPT's value too)."""
    p = np.zeros(u.size)
    order, lam, mids, score, q, neg_u, cheap = workspace(u.size)
    for i in range(budgets.size):
        route_into(u, c, a, budgets[i], p, order, lam, mids, score, q, neg_u, cheap)
        total = 0.0
        support = 0
        for j in range(n_models):
            total += p[j] * u[j]
            if p[j] > 0.0:
                support += 1
        values[i] = total
        fits[i] = support <= k


# Where the cardinality binds (max_share caps below 1 make the LP need more than M_max models), the
# value is the upper envelope, over every set S of k models, of the LP's value function on S: a
# concave, nondecreasing chain of vertices (cost, value). The LP's feasible set {sum p = 1,
# 0 <= p <= a} has vertices with at most one variable strictly between its bounds; the chain is the
# upper hull of their images from the cheapest mixture to the most rewarding one.

CHAIN_LIMIT = 2_000_000  # vertices to enumerate (sets x vertices per set); beyond it, DeployOPT
_TOL = 1e-12


@njit(cache=True)
def _set_vertices(u, c, a, members, px, py):  # type: ignore[no-untyped-def]
    """Images (cost, value) of the vertices of {sum p = 1, 0 <= p <= a} over ``members``."""
    size = members.size
    m = 0
    for free in range(size):
        for mask in range(1 << (size - 1)):
            x, y, rest, bit = 0.0, 0.0, 1.0, 0
            for j in range(size):
                if j == free:
                    continue
                if (mask >> bit) & 1:
                    i = members[j]
                    rest -= a[i]
                    x += a[i] * c[i]
                    y += a[i] * u[i]
                bit += 1
            i = members[free]
            if rest < -_TOL or rest > a[i] + _TOL:
                continue
            rest = min(max(rest, 0.0), a[i])
            px[m] = x + rest * c[i]
            py[m] = y + rest * u[i]
            m += 1
    return m


@njit(cache=True)
def _upper_chain(px, py, m, hx, hy):  # type: ignore[no-untyped-def]
    """The upper hull of m points from the cheapest (highest among the cheapest) to the first
    highest one, into (hx, hy); returns its length."""
    by_value = np.argsort(-py[:m], kind="mergesort")
    order = by_value[np.argsort(px[:m][by_value], kind="mergesort")]  # cost asc, then value desc
    h = 0
    for t in range(m):
        x, y = px[order[t]], py[order[t]]
        if h > 0 and x == hx[h - 1]:
            continue  # same cost, lower value
        while h >= 2 and ((hx[h - 1] - hx[h - 2]) * (y - hy[h - 2])
                          - (hy[h - 1] - hy[h - 2]) * (x - hx[h - 2])) >= 0.0:
            h -= 1  # not a right turn: under the hull
        hx[h], hy[h] = x, y
        h += 1
    top = 0
    for t in range(h):
        if hy[t] > hy[top]:
            top = t
    return top + 1


@njit(cache=True)
def _all_chains(u, c, a, n, k, drop):  # type: ignore[no-untyped-def]
    """The chains of every set of k of the first n options (plus the null option n under drop)
    that can carry all traffic: (offsets, costs, values), chain s in [offsets[s], offsets[s+1])."""
    size = k + 1 if drop else k
    per_set = size * (1 << (size - 1))
    count = 1
    for i in range(k):
        count = count * (n - i) // (i + 1)
    offsets = np.zeros(count + 1, dtype=np.int64)
    xs = np.empty(count * per_set)
    ys = np.empty(count * per_set)
    px, py = np.empty(per_set), np.empty(per_set)
    members = np.empty(size, dtype=np.int64)
    if drop:
        members[k] = n
    pick = np.arange(k)
    s = 0
    while True:
        members[:k] = pick
        total = 0.0
        for j in range(size):
            total += a[members[j]]
        start = offsets[s]
        length = 0
        if total >= 1.0 - _TOL:
            m = _set_vertices(u, c, a, members, px, py)
            length = _upper_chain(px, py, m, xs[start:], ys[start:])
        s += 1
        offsets[s] = start + length
        j = k - 1  # the next set in lexicographic order
        while j >= 0 and pick[j] == n - k + j:
            j -= 1
        if j < 0:
            break
        pick[j] += 1
        for t in range(j + 1, k):
            pick[t] = pick[t - 1] + 1
    return offsets[: s + 1], xs, ys


@njit(cache=True)
def _envelope(offsets, xs, ys, budgets, cmax, values):  # type: ignore[no-untyped-def]
    """max over chains of the chain's value at each budget; below every chain's start, the most
    reward among the cheapest starts (the over-budget fallback)."""
    sets = offsets.size - 1
    for i in range(budgets.size):
        b = budgets[i]
        eps = _TOL * max(1.0, abs(b), cmax)
        best = -np.inf
        cheapest, at_cheapest = np.inf, -np.inf
        for s in range(sets):
            lo, hi = offsets[s], offsets[s + 1]
            if lo == hi:
                continue
            x0 = xs[lo]
            if x0 < cheapest - eps:
                cheapest, at_cheapest = x0, ys[lo]
            elif x0 <= cheapest + eps:
                at_cheapest = max(at_cheapest, ys[lo])
            if b + eps < x0:
                continue
            value = ys[hi - 1]
            for t in range(lo, hi - 1):
                if b < xs[t + 1]:
                    w = (b - xs[t]) / (xs[t + 1] - xs[t])
                    value = ys[t] + (ys[t + 1] - ys[t]) * min(max(w, 0.0), 1.0)
                    break
            best = max(best, value)
        values[i] = best if best > -np.inf else at_cheapest


@dataclass(frozen=True, slots=True)
class Frontier:
    """V_k(b): the oracle's expected reward per query in stage k at budget b, true means.

    Exact and fast: the LP over the whole pool (no cardinality limit, the RouteOPT kernel) relaxes
    DeployOPT, so where its optimum needs at most M_max models it is V_k(b); that holds at every
    budget when no max_share is below 1 and M_max >= 2 (an LP with two constraints mixes at most
    two models). At the other budgets the value is the upper envelope of every k-set's LP value
    function (computed once per pool); pools too large to enumerate (``CHAIN_LIMIT``) are solved
    by DeployOPT at each such budget, the oracle's own solver. Stages with the same pool are
    solved together.
    """

    mean_reward: NDArray[np.float64]  # [N] true means
    mean_cost: NDArray[np.float64]
    alpha: NDArray[np.float64]  # [N] max_share
    pools: NDArray[np.bool_]  # [K, N]
    max_deployed: int
    allow_drop: bool = False
    solver: Solver = Solver.HIGHS
    _chains: dict[bytes, tuple[NDArray[Any], ...] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def values(self, budgets: NDArray[np.float64]) -> NDArray[np.float64]:
        """V_k(budgets[..., k]) for every stage k (the last axis is the stage)."""
        budgets = np.asarray(budgets, dtype=np.float64)
        out = np.empty(budgets.shape)
        keys = [pool.tobytes() for pool in self.pools]
        for key in dict.fromkeys(keys):
            stages = [k for k, other in enumerate(keys) if other == key]
            these = budgets[..., stages]
            out[..., stages] = self.pool_values(self.pools[stages[0]],
                                                these.ravel()).reshape(these.shape)
        return out

    def pool_values(self, pool: NDArray[np.bool_], budgets: NDArray[np.float64]
                    ) -> NDArray[np.float64]:
        """The oracle's value per query over ``pool`` at each of ``budgets`` (1-d)."""
        u, c, a = self._extended(pool)
        n = int(pool.sum())
        k = min(self.max_deployed, n)
        distinct, where = np.unique(budgets, return_inverse=True)
        values = np.empty(distinct.size)
        fits = np.empty(distinct.size, dtype=np.bool_)
        _relaxed_values(u, c, a, distinct, n, k, values, fits)
        binds = np.flatnonzero(~fits)
        if binds.size:  # the cardinality binds at these budgets
            chains = self._pool_chains(pool, u, c, a, n, k)
            if chains is not None:
                offsets, xs, ys = chains
                found = np.empty(binds.size)
                _envelope(offsets, xs, ys, distinct[binds], float(np.abs(c).max()), found)
                values[binds] = found
            else:
                for i in binds:
                    values[i] = self._deploy_value(u[:n], c[:n], a[:n], float(distinct[i]))
        return values[where.ravel()]

    def _pool_chains(self, pool: NDArray[np.bool_], u: NDArray[np.float64],
                     c: NDArray[np.float64], a: NDArray[np.float64], n: int, k: int
                     ) -> tuple[NDArray[Any], ...] | None:
        key = pool.tobytes()
        if key not in self._chains:
            size = k + 1 if self.allow_drop else k
            small = math.comb(n, k) * size * 2 ** (size - 1) <= CHAIN_LIMIT
            self._chains[key] = _all_chains(u, c, a, n, k, self.allow_drop) if small else None
        return self._chains[key]

    def _extended(self, pool: NDArray[np.bool_]) -> tuple[NDArray[np.float64], ...]:
        """The pool's (u, c, a), with the null option (reward 0, cost 0) under allow_drop."""
        u, c, a = self.mean_reward[pool], self.mean_cost[pool], self.alpha[pool]
        if self.allow_drop:
            u, c, a = np.append(u, 0.0), np.append(c, 0.0), np.append(a, 1.0)
        return u, c, a

    def _deploy_value(self, u: NDArray[np.float64], c: NDArray[np.float64],
                      a: NDArray[np.float64], budget: float) -> float:
        dep = solve_deploy_exhaustive(u, c, a, budget, self.max_deployed, self.allow_drop)
        if dep is None:
            dep = solve_deploy(u, c, a, budget, self.max_deployed, self.solver, self.allow_drop)
        return dep.value

    def levels(self) -> tuple[float, float]:
        """The cheapest mixture's cost and the cost beyond which no stage gains reward (the most
        rewarding mixture's), over all stages: the useful range of budgets."""
        lo, hi = math.inf, 0.0
        for key in dict.fromkeys(pool.tobytes() for pool in self.pools):
            pool = np.frombuffer(key, dtype=np.bool_)
            u, c, a = self.mean_reward[pool], self.mean_cost[pool], self.alpha[pool]
            lo = min(lo, solve_route(u, c, a, 0.0, self.allow_drop).cost)
            hi = max(hi, solve_route(u, c, a, float(c.max()), self.allow_drop).cost)
        return lo, hi


@dataclass(frozen=True, slots=True)
class Curve:
    """The oracle's reward-cost frontier over a run: value per query against the budget."""

    budget: NDArray[np.float64]
    value: NDArray[np.float64]  # sum_k n_k V_k(b) / T


def frontier_curve(frontier: Frontier, sizes: NDArray[np.float64], costs: Sequence[float] = (),
                   points: int = 241) -> Curve:
    """sum_k n_k V_k(b) / T on an even grid of budgets from the cheapest level to the most
    rewarding one (``Frontier.levels``), widened to take in ``costs`` (the policies', say)."""
    lo, hi = frontier.levels()
    grid = np.linspace(min(lo, *costs), max(hi, *costs), points)
    per_stage = frontier.values(np.repeat(grid[:, None], sizes.size, axis=1))
    return Curve(grid, per_stage @ sizes / sizes.sum())


# ---------------------------------------------------------------------------------------------
# scores per policy


@dataclass(frozen=True, slots=True, kw_only=True)
class Scores:
    """One policy's figures: means over seeds of per-seed values, and their 95% intervals.

    ``budget_violation`` is max(0, cost_over_budget - 1) of the mean (its interval maps the
    interval of cost_over_budget the same way); ``worst_stage_cost_over_budget`` is per seed the
    largest stage's mean cost / budget, then the mean over seeds. ``regret`` is in reward units:
    the oracle's expected reward minus the policy's, summed over the horizon.
    """

    mean_reward: float  # per query
    mean_cost: float  # per query, in the currency of the input
    cost_over_budget: float
    worst_stage_cost_over_budget: float
    budget_violation: float
    regret: float
    suboptimality: float  # the paper's: 1 - reward / oracle reward (fraction)
    suboptimality_at_cost: float  # 1 - reward / oracle reward at the policy's own cost per stage
    oracle_value_at_cost: float  # that oracle reward per query: sum_k n_k V_k(b'_k) / T
    ci95: dict[str, Interval]


def score(reward: NDArray[np.float64], cost: NDArray[np.float64], sizes: NDArray[np.float64],
          budget: float, oracle_total: float, at_cost: NDArray[np.float64]) -> Scores:
    """A policy's scores from its per-seed, per-stage totals.

    Args:
        reward, cost: [S, K] reward and cost summed over each stage's queries, per seed.
        sizes: [K] queries per stage.
        oracle_total: the oracle's expected reward over the horizon.
        at_cost: [S] the oracle's expected reward at the seed's own cost per stage,
            sum_k n_k V_k(cost[s, k] / n_k).
    """
    t = float(sizes.sum())
    rewards, costs = reward.sum(axis=1), cost.sum(axis=1)
    served = sizes > 0
    stage_cost = cost[:, served] / sizes[served]
    per_seed = {
        "mean_reward": rewards / t,
        "mean_cost": costs / t,
        "cost_over_budget": costs / t / budget,
        "worst_stage_cost_over_budget": stage_cost.max(axis=1) / budget,
        "regret": oracle_total - rewards,
        "suboptimality": _shortfall(rewards, np.full(rewards.size, oracle_total)),
        "suboptimality_at_cost": _shortfall(rewards, at_cost),
        "oracle_value_at_cost": at_cost / t,
    }
    means = {key: float(values.mean()) for key, values in per_seed.items()}
    intervals = {key: ci95(values) for key, values in per_seed.items()}
    over = intervals["cost_over_budget"]
    intervals["budget_violation"] = None if over is None else (max(0.0, over[0] - 1.0),
                                                               max(0.0, over[1] - 1.0))
    return Scores(**means, budget_violation=max(0.0, means["cost_over_budget"] - 1.0),
                  ci95=intervals)


def _shortfall(rewards: NDArray[np.float64], reference: NDArray[np.float64]) -> NDArray[np.float64]:
    """1 - reward / reference, 0 where the reference is 0 (nothing to fall short of)."""
    safe = np.where(reference > 0, reference, 1.0)
    return np.where(reference > 0, 1.0 - rewards / safe, 0.0)


def ranks(values: Sequence[float | None]) -> list[int | None]:
    """Rank 1 = the smallest value; None (the oracle: a reference, not a competitor) is not
    ranked; equal values keep their input order."""
    order = sorted((v, i) for i, v in enumerate(values) if v is not None)
    out: list[int | None] = [None] * len(values)
    for rank, (_, i) in enumerate(order, start=1):
        out[i] = rank
    return out
