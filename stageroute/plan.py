"""The plan for the next stage: logs + catalog -> bounds -> DeployOPT -> RouteOPT -> Plan."""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from stageroute.candidates import (
    Candidates,
    candidates,
    cross_check,
    reasons,
    stage_queries,
    stage_table,
)
from stageroute.config import SharedConfig
from stageroute.errors import BadDataError, InfeasibleError, UsageError
from stageroute.history import check_not_planned
from stageroute.inputs.catalog import Window, read_catalog, split_pool
from stageroute.inputs.files import quote
from stageroute.inputs.logs import LogSummary, refuse_unknown, summarise_logs
from stageroute.inputs.previous import read_previous, still_available
from stageroute.inputs.sanity import check_sufficient, listing
from stageroute.optimize.deploy import (
    Deployment,
    change_allowance,
    deployment_on,
    solve_deploy,
)
from stageroute.optimize.explore import deploy_caps, refill_one_newcomer
from stageroute.optimize.route import Routing
from stageroute.optimize.solver import require_solver
from stageroute.options import format_duration, window_start
from stageroute.plan_segments import (
    SegmentCells,
    SegmentTables,
    joint_cross_check,
    routing_rows,
    segment_cells,
    segment_deploy,
    segment_means,
    segment_note,
    segment_tables,
)
from stageroute.render.output import iso_utc, json_number
from stageroute.runid import run_id
from stageroute.store.read import STATIONARY, Drift, StoreInput, logs_by_window, store_summary

SCHEMA_VERSION = 1
# A DeployOPT: (reward bounds, the models deployed now, additions allowed) -> the set
Deploy = Callable[[NDArray[np.float64], NDArray[np.bool_] | None, int | None], Deployment]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanConfig(SharedConfig):
    """Everything ``make_plan`` needs besides the inputs; validated on construction."""

    as_of: dt.datetime
    stage_length: dt.timedelta = dt.timedelta(days=7)
    deployed: tuple[str, ...] | None = None
    strict: bool = False
    full_check: bool = False
    max_staleness: dt.timedelta | None = None  # newest log row at most this old; None: stage_length
    max_unknown_share: float = 0.5  # of rows before as_of that may name models not in the catalog
    max_changes: int | None = None  # DeployOPT adds at most this many models not deployed now
    routing_only: bool = False  # keep the deployment (deployed or previous), re-solve the table
    previous: str | Path | None = None  # a plan JSON whose deployment routing_only keeps
    # Stage boundaries anchor + k * stage_length: as_of (the run's time) moves to the start of the
    # window it plans (``options.window_start``), which is also the logs' cut-off.
    anchor: dt.datetime | str | None = None  # a boundary, or a cron expression (options.parse_anchor)
    grace: dt.timedelta | None = None  # a run at most this late plans the window that began; None: half
    drift: Drift = STATIONARY  # which windows of statistics count, and how much (--window, --half-life)
    segments: bool = False  # one routing table per value of the logs' segment column (plan_segments)

    def __post_init__(self) -> None:
        SharedConfig.__post_init__(self)
        self._align()
        if self.relative_budget:
            raise UsageError("plan takes --budget in currency per request, not a relative budget")
        if self.as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        if self.stage_length <= dt.timedelta(0):
            raise UsageError(f"--stage-length must be positive, got {self.stage_length}; give e.g. 7d")
        _check_calendar(self.as_of, self.stage_length)
        if self.max_staleness is not None and self.max_staleness <= dt.timedelta(0):
            raise UsageError(f"--max-staleness must be positive, got {self.max_staleness}")
        if not 0 <= self.max_unknown_share <= 1:
            raise UsageError(
                f"--max-unknown-share must be a share in [0, 1], got {self.max_unknown_share}")
        _check_changes(self)

    def _align(self) -> None:
        """With an anchor, as_of becomes the start of the window the run plans."""
        if self.anchor is None:
            if self.grace is not None:
                raise UsageError("--grace says how late a run may start after a boundary of "
                                 "--anchor; give --anchor too (e.g. --anchor 2026-11-16T02:00Z)")
            return
        if isinstance(self.anchor, dt.datetime) and self.anchor.tzinfo is None:
            raise ValueError("anchor must be timezone-aware")
        if self.stage_length > dt.timedelta(0):
            start = window_start(self.as_of, self.anchor, self.stage_length, self.grace)
            object.__setattr__(self, "as_of", start)  # frozen: set once, during construction

    @property
    def window(self) -> Window:
        """The stage to plan: [as_of, as_of + stage_length)."""
        return Window(self.as_of, self.as_of + self.stage_length)


