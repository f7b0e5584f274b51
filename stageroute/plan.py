"""The plan for the next stage: logs + catalog -> bounds -> DeployOPT -> RouteOPT -> Plan."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from stageroute.config import SharedConfig
from stageroute.errors import BadDataError, InfeasibleError, UsageError
from stageroute.estimate.bounds import cost_lcb, reward_ucb
from stageroute.estimate.prior import price_cost, typical_tokens
from stageroute.estimate.stats import variance
from stageroute.inputs.catalog import Window, read_catalog, split_pool
from stageroute.inputs.files import quote
from stageroute.inputs.logs import LogSummary, summarise_logs
from stageroute.inputs.sanity import check_sufficient, listing
from stageroute.optimize.deploy import Deployment, preference_order, solve_deploy
from stageroute.optimize.explore import Table, deploy_caps, explorable, solve_table
from stageroute.optimize.route import Routing, cost_unit, solve_route_pyomo
from stageroute.optimize.solver import require_solver
from stageroute.render.output import iso_utc, json_number

SCHEMA_VERSION = 1
# An observed cost scale below this cannot normalise costs (its square underflows to 0): the
# costs are then all but zero, and the scale falls back as if none had been observed.
MIN_OBSERVED_SCALE = 1e-100


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

    def __post_init__(self) -> None:
        SharedConfig.__post_init__(self)
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

    @property
    def window(self) -> Window:
        """The stage to plan: [as_of, as_of + stage_length)."""
        return Window(self.as_of, self.as_of + self.stage_length)


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

    @property
    def deployment(self) -> tuple[ModelLine, ...]:
        return tuple(line for line in self.candidates if line.deployed)


def _pool_stats(pool: pl.DataFrame, summary: LogSummary) -> pl.DataFrame:
    joined = pool.join(summary.stats, on="model", how="left")
    return joined.with_columns(pl.col("n_reward", "n_cost").fill_null(0)).sort("model")


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


def _price_prior(stats: pl.DataFrame, summary: LogSummary) -> tuple[NDArray[np.float64], str]:
    """Expected cost of a request per pool model from list prices and typical tokens, and where
    the tokens came from: the logs' token counts, else the tried models' cost / price ratios
    (``estimate.prior``).

    Raises:
        BadDataError: the arithmetic overflows (huge prices times huge token counts).
    """
    p_in = stats["usd_per_mtok_in"].to_numpy().astype(np.float64)
    p_out = stats["usd_per_mtok_out"].to_numpy().astype(np.float64)
    if summary.mean_input_tokens is not None and summary.mean_output_tokens is not None:
        tokens: tuple[float, float] | None = (summary.mean_input_tokens, summary.mean_output_tokens)
        source = "the logs' token counts"
    else:
        tokens = typical_tokens(stats["mean_cost"].to_numpy().astype(np.float64),
                                stats["n_cost"].to_numpy().astype(np.float64), p_in, p_out)
        source = "tried models' cost / list price"
    est = price_cost(p_in, p_out, tokens)
    overflow = np.flatnonzero(np.isfinite(p_in) & np.isfinite(p_out) & ~np.isfinite(est))
    if overflow.size and tokens is not None:
        i = int(overflow[0])
        raise BadDataError(
            f"catalog prices of model {quote(stats['model'][i])} (usd_per_mtok_in {p_in[i]:g}, "
            f"usd_per_mtok_out {p_out[i]:g}) times the typical tokens per request "
            f"({tokens[0]:g} in, {tokens[1]:g} out, from {source}) overflow; check that model's "
            "prices and the logs' token counts or costs"
        )
    return est, source


@dataclass(frozen=True, slots=True)
class _Candidates:
    """The stage's pool with its statistics and bounds, one entry per model (sorted by id)."""

    names: list[str]
    n_r: NDArray[np.int64]
    n_c: NDArray[np.int64]
    mean_r: NDArray[np.float64]
    mean_c: NDArray[np.float64]
    u: NDArray[np.float64]  # reward UCB
    c: NDArray[np.float64]  # cost LCB
    a: NDArray[np.float64]  # max_share
    prior: NDArray[np.float64]  # price-based cost of an untried model (NaN: unknown)
    prior_source: str  # where the typical tokens of the price-based cost came from
    gamma: float
    scale: float


