"""``plan --segments``: one deployment set for every query segment, one routing table per segment.

The logs' ``segment`` column splits the traffic (SPEC 12). From the per-(segment, model)
statistics (``LogSummary.cells``: the plan's one pass over the logs, or the statistics store's
windows and the logs grouped by day merged per cell with the drift options' window and weights,
``plan_segments_store``), each cell's bounds are
StageRoute's on its statistics shrunk toward the model's (``estimate.segments.shrunk_bounds``);
the segments' traffic shares w_s are their shares of the used rows. The deployment is the joint
DeployOPT on the joint RouteOPT's objective (``optimize.joint.deploy_joint``), with the
exploration caps of ``optimize.explore.deploy_caps`` and its refill, ties broken by the
per-model preference order as a one-table plan does; the tables are the joint RouteOPT over the
set with the per-model exploration caps and floors of ``optimize.explore.explore_limits``
(the floors yield to the budget, as for one table), cross-checked against the Pyomo LP on the
chosen solver as a one-table plan is. This is the stage step of the contextual replay
(``simulate.contextual``), on a log's statistics. A routing refresh (``--routing-only``) keeps
the set it is given and re-solves only the tables, by the same function (``segment_tables``).
Under ``--max-changes`` the joint DeployOPT searches the sets within the change limit
(``joint_deploy_within``), and ``plan`` gives the one-table plan's reasons and note.

With one segment value in the whole log the bounds are the per-model ones, and the set and the
table are a one-table plan's (up to ties inside the routing LP, which the two exact solvers may
break differently).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from stageroute.candidates import Candidates, disagreement
from stageroute.errors import InfeasibleError, UsageError
from stageroute.estimate.segments import shrunk_bounds
from stageroute.inputs.logs import LogSummary
from stageroute.inputs.segmentation import check_segment_names
from stageroute.optimize.deploy import ChangeLimit, Deployment, preference_order
from stageroute.optimize.deploy import _checked as checked_size
from stageroute.optimize.explore import Table, explorable, explore_limits
from stageroute.optimize.joint import (
    TIE_TOL,
    JointRouting,
    deploy_joint,
    solve_joint_route,
    solve_joint_route_pyomo,
)
from stageroute.optimize.joint_kernels import _key_better as key_better
from stageroute.optimize.route import Routing, cost_unit
from stageroute.options import Radius
from stageroute.render.output import json_number
from stageroute.simulate import loop as compiled

if TYPE_CHECKING:
    from stageroute.plan import Plan, PlanConfig

Floats = NDArray[np.float64]
ROWS = ("n_reward", "mean_reward", "m2_reward", "n_cost", "mean_cost", "m2_cost")  # simulate.loop


@dataclass(frozen=True, slots=True)
class SegmentCells:
    """The segments of the used rows and the pool's statistics and bounds per cell."""

    names: tuple[str, ...]  # segment values, sorted ("": rows with a null segment)
    shares: Floats  # [S] each segment's share of the used rows
    stats: Floats  # [6, S, N] (n, mean, M2 of reward, then of cost; pool models in order)
    u: Floats  # [S, N] shrunk reward bounds
    c: Floats  # [S, N] shrunk cost bounds


@dataclass(frozen=True, slots=True)
class SegmentTables:
    """One routing table per segment over the deployed models (columns in pool order)."""

    names: tuple[str, ...]
    shares: Floats  # [S]
    models: tuple[str, ...]  # the deployed models
    probability: Floats  # [S, D]
    reward_ucb: Floats  # [S, D]
    cost_lcb: Floats  # [S, D]
    dropped: Floats  # [S] refused share (--allow-drop)


def segment_cells(summary: LogSummary, cand: Candidates, config: PlanConfig) -> SegmentCells:
    """The cells' statistics (``summary.cells``) over the pool (``cand.names``) and their
    shrunk bounds."""
    cells = summary.cells
    if cells is None:
        raise ValueError("segment_cells needs a summary with cells (segments=True)")
    names = tuple(sorted(set(cells["segment"].to_list())))
    check_segment_names(names, f"the segments of statistics store {summary.label}"
                        if summary.source == "stats" else "the logs' column 'segment'")
    seg = {s: i for i, s in enumerate(names)}
    col = {m: j for j, m in enumerate(cand.names)}
    stats = np.zeros((6, len(names), len(cand.names)))
    rows = np.zeros(len(names))
    for r in cells.iter_rows(named=True):
        s = seg[r["segment"]]
        rows[s] += r["rows"]
        if r["model"] in col:
            stats[:, s, col[r["model"]]] = [r[k] or 0.0 for k in ROWS]
    kn = compiled.knobs(cand.gamma, config.resolve_cost_gamma(cand.gamma),
                        config.radius is Radius.MEAN, cand.scale, config.cost_clip,
                        config.budget_safe)
    u, c = shrunk_bounds(stats, kn, cand.prior)
    return SegmentCells(names, rows / max(rows.sum(), 1.0), stats, u, c)