def _check_changes(config: PlanConfig) -> None:
    """--max-changes, --routing-only and --previous: valid values, and combinations that mean
    something (a routing refresh changes no model, and needs the deployment it keeps)."""
    n = config.max_changes
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0):
        raise UsageError(f"--max-changes must be an integer >= 0, got {n!r}; give e.g. "
                         "--max-changes 1")
    if not config.routing_only:
        if config.previous is not None:
            raise UsageError("--previous gives the deployment that --routing-only keeps; add "
                             "--routing-only (a full plan reads what is deployed from the logs "
                             "or --deployed)")
        return
    if n is not None:
        raise UsageError("--max-changes limits what DeployOPT changes, and --routing-only solves "
                         "no DeployOPT (it changes no model); drop one of them")
    if (config.deployed is None) == (config.previous is None):
        given = "neither was given" if config.deployed is None else "both were given"
        raise UsageError("--routing-only keeps a deployment: give exactly one of --deployed a,b,c "
                         f"and --previous PLAN.json ({given})")


def _check_calendar(as_of: dt.datetime, length: dt.timedelta) -> None:
    """The planned stage and the one before it (what is deployed now) fit in years 1 to 9999."""
    when, span = iso_utc(as_of), f"{length.total_seconds() / 86400:,.10g} days"
    try:
        as_of + length
    except OverflowError:
        raise UsageError(
            f"--as-of {when} plus --stage-length ({span}) ends after the year 9999; give an "
            "earlier --as-of or a shorter --stage-length"
        ) from None
    try:
        as_of - length
    except OverflowError:
        raise UsageError(
            f"--as-of {when} minus --stage-length ({span}, the previous stage, which tells what "
            "is deployed now) starts before the year 1; give a later --as-of or a shorter "
            "--stage-length"
        ) from None


