"""The routing table a gateway executes: RouteOPT with exploration in a bounded slice (SPEC 2a).

A table is held fixed for hours or a week, so optimism (mu_U = 1 for an untried model) must not
hand an unknown model most of the traffic. The models of the deployed set with fewer than
``min_samples`` rewards (under-sampled) share an exploration slice:

- caps: each under-sampled model gets at most min(max_share, share / #under-sampled), when the set
  also has well-sampled models to carry the rest (``share`` >= 1 is the paper: no cap; a set of
  only under-sampled models, the cold start, has nothing else to route to). Where the
  well-sampled models' max_share cannot carry the rest, the slice rises just enough (in the
  table, and in the caps DeployOPT sees over the pool: ``deploy_caps``);
- floors: each under-sampled model gets at least the traffic it needs to reach ``min_samples`` in
  the ``queries`` the table will serve, (min_samples - n) / queries, within its cap, so that a
  model deployed to be explored is explored (and a deployed model does not sit at 0), unless the
  floors alone break a budget that the table could meet without them.

The table is then the exact RouteOPT with those bounds, l <= p <= a: with q = (p - l) / (1 - sum l)
it is RouteOPT on caps (a - l) / (1 - sum l) and budget (b - c.l) / (1 - sum l), solved by the one
kernel (``kernels.route_into``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numba import njit
from numpy.typing import NDArray

from stageroute.optimize.deploy import preference_order
from stageroute.optimize.kernels import Floats, Ints, dot, route_into, workspace
from stageroute.optimize.route import Routing, throughput_check

T = TypeVar("T")


@njit(cache=True)
def explore_limits(n_r: Floats, alpha: Floats, share: float, min_samples: float, queries: float,
                   cap: Floats, floor: Floats) -> int:
    """Caps and floors of the deployed models (see the module); returns #under-sampled."""
    d = n_r.size
    under = 0
    for i in range(d):
        cap[i] = alpha[i]
        floor[i] = 0.0
        if n_r[i] < min_samples:
            under += 1
    if share >= 1.0 or under == 0:
        return under
    if under < d:
        total = 0.0
        room = 0.0  # how far the under-sampled caps could rise to max_share
        for i in range(d):
            if n_r[i] < min_samples:
                cap[i] = min(alpha[i], share / under)
                room += alpha[i] - cap[i]
            total += cap[i]
        if total < 1.0 and room > 0.0:
            # the well-sampled models cannot carry the rest: raise the slice just enough
            lift = min((1.0 - total) / room, 1.0)
            for i in range(d):
                if n_r[i] < min_samples:
                    cap[i] += lift * (alpha[i] - cap[i])
    need = 0.0
    for i in range(d):
        if n_r[i] < min_samples:
            floor[i] = min(cap[i], (min_samples - n_r[i]) / max(queries, 1.0))
            need += floor[i]
    if need > 1.0:
        for i in range(d):
            floor[i] /= need
    return under


@njit(cache=True)
def table_into(u: Floats, c: Floats, cap: Floats, floor: Floats, budget: float, p: Floats,
               a2: Floats, order: Ints, lam: Floats, mids: Floats, score: Floats, q: Floats,
               neg_u: Floats, cheap: Floats) -> bool:
    """Exact RouteOPT with floor <= p <= cap into ``p``; True if over budget (see the module).

    Exploration yields to the budget: when the floors make the budget unreachable but the table
    without them meets it, the floors are set to 0 (in ``floor`` too) and that table is used.
    ``a2`` is scratch of the options' size; the others are ``kernels.workspace``'s.
    """
    n = u.size
    held = 0.0
    for i in range(n):
        held += floor[i]
    if held <= 0.0:
        return route_into(u, c, cap, budget, p, order, lam, mids, score, q, neg_u, cheap)
    rest = 1.0 - held
    if rest <= 1e-12:  # the floors take all traffic: unless they break a budget that the
        for i in range(n):  # table without them meets
            p[i] = floor[i] / held
        if dot(p, c) <= budget * (1.0 + 1e-12):
            return False
        if not route_into(u, c, cap, budget, p, order, lam, mids, score, q, neg_u, cheap):
            for i in range(n):
                floor[i] = 0.0
            return False
        for i in range(n):
            p[i] = floor[i] / held
        return True
    for i in range(n):
        a2[i] = (cap[i] - floor[i]) / rest
    over = route_into(u, c, a2, (budget - dot(floor, c)) / rest, p, order, lam, mids, score, q,
                      neg_u, cheap)
    if over:  # exploration yields to the budget: without the floors, can the table meet it?
        if not route_into(u, c, cap, budget, p, order, lam, mids, score, q, neg_u, cheap):
            for i in range(n):
                floor[i] = 0.0
            return False
        over = route_into(u, c, a2, (budget - dot(floor, c)) / rest, p, order, lam, mids, score,
                          q, neg_u, cheap)
    for i in range(n):
        p[i] = floor[i] + rest * p[i]
    return over