def _candidates(pool: pl.DataFrame, summary: LogSummary, config: PlanConfig,
                n_models: int) -> _Candidates:
    """Bounds of every pool model from the log statistics (SPEC 2)."""
    stats = _pool_stats(pool, summary)
    n_r = stats["n_reward"].to_numpy()
    n_c = stats["n_cost"].to_numpy()
    prior, prior_source = _price_prior(stats, summary)
    gamma = config.resolve_gamma(n_models, summary.rows_used)
    observed_scale = summary.cost_p999 if (summary.cost_p999 or 0) >= MIN_OBSERVED_SCALE else None
    priced = float(np.nanmax(prior)) if np.isfinite(prior).any() else 0.0
    scale = config.cost_scale or observed_scale or (priced if priced >= MIN_OBSERVED_SCALE else None)
    scale = float(scale) if scale and scale > 0 else 1.0
    mean_r = stats["mean_reward"].to_numpy()
    mean_c = stats["mean_cost"].to_numpy()
    u = reward_ucb(mean_r, variance(stats, "reward"), n_r, gamma, config.radius)
    c = cost_lcb(mean_c, variance(stats, "cost"), n_c, config.resolve_cost_gamma(gamma), scale,
                 config.radius, lo=config.cost_clip[0], hi=config.cost_clip[1], untried=prior,
                 upper=config.budget_safe)
    a = stats["max_share"].to_numpy().astype(np.float64)
    return _Candidates(stats["model"].to_list(), n_r, n_c, mean_r, mean_c, u, c, a, prior,
                       prior_source, gamma, scale)


def _cross_check(cand: _Candidates, chosen: NDArray[np.bool_], table: Table,
                 config: PlanConfig) -> str | None:
    """The exact table must be optimal for the Pyomo LP (same caps and floors) on the chosen
    solver too (ties may differ; the exact solver breaks them by model id). Over budget the
    objective is the cost (the reward tie-break is ill-conditioned for a solver with a 1e-7
    feasibility slack)."""
    routing = table.routing
    reference = solve_route_pyomo(cand.u[chosen], cand.c[chosen], table.cap, config.budget,
                                  config.solver, config.allow_drop, floor=table.floor)
    unit = cost_unit(cand.c, config.budget)
    agree = reference.over_budget == routing.over_budget and (
        abs(reference.cost - routing.cost) <= 1e-6 * unit if routing.over_budget
        else abs(reference.objective - routing.objective) <= 1e-6)
    if agree:
        return None
    return (f"cross-check: {config.solver}'s RouteOPT optimum is {reference.objective:.9g} "
            f"(over budget: {reference.over_budget}), the exact solver's {routing.objective:.9g} "
            f"(over budget: {routing.over_budget}); the exact table is used. Please report this.")


def stage_queries(summary: LogSummary, config: PlanConfig) -> float:
    """Requests expected in the planned stage: the log's average rate over its span."""
    if summary.first_seen is None or summary.last_seen is None or summary.rows_used == 0:
        return 0.0
    span = (summary.last_seen - summary.first_seen).total_seconds()
    stage = config.stage_length.total_seconds()
    return float(summary.rows_used) if span <= 0 else summary.rows_used * min(stage / span, 1e12)


def _stage_table(cand: _Candidates, dep: Deployment, config: PlanConfig, queries: float,
                 ) -> tuple[NDArray[np.bool_], list[int], Table]:
    """The deployed set without under-sampled models that the stage cannot explore, and its
    exploration-aware table (``optimize.explore``): (set mask, dropped pool indices, table)."""
    order = [int(i) for i in preference_order(cand.u, cand.c) if dep.chosen[i]]
    kept, dropped = explorable(np.array(order, dtype=np.int64), cand.n_r.astype(np.float64),
                               cand.a, config.canary_share, float(config.min_samples), queries)
    chosen = np.zeros(cand.u.size, dtype=bool)
    chosen[kept] = True
    table = solve_table(cand.u[chosen], cand.c[chosen], cand.a[chosen],
                        cand.n_r[chosen].astype(np.float64), config.budget, config.canary_share,
                        float(config.min_samples), queries, config.allow_drop)
    return chosen, [int(i) for i in dropped], table


