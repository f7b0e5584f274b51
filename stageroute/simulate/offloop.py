"""The replay method (Li et al., WSDM 2011) for adaptive policies on a bandit log, compiled.

Walk the log in time order; at each logged event the policy (its state: the statistics of the
events it kept) has a routing probability pi(a) for every model. The event is kept, served by the
logged model a_i, with probability pi(a_i) * p_min / p_i (rejection sampling: p_i the logged
propensity, p_min the smallest in the log, so that the largest acceptance scale is 1). Every
event is then kept with probability p_min whatever the policy's choice, and the kept events are
distributed as if the policy had served them: the mean reward and cost of the kept events
estimate the policy's, on a stream as long as the kept events. With a uniform logger
(p_i = 1/|A_i| with a constant |A_i|) this is Li et al.'s "keep the event when the choices match".
With ``--allow-drop`` a refusal (probability pi(null)) is kept with probability pi(null) * p_min,
reward and cost 0. The policy learns only from kept events.

It calls the same kernels as the full-information loop (``simulate.loop.model_bounds`` for the
bounds, ``optimize.explore`` for the routing table, ``estimate.stats.welford`` for the update).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stageroute.estimate.stats import welford
from stageroute.optimize.explore import explore_limits, table_into
from stageroute.optimize.kernels import workspace
from stageroute.simulate.loop import (
    MODE_EPSILON,
    MODE_UNIFORM,
    N_C,
    N_R,
    model_bounds,
    paced_budget,
)


@njit(cache=True)
def replay_events(deployed, alpha, log_model, log_reward, log_cost, accept, draws, stats,  # type: ignore[no-untyped-def]
                  prior, kn, budget, pace, pace_state, mode, epsilon, allow_drop, share,
                  min_samples, refresh, p_min, out_kept, out_reward, out_cost):
    """Replay one stage's logged events for a policy with a fixed deployed set.

    ``accept[i]`` = p_min / p_i; ``draws`` uniform in [0, 1). The routing table is re-solved when
    the policy's state changed (a kept event) and at each of the ``refresh`` table boundaries
    (0: the state alone decides, a table per event as in the paper); the exploration floors count
    the kept events expected in the rest of the stage. Writes per event: 1 if kept as served,
    2 if kept as refused, else 0; and the kept event's reward and cost.
    """
    d = deployed.size
    n = log_model.size
    size = d + 1 if allow_drop else d
    u = np.zeros(size)
    c = np.zeros(size)
    cap = np.ones(size)
    floor = np.zeros(size)
    p = np.zeros(size)
    a2 = np.zeros(size)
    n_r = np.zeros(d)
    alpha_d = np.zeros(d)
    order, lam, mids, score, q, neg_u, cheap = workspace(size)
    slot = np.full(stats.shape[1], -1, dtype=np.int64)
    for i in range(d):
        alpha_d[i] = alpha[deployed[i]]
        slot[deployed[i]] = i
        u[i], c[i] = model_bounds(stats, deployed[i], kn, prior)
    table = -1
    dirty = True
    for t in range(n):
        block = (t * refresh) // n if refresh > 0 else 0
        if mode != MODE_UNIFORM and (block != table or (refresh <= 0 and dirty)):
            table = block
            dirty = False
            b = paced_budget(budget, pace, pace_state)
            for i in range(d):
                n_r[i] = stats[N_R, deployed[i]]
            explore_limits(n_r, alpha_d, share, min_samples, float(n - t) * p_min, cap[:d],
                           floor[:d])
            table_into(u, c, cap, floor, b, p, a2, order, lam, mids, score, q, neg_u, cheap)
        i = slot[log_model[t]]
        if mode == MODE_UNIFORM:
            prob = 1.0 / d if i >= 0 else 0.0
            refuse = 0.0
        else:
            prob = p[i] if i >= 0 else 0.0
            refuse = 1.0 - p[:d].sum() if allow_drop else 0.0
            if mode == MODE_EPSILON:
                prob = epsilon / d * (i >= 0) + (1.0 - epsilon) * prob
                refuse = (1.0 - epsilon) * refuse
        x = draws[t]
        out_kept[t] = 0
        if x < prob * accept[t]:
            j = log_model[t]
            welford(stats, N_R, j, log_reward[t])
            welford(stats, N_C, j, log_cost[t])
            u[i], c[i] = model_bounds(stats, j, kn, prior)
            out_kept[t] = 1
            out_reward[t] = log_reward[t]
            out_cost[t] = log_cost[t]
            pace_state[0] += log_cost[t]
            pace_state[1] += 1.0
            dirty = True
        elif x < prob * accept[t] + max(refuse, 0.0) * p_min:
            out_kept[t] = 2
            out_reward[t] = 0.0
            out_cost[t] = 0.0
            pace_state[1] += 1.0
