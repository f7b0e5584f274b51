"""The exact joint (contextual) RouteOPT solver, compiled (the algorithm: ``optimize.joint``).

Flows x_sm = w_s p_sm. For a budget price lambda the LP without its budget row is a transportation
problem, solved by ``_flow`` on the network

    segment s (supply w_s) -> column m (no cap, cost -(u_sm - lambda c_sm))
           -> sink (capacity floor_m)  or  -> T (capacity a_m - floor_m) -> sink (1 - sum floor)

Each segment first sends its share to its best column (``_start``); where that overflows a cap,
successive shortest paths (Dijkstra with potentials, dense, real capacities) move the excess on.

``joint_route_into`` finds lambda* by Newton steps on the dual lines and mixes the two bracketing
flows. Callers append the null option (u = c = 0, a = 1) as the last column for allow-drop, like
``kernels.route``. Ties go to the highest node index in Dijkstra (toward the sink, so that a
search among many equally near nodes ends early): the same input gives the same table.
``.py_func`` runs the same code interpreted (tests compare the two).

The small steps of a solve are inlined (``inline="always"``): a call that passes the workspace
tuple cost more than a whole 3 x 3 flow (0.63 against 0.27 us per solve). Dijkstra and the path
helpers stay calls: inlining them too made the first compile three times as long.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stageroute.optimize.kernels import Floats, Ints

# Flows live in [0, 1]: residual capacities below this are spent (floating-point crumbs).
CAP_EPS = 1e-15
MAX_NEWTON = 200  # a safeguard only: the search ends after a few steps (finitely many flows)
WARM = 1e-2  # joint_route_near: the relative width of the bracket around the last price

OK = 0
OVER_BUDGET = 1
INFEASIBLE = 2

# (x, lo, hi, k) [S, N]; excess per node; (floor used, rest used, rest cap) per column;
# (dist, pi, done) per node; prev per node; the last table's budget price and whether its two
# bracketing flows are kept [2]; those flows as tables (the column of each row) [2, S, N].
Workspace = tuple[Floats, Floats, Floats, Floats, Floats, Floats, Floats, Floats, Floats,
                  Floats, Floats, Ints, Floats, Floats]


@njit(cache=True)
def joint_workspace(s: int, n: int) -> Workspace:
    """Scratch arrays for ``joint_route_into`` on s segments and n columns, allocated once."""
    v = s + n + 3
    return (np.empty((s, n)), np.empty((s, n)), np.empty((s, n)), np.empty((s, n)),
            np.empty(v), np.empty(n), np.empty(n), np.empty(n), np.empty(v), np.empty(v),
            np.empty(v), np.empty(v, dtype=np.int64), np.zeros(2), np.empty((2, s, n)))


@njit(cache=True)
def _dijkstra(k: Floats, x: Floats, excess: Floats, rest: Floats, g_floor: Floats,
              g_rest: Floats, floor: Floats, h: float, cap_h: float, dist: Floats, pi: Floats,
              done: Floats, prev: Ints) -> bool:
    """Shortest path (reduced costs) from the nodes with excess to the sink; False if none.

    Nodes: 0 unused, 1..S segments, S+1..S+N columns, S+N+1 the node T, S+N+2 the sink.
    """
    ns, nc = k.shape
    t_node = ns + nc + 1
    sink = t_node + 1
    nv = sink + 1
    for i in range(nv):
        dist[i] = 0.0 if excess[i] > CAP_EPS else np.inf
        done[i] = 0.0
        prev[i] = -1
    while True:
        v = -1
        best = np.inf
        for i in range(nv):  # dense selection, highest index on ties (toward the sink)
            if done[i] == 0.0 and dist[i] <= best and dist[i] < np.inf:
                best = dist[i]
                v = i
        if v < 0:
            return False
        done[v] = 1.0
        if v == sink:
            return True
        if v <= ns:
            s = v - 1
            for m in range(nc):
                _relax(v, ns + 1 + m, k[s, m], dist, pi, done, prev)
        elif v < t_node:
            m = v - ns - 1
            for s in range(ns):
                if x[s, m] > CAP_EPS:
                    _relax(v, 1 + s, -k[s, m], dist, pi, done, prev)
            if floor[m] - g_floor[m] > CAP_EPS:
                _relax(v, sink, 0.0, dist, pi, done, prev)
            if rest[m] - g_rest[m] > CAP_EPS:
                _relax(v, t_node, 0.0, dist, pi, done, prev)
        else:  # T
            for m in range(nc):
                if g_rest[m] > CAP_EPS:
                    _relax(v, ns + 1 + m, 0.0, dist, pi, done, prev)
            if cap_h - h > CAP_EPS:
                _relax(v, sink, 0.0, dist, pi, done, prev)


@njit(cache=True, inline="always")
def _relax(v: int, to: int, cost: float, dist: Floats, pi: Floats, done: Floats,
           prev: Ints) -> None:
    if done[to] != 0.0:
        return
    # Reduced costs are >= 0 up to rounding; a crumb below 0 must not undo Dijkstra's order.
    d = dist[v] + max(cost + pi[v] - pi[to], 0.0)
    if d < dist[to]:
        dist[to] = d
        prev[to] = v


@njit(cache=True, inline="always")
def _start(x: Floats, k: Floats, w: Floats, floor: Floats, rest: Floats, g_floor: Floats,
           g_rest: Floats, excess: Floats, pi: Floats, cap_h: float) -> float:
    """Each segment sends its share to its cheapest column (lowest index on ties), each column
    passes on what its floor, its cap and T take; the rest is excess. Returns the flow to the
    sink through T.

    That flow is min-cost for its imbalances under the potentials pi(s) = -min_m k_sm, 0
    elsewhere (every residual arc has reduced cost >= 0), so successive shortest paths from the
    excess nodes finish the job exactly.
    """
    ns, nc = k.shape
    t_node = ns + nc + 1
    for i in range(excess.size):
        excess[i] = 0.0
        pi[i] = 0.0
    for s in range(ns):
        best = 0
        for m in range(nc):
            x[s, m] = 0.0
            if k[s, m] < k[s, best]:
                best = m
        x[s, best] = w[s]
        pi[1 + s] = -k[s, best]
    into_t = 0.0
    for m in range(nc):
        inflow = 0.0
        for s in range(ns):
            inflow += x[s, m]
        g_floor[m] = min(inflow, floor[m])
        g_rest[m] = min(inflow - g_floor[m], rest[m])
        excess[ns + 1 + m] = inflow - g_floor[m] - g_rest[m]
        into_t += g_rest[m]
    h = min(into_t, cap_h)
    excess[t_node] = into_t - h
    return h


@njit(cache=True, inline="always")
def _flow(k: Floats, w: Floats, a: Floats, floor: Floats, x: Floats, ws: Workspace) -> bool:
    """Min-cost transportation flow into ``x`` (costs ``k``); False if the caps cannot carry
    the supplies."""
    ns, nc = k.shape
    excess, g_floor, g_rest, rest = ws[4], ws[5], ws[6], ws[7]
    dist, pi, done, prev = ws[8], ws[9], ws[10], ws[11]
    sink = ns + nc + 2
    held = 0.0
    supply = 0.0
    for m in range(nc):
        rest[m] = max(a[m] - floor[m], 0.0)
        held += floor[m]
    for s in range(ns):
        supply += w[s]
    cap_h = max(supply - held, 0.0)
    h = _start(x, k, w, floor, rest, g_floor, g_rest, excess, pi, cap_h)
    left = 0.0
    for i in range(excess.size):
        left += excess[i]
    while left > CAP_EPS:
        if not _dijkstra(k, x, excess, rest, g_floor, g_rest, floor, h, cap_h, dist, pi, done,
                         prev):
            return left <= 1e-12
        for i in range(sink + 1):
            pi[i] += min(dist[i], dist[sink])
        delta = _bottleneck(x, excess, rest, g_floor, g_rest, floor, h, cap_h, prev, ns, nc)
        h = _augment(delta, x, excess, rest, g_floor, g_rest, floor, h, cap_h, prev, ns, nc)
        left -= delta
    return True


@njit(cache=True)
def _bottleneck(x: Floats, excess: Floats, rest: Floats, g_floor: Floats, g_rest: Floats,
                floor: Floats, h: float, cap_h: float, prev: Ints, ns: int, nc: int) -> float:
    """The residual capacity of the path that ``prev`` holds (back from the sink)."""
    t_node = ns + nc + 1
    v = t_node + 1
    delta = np.inf
    while prev[v] >= 0:
        u = prev[v]
        if u <= ns:
            pass  # segment -> column: no cap
        elif u < t_node:
            m = u - ns - 1
            if v <= ns:
                delta = min(delta, x[v - 1, m])
            elif v == t_node:
                delta = min(delta, rest[m] - g_rest[m])
            else:
                delta = min(delta, floor[m] - g_floor[m])
        else:
            delta = min(delta, cap_h - h if v == t_node + 1 else g_rest[v - ns - 1])
        v = u
    return min(delta, float(excess[v]))


@njit(cache=True)
def _augment(delta: float, x: Floats, excess: Floats, rest: Floats, g_floor: Floats,
             g_rest: Floats, floor: Floats, h: float, cap_h: float, prev: Ints, ns: int,
             nc: int) -> float:
    """Push ``delta`` along the path; the arc that set it is saturated exactly. Returns h."""
    t_node = ns + nc + 1
    v = t_node + 1
    while prev[v] >= 0:
        u = prev[v]
        if u <= ns:
            x[u - 1, v - ns - 1] += delta
        elif u < t_node:
            m = u - ns - 1
            if v <= ns:
                x[v - 1, m] = _push(x[v - 1, m], -delta, 0.0)
            elif v == t_node:
                g_rest[m] = _push(g_rest[m], delta, rest[m])
            else:
                g_floor[m] = _push(g_floor[m], delta, floor[m])
        elif v == t_node + 1:
            h = _push(h, delta, cap_h)
        else:
            g_rest[v - ns - 1] = _push(g_rest[v - ns - 1], -delta, 0.0)
        v = u
    excess[v] = _push(excess[v], -delta, 0.0)
    return h


@njit(cache=True, inline="always")
def _push(value: float, delta: float, bound: float) -> float:
    """value + delta, snapped to ``bound`` when within a crumb of it (saturation is exact)."""
    out = value + delta
    return bound if abs(out - bound) <= CAP_EPS else out


@njit(cache=True, inline="always")
def _solve_at(lam: float, u: Floats, c: Floats, w: Floats, a: Floats, floor: Floats, x: Floats,
              ws: Workspace) -> bool:
    """The transportation flow maximising sum x (u - lam c) (lam = inf: minimising sum x c)."""
    k = ws[3]
    ns, nc = u.shape
    for s in range(ns):
        for m in range(nc):
            k[s, m] = c[s, m] if lam == np.inf else lam * c[s, m] - u[s, m]
    return _flow(k, w, a, floor, x, ws)


@njit(cache=True, inline="always")
def _value(x: Floats, v: Floats) -> float:
    total = 0.0
    ns, nc = x.shape
    for s in range(ns):
        for m in range(nc):
            total += x[s, m] * v[s, m]
    return total


@njit(cache=True, inline="always")
def _tolerance(c: Floats, budget: float) -> float:
    """Costs within this of the budget are on it (rounding)."""
    cmax = 0.0
    for s in range(c.shape[0]):
        for m in range(c.shape[1]):
            cmax = max(cmax, abs(c[s, m]))
    return 1e-12 * max(1.0, abs(budget), cmax)


@njit(cache=True)
def joint_route_into(u: Floats, c: Floats, w: Floats, a: Floats, floor: Floats, budget: float,
                     p: Floats, ws: Workspace) -> int:
    """Exact joint RouteOPT into ``p`` [S, N]; returns OK, OVER_BUDGET or INFEASIBLE.

    ``w`` sums to 1; the caller checked floor <= a, sum floor <= 1 <= sum a (append the null
    option for allow-drop). Over budget: the cheapest mixture with the most reward at that cost.
    """
    x, lo, hi = ws[0], ws[1], ws[2]
    eps = _tolerance(c, budget)
    if not _solve_at(0.0, u, c, w, a, floor, lo, ws):
        ws[12][0] = 0.0
        return INFEASIBLE
    status = OK
    lam = 0.0
    cost_lo = _value(lo, c)
    if cost_lo > budget + eps:
        _solve_at(np.inf, u, c, w, a, floor, hi, ws)
        cost_hi = _value(hi, c)
        if cost_hi > budget + eps:  # no mixture meets the budget: most reward at the least cost
            status = OVER_BUDGET
            budget = cost_hi
        if cost_lo <= budget + eps:  # the most rewarding flow is also the cheapest
            hi[:, :] = lo
        else:
            lam = _newton(u, c, w, a, floor, budget, eps, lo, hi, x, ws)
    else:
        hi[:, :] = lo
    _table(u, c, w, lo, hi, budget, lam, p)
    ws[12][0] = lam
    ws[12][1] = 0.0
    if status == OK and lam > 0.0:
        _keep(lam, w, lo, hi, ws)
    return status


@njit(cache=True)
def joint_route_near(u: Floats, c: Floats, w: Floats, a: Floats, floor: Floats, budget: float,
                     p: Floats, ws: Workspace) -> int:
    """``joint_route_into`` started from the last table solved with ``ws``: a replay re-solves
    an LP that one query changed, whose price lambda* (``ws[12][0]``) has barely moved.

    First the last solve's two bracketing flows (kept as tables, ``_keep``) with the new shares:
    when both are still feasible and still on either side of the budget, Newton's steps start
    from them (any feasible bracket will do: each step's flow at the lines' crossing certifies
    or replaces one side), and usually end after one flow. Else the flows at lambda (1 -/+ WARM)
    bracket the budget when the price is still between them; else the LP is solved from
    lambda = 0. The result is as exact; where several tables tie, which one is returned may
    differ."""
    lam = ws[12][0]
    if lam <= 0.0 or lam == np.inf:
        return joint_route_into(u, c, w, a, floor, budget, p, ws)
    x, lo, hi = ws[0], ws[1], ws[2]
    eps = _tolerance(c, budget)
    if ws[12][1] > 0.0 and _reuse(c, w, a, floor, budget, eps, lo, hi, ws[13]):
        lam = _newton(u, c, w, a, floor, budget, eps, lo, hi, x, ws)
        _table(u, c, w, lo, hi, budget, lam, p)
        _keep(lam, w, lo, hi, ws)
        return OK
    if not _solve_at(lam * (1.0 - WARM), u, c, w, a, floor, lo, ws):
        return joint_route_into(u, c, w, a, floor, budget, p, ws)
    if _value(lo, c) <= budget + eps:
        hi[:, :] = lo  # within budget at a lower price: the price fell; bracket from 0
        _solve_at(0.0, u, c, w, a, floor, lo, ws)
        if _value(lo, c) <= budget + eps:
            hi[:, :] = lo
            _table(u, c, w, lo, hi, budget, 0.0, p)
            ws[12][0] = 0.0
            return OK
    else:
        _solve_at(lam * (1.0 + WARM), u, c, w, a, floor, hi, ws)
        if _value(hi, c) > budget + eps:
            return joint_route_into(u, c, w, a, floor, budget, p, ws)  # the price rose
    lam = _newton(u, c, w, a, floor, budget, eps, lo, hi, x, ws)
    _table(u, c, w, lo, hi, budget, lam, p)
    _keep(lam, w, lo, hi, ws)
    return OK


@njit(cache=True)
def _keep(lam: float, w: Floats, lo: Floats, hi: Floats, ws: Workspace) -> None:
    """Remember the budget price and, when each of their rows sends its whole share to one
    column, the bracketing flows lo and hi as tables (1 in that column), for
    ``joint_route_near``'s next solve.

    Only such flows: with new shares they are still vertices (a row split between columns sat
    on a cap or floor, which new shares move it off), so Newton's steps from them end on the
    same optimum as from scratch."""
    ws[12][0] = lam
    ws[12][1] = 0.0
    kept = ws[13]
    for s in range(lo.shape[0]):
        if w[s] <= 0.0:
            return
        used_lo = 0
        used_hi = 0
        for m in range(lo.shape[1]):
            kept[0, s, m] = 1.0 if lo[s, m] > 0.0 else 0.0
            kept[1, s, m] = 1.0 if hi[s, m] > 0.0 else 0.0
            used_lo += lo[s, m] > 0.0
            used_hi += hi[s, m] > 0.0
        if used_lo != 1 or used_hi != 1:
            return
    ws[12][1] = 1.0


@njit(cache=True)
def _reuse(c: Floats, w: Floats, a: Floats, floor: Floats, budget: float, eps: float,
           lo: Floats, hi: Floats, kept: Floats) -> bool:
    """The kept tables (one column per row) as flows of the shares ``w`` into lo and hi; True
    when both meet every column's floor and cap and lo is over the budget, hi within it (a
    bracket for Newton)."""
    ns, nc = lo.shape
    for s in range(ns):
        for m in range(nc):
            lo[s, m] = w[s] * kept[0, s, m]
            hi[s, m] = w[s] * kept[1, s, m]
    for m in range(nc):
        for flows in (lo, hi):
            total = 0.0
            for s in range(ns):
                total += flows[s, m]
            if total > a[m] or total < floor[m]:
                return False
    return _value(lo, c) > budget + eps and _value(hi, c) <= budget + eps


@njit(cache=True)
def _newton(u: Floats, c: Floats, w: Floats, a: Floats, floor: Floats, budget: float, eps: float,
            lo: Floats, hi: Floats, x: Floats, ws: Workspace) -> float:
    """Shrink the bracket (lo over budget, hi within it) until both flows are optimal at one
    price: where the dual lines U - lam (C - b) of lo and hi cross, no flow does better.
    Returns that price lambda*. Costs within ``eps`` of the budget are on it (rounding)."""
    scale = 0.0
    for s in range(u.shape[0]):
        for m in range(u.shape[1]):
            scale = max(scale, abs(u[s, m]), abs(c[s, m]))
    lam = 0.0
    for _ in range(MAX_NEWTON):
        u_lo, c_lo = _value(lo, u), _value(lo, c)
        u_hi, c_hi = _value(hi, u), _value(hi, c)
        if c_lo - c_hi <= 0.0:
            return lam
        lam = max((u_lo - u_hi) / (c_lo - c_hi), 0.0)
        line = u_hi - lam * (c_hi - budget)
        _solve_at(lam, u, c, w, a, floor, x, ws)
        u_x, c_x = _value(x, u), _value(x, c)
        if u_x - lam * (c_x - budget) <= line + 1e-12 * max(1.0, scale) * (1.0 + lam):
            return lam  # lo and hi are both optimal at lam: their mixture on the budget is too
        if c_x > budget + eps:
            lo[:, :] = x
        else:
            hi[:, :] = x
            if c_x >= budget - eps:  # on the budget and optimal at lam: optimal alone
                lo[:, :] = x
                return lam
    return lam


@njit(cache=True)
def _table(u: Floats, c: Floats, w: Floats, lo: Floats, hi: Floats, budget: float, lam: float,
           p: Floats) -> None:
    """Mix lo and hi onto the budget and divide the flows by the shares (rows sum to 1).

    A segment without traffic gets its best column at the budget price lam (score u - lam c
    desc, then c asc, then index asc): the caps and the budget do not see it."""
    c_lo, c_hi = _value(lo, c), _value(hi, c)
    gap = c_lo - c_hi
    theta = min(max((budget - c_hi) / gap, 0.0), 1.0) if gap > 0.0 else 1.0
    ns, nc = u.shape
    for s in range(ns):
        total = 0.0
        for m in range(nc):
            p[s, m] = hi[s, m] + theta * (lo[s, m] - hi[s, m])
            total += p[s, m]
        if w[s] > 0.0 and total > 0.0:
            for m in range(nc):
                p[s, m] /= total
        else:
            best = 0
            for m in range(1, nc):
                gain = (u[s, m] - lam * c[s, m]) - (u[s, best] - lam * c[s, best])
                if gain > 0.0 or (gain == 0.0 and c[s, m] < c[s, best]):
                    best = m
            for m in range(nc):
                p[s, m] = 1.0 if m == best else 0.0


@njit(cache=True)
def joint_route(u: Floats, c: Floats, w: Floats, a: Floats, floor: Floats, budget: float,
                p: Floats) -> int:
    """``joint_route_into`` with its own workspace."""
    return joint_route_into(u, c, w, a, floor, budget, p, joint_workspace(u.shape[0], u.shape[1]))


@njit(cache=True)
def _weighted(p: Floats, v: Floats, w: Floats) -> float:
    """sum_s w_s sum_m p_sm v_sm: a table's expected value over the segments."""
    total = 0.0
    for s in range(p.shape[0]):
        total += w[s] * _dot_row(p, v, s)
    return total