def _reasons(cand: _Candidates, chosen: NDArray[np.bool_], prob: NDArray[np.float64],
             unexplorable: list[int], table: Table, config: PlanConfig, queries: float,
             ) -> dict[int, str]:
    """Why each pool model is (not) deployed and gets its share of the table."""
    reasons = {}
    floors = np.zeros(cand.u.size)
    floors[chosen] = table.floor
    need = config.min_samples
    for i in range(cand.u.size):
        under = cand.n_r[i] < need and config.canary_share < 1
        if i in unexplorable:
            reasons[i] = (f"not deployed: fewer than {need} rewards, and the exploration share "
                          f"{config.canary_share:g} cannot give it the {need - cand.n_r[i]} "
                          f"requests it needs in the stage (~{queries:,.0f} expected)")
        elif chosen[i] and under and floors[i] == 0 and prob[i] == 0:
            reasons[i] = (f"exploration slot: {cand.n_r[i]} of {need} rewards, but its minimum "
                          "traffic would break the budget that the table meets without it")
        elif chosen[i] and under:
            reasons[i] = (f"exploration: {cand.n_r[i]} of {need} rewards; at least "
                          f"{floors[i]:.3g} of traffic (~{floors[i] * queries:,.0f} requests), "
                          f"the under-sampled models sharing at most {config.canary_share:g}")
        elif chosen[i] and prob[i] > 0:
            reasons[i] = "optimal mixture"
        elif chosen[i]:
            reasons[i] = ("standby: the optimal table gives it no traffic; a routing refresh "
                          "(plan --routing-only) can, as the bounds move" if cand.n_r[i] > 0 else
                          "exploration slot (untried): the table gives it no traffic")
        else:
            reasons[i] = "not selected: another set has a higher optimistic value"
    return reasons


def _model_lines(cand: _Candidates, chosen: NDArray[np.bool_], prob: NDArray[np.float64],
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
            model=name, n_reward=int(cand.n_r[i]), n_cost=int(cand.n_c[i]),
            mean_reward=float(cand.mean_r[i]) if cand.n_r[i] else None,
            reward_ucb=float(cand.u[i]),
            mean_cost=float(cand.mean_c[i]) if cand.n_c[i] else None, cost_lcb=float(cand.c[i]),
            cost_bound=bound, max_share=float(cand.a[i]), cap=float(caps[i]), deployed=deployed,
            action=action,
            probability=float(prob[i]), reason=reasons[i],
        ))
    lines.sort(key=lambda line: (not line.deployed, -line.probability, line.model))
    return lines


def _load(logs: str | Path, catalog_path: str | Path, config: PlanConfig,
          feedback: str | Path | None, say: Callable[[str], None],
          ) -> tuple[pl.DataFrame, tuple[str, ...], LogSummary, pl.DataFrame, pl.DataFrame]:
    """Catalog, log summary (checked for sanity), the stage's pool and the excluded models."""
    catalog, catalog_notes = read_catalog(catalog_path)
    window = config.window
    say(f"scanning logs {logs}")
    summary = summarise_logs(logs, catalog, config.as_of, feedback, config.strict,
                             recent=config.stage_length, full_check=config.full_check)
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
              progress: Callable[[str], None] | None = None) -> Plan:
    """Plan the stage that starts at ``config.as_of``.

    Raises:
        StagerouteError: subclasses for bad or missing input, a missing solver, infeasibility.
    """
    say = progress or (lambda _: None)
    require_solver(config.solver)
    catalog, catalog_notes, summary, pool, excluded = _load(logs, catalog_path, config, feedback, say)
    window = config.window
    cand = _candidates(pool, summary, config, catalog.height)
    say(f"solving DeployOPT over {cand.u.size} candidates with {config.solver}")
    caps = deploy_caps(cand.n_r.astype(np.float64), cand.a, config.canary_share,
                       float(config.min_samples))
    dep = solve_deploy(cand.u, cand.c, caps, config.budget, config.max_deployed, config.solver,
                       config.allow_drop)
    queries = stage_queries(summary, config)
    chosen, unexplorable, table = _stage_table(cand, dep, config, queries)
    cross_check = _cross_check(cand, chosen, table, config)
    routing = table.routing
    prob = np.zeros(cand.u.size)
    prob[chosen] = routing.probability
    current = _currently_deployed(config, summary, catalog)
    caps = cand.a.copy()
    caps[chosen] = table.cap
    lines = _model_lines(cand, chosen, prob, caps, current,
                         _reasons(cand, chosen, prob, unexplorable, table, config, queries))
    excluded_reasons = dict(excluded.iter_rows())
    evicted = [(line.model, line.reason) for line in lines if line.action == "evict"]
    evicted += [(name, excluded_reasons.get(name, "not in the catalog"))
                for name in current if name not in cand.names]
    served = prob > 0
    reward_mean = float(prob @ np.nan_to_num(cand.mean_r)) if np.all(cand.n_r[served] > 0) else None
    cost_mean = float(prob @ np.nan_to_num(cand.mean_c)) if np.all(cand.n_c[served] > 0) else None
    untried = [cand.names[i] for i in np.flatnonzero(served & ((cand.n_r == 0) | (cand.n_c == 0)))]
    warnings = [*catalog_notes, *summary.notes, *([cross_check] if cross_check else [])]
    if summary.unknown.height:
        warnings.append(f"ignored log rows of models not in the catalog: {listing(summary.unknown, 5)}")
    digest = _input_digest(config, window, catalog, summary)
    return Plan(
        window=window, config=config, gamma=cand.gamma, cost_scale=cand.scale,
        candidates=tuple(lines), evicted=tuple(evicted), excluded=tuple(excluded.iter_rows()),
        currently_deployed=tuple(current),
        expected={"reward_ucb": routing.objective, "cost_lcb": routing.cost,
                  "reward_mean": reward_mean, "cost_mean": cost_mean},
        over_budget=routing.over_budget, dropped=routing.dropped, logs=summary,
        notes=tuple(_notes(config, routing, cost_mean, untried)), warnings=tuple(warnings),
        run_id=f"{window.start:%Y%m%dT%H%M}-{digest}",
    )


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


