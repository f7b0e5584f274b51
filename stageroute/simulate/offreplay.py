"""Off-policy replay from production logs (SPEC 11): what a policy would have earned on them.

Adaptive policies (StageRoute, the learning baselines) run the replay method on the log
(``simulate.offloop``); fixed tables (a plan's routing table, uniform over the available models,
the logging policy itself) are estimated with IPS, SNIPS and DR (``simulate.offpolicy``). The
checks that decide whether an estimate can be trusted are here: a refusal raises, a doubt becomes
a warning in the result.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from stageroute.config import SharedConfig, absolute_budget, check_epsilon
from stageroute.errors import BadDataError, InfeasibleError, UsageError, shown
from stageroute.estimate.prior import price_cost, typical_tokens
from stageroute.inputs.banditlog import BanditLog, LoggingPolicy, load_bandit_log
from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.outcomes import OutcomeMatrix, available_mask
from stageroute.options import Policy
from stageroute.render.output import json_number
from stageroute.simulate import loop as compiled
from stageroute.simulate.offloop import replay_events
from stageroute.simulate.offpolicy import (
    BOOTSTRAP_RESAMPLES,
    CHECK_MIN_ROWS,
    DEFAULT_MIN_KEPT,
    MAX_BLOCKS,
    Diagnostics,
    Estimate,
    Estimator,
    bootstrap_totals,
    fixed_tables,
    overlap_warnings,
    table_probabilities,
    uniform_probabilities,
)
from stageroute.simulate.replay import (
    ReplayConfig,
    _alpha,
    _prices,
    _stage_set,
    default_stages,
    policy_knobs,
)

ADAPTIVE = (Policy.STAGEROUTE, Policy.PACED, Policy.STATIC, Policy.GREEDY, Policy.EPSILON)
FIXED = ("uniform", "logging", "plan")
DEFAULT_POLICIES = ("stageroute", "greedy", "epsilon-greedy", "uniform", "logging")


@dataclass(frozen=True, slots=True, kw_only=True)
class OffPolicyConfig(SharedConfig):
    """What to estimate on a log; validated on construction.

    ``policies``: adaptive policy names (``ADAPTIVE``) and fixed tables (``FIXED``; ``plan``
    needs ``plan``, a plan JSON). ``stages``: K stages evenly over the log's time span (None:
    round(n^(1/3)) of the events expected to be kept). ``seeds``: runs of the replay method
    (acceptance draws from ``seed``, ``seed + 1``, ...) averaged per adaptive policy.
    ``min_kept``: fewer kept events (or a smaller effective sample) makes a warning.
    """

    policies: tuple[str, ...] = DEFAULT_POLICIES
    plan: Path | None = None
    logging: LoggingPolicy = LoggingPolicy.LOGGED
    stages: int | None = None
    refresh: int | None = None
    epsilon: float = 0.1
    seed: int = 0
    seeds: int = 1
    min_kept: int = DEFAULT_MIN_KEPT

    def __post_init__(self) -> None:
        SharedConfig.__post_init__(self)
        known = {str(p) for p in ADAPTIVE} | set(FIXED)
        for name in self.policies:
            if name not in known:
                raise UsageError(f"--policy {name!r} cannot be estimated from logs (no outcome "
                                 f"table); choose from {', '.join(sorted(known))}")
        if "plan" in self.policies and self.plan is None:
            raise UsageError("--policy plan needs --plan FILE (a plan JSON written by "
                             "'stageroute plan --output')")
        if not 1 <= self.seeds <= 1000:
            raise UsageError(f"--seeds must be an integer in [1, 1000], got {self.seeds}")
        if self.min_kept < 1:
            raise UsageError(f"--min-kept must be an integer >= 1, got {self.min_kept}")
        if self.stages is not None and self.stages < 1:
            raise UsageError(f"--stages must be an integer >= 1, got {self.stages}")
        check_epsilon(self.epsilon)


@dataclass(frozen=True, slots=True)
class OffPolicyResult:
    config: OffPolicyConfig
    budget: float  # resolved (from --relative-budget where given)
    events: int
    stages: int
    p_min: float
    estimates: tuple[Estimate, ...]
    warnings: tuple[str, ...]  # about the log as a whole
    label: str


def check_log(log: BanditLog, stages: NDArray[np.int64]) -> list[str]:
    """Refuse a deterministic logger; warn where propensities are too small (see README).

    Per (stage, available set) cell with at least ``CHECK_MIN_ROWS`` requests and per model a,
    (1/n) sum over the cell's requests served by a of 1/propensity estimates the share of the
    cell's requests for which the logger could choose a: it cannot exceed 1, nor can the sum over
    the models exceed the number available (each within 4 standard errors and 10%). Propensities
    that are too large cannot be told apart from a logger that changed the models it could
    choose, and are not checked (all equal to 1, a deterministic logger, is refused).
    """
    if bool((log.propensity >= 1.0).all()):
        raise BadDataError(
            f"logs {log.label}: every propensity is 1, so the logger was deterministic and never "
            "tried another model for any request; no off-policy estimate is possible. Log with "
            "some exploration (e.g. a canary share) and log its propensities"
        )
    out = []
    if log.no_reward_rows:
        out.append(f"{log.no_reward_rows} rows without a reward were left out; the estimates "
                   "assume feedback is missing at random")
    n_sets, n_models = log.available.shape
    cell = stages * n_sets + log.pattern
    keys, inverse, counts = np.unique(cell, return_inverse=True, return_counts=True)
    inv = 1.0 / log.propensity
    pair = inverse * n_models + log.model
    sums = np.bincount(pair, weights=inv, minlength=keys.size * n_models).reshape(-1, n_models)
    square = np.bincount(pair, weights=inv * inv, minlength=keys.size * n_models)
    n = counts[:, None].astype(np.float64)
    share: NDArray[np.float64] = sums / n
    se = np.sqrt(np.maximum(square.reshape(-1, n_models) / n - share ** 2, 0.0) / n)
    total, size = share.sum(axis=1), log.available.sum(axis=1)[keys % n_sets]
    total_se = np.sqrt((se ** 2).sum(axis=1))
    judged = counts >= CHECK_MIN_ROWS
    over = judged[:, None] & (share > 1.1 + 4.0 * se)
    over_total = judged & (total > 1.1 * size + 4.0 * total_se)
    if over.any() or over_total.any():
        k = int(np.flatnonzero(over.any(axis=1) | over_total)[0])
        out.append(
            f"propensities do not sum to about 1 over the available models: in stage "
            f"{keys[k] // n_sets + 1}, on {counts[k]} requests with {size[k]} models available, "
            f"the mean of 1/propensity is {total[k]:.3g} (at most {size[k]}) and model "
            f"{log.models[int(np.argmax(share[k]))]!r} serves as if it were chosen "
            f"{share[k].max():.3g} times per request (at most 1); check that 'propensity' is the "
            "probability of the served model among those available at the request"
        )
    return out


def plan_table(path: Path, models: tuple[str, ...]) -> NDArray[np.float64]:
    """The routing table of a plan JSON as weights over the catalog's models (checked as export
    and diff check it: ``export.read_segment_routing``)."""
    from stageroute.export import read_segment_routing

    doc, tables = read_segment_routing(path, "replay --logs --plan")
    if isinstance(doc.get("segments"), dict | list) or any(
            isinstance(row, dict) and "segment" in row for row in doc["routing"]):
        raise BadDataError(f"plan {path} has one routing table per segment (plan --segments); "
                           "replay --logs --plan evaluates one table for all requests, pass a "
                           "plan written without --segments")
    index = {m: j for j, m in enumerate(models)}
    w = np.zeros(len(models))
    (rows,) = tables.values()
    for model, prob in rows:
        if model not in index:
            raise BadDataError(f"plan {path}: routing entry {shown(model)} is not a catalog "
                               "model; pass a plan written by 'stageroute plan' with this catalog")
        w[index[model]] = prob
    return w


def _stage_index(log: BanditLog, k: int) -> tuple[NDArray[np.int64], NDArray[np.datetime64]]:
    """Each event's stage (K stages evenly over the log's span) and the K+1 boundary times."""
    t0 = log.times[0]
    span = (log.times[-1] - t0) + np.timedelta64(1, "us")
    edges = t0 + (span * (np.arange(k + 1) / k)).astype("timedelta64[us]")
    return np.clip(np.searchsorted(edges, log.times, side="right") - 1, 0, k - 1), edges


def _replay_config(config: OffPolicyConfig, log: BanditLog, stages: int) -> ReplayConfig:
    shared = {f.name: getattr(config, f.name) for f in fields(SharedConfig)}
    return ReplayConfig(**shared, horizon=log.size, stages=stages, seeds=1,
                        policies=tuple(Policy(p) for p in config.policies if p in set(ADAPTIVE)) or
                        (Policy.STAGEROUTE,), epsilon=config.epsilon, first_seed=config.seed,
                        refresh=config.refresh)


def replay_method(policy: Policy, log: BanditLog, catalog: pl.DataFrame, config: ReplayConfig,
                  stage: NDArray[np.int64], edges: NDArray[np.datetime64], seed: int
                  ) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64]]:
    """One run of the replay method of ``policy`` on ``log`` (acceptance draws from ``seed``):
    which events it kept, and their reward and cost."""
    n_models = len(log.models)
    shim = OutcomeMatrix((), log.models, np.zeros((0, n_models)), np.zeros((0, n_models)))
    alpha, prices = _alpha(shim, catalog), _prices(shim, catalog)
    scale = config.cost_scale or float(np.quantile(log.cost, 0.999)) or 1.0
    kn = policy_knobs(policy, config, scale)
    mode = {Policy.EPSILON: compiled.MODE_EPSILON, Policy.UNIFORM: compiled.MODE_UNIFORM}.get(
        policy, compiled.MODE_ROUTE)
    p_min = float(log.propensity.min())
    accept = p_min / log.propensity
    rng = np.random.default_rng(seed)
    draws = rng.random(log.size)
    served = np.zeros(n_models, dtype=bool)
    served[np.unique(log.model)] = True  # the logger's support: no other model can be replayed
    at_start = available_mask(catalog, log.models, edges[:-1])
    at_end = available_mask(catalog, log.models, edges[1:] - np.timedelta64(1, "us"))
    pools = at_start & at_end & served[None, :]
    stats = np.zeros((6, n_models))
    pace_state = np.array([0.0, 0.0, log.size * p_min])
    kept = np.zeros(log.size, dtype=np.int64)
    reward = np.zeros(log.size)
    cost = np.zeros(log.size)
    bounds = np.searchsorted(stage, np.arange(pools.shape[0] + 1))
    current: tuple[int, ...] = ()
    for k in range(pools.shape[0]):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if hi == lo or not pools[k].any():
            continue
        prior = price_cost(prices[0], prices[1], typical_tokens(
            stats[compiled.MEAN_C], stats[compiled.N_C], prices[0], prices[1]))
        try:
            current = _stage_set(policy, k, current, pools[k], stats, kn, prior, alpha, config,
                                 float(hi - lo) * p_min)
        except InfeasibleError as err:  # the pool itself: its max_share values sum below 1
            names = ", ".join(shown(log.models[j]) for j in np.flatnonzero(pools[k]))
            raise InfeasibleError(
                f"policy {policy}, stage {k + 1} of {pools.shape[0]} "
                f"({np.datetime_as_string(edges[k], unit='D')} to "
                f"{np.datetime_as_string(edges[k + 1], unit='D')}): {err}. The stage's pool is "
                f"the catalog's models available through it that the logger served: {names}"
            ) from None
        replay_events(np.array(current, dtype=np.int64), alpha, log.model[lo:hi],
                      log.reward[lo:hi], log.cost[lo:hi], accept[lo:hi], draws[lo:hi], stats,
                      prior, kn, config.budget, policy is Policy.PACED, pace_state, mode,
                      config.epsilon, config.allow_drop, config.canary_share,
                      float(config.min_samples), config.refresh or 0, p_min, kept[lo:hi],
                      reward[lo:hi], cost[lo:hi])
    return kept > 0, reward, cost


def replay_estimate(name: str, runs: list[tuple[NDArray[np.bool_], NDArray[np.float64],
                                                NDArray[np.float64]]],
                    seed: int, min_kept: int) -> Estimate:
    """The mean over runs (seeds) of the kept events' mean reward and cost, with a 95% interval
    from two variances: the log's sampling noise (a block bootstrap of each run's kept events in
    time order, averaged) and the policy's own randomness (between runs, / runs):
    mean +- 1.96 sqrt(mean_s se_s^2 + var_s(m_s) / S)."""
    means, variances, kept = [], [], []
    for s, (keep, reward, cost) in enumerate(runs):
        kept.append(int(keep.sum()))
        if kept[-1] == 0:
            continue
        r, c = reward[keep], cost[keep]
        totals, count = bootstrap_totals(np.column_stack([r, c]), seed + s)
        means.append([r.mean(), c.mean()])
        variances.append((totals / count[:, None]).var(axis=0))
    n = round(sum(kept) / len(kept))
    size = int(runs[0][0].size)
    diag = Diagnostics(size, n, n / max(size, 1), float(n), 1.0 if n else 0.0)
    warn = overlap_warnings(name, diag, min_kept)
    if not means:
        return Estimate(name, Estimator.REPLAY, 0.0, 0.0, (0.0, 0.0), (0.0, 0.0), diag, warn)
    m, v = np.array(means), np.array(variances)
    between = m.var(axis=0, ddof=1) / len(m) if len(m) > 1 else np.zeros(2)
    half = 1.96 * np.sqrt(v.mean(axis=0) + between)
    centre = m.mean(axis=0)
    return Estimate(name, Estimator.REPLAY, float(centre[0]), float(centre[1]),
                    (float(centre[0] - half[0]), float(centre[0] + half[0])),
                    (float(centre[1] - half[1]), float(centre[1] + half[1])), diag, warn)


def resolve_budget(config: OffPolicyConfig, log: BanditLog) -> float:
    """The budget in currency: a relative budget is a fraction of the largest per-model mean
    cost in the log."""
    if not config.relative_budget:
        return config.budget
    n = np.bincount(log.model, minlength=len(log.models))
    total = np.bincount(log.model, weights=log.cost, minlength=len(log.models))
    return absolute_budget(config.budget, float((total[n > 0] / n[n > 0]).max()), "the logs")


def evaluate_log(log: BanditLog, catalog: pl.DataFrame, config: OffPolicyConfig
                 ) -> OffPolicyResult:
    """Estimate every policy of ``config`` on ``log`` (see the module docstring).

    Raises:
        BadDataError: a deterministic logger, a broken plan file; UsageError: bad options.
    """
    p_min = float(log.propensity.min())
    k = config.stages or default_stages(max(1, int(log.size * p_min)))
    stage, edges = _stage_index(log, k)
    notes = check_log(log, stage)
    budget = resolve_budget(config, log)
    rconfig = replace(_replay_config(config, log, k), budget=budget, relative_budget=False)
    rconfig = replace(rconfig, gamma=rconfig.resolve_gamma(len(log.models), log.size))
    targets: dict[str, NDArray[np.float64] | None] = {}
    for name in dict.fromkeys(config.policies):
        if name == "uniform":
            targets[name] = uniform_probabilities(log.available)
        elif name == "logging":
            targets[name] = None
        elif name == "plan":
            assert config.plan is not None
            targets[name] = pi = table_probabilities(plan_table(config.plan, log.models),
                                                     log.available)
            empty = int((pi.sum(axis=1) == 0)[log.pattern].sum())
            if empty:
                notes.append(f"plan: {empty} of {log.size} requests had none of the plan's models "
                             "available; they count as refused (reward 0, cost 0)")
    fixed = iter(fixed_tables(log, targets, config.seed, config.min_kept) if targets else [])
    estimates: list[Estimate] = []
    for name in dict.fromkeys(config.policies):
        if name in targets:  # ips, snips, dr (or on-policy for the logging policy)
            estimates += [next(fixed) for _ in range(1 if targets[name] is None else 3)]
        else:
            runs = [replay_method(Policy(name), log, catalog, rconfig, stage, edges, seed)
                    for seed in range(config.seed, config.seed + config.seeds)]
            estimates.append(replay_estimate(name, runs, config.seed, config.min_kept))
    return OffPolicyResult(config, budget, log.size, k, p_min, tuple(estimates), tuple(notes),
                           log.label)


def evaluate_log_files(logs: str | Path, catalog: str | Path, config: OffPolicyConfig
                       ) -> OffPolicyResult:
    """Load the logs and the catalog, then ``evaluate_log``."""
    cat = load_catalog(catalog)
    return evaluate_log(load_bandit_log(logs, cat, config.logging), cat, config)


def offpolicy_document(result: OffPolicyResult) -> dict[str, Any]:
    """The replay document of SPEC 7 for logs: one entry per (policy, estimator)."""
    cfg = result.config

    def pair(ci: tuple[float, float]) -> list[float | None]:
        return [json_number(ci[0]), json_number(ci[1])]

    policies = []
    for e in result.estimates:
        policies.append({
            "policy": e.policy, "mean_reward": json_number(e.mean_reward),
            "mean_cost": json_number(e.mean_cost),
            "cost_over_budget": json_number(e.mean_cost / result.budget),
            "ci95": {"mean_reward": pair(e.ci_reward), "mean_cost": pair(e.ci_cost)},
            "estimator": str(e.estimator),
            "diagnostics": {"events": e.diagnostics.events, "kept": e.diagnostics.kept,
                            "kept_share": json_number(e.diagnostics.kept_share),
                            "effective_sample_size": json_number(
                                e.diagnostics.effective_sample_size),
                            "max_weight": json_number(e.diagnostics.max_weight)},
            "warnings": list(e.warnings),
        })
    return {
        "schema_version": 1, "source": "logs", "horizon": result.events, "stages": result.stages,
        "seeds": cfg.seeds, "budget": json_number(result.budget), "max_deployed": cfg.max_deployed,
        "oracle_value": None, "policies": policies,
        "logging_policy": str(cfg.logging), "smallest_propensity": json_number(result.p_min),
        "refresh": cfg.refresh if cfg.refresh is not None else "query",
        "first_seed": cfg.seed, "min_kept": cfg.min_kept,
        "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "max_blocks": MAX_BLOCKS,
                      "interval": "percentile 2.5-97.5"},
        "warnings": list(dict.fromkeys(
            list(result.warnings) + [w for e in result.estimates for w in e.warnings])),
    }


__all__ = ["OffPolicyConfig", "OffPolicyResult", "evaluate_log", "evaluate_log_files",
           "offpolicy_document"]
