"""Counterfactual replay on full-information outcomes: StageRoute against the oracle and baselines.

Per seed, one stream of prompts (common to every policy) is spread evenly over a time span so that
catalog arrivals and retirements happen during the run. Learning policies see bandit feedback
only: the served model's reward and cost for that prompt.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from stageroute.config import SharedConfig, absolute_budget, check_epsilon
from stageroute.errors import BadDataError, UsageError, shown
from stageroute.estimate.bounds import cost_lcb, reward_ucb
from stageroute.estimate.prior import price_cost, typical_tokens
from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.outcomes import OutcomeMatrix, load_outcomes, to_matrix
from stageroute.inputs.segmentation import Segmentation, prompt_features, segmentation
from stageroute.optimize.deploy import (
    Deployment,
    preference_order,
    solve_deploy,
    solve_deploy_exhaustive,
)
from stageroute.optimize.explore import deploy_caps, explorable, refill
from stageroute.options import (
    BASE_POLICIES,
    CONTEXTUAL_POLICIES,
    Policy,
    Radius,
    format_duration,
    iso_date,
)
from stageroute.render.output import iso_utc, json_number
from stageroute.simulate import loop as compiled
from stageroute.simulate.drift import seconds, stage_ages, stage_partial, weighted_stats
from stageroute.simulate.evaluate import Frontier, Scores, ranks, score
from stageroute.simulate.schedule import Schedule as Schedule  # re-exported: the timeline
from stageroute.simulate.schedule import default_span as default_span
from stageroute.simulate.schedule import default_stages as default_stages
from stageroute.simulate.schedule import make_schedule as make_schedule
from stageroute.simulate.schedule import stage_bounds as stage_bounds

LEARNING = (Policy.STAGEROUTE, Policy.PACED, Policy.STATIC, Policy.GREEDY, Policy.EPSILON,
            Policy.UNIFORM)


MAX_CLUSTERS = 256
MAX_HORIZON = 100_000_000  # three float64 arrays of this length: 2.4 GB
MAX_SEEDS = 10_000
MAX_SEED = 2**63 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayConfig(SharedConfig):
    """What to simulate; validated on construction (``stages`` None: round(T^(1/3))).

    ``refresh``: routing tables per stage, each held fixed until the next (None: a new table for
    every query, the paper's setting). ``window`` / ``half_life``: the bounds of a stage count only
    the earlier stages that ended less than ``window`` before it starts, each weighted by
    2^(-age / half_life) (``simulate.drift``); both None: every query so far (stationary).
    """

    horizon: int = 100_000
    stages: int | None = None
    seeds: int = 1
    policies: tuple[Policy, ...] = BASE_POLICIES
    epsilon: float = 0.1
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    first_seed: int = 0
    refresh: int | None = None
    window: dt.timedelta | None = None
    half_life: dt.timedelta | None = None
    contextual: bool = False  # SPEC 12: per-segment tables, PORT and the contextual oracle
    segments: str = "eval_name"  # with contextual: an outcomes column, or "auto" (prompt clusters)
    prompts: Path | None = None  # with segments "auto": sample_id, prompt
    clusters: int | None = None  # with segments "auto": k (None: chosen by replay)

    def __post_init__(self) -> None:
        SharedConfig.__post_init__(self)
        extra = [p for p in self.policies if p in CONTEXTUAL_POLICIES]
        if extra and not self.contextual:
            raise UsageError(f"--policy {extra[0]} needs --contextual (segments of the queries); "
                             "add --contextual")
        if not self.contextual and (self.prompts is not None or self.clusters is not None
                                    or self.segments != "eval_name"):
            raise UsageError("--segments, --prompts and --clusters need --contextual; add it")
        if self.segments == "auto" and self.prompts is None:
            raise UsageError("--segments auto clusters the prompts' text: give --prompts FILE "
                             "(sample_id, prompt)")
        if self.clusters is not None and self.segments != "auto":
            raise UsageError(f"--clusters sets the number of prompt clusters of --segments auto, "
                             f"not of --segments {shown(self.segments)}; drop --clusters or give "
                             "--segments auto with --prompts FILE")
        if self.clusters is not None and not 2 <= self.clusters <= MAX_CLUSTERS:
            raise UsageError(f"--clusters must be an integer in [2, {MAX_CLUSTERS}] with "
                             f"--segments auto, got {self.clusters}; give e.g. --clusters 8")
        for option, length in (("--window", self.window), ("--half-life", self.half_life)):
            if length is not None and length <= dt.timedelta(0):
                raise UsageError(f"{option} must be a positive duration, got {length}; give e.g. "
                                 f"{option} 28d")
        if self.refresh is not None and not 1 <= self.refresh <= self.horizon:
            raise UsageError(f"--refresh must be 'query' or an integer in [1, --horizon "
                             f"{self.horizon}], got {self.refresh}; give e.g. --refresh 7")
        if not 1 <= self.horizon <= MAX_HORIZON:
            raise UsageError(f"--horizon must be an integer in [1, {MAX_HORIZON:,}], got "
                             f"{self.horizon}; give e.g. --horizon 100000")
        if self.stages is not None and not 1 <= self.stages <= self.horizon:
            raise UsageError(f"--stages must be an integer in [1, --horizon {self.horizon}], got "
                             f"{self.stages}; give e.g. --stages 10, or leave it out")
        if not 1 <= self.seeds <= MAX_SEEDS:
            raise UsageError(f"--seeds must be an integer in [1, {MAX_SEEDS:,}], got {self.seeds}; "
                             "give e.g. --seeds 5")
        if not 0 <= self.first_seed <= MAX_SEED - self.seeds:
            raise UsageError(f"--seed must be an integer in [0, 2^63 - 1 - --seeds], got "
                             f"{self.first_seed}; give e.g. --seed 0")
        check_epsilon(self.epsilon)
        if not self.policies:
            raise UsageError("--policy: give at least one policy")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError(f"--end {iso_date(self.end)} must be after --start "
                             f"{iso_date(self.start)}; give a later --end or an earlier --start")

    @property
    def n_stages(self) -> int:
        return self.stages if self.stages is not None else default_stages(self.horizon)


@dataclass(frozen=True, slots=True)
class StageValue:
    models: tuple[int, ...]
    value: float  # expected reward per query
    cost: float
    over_budget: bool


def oracle_stage(outcomes: OutcomeMatrix, pool: NDArray[np.bool_], config: ReplayConfig,
                 alpha: NDArray[np.float64]) -> StageValue:
    """The best set of at most M available models and its best mixture, with the true means."""
    idx = np.flatnonzero(pool)
    mu, c = outcomes.mean_reward[idx], outcomes.mean_cost[idx]
    dep = _deploy(mu, c, alpha[idx], config)
    return StageValue(tuple(int(j) for j in idx[dep.chosen]), dep.routing.objective,
                      dep.routing.cost, dep.routing.over_budget)


def _deploy(u: NDArray[np.float64], c: NDArray[np.float64], a: NDArray[np.float64],
            config: ReplayConfig) -> Deployment:
    """Exhaustive when the pool is small (exact, fast), the MIP otherwise."""
    dep = solve_deploy_exhaustive(u, c, a, config.budget, config.max_deployed, config.allow_drop)
    if dep is None:
        dep = solve_deploy(u, c, a, config.budget, config.max_deployed, config.solver,
                           config.allow_drop)
    return dep


@dataclass(frozen=True, slots=True)
class Stream:
    prompts: NDArray[np.int64]
    draws: NDArray[np.float64]  # uniform: which model the routing table samples
    explore: NDArray[np.float64]  # uniform: epsilon-greedy's coin


def make_stream(n_samples: int, horizon: int, seed: int) -> Stream:
    rng = np.random.default_rng(seed)
    return Stream(rng.integers(0, n_samples, horizon), rng.random(horizon), rng.random(horizon))


@dataclass(frozen=True, slots=True)
class Run:
    """One policy on one seed: per-stage sums and deployed sets."""

    reward: NDArray[np.float64]  # [K] reward summed over the stage's queries
    cost: NDArray[np.float64]
    dropped: NDArray[np.int64]
    deployed: tuple[tuple[int, ...], ...]


def run_policy(policy: Policy, outcomes: OutcomeMatrix, schedule: Schedule, stream: Stream,
               config: ReplayConfig, alpha: NDArray[np.float64], scale: float,
               prices: NDArray[np.float64], kernel: Callable[..., None] | None = None,
               served: list[NDArray[np.int64]] | None = None) -> Run:
    """Simulate one learning policy on one stream with bandit feedback.

    ``prices`` [2, N]: list prices in and out per model (NaN: unknown), which price untried
    models (``estimate.prior``). ``kernel`` replaces the compiled per-query loop (the reference
    loops in tests); ``served``, if given, receives the served model of every query, stage by stage.
    """
    kernel = kernel or compiled.run_queries
    n_models = len(outcomes.models)
    k_stages = schedule.pools.shape[0]
    stats = np.zeros((6, n_models))
    kn = policy_knobs(policy, config, scale)
    mode = {Policy.EPSILON: compiled.MODE_EPSILON, Policy.UNIFORM: compiled.MODE_UNIFORM}.get(
        policy, compiled.MODE_ROUTE)
    pace_state = np.array([0.0, 0.0, float(config.horizon)])
    reward = np.zeros(k_stages)
    cost = np.zeros(k_stages)
    dropped = np.zeros(k_stages, dtype=np.int64)
    deployed: list[tuple[int, ...]] = []
    current: tuple[int, ...] = ()
    drift = config.window is not None or config.half_life is not None
    partials = np.zeros((k_stages if drift else 0, 6, n_models))
    for k in range(k_stages):
        lo, hi = schedule.bounds[k], schedule.bounds[k + 1]
        if drift:  # the earlier stages' own statistics, weighted by age (simulate.drift)
            stats = weighted_stats(partials[:k], stage_ages(schedule.windows, k),
                                   seconds(config.window), seconds(config.half_life))
        prior = price_cost(prices[0], prices[1], typical_tokens(
            stats[compiled.MEAN_C], stats[compiled.N_C], prices[0], prices[1]))
        current = _stage_set(policy, k, current, schedule.pools[k], stats, kn, prior, alpha,
                             config, float(hi - lo))
        out_model = np.empty(hi - lo, dtype=np.int64)
        out_reward = np.empty(hi - lo)
        out_cost = np.empty(hi - lo)
        kernel(
            np.array(current, dtype=np.int64), alpha, stream.prompts[lo:hi], stream.draws[lo:hi],
            stream.explore[lo:hi], outcomes.reward, outcomes.cost, stats, prior, kn, config.budget,
            policy is Policy.PACED, pace_state, mode, config.epsilon, config.allow_drop,
            config.canary_share, float(config.min_samples), config.refresh or 0, out_model,
            out_reward, out_cost,
        )
        if served is not None:
            served.append(out_model)
        if drift:
            partials[k] = stage_partial(out_model, out_reward, out_cost, n_models)
        reward[k] = out_reward.sum()
        cost[k] = out_cost.sum()
        dropped[k] = int((out_model < 0).sum())
        deployed.append(current)
    return Run(reward, cost, dropped, tuple(deployed))


def policy_knobs(policy: Policy, config: ReplayConfig, scale: float) -> NDArray[np.float64]:
    """The bounds' knobs of a policy: greedy ones use the plain means (gamma 0)."""
    gamma = 0.0 if policy in (Policy.GREEDY, Policy.EPSILON) else float(config.gamma)
    cost_gamma = 0.0 if gamma == 0.0 else config.resolve_cost_gamma(gamma)
    return compiled.knobs(gamma, cost_gamma, config.radius is Radius.MEAN, scale,
                          config.cost_clip, config.budget_safe)


def _stage_set(policy: Policy, k: int, current: tuple[int, ...], pool: NDArray[np.bool_],
               stats: NDArray[np.float64], kn: NDArray[np.float64], prior: NDArray[np.float64],
               alpha: NDArray[np.float64], config: ReplayConfig, queries: float) -> tuple[int, ...]:
    """The deployed set of stage ``k``: DeployOPT on the current bounds, then the under-sampled
    models that cannot be explored in the stage left out (``static`` freezes it after stage 2)."""
    kept = tuple(j for j in current if pool[j])
    if policy is Policy.STATIC and k >= 2 and kept and alpha[list(kept)].sum() >= 1.0 - 1e-12:
        return kept  # static: never re-plan, only drop models that left the pool
    idx = np.flatnonzero(pool)
    u, c = bounds_of(stats, idx, kn, prior)
    n_r = stats[compiled.N_R, idx]
    share, need = config.canary_share, float(config.min_samples)
    caps = deploy_caps(n_r, alpha[idx], share, need, config.max_deployed)

    def solve(bounds: NDArray[np.float64]) -> tuple[NDArray[np.bool_], Deployment]:
        dep = _deploy(bounds, c, caps, config)
        return dep.chosen, dep

    dep, _ = refill(solve, u, c, n_r, alpha[idx], share, need, queries)
    chosen = np.array([i for i in preference_order(u, c) if dep.chosen[i]], dtype=np.int64)
    final, _ = explorable(idx[chosen], stats[compiled.N_R], alpha, share, need, queries)
    return tuple(sorted(int(j) for j in final))


def bounds_of(stats: NDArray[np.float64], idx: NDArray[np.int64], kn: NDArray[np.float64],
              prior: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Reward and cost bounds of models ``idx`` from the replay's statistics array.

    gamma = 0 gives the plain means (greedy), untried models staying optimistic.
    """
    s = stats[:, idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        var_r = np.where(s[compiled.N_R] > 0, s[compiled.M2_R] / s[compiled.N_R], np.nan)
        var_c = np.where(s[compiled.N_C] > 0, s[compiled.M2_C] / s[compiled.N_C], np.nan)
    radius = Radius.MEAN if kn[compiled.RADIUS_MEAN] > 0 else Radius.VARIANCE
    u = reward_ucb(s[compiled.MEAN_R], var_r, s[compiled.N_R], kn[compiled.GAMMA], radius)
    c = cost_lcb(s[compiled.MEAN_C], var_c, s[compiled.N_C], kn[compiled.COST_GAMMA],
                 kn[compiled.SCALE], radius, kn[compiled.C_LO], kn[compiled.C_HI],
                 untried=prior[idx], upper=bool(kn[compiled.COST_UPPER] > 0))
    return u, c


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySummary(Scores):
    """A policy's scores (``evaluate.Scores``), its rank and its per-seed runs (none: the oracle)."""

    policy: Policy
    rank: int | None  # on suboptimality_at_cost, 1 = best; None: the oracle (the reference)
    runs: tuple[Run, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    config: ReplayConfig
    models: tuple[str, ...]
    schedule: Schedule
    oracle: tuple[StageValue, ...]
    oracle_value: float  # expected reward per query
    scale: float
    max_mean_cost: float  # for the relative budget: budget / the largest per-model mean cost
    policies: tuple[PolicySummary, ...]
    frontier: Frontier  # the oracle's value per query in each stage at any budget
    segments: Segmentation | None = None  # contextual replays
    exact: dict[Policy, tuple[StageValue, ...]] = field(default_factory=dict)  # the oracles


def resolve(config: ReplayConfig, outcomes: OutcomeMatrix) -> ReplayConfig:
    """The config with what depends on the data made concrete: the budget in currency (from a
    relative budget), the number of stages and gamma."""
    budget = config.budget
    if config.relative_budget:
        budget = absolute_budget(config.budget, float(outcomes.mean_cost.max()), "the outcomes")
    gamma = config.resolve_gamma(len(outcomes.models), config.horizon)
    return replace(config, budget=budget, relative_budget=False, stages=config.n_stages, gamma=gamma)


def replay_from_files(outcomes: str | Path, catalog: str | Path, config: ReplayConfig,
                      progress: Callable[[int, int], None] | None = None) -> ReplayResult:
    """Load a full-information outcomes table and a catalog, then ``replay`` them.

    Raises:
        StagerouteError: subclasses for missing or bad input, bad options, infeasibility.
    """
    frame = load_outcomes(outcomes)
    matrix = to_matrix(frame)
    features = segments = None
    if config.contextual:
        features = prompt_features(config.prompts, matrix) if config.prompts is not None else None
        segments = segmentation(frame, matrix, config, features)
    return replay(matrix, load_catalog(catalog), config, progress, segments, features)


def _alpha(outcomes: OutcomeMatrix, catalog: pl.DataFrame) -> NDArray[np.float64]:
    """max_share of each outcome model, in the outcomes' order."""
    missing = [m for m in outcomes.models if m not in set(catalog["model"])]
    if missing:
        raise BadDataError(
            f"outcome model {missing[0]!r} is not in the catalog"
            + (f" (nor are {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; add it to the catalog (with its release date), or leave its rows out of the "
            "outcomes"
        )
    info = catalog.filter(pl.col("model").is_in(list(outcomes.models))).sort("model")
    order = {m: i for i, m in enumerate(info["model"])}
    return info["max_share"].to_numpy()[[order[m] for m in outcomes.models]].astype(np.float64)


def _prices(outcomes: OutcomeMatrix, catalog: pl.DataFrame) -> NDArray[np.float64]:
    """[2, N] list prices (in, out; USD per million tokens) of the outcome models, NaN if unknown."""
    prices = np.full((2, len(outcomes.models)), np.nan)
    if not {"usd_per_mtok_in", "usd_per_mtok_out"} <= set(catalog.columns):
        return prices
    rows = dict(zip(catalog["model"], zip(catalog["usd_per_mtok_in"], catalog["usd_per_mtok_out"],
                                           strict=True), strict=True))
    for j, m in enumerate(outcomes.models):
        p_in, p_out = rows[m]
        prices[:, j] = [np.nan if p_in is None else p_in, np.nan if p_out is None else p_out]
    return prices


def _oracle(outcomes: OutcomeMatrix, schedule: Schedule, config: ReplayConfig,
            alpha: NDArray[np.float64]) -> list[StageValue]:
    """The oracle's set and value per stage (stages with the same pool are solved once)."""
    cache: dict[bytes, StageValue] = {}
    oracle = []
    for pool in schedule.pools:
        key = pool.tobytes()
        if key not in cache:
            cache[key] = oracle_stage(outcomes, pool, config, alpha)
        oracle.append(cache[key])
    return oracle


def _oracle_totals(oracle: list[StageValue], sizes: NDArray[np.float64]
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The oracle's expected reward and cost summed over each stage's queries."""
    return np.array([v.value for v in oracle]) * sizes, np.array([v.cost for v in oracle]) * sizes


def _summaries(config: ReplayConfig, runs: dict[Policy, list[Run]],
               exact: dict[Policy, list[StageValue]], sizes: NDArray[np.float64],
               frontier: Frontier) -> tuple[PolicySummary, ...]:
    """Every policy's scores (SPEC 8), the oracles' included, ranked on suboptimality_at_cost.

    The oracles' figures (``exact``) are expected values, the same for every seed; the reference
    of regret and suboptimality is the (non-contextual) oracle."""
    oracle_total = float(_oracle_totals(exact[Policy.ORACLE], sizes)[0].sum())
    totals = {}
    for p in config.policies:
        if p in exact:
            reward, cost = _oracle_totals(exact[p], sizes)
            totals[p] = (np.tile(reward, (config.seeds, 1)), np.tile(cost, (config.seeds, 1)))
        else:
            totals[p] = (np.array([r.reward for r in runs[p]]), np.array([r.cost for r in runs[p]]))
    served = np.where(sizes > 0, sizes, 1.0)
    # one pass over the frontier for every policy, seed and stage
    spent = np.stack([cost for _, cost in totals.values()]) / served
    at_cost = frontier.values(spent) @ sizes
    scores = [score(reward, cost, sizes, config.budget, oracle_total, at_cost[i])
              for i, (reward, cost) in enumerate(totals.values())]
    order = ranks([None if p in exact else s.suboptimality_at_cost
                   for p, s in zip(config.policies, scores, strict=True)])
    return tuple(
        PolicySummary(**asdict(s), policy=p, rank=rank, runs=tuple(runs.get(p, ())))
        for p, s, rank in zip(config.policies, scores, order, strict=True)
    )


@dataclass(frozen=True, slots=True)
class Setup:
    """What every policy and seed of a replay shares (the arguments of ``run_policy`` besides the
    policy and the stream): the resolved config, the timeline, max_share per model, the cost
    scale and the list prices."""

    config: ReplayConfig
    schedule: Schedule
    alpha: NDArray[np.float64]
    scale: float
    prices: NDArray[np.float64]


def prepare(outcomes: OutcomeMatrix, catalog: pl.DataFrame, config: ReplayConfig) -> Setup:
    """Resolve ``config`` on the outcomes and lay out the stages (see ``replay`` for errors)."""
    alpha = _alpha(outcomes, catalog)  # first: it refuses an outcome model the catalog lacks
    config = resolve(config, outcomes)
    scale = config.cost_scale or float(np.quantile(outcomes.cost, 0.999)) or 1.0
    return Setup(config, make_schedule(catalog, outcomes, config), alpha, scale,
                 _prices(outcomes, catalog))


def replay(outcomes: OutcomeMatrix, catalog: pl.DataFrame, config: ReplayConfig,
           progress: Callable[[int, int], None] | None = None,
           segments: Segmentation | None = None,
           features: NDArray[np.float64] | None = None) -> ReplayResult:
    """Simulate every requested policy on ``config.seeds`` streams and compare with the oracle.

    ``segments`` (with ``config.contextual``): the segment of every prompt, for the contextual
    policies (``simulate.contextual``); ``features`` [P, d]: the prompts' embedding (PORT).

    Raises:
        UsageError: bad span or parameters; BadDataError: an outcome model missing from the
            catalog; InfeasibleError: throughput caps.
    """
    setup = prepare(outcomes, catalog, config)
    config, schedule, alpha, scale = setup.config, setup.schedule, setup.alpha, setup.scale
    exact = {Policy.ORACLE: _oracle(outcomes, schedule, config, alpha)}
    runners: dict[Policy, Callable[[Stream, int], Run]] = {}
    if config.contextual:
        if segments is None:
            raise ValueError("a contextual replay needs the prompts' segments")
        from stageroute.simulate.contextual import contextual_policies

        extra, runners = contextual_policies(outcomes, segments, setup, features)
        exact.update(extra)
        if Policy.PORT in config.policies and Policy.PORT not in runners:
            raise UsageError("--policy port needs the prompts' text for its nearest neighbours: "
                             "give --prompts FILE (sample_id, prompt)")
    sizes = np.diff(schedule.bounds).astype(np.float64)
    oracle_total = float(_oracle_totals(exact[Policy.ORACLE], sizes)[0].sum())
    learning = [p for p in config.policies if p not in exact]
    runs: dict[Policy, list[Run]] = {p: [] for p in learning}
    done = 0
    for seed in range(config.first_seed, config.first_seed + config.seeds):
        stream = make_stream(len(outcomes.samples), config.horizon, seed)
        for learner in learning:
            run = runners.get(learner)
            runs[learner].append(run(stream, seed) if run is not None else run_policy(
                learner, outcomes, schedule, stream, config, alpha, scale, setup.prices))
            done += 1
            if progress:
                progress(done, config.seeds * len(learning))
    frontier = Frontier(outcomes.mean_reward, outcomes.mean_cost, alpha, schedule.pools,
                        config.max_deployed, config.allow_drop, config.solver)
    summaries = _summaries(config, runs, exact, sizes, frontier)
    t = float(config.horizon)
    return ReplayResult(config, outcomes.models, schedule, tuple(exact[Policy.ORACLE]),
                        oracle_total / t, scale, float(outcomes.mean_cost.max()), summaries,
                        frontier, segments, {p: tuple(v) for p, v in exact.items()})


def replay_document(result: ReplayResult) -> dict[str, Any]:
    """The JSON document of SPEC 7 (fixed keys first, then extras; SPEC 8's figures per policy).

    ``ci95`` holds an interval per figure, each null with fewer than 3 seeds.
    """
    cfg = result.config
    models = result.models

    def names(ids: tuple[int, ...]) -> list[str]:
        return [models[j] for j in ids]

    def interval(ci: tuple[float, float] | None) -> list[float | None] | None:
        return None if ci is None else [json_number(ci[0]), json_number(ci[1])]

    return {
        "schema_version": 1,
        "horizon": cfg.horizon,
        "stages": cfg.stages,
        "seeds": cfg.seeds,
        "budget": json_number(cfg.budget),
        "max_deployed": cfg.max_deployed,
        "oracle_value": json_number(result.oracle_value),
        "policies": [
            {"policy": str(p.policy), "mean_reward": json_number(p.mean_reward),
             "mean_cost": json_number(p.mean_cost), "cost_over_budget": json_number(p.cost_over_budget),
             "regret": json_number(p.regret), "suboptimality": json_number(p.suboptimality),
             "ci95": {k: interval(ci) for k, ci in p.ci95.items()},
             "suboptimality_at_cost": json_number(p.suboptimality_at_cost),
             "oracle_value_at_cost": json_number(p.oracle_value_at_cost),
             "budget_violation": json_number(p.budget_violation),
             "worst_stage_cost_over_budget": json_number(p.worst_stage_cost_over_budget),
             "rank": p.rank}
            for p in result.policies
        ],
        "units": {"mean_reward": "reward per query", "mean_cost": "currency per query",
                  "regret": "reward summed over the horizon (oracle's expected minus the "
                            "policy's)", "suboptimality": "fraction (0.03 = 3%)"},
        "gamma": cfg.gamma,
        "first_seed": cfg.first_seed,
        "radius": str(cfg.radius),
        "refresh": cfg.refresh if cfg.refresh is not None else "query",
        "window": format_duration(cfg.window) if cfg.window is not None else None,
        "half_life": format_duration(cfg.half_life) if cfg.half_life is not None else None,
        "cost_gamma": json_number(cfg.resolve_cost_gamma(float(cfg.gamma))),
        "budget_safe": cfg.budget_safe,
        "canary_share": json_number(cfg.canary_share),
        "min_samples": cfg.min_samples,
        "cost_scale": json_number(result.scale),
        "relative_budget": json_number(cfg.budget / result.max_mean_cost)
        if result.max_mean_cost > 0 else None,
        "timeline": [
            {"stage": k + 1, "start": iso_utc(w.start), "end": iso_utc(w.end),
             "queries": int(result.schedule.bounds[k + 1] - result.schedule.bounds[k]),
             "pool": [models[j] for j in np.flatnonzero(result.schedule.pools[k])],
             "oracle": names(result.oracle[k].models),
             **{str(p.policy): names(p.runs[0].deployed[k]) for p in result.policies if p.runs},
             **{str(p): names(v[k].models) for p, v in result.exact.items()
                if p is not Policy.ORACLE and p in cfg.policies}}
            for k, w in enumerate(result.schedule.windows)
        ],
        **({"contextual": _contextual_extras(result)} if cfg.contextual else {}),
    }


def _contextual_extras(result: ReplayResult) -> dict[str, Any]:
    """The segments of a contextual replay and the contextual oracle's value per query."""
    cfg, seg = result.config, result.segments
    assert seg is not None
    sizes = np.diff(result.schedule.bounds).astype(np.float64)
    oracle = result.exact.get(Policy.ORACLE_CONTEXTUAL, ())
    value = float(_oracle_totals(list(oracle), sizes)[0].sum()) / cfg.horizon if oracle else None
    return {"segments": cfg.segments if cfg.segments != "auto" else "auto",
            "clusters": len(seg.names) if cfg.segments == "auto" else None,
            "segment_shares": {name: json_number(float(w))
                               for name, w in zip(seg.names, seg.shares, strict=True)},
            "oracle_contextual_value": json_number(value) if value is not None else None}