@njit(cache=True)
def _dot_row(p: Floats, v: Floats, s: int) -> float:
    total = 0.0
    for m in range(p.shape[1]):
        total += p[s, m] * v[s, m]
    return total


@njit(cache=True)
def _key_better(feasible: int, cost: float, obj: float, best: Floats, tie: float) -> bool:
    """(feasible, -cost, objective) strictly above ``best`` beyond ``tie`` (relative) on the
    floats; equal keys keep the earlier set."""
    if feasible != best[0]:
        return bool(feasible > best[0])
    for x, y in ((-cost, best[1]), (obj, best[2])):
        tol = tie * max(1.0, abs(y))
        if x > y + tol:
            return True
        if x < y - tol:
            return False
    return False


@njit(cache=True)
def _ceiling(u: Floats, c: Floats, w: Floats, a: Floats, budget: float, lam: float, idx: Ints,
             allow_drop: bool, base: Floats) -> float:
    """An upper bound on the reward of the set's tables that meet the budget, for any price
    lam >= 0: with v = u - lam c and base_s the best v of segment s among the set's uncapped
    columns (a >= 1; the null option with ``allow_drop``; all columns if none is uncapped),

        lam b + sum_s w_s base_s + sum_(capped j) a_j max_s (v_sj - base_s)^+

    (the budget row priced into the objective; each row of a table is a mixture of its columns
    and a capped column carries at most a_j of the traffic). lam = 0 without caps is the reward
    ceiling of the columns. ``base`` [S]: scratch."""
    plain = not allow_drop
    if plain:
        for i in range(idx.size):
            if a[idx[i]] >= 1.0:
                plain = False
    total = lam * budget
    for s in range(u.shape[0]):
        top = 0.0 if allow_drop else -np.inf
        for i in range(idx.size):
            m = idx[i]
            if plain or a[m] >= 1.0:
                top = max(top, u[s, m] - lam * c[s, m])
        base[s] = top
        total += w[s] * top
    if plain:
        return total
    for i in range(idx.size):
        m = idx[i]
        if a[m] < 1.0:
            gain = 0.0
            for s in range(u.shape[0]):
                gain = max(gain, u[s, m] - lam * c[s, m] - base[s])
            total += a[m] * gain
    return total


