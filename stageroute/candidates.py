"""The stage's candidates: the pool's statistics and bounds, and the routing table on a set.

``plan`` (full or ``--routing-only``) builds ``Candidates`` from the log summary, DeployOPT picks
a set, and ``stage_table`` gives that set its exploration-aware table (``optimize.explore``) with
the reason for every model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import polars as pl
from numpy.typing import NDArray

from stageroute.errors import BadDataError
from stageroute.estimate.bounds import cost_lcb, reward_ucb
from stageroute.estimate.prior import price_cost, typical_tokens
from stageroute.estimate.stats import variance
from stageroute.inputs.files import quote
from stageroute.inputs.logs import LogSummary
from stageroute.optimize.deploy import preference_order
from stageroute.optimize.explore import Table, explorable, solve_table
from stageroute.optimize.route import cost_unit, solve_route_pyomo

if TYPE_CHECKING:
    from stageroute.plan import PlanConfig

# An observed cost scale below this cannot normalise costs (its square underflows to 0): the
# costs are then all but zero, and the scale falls back as if none had been observed.
MIN_OBSERVED_SCALE = 1e-100


def pool_stats(pool: pl.DataFrame, summary: LogSummary) -> pl.DataFrame:
    joined = pool.join(summary.stats, on="model", how="left")
    return joined.with_columns(pl.col("n_reward", "n_cost").fill_null(0)).sort("model")


def price_prior(stats: pl.DataFrame, summary: LogSummary) -> tuple[NDArray[np.float64], str]:
    """Expected cost of a request per pool model from list prices and typical tokens, and where
    the tokens came from: the logs' token counts, else the tried models' cost / price ratios
    (``estimate.prior``).

    Raises:
        BadDataError: the arithmetic overflows (huge prices times huge token counts).
    """
    p_in = stats["usd_per_mtok_in"].to_numpy().astype(np.float64)
    p_out = stats["usd_per_mtok_out"].to_numpy().astype(np.float64)
    untried = bool((stats["n_cost"] == 0).any())  # only an untried model is priced from tokens
    mean_in, mean_out = summary.tokens.value if untried else (None, None)
    if mean_in is not None and mean_out is not None:
        tokens: tuple[float, float] | None = (mean_in, mean_out)
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
class Candidates:
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


def candidates(pool: pl.DataFrame, summary: LogSummary, config: PlanConfig,
                n_models: int) -> Candidates:
    """Bounds of every pool model from the log statistics (SPEC 2)."""
    stats = pool_stats(pool, summary)
    n_r = stats["n_reward"].to_numpy()
    n_c = stats["n_cost"].to_numpy()
    prior, prior_source = price_prior(stats, summary)
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
    return Candidates(stats["model"].to_list(), n_r, n_c, mean_r, mean_c, u, c, a, prior,
                       prior_source, gamma, scale)


def cross_check(cand: Candidates, chosen: NDArray[np.bool_], table: Table,
                 config: PlanConfig) -> str | None:
    """The exact table must be optimal for the Pyomo LP (same caps and floors) on the chosen
    solver too (ties may differ; the exact solver breaks them by model id). Over budget the
    objective is the cost (the reward tie-break is ill-conditioned for a solver with a 1e-7
    feasibility slack)."""
    routing = table.routing
    reference = solve_route_pyomo(cand.u[chosen], cand.c[chosen], table.cap, config.budget,
                                  config.solver, config.allow_drop, floor=table.floor)
    return disagreement(reference, routing, cost_unit(cand.c, config.budget),
                        f"{config.solver}'s RouteOPT", "table")


class Solved(Protocol):
    """What a cross-check compares of a table (``Routing``, ``JointRouting``)."""

    @property
    def objective(self) -> float: ...

    @property
    def cost(self) -> float: ...

    @property
    def over_budget(self) -> bool: ...


def disagreement(reference: Solved, exact: Solved, unit: float, solver: str,
                 what: str) -> str | None:
    """The warning when the solver's optimum differs from the exact one (by more than 1e-6, in
    cost units ``unit`` over budget), else None."""
    agree = reference.over_budget == exact.over_budget and (
        abs(reference.cost - exact.cost) <= 1e-6 * unit if exact.over_budget
        else abs(reference.objective - exact.objective) <= 1e-6)
    if agree:
        return None
    return (f"cross-check: {solver} optimum is {reference.objective:.9g} "
            f"(over budget: {reference.over_budget}), the exact solver's {exact.objective:.9g} "
            f"(over budget: {exact.over_budget}); the exact {what} is used. Please report this.")


def stage_queries(summary: LogSummary, config: PlanConfig) -> float:
    """Requests expected in the planned stage: the log's average rate over its span.

    A log spanning less than a tenth of a stage (rows that share a timestamp, a burst) says
    little about the rate: it counts as one stage's traffic, not as a rate scaled up.
    """
    if summary.first_seen is None or summary.last_seen is None or summary.rows_used == 0:
        return 0.0
    span = (summary.last_seen - summary.first_seen).total_seconds()
    stage = config.stage_length.total_seconds()
    if span < stage / 10:
        return float(summary.rows_used)
    return summary.rows_used * stage / span


def stage_table(cand: Candidates, deployed: NDArray[np.bool_], config: PlanConfig,
                 queries: float, drop: bool = True) -> tuple[NDArray[np.bool_], list[int], Table]:
    """The deployed set without under-sampled models that the stage cannot explore (``drop``;
    a routing refresh keeps every model), and its exploration-aware table
    (``optimize.explore``): (set mask, dropped pool indices, table)."""
    order = [int(i) for i in preference_order(cand.u, cand.c) if deployed[i]]
    kept, dropped = explorable(np.array(order, dtype=np.int64), cand.n_r.astype(np.float64),
                               cand.a, config.canary_share if drop else 1.0,
                               float(config.min_samples), queries)
    chosen = np.zeros(cand.u.size, dtype=bool)
    chosen[kept] = True
    table = solve_table(cand.u[chosen], cand.c[chosen], cand.a[chosen],
                        cand.n_r[chosen].astype(np.float64), config.budget, config.canary_share,
                        float(config.min_samples), queries, config.allow_drop)
    return chosen, [int(i) for i in dropped], table


def reasons(cand: Candidates, chosen: NDArray[np.bool_], prob: NDArray[np.float64],
             unexplorable: list[int], table: Table, config: PlanConfig, queries: float,
             waiting: Sequence[int] = (),
             ) -> dict[int, str]:
    """Why each pool model is (not) deployed and gets its share of the table (``waiting``:
    under-sampled models left for a later stage, ``optimize.explore.one_newcomer``)."""
    reasons = {}
    floors = np.zeros(cand.u.size)
    floors[chosen] = table.floor
    need = config.min_samples
    for i in range(cand.u.size):
        under = cand.n_r[i] < need and config.canary_share < 1
        if i in unexplorable:
            reasons[i] = (f"not deployed: fewer than {need} rewards, and its part of the "
                          f"exploration share {config.canary_share:g} cannot give it the "
                          f"{need - cand.n_r[i]:g} requests it needs in the stage "
                          f"(~{queries:,.0f} expected)")
        elif i in waiting:
            reasons[i] = (f"waiting: fewer than {need} rewards, and the stage explores one "
                          "under-sampled model at a time (the one with the most rewards, then "
                          "the highest cost bound)")
        elif chosen[i] and under and floors[i] == 0 and prob[i] == 0:
            reasons[i] = (f"exploration slot: {cand.n_r[i]:g} of {need} rewards, but its minimum "
                          "traffic would break the budget that the table meets without it")
        elif chosen[i] and under and floors[i] == 0:
            reasons[i] = (f"exploration: {cand.n_r[i]:g} of {need} rewards; no minimum traffic (it "
                          "would break the budget that the table meets without it)")
        elif chosen[i] and under:
            reasons[i] = (f"exploration: {cand.n_r[i]:g} of {need} rewards; at least "
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