@dataclass(frozen=True, slots=True)
class ModelLine:
    """One candidate of the pool with its statistics, bounds and the decision about it."""

    model: str
    n_reward: int
    n_cost: int
    mean_reward: float | None
    reward_ucb: float
    mean_cost: float | None
    cost_lcb: float
    cost_bound: str  # "observed", "price" (untried: list price x typical tokens) or "floor"
    max_share: float
    cap: float  # the share the table may give it: max_share, or less in the exploration slice
    deployed: bool
    action: str  # "keep", "add", "evict", "idle"
    probability: float
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The plan for one stage: plain data, rendered by ``report`` or ``plan_document``."""

    window: Window
    config: PlanConfig
    gamma: float
    cost_scale: float
    candidates: tuple[ModelLine, ...]  # the whole pool, deployed first
    evicted: tuple[tuple[str, str], ...]
    excluded: tuple[tuple[str, str], ...]
    currently_deployed: tuple[str, ...]
    expected: dict[str, float | None]
    over_budget: bool
    dropped: float
    logs: LogSummary
    notes: tuple[str, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())  # for stderr: what the user should act on
    run_id: str = ""
    segments: SegmentTables | None = None  # plan --segments: one table per segment

    @property
    def deployment(self) -> tuple[ModelLine, ...]:
        return tuple(line for line in self.candidates if line.deployed)


def _currently_deployed(config: PlanConfig, summary: LogSummary, catalog: pl.DataFrame) -> list[str]:
    if config.deployed is not None:
        unknown = sorted(set(config.deployed) - set(catalog["model"]))
        if unknown:
            raise UsageError(
                f"--deployed names '{unknown[0]}', which is not in the catalog; "
                "use model ids from the catalog"
            )
        return sorted(set(config.deployed))
    if summary.last_seen is None:
        return []
    since = summary.last_seen - config.stage_length
    return sorted(summary.stats.filter(pl.col("last_seen") > since)["model"].to_list())


def _model_lines(cand: Candidates, chosen: NDArray[np.bool_], prob: NDArray[np.float64],
                 caps: NDArray[np.float64], current: list[str], reasons: dict[int, str],
                 ) -> list[ModelLine]:
    """One line per pool model with the decision and why: deployed first, by probability."""
    lines = []
    for i, name in enumerate(cand.names):
        deployed = bool(chosen[i])
        action = ("keep" if name in current else "add") if deployed else (
            "evict" if name in current else "idle")
        bound = "observed" if cand.n_c[i] > 0 else ("price" if np.isfinite(cand.prior[i]) else "floor")
        lines.append(ModelLine(
            model=name, n_reward=round(cand.n_r[i]), n_cost=round(cand.n_c[i]),
            mean_reward=float(cand.mean_r[i]) if cand.n_r[i] else None,
            reward_ucb=float(cand.u[i]),
            mean_cost=float(cand.mean_c[i]) if cand.n_c[i] else None, cost_lcb=float(cand.c[i]),
            cost_bound=bound, max_share=float(cand.a[i]), cap=float(caps[i]), deployed=deployed,
            action=action,
            probability=float(prob[i]), reason=reasons[i],
        ))
    lines.sort(key=lambda line: (not line.deployed, -line.probability, line.model))
    return lines


def read_summary(logs: str | Path | StoreInput, catalog: pl.DataFrame, config: PlanConfig,
                 feedback: str | Path | None, say: Callable[[str], None]) -> LogSummary:
    """The log summary: from the statistics store (``plan --stats``), from the logs grouped by
    window (a drift option), or from the logs in one pass."""
    if isinstance(logs, StoreInput):
        if feedback is not None:
            raise UsageError("--feedback is joined when the store is built: pass it to "
                             "stageroute stats, not to plan --stats")
        say(f"reading the statistics store {logs}")
        summary = store_summary(logs.path, catalog, config.as_of, config.drift,
                                recent=config.stage_length, segments=config.segments)
    elif not config.drift.stationary:
        say(f"scanning logs {logs} by day")
        summary = logs_by_window(logs, catalog, config.as_of, feedback, config.drift,
                                 recent=config.stage_length, segments=config.segments)
    else:
        say(f"scanning logs {logs}")
        return summarise_logs(logs, catalog, config.as_of, feedback, config.strict,
                              recent=config.stage_length, full_check=config.full_check,
                              segments=config.segments)
    if config.strict:
        refuse_unknown(summary.unknown, summary.label)
    return summary


def _load(logs: str | Path, catalog_path: str | Path, config: PlanConfig,
          feedback: str | Path | None, say: Callable[[str], None],
          ) -> tuple[pl.DataFrame, tuple[str, ...], LogSummary, pl.DataFrame, pl.DataFrame]:
    """Catalog, log summary (checked for sanity), the stage's pool and the excluded models."""
    catalog, catalog_notes = read_catalog(catalog_path)
    window = config.window
    summary = read_summary(logs, catalog, config, feedback, say)
    check_sufficient(summary, catalog["model"].to_list(), config.as_of,
                     config.max_staleness or config.stage_length, config.max_unknown_share,
                     feedback=feedback is not None)
    pool, excluded = split_pool(catalog, window)
    if pool.height == 0:
        raise BadDataError(
            f"catalog {catalog_path} has no model available for the stage "
            f"{window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC "
            "(none released by its start and not retired before its end); check --as-of"
        )
    return catalog, tuple(catalog_notes), summary, pool, excluded