@njit(cache=True)
def _slope(u: Floats, c: Floats, w: Floats, budget: float, lam: float, idx: Ints,
           allow_drop: bool) -> float:
    """The right derivative of ``_ceiling`` in lam: b - the cost of each segment's best column
    at lam (ties: the cheapest)."""
    total = budget
    for s in range(u.shape[0]):
        top, cost = (0.0, 0.0) if allow_drop else (-np.inf, 0.0)
        for i in range(idx.size):
            m = idx[i]
            v = u[s, m] - lam * c[s, m]
            if v > top or (v == top and c[s, m] < cost):
                top, cost = v, c[s, m]
        total -= w[s] * cost
    return total


@njit(cache=True)
def _price(u: Floats, c: Floats, w: Floats, a: Floats, budget: float, idx: Ints,
           allow_drop: bool) -> float:
    """A budget price for ``_ceiling``: where lam b + sum_s w_s max_m (u - lam c)[s, m] over
    the uncapped columns of ``idx`` (all of them if none) is least (its slope changes sign; by
    doubling then bisection). Any price gives a valid bound; this one need not be exact."""
    uncapped = idx[a[idx] >= 1.0]
    if uncapped.size > 0 or allow_drop:
        idx = uncapped  # the columns that may carry all traffic set the price
    if _slope(u, c, w, budget, 0.0, idx, allow_drop) >= 0.0:
        return 0.0
    scale = 1e-12
    for s in range(u.shape[0]):
        for i in range(idx.size):
            scale = max(scale, abs(u[s, idx[i]]))
    lo, hi = 0.0, scale
    while _slope(u, c, w, budget, hi, idx, allow_drop) < 0.0:
        lo, hi = hi, 2.0 * hi
        if hi > 1e12 * scale:  # no table of them meets the budget: the ceiling falls without
            return 0.0  # end; a huge price would only add rounding (lam b - lam c) to it
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if _slope(u, c, w, budget, mid, idx, allow_drop) < 0.0:
            lo = mid
        else:
            hi = mid
    return hi