@dataclass(frozen=True, slots=True)
class Table:
    """A routing table over a deployed set with the exploration bounds it was solved under."""

    routing: Routing
    cap: Floats  # per deployed model
    floor: Floats
    under: int  # under-sampled models in the set


def solve_table(u: Floats, c: Floats, alpha: Floats, n_r: Floats, budget: float, share: float,
                min_samples: float, queries: float, allow_drop: bool = False) -> Table:
    """The exploration-aware table over a deployed set (``n_r``: the models' reward counts;
    ``queries``: the requests the table will serve).

    Raises:
        InfeasibleError: the caps sum to less than 1 (without ``allow_drop``).
    """
    d = u.size
    cap, floor = np.empty(d), np.empty(d)
    under = explore_limits(np.asarray(n_r, dtype=np.float64), alpha, float(share),
                           float(min_samples), float(queries), cap, floor)
    uu, cc, aa, ff = u, c, cap, floor
    if allow_drop:  # the null option: reward 0, cost 0, any share, never a floor
        uu, cc, aa, ff = np.append(u, 0.0), np.append(c, 0.0), np.append(cap, 1.0), np.append(floor, 0.0)
    throughput_check(aa)
    size = uu.size
    p = np.zeros(size)
    over = bool(table_into(uu, cc, aa, ff, float(budget), p, np.empty(size), *workspace(size)))
    q = p[:d]
    routing = Routing(q, dot(q, u), dot(q, c), over, float(p[d]) if allow_drop else 0.0)
    return Table(routing, cap, ff[:d].copy(), under)  # floors yielded to the budget are 0


