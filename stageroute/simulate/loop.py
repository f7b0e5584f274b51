"""Replay's per-query loop, compiled: serve a stream with a frozen deployed set and learn.

It calls the same kernels as ``plan`` (``estimate.bounds`` for the bounds, ``optimize.kernels``
for RouteOPT, ``estimate.stats.welford`` for the update); ``simulate.replay.reference_kernel`` is
the same loop in plain Python around any RouteOPT solver, and tests check that both make the same
decisions.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from stageroute.estimate.bounds import cost_bound, reward_bound
from stageroute.estimate.stats import welford
from stageroute.optimize.kernels import route_into, workspace

# Rows of the statistics array: one column per model.
N_R, MEAN_R, M2_R, N_C, MEAN_C, M2_C = range(6)
# Routing modes of the per-query loop.
MODE_ROUTE, MODE_EPSILON, MODE_UNIFORM = 0, 1, 2


@njit(cache=True)
def _variance(stats, row_n, j):  # type: ignore[no-untyped-def]
    n = stats[row_n, j]
    return stats[row_n + 2, j] / n if n > 0 else math.nan


@njit(cache=True)
def model_bounds(stats, j, gamma, radius_mean, scale, lo, hi, prior):  # type: ignore[no-untyped-def]
    """(mu_U, c_L) of model ``j`` from the statistics array."""
    u = reward_bound(stats[MEAN_R, j], _variance(stats, N_R, j), stats[N_R, j], gamma, radius_mean)
    c = cost_bound(stats[MEAN_C, j], _variance(stats, N_C, j), stats[N_C, j], gamma, radius_mean,
                   scale, lo, hi, prior[j])
    return u, c


@njit(cache=True)
def run_queries(deployed, alpha, prompts, draws, explore, R, C, stats, prior, gamma, radius_mean,  # type: ignore[no-untyped-def]
                scale, clip, budget, pace, pace_state, mode, epsilon, allow_drop, out_model,
                out_reward, out_cost):
    """Serve ``prompts`` with a fixed deployed set, learning from bandit feedback.

    clip = (c_lo, c_hi) of the normalised cost bound.
    pace_state = [spent so far, queries so far, horizon]: with ``pace`` the per-query budget is
    what is left of budget x horizon spread over the remaining queries.
    Writes the served model (-1 = refused), its reward and cost per query.
    """
    d = deployed.size
    lo, hi = clip[0], clip[1]
    size = d + 1 if allow_drop else d
    u = np.zeros(size)
    c = np.zeros(size)
    a = np.ones(size)
    p = np.zeros(size)
    order, lam, mids, score, q, neg_u, cheap = workspace(size)
    for i in range(d):
        a[i] = alpha[deployed[i]]
        # Bounds move only for the model that served: computed once here, then per update.
        u[i], c[i] = model_bounds(stats, deployed[i], gamma, radius_mean, scale, lo, hi, prior)
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
            u[pick], c[pick] = model_bounds(stats, j, gamma, radius_mean, scale, lo, hi, prior)
            out_model[t] = j
            out_reward[t] = r
            out_cost[t] = cost
            pace_state[0] += cost
        pace_state[1] += 1.0
