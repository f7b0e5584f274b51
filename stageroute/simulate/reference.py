"""Replay's per-query loop in plain Python around any RouteOPT solver: the reference the compiled
loop (``simulate.loop``) is tested against, decision for decision.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from stageroute.estimate.stats import welford
from stageroute.optimize.explore import explore_limits
from stageroute.optimize.route import Routing
from stageroute.simulate import loop as compiled
from stageroute.simulate.replay import bounds_of


def reference_kernel(route_fn: Callable[..., Routing]) -> Callable[..., None]:
    """The per-query loop in plain Python around ``route_fn`` (``solve_route`` or Pyomo).

    Same signature and semantics as ``compiled.run_queries``: tests check that the compiled loop
    makes exactly the decisions of this one. The exploration floors enter as in
    ``optimize.explore``: RouteOPT on the traffic above the floors.
    """
    def run(deployed, alpha, prompts, draws, explore, R, C, stats, prior, kn, budget,  # type: ignore[no-untyped-def]
            pace, pace_state, mode, epsilon, allow_drop, share, min_samples, refresh, out_model,
            out_reward, out_cost) -> None:
        d, n = deployed.size, prompts.size
        p, table = np.full(d, 1.0 / d), -1
        for t in range(n):
            uniform = mode == compiled.MODE_UNIFORM or (mode == compiled.MODE_EPSILON
                                                        and explore[t] < epsilon)
            if not uniform and (refresh <= 0 or (t * refresh) // n != table):
                table = (t * refresh) // n if refresh > 0 else t
                b = compiled.paced_budget.py_func(budget, pace, pace_state)
                p = _reference_table(route_fn, stats, deployed, alpha, kn, prior, b, share,
                                     min_samples, float(n - t), allow_drop)
            w = np.full(d, 1.0 / d) if uniform else p
            hits = np.flatnonzero(draws[t] < np.cumsum(w))
            if hits.size:
                pick = int(hits[0])
            elif allow_drop:
                pick = -1
            else:
                pick = int(np.flatnonzero(w > 0)[-1]) if (w > 0).any() else d - 1
            if pick < 0:
                out_model[t], out_reward[t], out_cost[t] = -1, 0.0, 0.0
            else:
                j = int(deployed[pick])
                r, cost = R[prompts[t], j], C[prompts[t], j]
                welford.py_func(stats, compiled.N_R, j, r)
                welford.py_func(stats, compiled.N_C, j, cost)
                out_model[t], out_reward[t], out_cost[t] = j, r, cost
                pace_state[0] += cost
            pace_state[1] += 1.0
    return run


def _reference_table(route_fn: Callable[..., Routing], stats: NDArray[np.float64],
                     deployed: NDArray[np.int64], alpha: NDArray[np.float64],
                     kn: NDArray[np.float64], prior: NDArray[np.float64], budget: float,
                     share: float, min_samples: float, queries: float, allow_drop: bool,
                     ) -> NDArray[np.float64]:
    u, c = bounds_of(stats, deployed, kn, prior)
    cap, floor = np.empty(deployed.size), np.empty(deployed.size)
    explore_limits(stats[compiled.N_R, deployed].astype(np.float64), alpha[deployed], share,
                   min_samples, queries, cap, floor)
    held = float(floor.sum())
    if held <= 0:
        p: NDArray[np.float64] = route_fn(u, c, cap, budget, allow_drop).probability
        return p
    rest = 1.0 - held
    if rest <= 1e-12:
        return np.asarray(floor / held, dtype=np.float64)
    q = route_fn(u, c, (cap - floor) / rest, (budget - float(floor @ c)) / rest, allow_drop)
    if q.over_budget:  # exploration yields to the budget
        free = route_fn(u, c, cap, budget, allow_drop)
        if not free.over_budget:
            return np.asarray(free.probability, dtype=np.float64)
    return np.asarray(floor + rest * q.probability, dtype=np.float64)
