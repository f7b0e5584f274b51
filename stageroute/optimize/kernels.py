"""The exact RouteOPT solver, compiled: the one implementation that plan, DeployOPT and replay call.

    maximise   sum_m p_m u_m
    subject to sum_m p_m c_m <= b,  sum_m p_m = 1,  0 <= p_m <= a_m

Parametric greedy on the Lagrangian: the greedy fill by u - lambda c is optimal for the price
lambda, and the optimum mixes the two greedy solutions on either side of lambda* (O(M^2 log M)).
Ties are broken by (score desc, cost asc, index asc), so the same input gives the same table.
Compilation is cached on disk (``cache=True``): only the first run on a machine pays for it.
``route.py_func`` runs the same code interpreted (tests compare the two).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]

# Budget comparisons tolerate floating-point noise in sum(p * c), nothing more.
REL_EPS = 1e-12


@njit(cache=True)
def _before(i: int, j: int, score: Floats, c: Floats) -> bool:
    """True if i comes before j: score desc, then cost asc, then index asc."""
    if score[i] != score[j]:
        return bool(score[i] > score[j])
    if c[i] != c[j]:
        return bool(c[i] < c[j])
    return i < j


@njit(cache=True)
def dot(p: Floats, c: Floats) -> float:
    total = 0.0
    for k in range(p.size):
        total += p[k] * c[k]
    return total


@njit(cache=True)
def _fill(score: Floats, c: Floats, a: Floats, p: Floats, order: Ints) -> None:
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
def workspace(n: int) -> tuple[Ints, Floats, Floats, Floats, Floats, Floats, Floats]:
    """Scratch arrays for ``route_into`` on n options, allocated once per loop, not per query."""
    return (np.empty(n, dtype=np.int64), np.empty(n * n), np.empty(n * n + 1), np.empty(n),
            np.empty(n), np.empty(n), np.empty(n))


@njit(cache=True)
def route(u: Floats, c: Floats, a: Floats, budget: float, p: Floats) -> bool:
    """Exact RouteOPT on (u, c, a) into ``p``; returns True if over budget (cheapest mixture).

    The caller guarantees sum(a) >= 1 (append a null option for allow-drop).
    """
    order, lam, mids, score, q, neg_u, cheap = workspace(u.size)
    return route_into(u, c, a, budget, p, order, lam, mids, score, q, neg_u, cheap)


@njit(cache=True)
def route_into(u: Floats, c: Floats, a: Floats, budget: float, p: Floats, order: Ints,
               lam: Floats, mids: Floats, score: Floats, q: Floats, neg_u: Floats,
               cheap: Floats) -> bool:
    """``route`` with caller-provided scratch arrays (see ``workspace``)."""
    n = u.size
    cmax = 0.0
    for i in range(n):
        cmax = max(cmax, abs(c[i]))
        neg_u[i] = -u[i]
        cheap[i] = -c[i]  # cost asc, then (in the tie-break slot) reward desc, then index
    eps = REL_EPS * max(1.0, abs(budget), cmax)
    _fill(u, c, a, p, order)
    if dot(p, c) <= budget + eps:
        return False
    _fill(cheap, neg_u, a, p, order)
    if dot(p, c) > budget + eps:
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
def _cost_at(k: int, last: int, mids: Floats, u: Floats, c: Floats, a: Floats, score: Floats,
             out: Floats, neg_u: Floats, cheap: Floats, order: Ints) -> float:
    """Cost of the greedy solution strictly inside interval k (the last one: cheapest order)."""
    if k == last:
        _fill(cheap, neg_u, a, out, order)
    elif k == 0:
        _fill(u, c, a, out, order)
    else:
        for i in range(u.size):
            score[i] = u[i] - mids[k] * c[i]
        _fill(score, c, a, out, order)
    return dot(out, c)