def make_plan(logs: str | Path, catalog_path: str | Path, config: PlanConfig,
              feedback: str | Path | None = None,
              progress: Callable[[str], None] | None = None,
              history: str | Path | None = None) -> Plan:
    """Plan the stage that starts at ``config.as_of``.

    With ``config.routing_only`` this is ``make_routing_plan``. With ``history`` (a directory of
    ``history.record``), a window and inputs planned already solve nothing.

    Raises:
        StagerouteError: subclasses for bad or missing input, a missing solver, infeasibility.
        history.AlreadyPlanned: ``history`` holds this run's plan (checked before any solve).
    """
    if config.routing_only:
        return make_routing_plan(logs, catalog_path, config, feedback, progress, history)
    say = progress or (lambda _: None)
    require_solver(config.solver)
    catalog, catalog_notes, summary, pool, excluded = _load(logs, catalog_path, config, feedback, say)
    catalog_notes = (*catalog_notes, *check_not_planned(history, run_id(config, catalog, summary)))
    cand = candidates(pool, summary, config, catalog.height)
    current = _currently_deployed(config, summary, catalog)
    queries = stage_queries(summary, config)
    cells = None if summary.cells is None else segment_cells(summary, cand, config)
    say(f"solving DeployOPT over {cand.u.size} candidates with {config.solver}" if cells is None
        else f"solving the joint DeployOPT over {cand.u.size} candidates and {len(cells.names)} "
        "segments")
    decision = _deploy_explorable(cand, config, current, queries, cells)
    return _assemble(config, cand, decision, catalog, catalog_notes, summary, excluded)


@dataclass(frozen=True, slots=True)
class _Decision:
    """A stage's deployment, and what the plan says about how it was reached."""

    dep: Deployment
    current: list[str]  # deployed now: keep / add / evict are relative to it
    unlimited: Deployment | None = None  # DeployOPT's set without --max-changes, where it differs
    allowed: int = 0  # the additions --max-changes allowed (refills of retired models included)
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()  # --routing-only: the deployment kept (it enters the run id)
    unexplorable: tuple[int, ...] = ()  # left out: the stage cannot explore them (pool indices)
    waiting: tuple[int, ...] = ()  # left out: another newcomer is explored first (--segments)
    cells: SegmentCells | None = None  # plan --segments: the segments' statistics and bounds


def _assemble(config: PlanConfig, cand: Candidates, decision: _Decision, catalog: pl.DataFrame,
              catalog_notes: tuple[str, ...], summary: LogSummary, excluded: pl.DataFrame) -> Plan:
    """The Plan of a deployment and its routing table: lines, reasons, expectations, notes."""
    dep, current, window = decision.dep, decision.current, config.window
    queries = stage_queries(summary, config)
    tables = None
    if decision.cells is not None:
        chosen, unexplorable, table, tables = segment_tables(decision.cells, cand, dep.chosen,
                                                             config, queries,
                                                             drop=not config.routing_only)
        disagreement = joint_cross_check(tables, table, config)
    else:
        chosen, unexplorable, table = stage_table(cand, dep.chosen, config, queries,
                                                   drop=not config.routing_only)
        disagreement = cross_check(cand, chosen, table, config)
    routing = table.routing
    prob = np.zeros(cand.u.size)
    prob[chosen] = routing.probability
    caps = cand.a.copy()
    caps[chosen] = table.cap
    left_out = sorted({*unexplorable, *(i for i in decision.unexplorable if not chosen[i])})
    why = reasons(cand, chosen, prob, left_out, table, config, queries,
                  [i for i in decision.waiting if not chosen[i]])
    lines = _change_reasons(_model_lines(cand, chosen, prob, caps, current, why), cand,
                            decision, config)
    excluded_reasons = dict(excluded.iter_rows())
    evicted = [(line.model, line.reason) for line in lines if line.action == "evict"]
    evicted += [(name, excluded_reasons.get(name, "not in the catalog"))
                for name in current if name not in cand.names]
    served = prob > 0
    reward_mean = float(prob @ np.nan_to_num(cand.mean_r)) if np.all(cand.n_r[served] > 0) else None
    cost_mean = float(prob @ np.nan_to_num(cand.mean_c)) if np.all(cand.n_c[served] > 0) else None
    untried = [cand.names[i] for i in np.flatnonzero(served & ((cand.n_r == 0) | (cand.n_c == 0)))]
    extra: tuple[str, ...] = ()
    if decision.cells is not None and tables is not None:
        reward_mean, cost_mean, untried = segment_means(decision.cells, chosen, tables, cand.names)
        extra = (segment_note(tables),)
    warnings = [*catalog_notes, *summary.notes, *decision.warnings,
                *([disagreement] if disagreement else [])]
    if summary.unknown.height:
        warnings.append(f"ignored log rows of models not in the catalog: {listing(summary.unknown, 5)}")
    return Plan(
        window=window, config=config, gamma=cand.gamma, cost_scale=cand.scale,
        candidates=tuple(lines), evicted=tuple(evicted), excluded=tuple(excluded.iter_rows()),
        currently_deployed=tuple(current),
        expected={"reward_ucb": routing.objective, "cost_lcb": routing.cost,
                  "reward_mean": reward_mean, "cost_mean": cost_mean},
        over_budget=routing.over_budget, dropped=routing.dropped, logs=summary,
        notes=(*decision.notes, *extra, *_notes(config, routing, cost_mean, untried)),
        warnings=tuple(warnings), run_id=run_id(config, catalog, summary, decision.kept),
        segments=tables,
    )