def deploy_caps(n_r: Floats, alpha: Floats, share: float, min_samples: float,
                max_deployed: int) -> Floats:
    """The caps DeployOPT sees over a pool: each under-sampled model carries at most
    share / k, k = min(M_max - 1, #under-sampled) (at least 1): the slots left beside one
    well-sampled model share the slice, and a set of only under-sampled models carries at most
    M_max share / k < 1 (for a share below (M_max - 1) / M_max), so a set that must carry all
    traffic keeps a well-sampled model (when the pool has some).

    Where no set of min(M_max, |P|) models can carry all traffic under those caps but one can
    under max_share (the pool's well-sampled models' max_share cannot carry the rest), the
    under-sampled caps rise towards max_share just enough, each by the same fraction of its room,
    as ``explore_limits`` raises the slice of a deployed set: the slice never makes a pool
    infeasible that its max_share values can carry.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    under = np.asarray(n_r) < min_samples
    if share >= 1.0 or under.all() or not under.any():
        return alpha
    k = max(1, min(int(max_deployed) - 1, int(under.sum())))
    caps: Floats = np.where(under, np.minimum(alpha, share / k), alpha)
    size = max(1, min(int(max_deployed), alpha.size))

    def carried(t: float) -> float:  # what the best set carries with the slice lifted by t
        return float(np.sort(caps + t * (alpha - caps))[::-1][:size].sum())

    target = min(1.0, carried(1.0))  # max_share within DeployOPT's tolerance counts as 1
    if carried(0.0) >= target or target < 1.0 - 1e-12:
        return caps  # feasible as it is, or infeasible under max_share too (DeployOPT says so)
    lo, hi = 0.0, 1.0  # carried() is continuous and non-decreasing in t: the smallest t
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if carried(mid) >= target else (mid, hi)
    lifted: Floats = caps + hi * (alpha - caps)
    return lifted


def one_newcomer(u: Floats, c: Floats, n_r: Floats, min_samples: float, share: float,
                 max_deployed: int, segments: int) -> Floats:
    """The reward bounds DeployOPT sees when a stage explores at most one under-sampled model
    (``plan --segments`` and ``replay --contextual`` with two segments or more; with one, the
    plan and the policy are the one-table ones): the others enter with a bound of -1 and
    wait for a later stage, so that the set keeps M_max - 1 well-sampled models beside the one
    it explores. Two newcomers at once (each optimistic, mu_U = 1) leave one slot for the
    models that carry the traffic and can push the best of them out of the set for a stage.

    Which one: the most rewards first (finish what a stage started), then the highest cost
    bound (for an untried model its list price, the one hint of quality the catalog gives),
    then the pool order. Applies only with two ``segments`` or more, when exploration is bounded
    (``share`` < 1) and the pool has M_max - 1 well-sampled models to deploy beside the
    newcomer; else ``u`` as it is. Models already left out (u < 0) are not picked.
    """
    short = np.asarray(n_r) < min_samples
    under = np.flatnonzero(short & (np.asarray(u) >= 0))  # models already left out stay out
    if (segments < 2 or share >= 1.0 or under.size <= 1
            or n_r.size - int(short.sum()) < max_deployed - 1):
        return u
    first = under[np.lexsort((under, -np.asarray(c)[under], -np.asarray(n_r)[under]))[0]]
    out = np.array(u, dtype=np.float64, copy=True)
    out[under[under != first]] = -1.0
    return out


def refill_one_newcomer(solve: Callable[[Floats], tuple[NDArray[np.bool_], T]], u: Floats,
                        c: Floats, n_r: Floats, alpha: Floats, share: float, min_samples: float,
                        queries: float, max_deployed: int, segments: int,
                        deployed: Callable[[T], NDArray[np.bool_]],
                        ) -> tuple[T, Ints, Floats, NDArray[np.bool_]]:
    """``refill`` on the bounds ``one_newcomer`` leaves; when DeployOPT declines its pick (the
    set holds no under-sampled model), the next one in that order, until one is deployed or
    none is left. Without this, a model whose first rewards were poor stays the pick (it has
    the most rewards) in every later stage, is never deployed, and keeps every newer model
    out for good. ``deployed(answer)``: the chosen mask of an answer.

    Returns refill's answer, the models refill left out as unexplorable (not those the rule or
    a decline left out), the bounds of the last solve, and which models the rule held back for
    a later stage (not the declined picks: DeployOPT chose without them).
    """
    short = np.asarray(n_r) < min_samples
    bounds = np.array(u, dtype=np.float64, copy=True)
    while True:
        one = one_newcomer(bounds, c, n_r, min_samples, share, max_deployed, segments)
        answer, excluded = refill(solve, one, c, n_r, alpha, share, min_samples, queries)
        pick = short & (one >= 0)
        if one is bounds or not pick.any() or deployed(answer)[short].any():
            return answer, excluded[one[excluded] >= 0], one, (one < 0) & (bounds >= 0)
        bounds[pick] = -1.0  # declined at its optimistic bounds: the next one


def explorable(chosen: Ints, n_r: Floats, alpha: Floats, share: float, min_samples: float,
               queries: float) -> tuple[Ints, Ints]:
    """(kept, dropped): the deployed set without the under-sampled models that cannot reach
    ``min_samples`` within ``queries`` requests under their exploration cap.

    ``chosen`` lists pool indices in preference order (most preferred first); the least
    preferred under-sampled model goes first, until every one left can be explored. A model is
    never dropped when the rest could not carry all traffic (their max_share sum below 1), nor
    from a set of only under-sampled models (the cold start, which has no slice).
    """
    kept = [int(j) for j in chosen]
    dropped: list[int] = []
    while share < 1.0:
        idx = np.array(kept, dtype=np.int64)
        cap, floor = np.empty(idx.size), np.empty(idx.size)
        explore_limits(n_r[idx].astype(np.float64), alpha[idx], share, min_samples, 1e300, cap,
                       floor)
        if (n_r[idx] < min_samples).all():
            break  # the cold start: no slice, nothing to drop for
        short = [k for k, j in enumerate(kept)
                 if n_r[j] < min_samples and (min_samples - n_r[j]) > cap[k] * queries]
        if not short:
            break
        k = short[-1]
        rest = np.delete(idx, k)
        if rest.size == 0 or alpha[rest].sum() < 1.0 - 1e-12:
            break
        dropped.append(kept.pop(k))
    return np.array(kept, dtype=np.int64), np.array(dropped, dtype=np.int64)


def refill(solve: Callable[[Floats], tuple[NDArray[np.bool_], T]], u: Floats, c: Floats,
           n_r: Floats, alpha: Floats, share: float, min_samples: float, queries: float,
           ) -> tuple[T, Ints]:
    """DeployOPT (``solve(u) -> (chosen mask, answer)``) again without the under-sampled models
    that the stage cannot explore (``explorable``), so that their slots go to other models;
    the excluded ones enter with a reward bound of -1 (last in every preference).

    Returns the last answer and the pool indices excluded.
    """
    bounds = u.copy()
    chosen, answer = solve(bounds)
    for _ in range(u.size):
        order = np.array([i for i in preference_order(u, c) if chosen[i]], dtype=np.int64)
        _, dropped = explorable(order, n_r, alpha, share, min_samples, queries)
        if dropped.size == 0 or (bounds[dropped] < 0).all():
            break
        bounds[dropped] = -1.0
        chosen, answer = solve(bounds)
    return answer, np.flatnonzero(bounds < 0).astype(np.int64)
