"""Replay's per-query loop, compiled: serve a stream with a frozen deployed set and learn.

It calls the same kernels as ``plan`` (``estimate.bounds`` for the bounds, ``optimize.explore``
for the routing table, ``estimate.stats.welford`` for the update);
``simulate.replay.reference_kernel`` is the same loop in plain Python around any RouteOPT solver,
and tests check that both make the same decisions.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

from stageroute.estimate.bounds import cost_bound, reward_bound
from stageroute.estimate.stats import welford
from stageroute.optimize.explore import explore_limits, table_into
from stageroute.optimize.kernels import workspace

# Rows of the statistics array: one column per model.
N_R, MEAN_R, M2_R, N_C, MEAN_C, M2_C = range(6)
# Routing modes of the per-query loop.
MODE_ROUTE, MODE_EPSILON, MODE_UNIFORM = 0, 1, 2
# The bounds' knobs, one float array (numba takes no dataclasses): see ``knobs``.
GAMMA, COST_GAMMA, RADIUS_MEAN, SCALE, C_LO, C_HI, COST_UPPER = range(7)


def knobs(gamma: float, cost_gamma: float, radius_mean: bool, scale: float,
          clip: tuple[float, float], cost_upper: bool) -> np.ndarray:
    """The bounds' parameters in the order of the index constants above."""
    return np.array([gamma, cost_gamma, float(radius_mean), scale, clip[0], clip[1],
                     float(cost_upper)])


@njit(cache=True)
def _variance(stats, row_n, j):  # type: ignore[no-untyped-def]
    n = stats[row_n, j]
    return stats[row_n + 2, j] / n if n > 0 else math.nan


@njit(cache=True)
def model_bounds(stats, j, kn, prior):  # type: ignore[no-untyped-def]
    """(mu_U, cost bound) of model ``j`` from the statistics array and the knobs ``kn``."""
    radius_mean = kn[RADIUS_MEAN] > 0
    u = reward_bound(stats[MEAN_R, j], _variance(stats, N_R, j), stats[N_R, j], kn[GAMMA],
                     radius_mean)
    c = cost_bound(stats[MEAN_C, j], _variance(stats, N_C, j), stats[N_C, j], kn[COST_GAMMA],
                   radius_mean, kn[SCALE], kn[C_LO], kn[C_HI], prior[j], kn[COST_UPPER] > 0)
    return u, c


@njit(cache=True)
def paced_budget(budget: float, pace: bool, pace_state: NDArray[np.float64]) -> float:
    """The per-query budget of the next table: ``budget``, or with ``pace`` what is left of
    budget x horizon spread over the queries left (pace_state = [spent, queries, horizon])."""
    if not pace:
        return budget
    left = pace_state[2] - pace_state[1]
    return float(max(budget * pace_state[2] - pace_state[0], 0.0) / max(left, 1.0))


@njit(cache=True)
def draw(w: NDArray[np.float64], d: int, x: float, allow_drop: bool) -> int:
    """The option a uniform draw ``x`` picks from table ``w`` over ``d`` models (-1: the refused
    share, with ``allow_drop``); without drop, a draw past the rounding of the sum goes to the
    last model with a share."""
    acc = 0.0
    for i in range(d):
        acc += w[i]
        if x < acc:
            return i
    if allow_drop:
        return -1
    pick = d - 1
    while pick > 0 and w[pick] <= 0.0:
        pick -= 1
    return pick


@njit(cache=True)
def run_queries(deployed, alpha, prompts, draws, explore, R, C, stats, prior, kn, budget,  # type: ignore[no-untyped-def]
                pace, pace_state, mode, epsilon, allow_drop, share, min_samples, refresh,
                out_model, out_reward, out_cost):
    """Serve one stage's ``prompts`` with a fixed deployed set, learning from bandit feedback.

    ``refresh`` tables per stage (0: a new table for every query, the paper), each solved from the
    statistics so far and held until the next; ``share`` and ``min_samples`` bound exploration
    (``optimize.explore``), the floors counted over the queries left in the stage.
    pace_state = [spent so far, queries so far, horizon]: with ``pace`` the per-query budget is
    what is left of budget x horizon spread over the remaining queries.
    Writes the served model (-1 = refused), its reward and cost per query.
    """
    d = deployed.size
    n = prompts.size
    size = d + 1 if allow_drop else d
    u = np.zeros(size)
    c = np.zeros(size)
    cap = np.ones(size)
    floor = np.zeros(size)
    p = np.zeros(size)
    even = np.zeros(size)
    a2 = np.zeros(size)
    n_r = np.zeros(d)
    alpha_d = np.zeros(d)
    order, lam, mids, score, q, neg_u, cheap = workspace(size)
    for i in range(d):
        alpha_d[i] = alpha[deployed[i]]
        # Bounds move only for the model that served: computed once here, then per update.
        u[i], c[i] = model_bounds(stats, deployed[i], kn, prior)
        even[i] = 1.0 / d
    table = -1
    for t in range(n):
        uniform = mode == MODE_UNIFORM or (mode == MODE_EPSILON and explore[t] < epsilon)
        if not uniform and (refresh <= 0 or (t * refresh) // n != table):
            table = (t * refresh) // n if refresh > 0 else t
            b = paced_budget(budget, pace, pace_state)
            for i in range(d):
                n_r[i] = stats[N_R, deployed[i]]
            explore_limits(n_r, alpha_d, share, min_samples, float(n - t), cap[:d], floor[:d])
            table_into(u, c, cap, floor, b, p, a2, order, lam, mids, score, q, neg_u, cheap)
        pick = draw(even if uniform else p, d, draws[t], allow_drop)
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
            u[pick], c[pick] = model_bounds(stats, j, kn, prior)
            out_model[t] = j
            out_reward[t] = r
            out_cost[t] = cost
            pace_state[0] += cost
        pace_state[1] += 1.0
