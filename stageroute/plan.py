"""The plan for the next stage: logs + catalog -> bounds -> DeployOPT -> RouteOPT -> Plan."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from stageroute.config import SharedConfig
from stageroute.estimate.bounds import cost_lcb, reward_ucb
from stageroute.inputs.catalog import Window, load_catalog, split_pool
from stageroute.optimize.deploy import solve_deploy
from stageroute.errors import BadDataError, InfeasibleError, UsageError
from stageroute.inputs.logs import LogSummary, summarise_logs
from stageroute.options import Radius, Solver
from stageroute.render.output import iso_utc, json_number
from stageroute.optimize.route import cost_unit, solve_route_pyomo
from stageroute.optimize.solver import require_solver
from stageroute.estimate.stats import variance

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanConfig(SharedConfig):
    """Everything ``make_plan`` needs besides the inputs; validated on construction."""

    as_of: dt.datetime
    stage_length: dt.timedelta = dt.timedelta(days=7)
    deployed: tuple[str, ...] | None = None
    canary_share: float | None = None
    min_samples: int = 30
    strict: bool = False
    full_check: bool = False

    def __post_init__(self) -> None:
        SharedConfig.__post_init__(self)
        if self.relative_budget:
            raise UsageError("plan takes --budget in currency per request, not a relative budget")
        if self.as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        if self.stage_length <= dt.timedelta(0):
            raise UsageError(f"--stage-length must be positive, got {self.stage_length}; give e.g. 7d")
        _check_calendar(self.as_of, self.stage_length)
        if self.canary_share is not None and not 0 < self.canary_share <= 1:
            raise UsageError(f"--canary-share must be in (0, 1], got {self.canary_share!r}; give "
                             "e.g. --canary-share 0.1")
        if not 0 <= self.min_samples <= MAX_MIN_SAMPLES:
            raise UsageError(f"--min-samples must be an integer in [0, {MAX_MIN_SAMPLES:,}], got "
                             f"{self.min_samples}; give e.g. --min-samples 30")


MAX_MIN_SAMPLES = 2**62  # compared with int64 counts


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


def _price_prior(pool: pl.DataFrame, summary: LogSummary) -> np.ndarray:
    """Expected cost of a request from list prices and the log's typical token counts."""
    if summary.mean_input_tokens is None or summary.mean_output_tokens is None:
        return np.full(pool.height, np.nan)
    est = (
        pool["usd_per_mtok_in"].to_numpy() * summary.mean_input_tokens
        + pool["usd_per_mtok_out"].to_numpy() * summary.mean_output_tokens
    ) / 1e6
    return np.asarray(est, dtype=np.float64)