def segment_deploy(cells: SegmentCells, cand: Candidates, config: PlanConfig, caps: Floats,
                   ) -> Callable[[Floats, NDArray[np.bool_] | None, int | None], Deployment]:
    """The joint DeployOPT as ``plan`` calls a DeployOPT: ``deploy(bounds, current, additions)``
    chooses a set on the cells' bounds (models with a negative ``bounds`` entry, which
    ``optimize.explore.refill`` leaves out, enter with a reward bound of -1 in every segment),
    ties broken by the per-model preference order of ``bounds``, with at most ``additions``
    models outside ``current`` (None: no limit; ``joint_deploy_within``)."""
    def deploy(bounds: Floats, current: NDArray[np.bool_] | None, additions: int | None,
               ) -> Deployment:
        u = np.where(bounds[None, :] < 0, -1.0, cells.u)
        order = preference_order(bounds, cand.c)
        limit = ChangeLimit.of(bounds.size, current, additions)
        if limit is None:
            chosen, table = deploy_joint(u, cells.c, cells.shares, caps, config.budget,
                                         config.max_deployed, config.solver, config.allow_drop,
                                         order=order)
        else:
            chosen, table = joint_deploy_within(u, cells.c, cells.shares, caps, config.budget,
                                                config.max_deployed, config.allow_drop, order,
                                                limit)
        routing = Routing(cells.shares @ table.probability, table.objective, table.cost,
                          table.over_budget, float(cells.shares @ table.dropped))
        return Deployment(chosen, routing, table.over_budget)

    return deploy


def joint_deploy_within(u: Floats, c: Floats, w: Floats, a: Floats, budget: float,
                        max_deployed: int, allow_drop: bool, order: NDArray[np.intp],
                        limit: ChangeLimit, most: int = 200_000,
                        ) -> tuple[NDArray[np.bool_], JointRouting]:
    """Joint DeployOPT over the sets within a change limit (``plan --segments --max-changes``),
    by enumeration: the sets of the limited size (``optimize.deploy``'s rule: fewer when the
    current models and the additions cannot fill M_max) with at most ``limit.additions`` models
    outside the current set, in lexicographic order of ``order``; the exact joint table on each,
    and the key and tie rule of the unlimited enumeration (``optimize.joint_kernels.best_set``:
    sets that meet the budget first, then the least cost, then the most reward; ties keep the
    earlier set).

    Raises:
        InfeasibleError: no set within the limit can carry the traffic (the message names
            --max-changes, as for one table).
        UsageError: more than ``most`` tables to solve (sets x segments): the enumeration
            would run for minutes (one joint table per set, each over every segment).
    """
    k = checked_size(u[0], c[0], a, max_deployed, allow_drop, limit)[3]
    # models by their rank in ``order``: a set is its ranks, sorted; the sets in rank order
    inside = [r for r, i in enumerate(order) if not limit.outside[i]]
    outside = [r for r, i in enumerate(order) if limit.outside[i]]
    additions = range(min(limit.additions, k) + 1)
    count = sum(math.comb(len(inside), k - j) * math.comb(len(outside), j) for j in additions)
    if count * u.shape[0] > most:
        raise UsageError(f"--max-changes {limit.additions} with --segments enumerates the sets "
                         f"within the limit, and there are {count:,} on {u.shape[0]:,} segments "
                         f"({count * u.shape[0]:,} segment tables, at most {most:,}); "
                         "lower --max-changes or --max-deployed, or use fewer segments")
    sets = sorted(sorted((*keep, *add)) for j in additions
                  for keep in combinations(inside, k - j) for add in combinations(outside, j))
    best, found = np.zeros(3), None
    for ranks in sets:
        idx = np.sort(np.asarray(order)[ranks])
        if not allow_drop and a[idx].sum() < 1.0 - 1e-12:
            continue
        table = solve_joint_route(u[:, idx], c[:, idx], w, a[idx], budget, allow_drop=allow_drop)
        feasible, cost = int(not table.over_budget), table.cost if table.over_budget else 0.0
        if found is None or key_better(feasible, cost, table.objective, best, TIE_TOL):
            best[:] = feasible, -cost, table.objective
            found = (idx, table)
    if found is None:
        raise InfeasibleError(f"no {k} models within --max-changes {limit.additions} can carry "
                              "all traffic under the max_share caps; raise --max-changes")
    chosen = np.zeros(a.size, dtype=bool)
    chosen[found[0]] = True
    return chosen, found[1]


def joint_table(u: Floats, c: Floats, w: Floats, cap: Floats, floor: Floats, budget: float,
                allow_drop: bool) -> tuple[JointRouting, Floats]:
    """The joint table with exploration floors, which yield to the budget when the table
    without them meets it (``optimize.explore.table_into`` for one table): (table, floors)."""
    table = solve_joint_route(u, c, w, cap, budget, floor, allow_drop)
    if table.over_budget and floor.sum() > 0:
        free = solve_joint_route(u, c, w, cap, budget, None, allow_drop)
        if not free.over_budget:
            return free, np.zeros_like(floor)
    return table, floor