def _deploy_explorable(cand: Candidates, config: PlanConfig, current: list[str],
                       queries: float, cells: SegmentCells | None = None) -> _Decision:
    """``_solve_deployment`` (the joint DeployOPT on the ``cells``, with --segments), again
    without the under-sampled models the stage cannot explore (``optimize.explore.refill``), so
    that their slots go to other models."""
    n_r, need = cand.n_r.astype(np.float64), float(config.min_samples)
    caps = deploy_caps(n_r, cand.a, config.canary_share, need, config.max_deployed)

    def one_table(u: NDArray[np.float64], now: NDArray[np.bool_] | None,
                  additions: int | None) -> Deployment:
        return solve_deploy(u, cand.c, caps, config.budget, config.max_deployed, config.solver,
                            config.allow_drop, current=now, max_changes=additions)

    deploy = one_table if cells is None else segment_deploy(cells, cand, config, caps)

    def solve(bounds: NDArray[np.float64]) -> tuple[NDArray[np.bool_], _Decision]:
        decision = _solve_deployment(cand, config, current, bounds, deploy)
        return decision.dep.chosen, decision

    decision, excluded, _, held = refill_one_newcomer(
        solve, cand.u, cand.c, n_r, cand.a, config.canary_share, need, queries,
        config.max_deployed, 0 if cells is None else len(cells.names), lambda d: d.dep.chosen)
    waiting = tuple(int(i) for i in np.flatnonzero(held))
    return replace(decision, unexplorable=tuple(int(i) for i in excluded), waiting=waiting,
                   cells=cells)


def _solve_deployment(cand: Candidates, config: PlanConfig, current: list[str],
                      u: NDArray[np.float64], deploy: Deploy) -> _Decision:
    """DeployOPT (``deploy``) on reward bounds ``u`` within --max-changes; where the limit
    changes the set, also the set it would choose without the limit (for the reasons and the
    note)."""
    if config.max_changes is None:
        return _Decision(deploy(u, None, None), current)
    now = np.isin(cand.names, current)
    kept = int(now.sum())
    allowed = change_allowance(config.max_changes, kept, len(current) - kept,
                               min(config.max_deployed, len(cand.names)))
    dep = deploy(u, now, allowed)
    unlimited = deploy(u, None, None)
    if unlimited.chosen.tolist() == dep.chosen.tolist():
        return _Decision(dep, current)
    added = int((dep.chosen & ~now).sum())
    refills = allowed - config.max_changes
    wanted = ", ".join(quote(cand.names[i], 40) for i in np.flatnonzero(unlimited.chosen))
    value = (f"optimistic value {unlimited.value:.4g} instead of {dep.value:.4g}"
             if unlimited.value - dep.value > 1e-9 else "the same optimistic value")
    note = (f"--max-changes {config.max_changes} binds: the plan adds {added} model(s) (at most "
            f"{allowed}" + (f", {refills} of them to replace deployed models that left the pool"
                            if refills else "") +
            f"); without the limit DeployOPT would deploy {wanted} ({value})")
    return _Decision(dep, current, unlimited, allowed, notes=(note,))