def make_plan(logs: str | Path, catalog_path: str | Path, config: PlanConfig,
              feedback: str | Path | None = None,
              progress: Callable[[str], None] | None = None) -> Plan:
    """Plan the stage that starts at ``config.as_of``.

    Raises:
        StagerouteError: subclasses for bad or missing input, a missing solver, infeasibility.
    """
    say = progress or (lambda _: None)
    require_solver(config.solver)
    catalog = load_catalog(catalog_path)
    window = Window(config.as_of, config.as_of + config.stage_length)
    say(f"scanning logs {logs}")
    summary = summarise_logs(logs, catalog, config.as_of, feedback, config.strict,
                             recent=config.stage_length, full_check=config.full_check)
    pool, excluded = split_pool(catalog, window)
    if pool.height == 0:
        raise BadDataError(
            f"catalog {catalog_path} has no model available for the stage "
            f"{window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC "
            "(none released by its start and not retired before its end); check --as-of"
        )
    stats = _pool_stats(pool, summary)
    n_r = stats["n_reward"].to_numpy()
    n_c = stats["n_cost"].to_numpy()
    prior = _price_prior(stats, summary)
    gamma = config.resolve_gamma(catalog.height, summary.rows_used)
    observed_scale = summary.cost_p999 if summary.cost_p999 else None
    scale = config.cost_scale or observed_scale or (np.nanmax(prior) if np.isfinite(prior).any() else None)
    scale = float(scale) if scale and scale > 0 else 1.0
    mean_r = stats["mean_reward"].to_numpy()
    mean_c = stats["mean_cost"].to_numpy()
    u = reward_ucb(mean_r, variance(stats, "reward"), n_r, gamma, config.radius)
    c = cost_lcb(mean_c, variance(stats, "cost"), n_c, gamma, scale, config.radius,
                 lo=config.cost_clip[0], hi=config.cost_clip[1], untried=prior)
    a = stats["max_share"].to_numpy().astype(np.float64)
    if config.canary_share is not None:
        a = np.where(n_r < config.min_samples, np.minimum(a, config.canary_share), a)

    say(f"solving DeployOPT over {u.size} candidates with {config.solver}")
    dep = solve_deploy(u, c, a, config.budget, config.max_deployed, config.solver, config.allow_drop)
    chosen, routing = dep.chosen, dep.routing
    # Cross-check the exact solver against the Pyomo LP on the chosen solver: the table must be
    # optimal there too (ties may differ; the exact solver breaks them by model id).
    reference = solve_route_pyomo(u[chosen], c[chosen], a[chosen], config.budget,
                                  config.solver, config.allow_drop)
    cross_check = None
    # Over budget, the objective is the cost (the reward tie-break is ill-conditioned for a
    # solver with a 1e-7 feasibility slack); otherwise, the expected reward bound.
    unit = cost_unit(c, config.budget)
    agree = reference.over_budget == routing.over_budget and (
        abs(reference.cost - routing.cost) <= 1e-6 * unit if routing.over_budget
        else abs(reference.objective - routing.objective) <= 1e-6)
    if not agree:
        cross_check = (
            f"cross-check: {config.solver}'s RouteOPT optimum is {reference.objective:.9g} "
            f"(over budget: {reference.over_budget}), the exact solver's {routing.objective:.9g} "
            f"(over budget: {routing.over_budget}); the exact table is used. Please report this."
        )
    prob = np.zeros(u.size)
    prob[chosen] = routing.probability

    current = _currently_deployed(config, summary, catalog)
    names = stats["model"].to_list()
    lines = []
    for i, name in enumerate(names):
        deployed = bool(chosen[i])
        action = ("keep" if name in current else "add") if deployed else (
            "evict" if name in current else "idle")
        if deployed and prob[i] > 0:
            reason = "optimal mixture"
        elif deployed:
            reason = "exploration slot (untried)" if n_r[i] == 0 else "free slot (next-best UCB)"
        else:
            reason = "not selected: another set has a higher optimistic value"
        bound = "observed" if n_c[i] > 0 else ("price" if np.isfinite(prior[i]) else "floor")
        lines.append(ModelLine(
            model=name, n_reward=int(n_r[i]), n_cost=int(n_c[i]),
            mean_reward=float(mean_r[i]) if n_r[i] else None, reward_ucb=float(u[i]),
            mean_cost=float(mean_c[i]) if n_c[i] else None, cost_lcb=float(c[i]),
            cost_bound=bound, max_share=float(a[i]), deployed=deployed, action=action,
            probability=float(prob[i]), reason=reason,
        ))
    lines.sort(key=lambda line: (not line.deployed, -line.probability, line.model))
    excluded_reasons = dict(excluded.iter_rows())
    evicted = [(line.model, line.reason) for line in lines if line.action == "evict"]
    for name in current:
        if name not in names:
            evicted.append((name, excluded_reasons.get(name, "not in the catalog")))

    served = prob > 0
    reward_mean = float(prob @ np.nan_to_num(mean_r)) if np.all(n_r[served] > 0) else None
    cost_mean = float(prob @ np.nan_to_num(mean_c)) if np.all(n_c[served] > 0) else None
    notes = []
    untried = [names[i] for i in np.flatnonzero(served & ((n_r == 0) | (n_c == 0)))]
    if untried:
        notes.append(
            "no plain-mean expectation: the table routes traffic to untried model(s) "
            f"{', '.join(untried)}, whose means are unknown until they serve"
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
    warnings = [cross_check] if cross_check else []
    if summary.unknown.height:
        listed = ", ".join(f"{m!r} ({r} rows)" for m, r in summary.unknown.iter_rows())
        warnings.append(f"ignored log rows of models not in the catalog: {listed}")
    plan = Plan(
        window=window, config=config, gamma=gamma, cost_scale=scale, candidates=tuple(lines),
        evicted=tuple(evicted), excluded=tuple(excluded.iter_rows()),
        currently_deployed=tuple(current),
        expected={"reward_ucb": routing.objective, "cost_lcb": routing.cost,
                  "reward_mean": reward_mean, "cost_mean": cost_mean},
        over_budget=routing.over_budget, dropped=routing.dropped, logs=summary, notes=tuple(notes),
        warnings=tuple(warnings),
    )
    digest = _input_digest(config, window, catalog, summary)
    return Plan(**{**{f: getattr(plan, f) for f in plan.__dataclass_fields__}, "run_id":
                   f"{window.start:%Y%m%dT%H%M}-{digest}"})


def _input_digest(config: PlanConfig, window: Window, catalog: pl.DataFrame,
                  summary: LogSummary) -> str:
    """A digest of what the plan was computed from: options, window, catalog, log statistics.

    The statistics are a fingerprint of every log row used; hashing the files themselves would
    cost a second pass over the logs.
    """
    h = hashlib.sha256()
    options = {f: str(getattr(config, f)) for f in config.__dataclass_fields__}
    h.update(json.dumps({"options": options, "window": [str(window.start), str(window.end)]},
                        sort_keys=True).encode())
    for frame in (catalog, summary.stats, summary.unknown):
        h.update(frame.write_csv(float_precision=12).encode())
    h.update(repr((summary.rows, summary.cost_p999, summary.mean_input_tokens,
                   summary.mean_output_tokens)).encode())
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
             "max_share": json_number(m.max_share)}
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