def _input_digest(config: PlanConfig, window: Window, catalog: pl.DataFrame,
                  summary: LogSummary) -> str:
    """A digest of what the plan was computed from: options, window, catalog, log statistics.

    The statistics are a fingerprint of every log row used; hashing the files themselves would
    cost a second pass over the logs. Floats enter with 9 significant digits: a parallel sum's
    last bits depend on the number of threads, and the run id must not.
    """
    h = hashlib.sha256()
    options = {f: str(getattr(config, f)) for f in config.__dataclass_fields__}
    h.update(json.dumps({"options": options, "window": [str(window.start), str(window.end)]},
                        sort_keys=True).encode())
    for frame in (catalog, summary.stats, summary.unknown):
        h.update(frame.with_columns(pl.col(pl.Float64).round_sig_figs(9)).write_csv().encode())
    figures = (summary.cost_p999, summary.mean_input_tokens, summary.mean_output_tokens)
    h.update(repr((summary.rows, *(None if x is None else f"{x:.9g}" for x in figures))).encode())
    return h.hexdigest()[:12]


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
        "routing": [
            {"model": m.model, "probability": json_number(m.probability),
             "max_share": json_number(m.max_share), "cap": json_number(m.cap)}
            for m in plan.deployment
        ],
        "expected": {k: json_number(v) for k, v in plan.expected.items()},
        "over_budget": plan.over_budget,
        "run_id": plan.run_id or None,
        "dropped": json_number(plan.dropped),
        "excluded": [{"model": m, "reason": r} for m, r in plan.excluded],
        "currently_deployed": list(plan.currently_deployed),
        "gamma": json_number(plan.gamma),
        "radius": str(cfg.radius),
        "cost_scale": json_number(plan.cost_scale),
        "logs": {"rows": plan.logs.rows, "rows_used": plan.logs.rows_used,
                 "first": iso_utc(plan.logs.first_seen), "last": iso_utc(plan.logs.last_seen),
                 "cost_source": plan.logs.cost_source,
                 "unknown_models": dict(plan.logs.unknown.iter_rows())},
        "candidates": [
            {"model": m.model, "n": m.n_reward, "mean_reward": json_number(m.mean_reward),
             "reward_ucb": json_number(m.reward_ucb), "mean_cost": json_number(m.mean_cost),
             "cost_lcb": json_number(m.cost_lcb), "action": m.action, "reason": m.reason}
            for m in plan.candidates
        ],
        "notes": list(plan.notes),
        "warnings": list(plan.warnings),
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