@njit(cache=True)
def _carries(a: Floats, idx: Ints, allow_drop: bool) -> bool:
    """Whether the columns ``idx`` can carry all traffic: their caps sum to 1, or drop."""
    caps = 0.0
    for i in range(idx.size):
        caps += a[idx[i]]
    return allow_drop or caps >= 1.0 - 1e-12


@njit(cache=True)
def _set_table(u: Floats, c: Floats, w: Floats, a: Floats, budget: float, idx: Ints,
               uu: Floats, cc: Floats, aa: Floats, ff: Floats, p: Floats, ws: Workspace) -> int:
    """The joint table of the columns ``idx`` (into ``p``, the set's columns into uu, cc, aa)."""
    for i in range(idx.size):
        aa[i] = a[idx[i]]
        for s in range(u.shape[0]):
            uu[s, i] = u[s, idx[i]]
            cc[s, i] = c[s, idx[i]]
    return joint_route_into(uu, cc, w, aa, ff, budget, p, ws)


@njit(cache=True)
def _greedy_bar(u: Floats, c: Floats, w: Floats, a: Floats, budget: float, k: int,
                allow_drop: bool, uu: Floats, cc: Floats, aa: Floats, ff: Floats, p: Floats,
                ws: Workspace) -> float:
    """The reward of the k columns of most sum_s w_s u_sm when their table meets the budget (a
    reward the best set reaches), else -inf."""
    score = np.zeros(a.size)
    for m in range(a.size):
        for s in range(u.shape[0]):
            score[m] += w[s] * u[s, m]
    idx = np.sort(np.argsort(-score, kind="mergesort")[:k])
    if not _carries(a, idx, allow_drop):
        return -np.inf
    if _set_table(u, c, w, a, budget, idx, uu, cc, aa, ff, p, ws) != OK:
        return -np.inf
    return _weighted(p, uu, w)


