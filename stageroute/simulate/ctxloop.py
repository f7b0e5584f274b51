"""Contextual replay's per-query loop, compiled: one routing table per segment, one budget.

The contextual counterpart of ``simulate.loop.run_queries``: the statistics are kept per
(segment, model) cell and per model (their merge), each cell's bounds are shrunk toward its model's
(``estimate.segments``: the served model's pooling after every query, every model's and the
segment effects every REFIT queries), and the tables of all segments are one joint RouteOPT
(``optimize.joint_kernels``) over the frozen deployed set, with the traffic shares of the segments
seen so far, the shared throughput caps and the exploration floors of ``optimize.explore``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stageroute.estimate.segments import cell_bounds, fit_effects, pool_model, pooling_of
from stageroute.estimate.stats import welford
from stageroute.optimize.explore import explore_limits
from stageroute.optimize.joint_kernels import OVER_BUDGET, joint_route_near, joint_workspace
from stageroute.simulate.loop import N_C, N_R, draw

REFIT = 256  # queries between two fits of the segment effects (one model's pooling every query)


@njit(cache=True)
def _bounds_of(cells, pooling, effects, deployed, i, kn, prior, u, c):  # type: ignore[no-untyped-def]
    """Column ``i`` (deployed model) of the per-segment bounds."""
    for s in range(u.shape[0]):
        u[s, i], c[s, i] = cell_bounds(cells, s, deployed[i], pooling, effects, kn, prior)


@njit(cache=True)
def _table(u, c, w, cap, floor, budget, p, ws):  # type: ignore[no-untyped-def]
    """The joint table with the exploration floors; they yield to the budget when the table
    without them meets it (as ``optimize.explore.table_into`` does for one segment)."""
    status = joint_route_near(u, c, w, cap, floor, budget, p, ws)
    if status != OVER_BUDGET:
        return
    held = 0.0
    for i in range(floor.size):
        held += floor[i]
    if held <= 0.0:
        return
    saved = floor.copy()
    floor[:] = 0.0
    if joint_route_near(u, c, w, cap, floor, budget, p, ws) == OVER_BUDGET:
        floor[:] = saved
        joint_route_near(u, c, w, cap, floor, budget, p, ws)


@njit(cache=True)
def run_contextual(deployed, alpha, prompts, segment_of, draws, R, C, cells, stats, seen,  # type: ignore[no-untyped-def]
                   prior, kn, budget, allow_drop, share, min_samples, refresh, out_model,
                   out_reward, out_cost):
    """Serve one stage's ``prompts`` with a fixed deployed set and one table per segment.

    ``cells`` [6, S, N] and ``stats`` [6, N]: the per-(segment, model) and per-model statistics
    (rows as in ``simulate.loop``), ``seen`` [S] the queries per segment so far (the traffic
    shares are (seen + 1) / (total + S)). ``refresh`` joint tables per stage (0: one per query).
    Writes the served model (-1 = refused), its reward and cost per query.
    """
    d = deployed.size
    n = prompts.size
    n_seg = cells.shape[1]
    size = d + 1 if allow_drop else d
    u = np.zeros((n_seg, size))
    c = np.zeros((n_seg, size))
    p = np.zeros((n_seg, size))
    cap = np.ones(size)
    floor = np.zeros(size)
    w = np.zeros(n_seg)
    n_r = np.zeros(d)
    alpha_d = np.zeros(d)
    ws = joint_workspace(n_seg, size)
    pooling, effects = pooling_of(cells, stats)
    for i in range(d):
        alpha_d[i] = alpha[deployed[i]]
        _bounds_of(cells, pooling, effects, deployed, i, kn, prior, u, c)
    table = -1
    for t in range(n):
        if refresh <= 0 or (t * refresh) // n != table:
            table = (t * refresh) // n if refresh > 0 else t
            total = 0.0
            for s in range(n_seg):
                total += seen[s]
            for s in range(n_seg):
                w[s] = (seen[s] + 1.0) / (total + n_seg)
            for i in range(d):
                n_r[i] = stats[N_R, deployed[i]]
            explore_limits(n_r, alpha_d, share, min_samples, float(n - t), cap[:d], floor[:d])
            _table(u, c, w, cap, floor, budget, p, ws)
        seg = segment_of[prompts[t]]
        pick = draw(p[seg], d, draws[t], allow_drop)
        seen[seg] += 1.0
        if pick < 0:
            out_model[t] = -1
            out_reward[t] = 0.0
            out_cost[t] = 0.0
            continue
        j = deployed[pick]
        r = R[prompts[t], j]
        cost = C[prompts[t], j]
        welford(stats, N_R, j, r)
        welford(stats, N_C, j, cost)
        welford(cells[:, seg, :], N_R, j, r)
        welford(cells[:, seg, :], N_C, j, cost)
        if (t + 1) % REFIT == 0:
            fit_effects(cells, stats, pooling, effects)
            for i in range(d):
                _bounds_of(cells, pooling, effects, deployed, i, kn, prior, u, c)
        else:
            pool_model(cells, stats, pooling, effects, j)
            _bounds_of(cells, pooling, effects, deployed, pick, kn, prior, u, c)
        out_model[t] = j
        out_reward[t] = r
        out_cost[t] = cost