def _change_reasons(lines: list[ModelLine], cand: Candidates, decision: _Decision,
                    config: PlanConfig) -> list[ModelLine]:
    """Where --max-changes changed the set, each decision it touched says so."""
    if decision.unlimited is None:
        return lines
    limit = f"--max-changes {config.max_changes}"
    wanted = {cand.names[i] for i in np.flatnonzero(decision.unlimited.chosen)}
    added = sum(line.action == "add" for line in lines)
    reasons = {
        "keep": f"; kept by {limit} (without the limit it would be evicted)",
        "add": f"; added within {limit} ({added} of at most {decision.allowed} additions used)",
        "evict": f"; evicted within {limit} ({added} of at most {decision.allowed} additions used)",
    }
    out = []
    for line in lines:
        reason = line.reason
        if line.action == "idle" and line.model in wanted:
            reason = (f"not added: {limit} allows {decision.allowed} addition(s) (without the "
                      "limit it would be deployed)")
        elif line.action in ("add", "evict") or (line.action == "keep" and line.model not in wanted):
            reason += reasons[line.action]
        out.append(replace(line, reason=reason))
    return out


def make_routing_plan(logs: str | Path, catalog_path: str | Path, config: PlanConfig,
                      feedback: str | Path | None = None,
                      progress: Callable[[str], None] | None = None,
                      history: str | Path | None = None) -> Plan:
    """Re-solve only the routing table of the deployment in place (``plan --routing-only``).

    The deployment is ``config.deployed`` or the ``deployment`` of the plan JSON
    ``config.previous``. No DeployOPT is solved: each of its models that is still available is
    kept (the others are dropped with a warning), nothing is added or evicted; the table comes
    from the latest statistics, by the function that makes a full plan's table.

    Raises:
        StagerouteError: as ``make_plan``; also an unreadable or invalid previous plan, and
            InfeasibleError when none of the deployment's models is available any more.
    """
    if not config.routing_only:
        raise ValueError("make_routing_plan needs a config with routing_only=True")
    say = progress or (lambda _: None)
    require_solver(config.solver)
    given = read_previous(config.previous) if config.previous is not None else None
    catalog, catalog_notes, summary, pool, excluded = _load(logs, catalog_path, config, feedback, say)
    cand = candidates(pool, summary, config, catalog.height)
    if given is None:  # --deployed: checked against the catalog as for a full plan
        given = tuple(_currently_deployed(config, summary, catalog))
    kept, dropped = still_available(given, cand.names, excluded, _origin(config), config.max_deployed)
    dropped = (*dropped, *check_not_planned(history, run_id(config, catalog, summary, tuple(kept))))
    say(f"re-solving the routing table of the {len(kept)} deployed models (no DeployOPT)")
    dep = deployment_on(cand.u, cand.c, cand.a, config.budget, np.isin(cand.names, kept),
                        config.allow_drop)
    cells = None if summary.cells is None else segment_cells(summary, cand, config)
    note = (f"routing refresh (--routing-only): the {len(kept)} models of {_origin(config)} are "
            f"kept and only the routing table{' is' if cells is None else 's per segment are'} "
            "re-solved; no model is added or evicted")
    decision = _Decision(dep, kept, notes=(note,), warnings=dropped, kept=tuple(kept), cells=cells)
    return _assemble(config, cand, decision, catalog, catalog_notes, summary, excluded)


def _origin(config: PlanConfig) -> str:
    return "--deployed" if config.previous is None else f"the previous plan {config.previous}"