@njit(cache=True)
def best_set(u: Floats, c: Floats, w: Floats, a: Floats, budget: float, k: int,
             allow_drop: bool, tie: float, chosen: Ints) -> bool:
    """Joint DeployOPT by enumeration, compiled: every set of ``k`` of the columns in
    lexicographic order, the exact joint table on each (``joint_route_into``); the best set's
    columns into ``chosen`` [k]. The key: sets that meet the budget first, then (over budget)
    the least cost, then the most reward; ties within ``tie`` keep the earlier set. Sets whose
    caps sum below 1 are skipped without ``allow_drop``, and so is a set whose ceiling
    (``_ceiling``, at the price 0, at the price of all columns and at that of the best set so
    far) is below the reward of a set that meets the budget (the best so far, or the k columns
    of most reward, ``_greedy_bar``): it cannot be the best or tie with it.
    Returns False when no set is feasible."""
    n, segments = a.size, u.shape[0]
    size = k + 1 if allow_drop else k
    uu, cc, p = np.zeros((segments, size)), np.zeros((segments, size)), np.zeros((segments, size))
    aa, ff = np.ones(size), np.zeros(size)
    ws = joint_workspace(segments, size)
    bar = _greedy_bar(u, c, w, a, budget, k, allow_drop, uu, cc, aa, ff, p, ws)
    base = np.zeros(segments)
    prices = np.zeros(3)  # 0, the price of all columns, the price of the best set so far
    prices[1] = _price(u, c, w, a, budget, np.arange(n), allow_drop)
    idx = np.arange(k)
    best = np.zeros(3)
    found = False
    while True:
        if found and best[0] == 1:
            bar = max(bar, best[2])
        if _carries(a, idx, allow_drop) and not _below(u, c, w, a, budget, prices, idx,
                                                       allow_drop, bar - tie * max(1.0, abs(bar)),
                                                       base):
            status = _set_table(u, c, w, a, budget, idx, uu, cc, aa, ff, p, ws)
            if status != INFEASIBLE:
                obj, cost = _weighted(p, uu, w), _weighted(p, cc, w)
                feasible = 0 if status == OVER_BUDGET else 1
                if not found or _key_better(feasible, cost if feasible == 0 else 0.0, obj,
                                            best, tie):
                    best[0], best[1], best[2] = feasible, -cost if feasible == 0 else 0.0, obj
                    chosen[:] = idx
                    found = True
                    if feasible:
                        prices[2] = _price(u, c, w, a, budget, idx, allow_drop)
        i = k - 1
        while i >= 0 and idx[i] == n - k + i:
            i -= 1
        if i < 0:
            return found
        idx[i] += 1
        for j in range(i + 1, k):
            idx[j] = idx[j - 1] + 1


@njit(cache=True)
def _below(u: Floats, c: Floats, w: Floats, a: Floats, budget: float, prices: Floats, idx: Ints,
           allow_drop: bool, bar: float, base: Floats) -> bool:
    """Whether the set's ceiling at one of the ``prices`` is below ``bar`` (a price equal to
    an earlier one is not evaluated again: before a set meets the budget, or when the budget does
    not bind, several are 0)."""
    for j in range(prices.size):
        seen = False
        for i in range(j):
            seen = seen or prices[i] == prices[j]
        if not seen and _ceiling(u, c, w, a, budget, prices[j], idx, allow_drop, base) < bar:
            return True
    return False
