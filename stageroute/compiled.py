"""Numba-compiled kernels: the exact RouteOPT solver and replay's per-query loop.

They mirror ``route.solve_route``, ``bounds`` and Welford's update operation for operation, so that
the compiled replay makes the same decisions as the reference loop (tested). Compilation is cached
on disk (``cache=True``), so only the first run on a machine pays for it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

REL_EPS = 1e-12
MAX_VARIANCE = 0.25

# Rows of the statistics array: one column per model.
N_R, MEAN_R, M2_R, N_C, MEAN_C, M2_C = range(6)
# Routing modes of the per-query loop.
MODE_ROUTE, MODE_EPSILON, MODE_UNIFORM = 0, 1, 2


@njit(cache=True)
def _before(i, j, score, c):
    """True if i comes before j: score desc, then cost asc, then index asc."""
    if score[i] != score[j]:
        return score[i] > score[j]
    if c[i] != c[j]:
        return c[i] < c[j]
    return i < j


@njit(cache=True)
def _dot(p, c):
    total = 0.0
    for k in range(p.size):
        total += p[k] * c[k]
    return total


@njit(cache=True)
def _fill(score, c, a, p, order):
    """Greedy fill of one unit of traffic in (score desc, c asc, index asc) order."""
    n = score.size
    for k in range(n):
        order[k] = k
    for k in range(1, n):  # insertion sort: n is small (the deployed set)
        x = order[k]
        m = k - 1
        while m >= 0 and _before(x, order[m], score, c):
            order[m + 1] = order[m]
            m -= 1
        order[m + 1] = x
    for k in range(n):
        p[k] = 0.0
    left = 1.0
    for k in range(n):
        i = order[k]
        take = min(a[i], left)
        p[i] = take
        left -= take
        if left <= 0.0:
            break


@njit(cache=True)
def workspace(n):
    """Scratch arrays for ``route_into`` on n options, allocated once per loop, not per query."""
    return (np.empty(n, dtype=np.int64), np.empty(n * n), np.empty(n * n + 1), np.empty(n),
            np.empty(n), np.empty(n), np.empty(n))


@njit(cache=True)
def route(u, c, a, budget, p):
    """Exact RouteOPT on (u, c, a) into ``p``; returns True if over budget (cheapest mixture).

    The caller guarantees sum(a) >= 1 (append a null option for allow-drop).
    """
    order, lam, mids, score, q, neg_u, cheap = workspace(u.size)
    return route_into(u, c, a, budget, p, order, lam, mids, score, q, neg_u, cheap)


@njit(cache=True)
def route_into(u, c, a, budget, p, order, lam, mids, score, q, neg_u, cheap):
    """``route`` with caller-provided scratch arrays (see ``workspace``)."""
    n = u.size
    cmax = 0.0
    for i in range(n):
        cmax = max(cmax, abs(c[i]))
        neg_u[i] = -u[i]
        cheap[i] = -c[i]  # cost asc, then (in the tie-break slot) reward desc, then index
    eps = REL_EPS * max(1.0, abs(budget), cmax)
    _fill(u, c, a, p, order)
    if _dot(p, c) <= budget + eps:
        return False
    _fill(cheap, neg_u, a, p, order)
    if _dot(p, c) > budget + eps:
        return True
    # Breakpoints of the Lagrange price where the greedy order changes.
    m = 0
    for i in range(n):
        for j in range(n):
            du = u[i] - u[j]
            dc = c[i] - c[j]
            if du > 0.0 and dc > 0.0:
                r = du / dc
                if math.isfinite(r):
                    lam[m] = r
                    m += 1
    lam[:m].sort()
    k = 0
    for i in range(m):  # unique
        if k == 0 or lam[i] != lam[k - 1]:
            lam[k] = lam[i]
            k += 1
    top = lam[k - 1] * 2.0 + 1.0 if k > 0 else 1.0
    prev = 0.0
    for i in range(k):
        mids[i] = (prev + lam[i]) / 2.0
        prev = lam[i]
    mids[k] = (prev + top) / 2.0
    last = k

    lo, hi = 1, last
    while lo < hi:
        mid = (lo + hi) // 2
        if _cost_at(mid, last, mids, u, c, a, score, q, neg_u, cheap, order) <= budget + eps:
            hi = mid
        else:
            lo = mid + 1
    cost_right = _cost_at(lo, last, mids, u, c, a, score, p, neg_u, cheap, order)
    cost_left = _cost_at(lo - 1, last, mids, u, c, a, score, q, neg_u, cheap, order)
    gap = cost_left - cost_right
    theta = min(max((budget - cost_right) / gap, 0.0), 1.0) if gap > 0.0 else 0.0
    for i in range(n):
        p[i] = p[i] + theta * (q[i] - p[i])
    return False


@njit(cache=True)
def _cost_at(k, last, mids, u, c, a, score, out, neg_u, cheap, order):
    """Cost of the greedy solution strictly inside interval k (the last one: cheapest order)."""
    if k == last:
        _fill(cheap, neg_u, a, out, order)
    elif k == 0:
        _fill(u, c, a, out, order)
    else:
        for i in range(u.size):
            score[i] = u[i] - mids[k] * c[i]
        _fill(score, c, a, out, order)
    return _dot(out, c)


@njit(cache=True)
def _radius(v, n, gamma):
    return math.sqrt(gamma * max(v, 0.0) / n) + gamma / n


@njit(cache=True)
def reward_bound(stats, j, gamma, radius_mean):
    n = stats[N_R, j]
    if n <= 0:
        return 1.0
    mean = stats[MEAN_R, j]
    if radius_mean:
        v = min(max(mean, 0.0), 1.0)
    else:
        v = MAX_VARIANCE if n < 2 else stats[M2_R, j] / n
    return min(max(mean + 2.0 * _radius(v, n, gamma), 0.0), 1.0)


@njit(cache=True)
def cost_bound(stats, j, gamma, radius_mean, scale, prior):
    n = stats[N_C, j]
    if n <= 0:
        return 0.0 if math.isnan(prior[j]) else prior[j]
    m = stats[MEAN_C, j] / scale
    if radius_mean:
        v = min(max(m, 0.0), 1.0)
    else:
        v = MAX_VARIANCE if n < 2 else (stats[M2_C, j] / n) / (scale * scale)
    return min(max(m - 2.0 * _radius(v, n, gamma), 0.0), 1.0) * scale


@njit(cache=True)
def welford(stats, row_n, j, x):
    n = stats[row_n, j] + 1.0
    d = x - stats[row_n + 1, j]
    stats[row_n, j] = n
    stats[row_n + 1, j] += d / n
    stats[row_n + 2, j] += d * (x - stats[row_n + 1, j])


@njit(cache=True)
def run_queries(deployed, alpha, prompts, draws, explore, R, C, stats, prior, gamma, radius_mean,
                scale, budget, pace, pace_state, mode, epsilon, allow_drop, out_model, out_reward,
                out_cost):
    """Serve ``prompts`` with a fixed deployed set, learning from bandit feedback.

    pace_state = [spent so far, queries so far, horizon]: with ``pace`` the per-query budget is
    what is left of budget x horizon spread over the remaining queries.
    Writes the served model (-1 = refused), its reward and cost per query.
    """
    d = deployed.size
    size = d + 1 if allow_drop else d
    u = np.zeros(size)
    c = np.zeros(size)
    a = np.ones(size)
    p = np.zeros(size)
    order, lam, mids, score, q, neg_u, cheap = workspace(size)
    for i in range(d):
        a[i] = alpha[deployed[i]]
        # Bounds move only for the model that served: computed once here, then per update.
        u[i] = reward_bound(stats, deployed[i], gamma, radius_mean)
        c[i] = cost_bound(stats, deployed[i], gamma, radius_mean, scale, prior)
    for t in range(prompts.size):
        if mode == MODE_UNIFORM or (mode == MODE_EPSILON and explore[t] < epsilon):
            for i in range(size):
                p[i] = 1.0 / d if i < d else 0.0
        else:
            b = budget
            if pace:
                left = pace_state[2] - pace_state[1]
                b = max(budget * pace_state[2] - pace_state[0], 0.0) / max(left, 1.0)
            route_into(u, c, a, b, p, order, lam, mids, score, q, neg_u, cheap)
        x = draws[t]
        pick = -1
        acc = 0.0
        for i in range(d):
            acc += p[i]
            if x < acc:
                pick = i
                break
        if pick < 0 and not allow_drop:
            pick = d - 1
            while pick > 0 and p[pick] <= 0.0:
                pick -= 1
        if pick < 0:
            out_model[t] = -1
            out_reward[t] = 0.0
            out_cost[t] = 0.0
        else:
            j = deployed[pick]
            s = prompts[t]
            r = R[s, j]
            cost = C[s, j]
            welford(stats, N_R, j, r)
            welford(stats, N_C, j, cost)
            u[pick] = reward_bound(stats, j, gamma, radius_mean)
            c[pick] = cost_bound(stats, j, gamma, radius_mean, scale, prior)
            out_model[t] = j
            out_reward[t] = r
            out_cost[t] = cost
            pace_state[0] += cost
        pace_state[1] += 1.0