def _notes(config: PlanConfig, routing: Routing, cost_mean: float | None,
           untried: list[str]) -> list[str]:
    """What the report says about the table: untried models, the budget under bounds and means."""
    notes = []
    if untried:
        notes.append(
            "no plain-mean expectation: the table routes traffic to untried model(s) "
            f"{', '.join(quote(m, 40) for m in untried)}, whose means are unknown until they serve"
        )
    if routing.over_budget:
        notes.append(
            f"over budget: no mixture of the deployed models meets {config.budget:.6g} even with "
            f"the cost lower bounds; the cheapest one costs {routing.cost:.6g} per request"
        )
    elif cost_mean is not None and cost_mean > config.budget * (1 + 1e-9):
        notes.append(
            f"under the plain means this table costs {cost_mean:.6g} per request, above the budget "
            f"{config.budget:.6g}: the cost bounds are still optimistic; it tightens as data arrives"
        )
    return notes


def plan_document(plan: Plan) -> dict[str, Any]:
    """The JSON document of SPEC 7 (fixed keys first, then extras)."""
    cfg = plan.config
    return {
        "schema_version": SCHEMA_VERSION,
        "window": {"start": iso_utc(plan.window.start), "end": iso_utc(plan.window.end)},
        "budget": json_number(cfg.budget),
        "max_deployed": cfg.max_deployed,
        "solver": str(cfg.solver),
        "deployment": [
            {"model": m.model, "action": m.action, "n": m.n_reward,
             "mean_reward": json_number(m.mean_reward), "reward_ucb": json_number(m.reward_ucb),
             "mean_cost": json_number(m.mean_cost), "cost_lcb": json_number(m.cost_lcb),
             "n_cost": m.n_cost, "cost_bound": m.cost_bound, "reason": m.reason}
            for m in plan.deployment
        ],
        "evicted": [{"model": m, "reason": r} for m, r in plan.evicted],
        "routing": routing_rows(plan),
        "expected": {k: json_number(v) for k, v in plan.expected.items()},
        "over_budget": plan.over_budget,
        "routing_only": cfg.routing_only,
        "max_changes": cfg.max_changes,
        "run_id": plan.run_id or None,
        "dropped": json_number(plan.dropped),
        "excluded": [{"model": m, "reason": r} for m, r in plan.excluded],
        "currently_deployed": list(plan.currently_deployed),
        "gamma": json_number(plan.gamma),
        "radius": str(cfg.radius),
        "cost_gamma": json_number(cfg.resolve_cost_gamma(plan.gamma)),
        "budget_safe": cfg.budget_safe,
        "canary_share": json_number(cfg.canary_share),
        "min_samples": cfg.min_samples,
        "cost_scale": json_number(plan.cost_scale),
        "drift": {"window": format_duration(cfg.drift.window) if cfg.drift.window else None,
                  "half_life": format_duration(cfg.drift.half_life) if cfg.drift.half_life else None},
        "logs": {"rows": plan.logs.rows, "rows_used": plan.logs.rows_used,
                 "first": iso_utc(plan.logs.first_seen), "last": iso_utc(plan.logs.last_seen),
                 "cost_source": plan.logs.cost_source, "source": plan.logs.source,
                 "unknown_models": dict(plan.logs.unknown.iter_rows())},
        "candidates": [
            {"model": m.model, "n": m.n_reward, "mean_reward": json_number(m.mean_reward),
             "reward_ucb": json_number(m.reward_ucb), "mean_cost": json_number(m.mean_cost),
             "cost_lcb": json_number(m.cost_lcb), "action": m.action, "reason": m.reason}
            for m in plan.candidates
        ],
        "notes": list(plan.notes),
        "warnings": list(plan.warnings),
        **({} if plan.segments is None else {"segments": {
            s: json_number(float(w)) for s, w in zip(plan.segments.names, plan.segments.shares,
                                                     strict=True)}}),
    }


def over_budget_error(plan: Plan, shown: bool) -> InfeasibleError:
    """The error for a plan whose budget cannot be met (``shown``: the table was printed)."""
    return InfeasibleError(
        f"budget {plan.config.budget:.6g} cannot be met: even the cheapest mixture of the available "
        f"models costs {plan.expected['cost_lcb']:.6g} per request under the cost lower bounds "
        f"({'shown above, not written' if shown else 'not written'}); raise --budget, pass "
        "--allow-drop to refuse part of the traffic, or --allow-over-budget to accept the "
        "cheapest plan"
    )