def segment_tables(cells: SegmentCells, cand: Candidates, deployed: NDArray[np.bool_],
                   config: PlanConfig, queries: float, drop: bool = True,
                   ) -> tuple[NDArray[np.bool_], list[int], Table, SegmentTables]:
    """The set without the under-sampled models the stage cannot explore (``drop``; a routing
    refresh keeps every model, as ``candidates.stage_table``), its per-segment tables, and the
    per-model view of them as a ``Table`` (each model's share of all traffic, the caps and
    floors): (set mask, dropped pool indices, table, per-segment tables)."""
    n_r = cand.n_r.astype(np.float64)
    share, need = config.canary_share, float(config.min_samples)
    order = np.array([i for i in preference_order(cand.u, cand.c) if deployed[i]], dtype=np.int64)
    kept, dropped = explorable(order, n_r, cand.a, share if drop else 1.0, need, queries)
    chosen = np.zeros(cand.u.size, dtype=bool)
    chosen[kept] = True
    idx = np.flatnonzero(chosen)
    cap, floor = np.empty(idx.size), np.empty(idx.size)
    under = explore_limits(n_r[idx], cand.a[idx], share, need, float(queries), cap, floor)
    u, c = cells.u[:, idx], cells.c[:, idx]
    joint, floor = joint_table(u, c, cells.shares, cap, floor, config.budget, config.allow_drop)
    overall = cells.shares @ joint.probability
    routing = Routing(overall, joint.objective, joint.cost, joint.over_budget,
                      float(cells.shares @ joint.dropped))
    tables = SegmentTables(cells.names, cells.shares, tuple(cand.names[i] for i in idx),
                           joint.probability, u, c, joint.dropped)
    return chosen, [int(i) for i in dropped], Table(routing, cap, floor, under), tables


def joint_cross_check(tables: SegmentTables, table: Table, config: PlanConfig) -> str | None:
    """The exact joint tables must be optimal for the Pyomo LP (same caps and floors) on the
    chosen solver too (``candidates.cross_check`` for one table); a warning when not."""
    routing = table.routing
    reference = solve_joint_route_pyomo(tables.reward_ucb, tables.cost_lcb, tables.shares,
                                        table.cap, config.budget, table.floor, config.allow_drop,
                                        config.solver)
    return disagreement(reference, routing, cost_unit(tables.cost_lcb, config.budget),
                        f"{config.solver}'s joint RouteOPT", "tables")


def segment_means(cells: SegmentCells, chosen: NDArray[np.bool_], tables: SegmentTables,
                  names: list[str]) -> tuple[float | None, float | None, list[str]]:
    """Expected reward and cost per request under the plain cell means (None while a routed
    cell has no sample), and the routed models with an untried cell."""
    idx = np.flatnonzero(chosen)
    flow = tables.shares[:, None] * tables.probability
    served = flow > 0
    out: list[float | None] = []
    for n_row, mean_row in ((compiled.N_R, compiled.MEAN_R), (compiled.N_C, compiled.MEAN_C)):
        n, mean = cells.stats[n_row][:, idx], cells.stats[mean_row][:, idx]
        out.append(float((flow * mean).sum()) if np.all(n[served] > 0) else None)
    untried = (served & ((cells.stats[compiled.N_R][:, idx] == 0)
                         | (cells.stats[compiled.N_C][:, idx] == 0))).any(axis=0)
    return out[0], out[1], [names[int(j)] for j in idx[untried]]


def segment_note(tables: SegmentTables) -> str:
    """The plan's note on its segments."""
    listed = ", ".join(f"{s or '(none)'} {w:.3g}" for s, w in
                       zip(tables.names[:8], tables.shares[:8], strict=False))
    more = f", ... ({len(tables.names)} in all)" if len(tables.names) > 8 else ""
    return (f"one routing table per segment (--segments), under one budget and the shared "
            f"max_share caps; traffic shares: {listed}{more}")


def routing_rows(plan: Plan) -> list[dict[str, Any]]:
    """The routing table: one row per deployed model, or with ``--segments`` one per (segment,
    deployed model), most traffic first, with the model's probability within the segment and
    the cell's bounds (``reward_ucb``, ``cost_lcb``)."""
    lines = {m.model: m for m in plan.deployment}
    if plan.segments is None:
        return [{"model": m.model, "probability": json_number(m.probability),
                 "max_share": json_number(m.max_share), "cap": json_number(m.cap)}
                for m in plan.deployment]
    t = plan.segments
    return [{"segment": s, "model": m, "probability": json_number(float(t.probability[i, j])),
             "max_share": json_number(lines[m].max_share), "cap": json_number(lines[m].cap),
             "reward_ucb": json_number(float(t.reward_ucb[i, j])),
             "cost_lcb": json_number(float(t.cost_lcb[i, j]))}
            for i, s in enumerate(t.names)
            for j, m in sorted(enumerate(t.models), key=lambda jm: (-t.probability[i, jm[0]], jm[1]))]
