"""Contextual replay (SPEC 12): one routing table per query segment under one budget, shared
throughput caps and one deployment set; PORT and the contextual oracle beside it.

Segments come from a column of the outcomes (``eval_name`` by default) or from clusters of the
prompt text (``--segments auto``, ``embed``). ``stageroute-contextual`` keeps statistics
per (segment, model), shrinks each cell toward its model (``estimate.segments``), deploys by the
joint DeployOPT and routes by the joint RouteOPT (``optimize.joint``). ``oracle-contextual`` is the
best set and per-segment tables with the true cell means; ``port`` is PORT (``simulate.port``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from stageroute.estimate.prior import price_cost, typical_tokens
from stageroute.estimate.segments import shrunk_bounds
from stageroute.inputs.outcomes import OutcomeMatrix
from stageroute.inputs.segmentation import Segmentation, cell_truth
from stageroute.optimize.deploy import preference_order
from stageroute.optimize.explore import deploy_caps, explorable, refill_one_newcomer
from stageroute.optimize.joint import JointRouting, deploy_joint
from stageroute.options import Policy
from stageroute.simulate import loop as compiled
from stageroute.simulate.ctxloop import run_contextual
from stageroute.simulate.port import PortRun, run_port
from stageroute.simulate.replay import (
    ReplayConfig,
    Run,
    Schedule,
    Setup,
    StageValue,
    Stream,
    bounds_of,
    policy_knobs,
)


def joint_deploy(u: NDArray[np.float64], c: NDArray[np.float64], w: NDArray[np.float64],
                 a: NDArray[np.float64], config: ReplayConfig,
                 order: NDArray[np.intp] | None = None) -> tuple[NDArray[np.bool_], JointRouting]:
    """Joint DeployOPT (``optimize.joint.deploy_joint``) with the replay's options; ``order``
    breaks ties between sets of the same value (default: index order)."""
    return deploy_joint(u, c, w, a, config.budget, config.max_deployed, config.solver,
                        config.allow_drop, order=order)


def oracle_contextual(matrix: OutcomeMatrix, seg: Segmentation, schedule: Schedule,
                      config: ReplayConfig, alpha: NDArray[np.float64]) -> list[StageValue]:
    """Per stage: the best set of at most M available models and its per-segment tables, with
    the true cell means (stages with the same pool are solved once)."""
    mu, mc = cell_truth(matrix, seg)
    w = seg.shares
    cache: dict[bytes, StageValue] = {}
    out = []
    for pool in schedule.pools:
        key = pool.tobytes()
        if key not in cache:
            idx = np.flatnonzero(pool)
            chosen, table = joint_deploy(mu[:, idx], mc[:, idx], w, alpha[idx], config)
            cache[key] = StageValue(tuple(int(j) for j in idx[chosen]), table.objective,
                                    table.cost, table.over_budget)
        out.append(cache[key])
    return out


def _stage_set(pool: NDArray[np.bool_], cells: NDArray[np.float64],
               stats: NDArray[np.float64], w: NDArray[np.float64], kn: NDArray[np.float64],
               prior: NDArray[np.float64], alpha: NDArray[np.float64], config: ReplayConfig,
               queries: float) -> tuple[int, ...]:
    """The deployed set of a stage: joint DeployOPT on the shrunk cell bounds, with the
    exploration caps and the refill of ``optimize.explore`` counted per model, exploring at
    most one under-sampled model (``optimize.explore.one_newcomer``), as ``plan --segments``.

    Sets of the same value go to the per-model preference order (mu_U desc, then c_L asc), as
    in ``plan --segments`` and the one-table DeployOPT: a free slot goes to the most promising
    model, not to the first in the pool. Such ties are common: a newcomer at mu_U = 1 on its
    slice and a budget-bound model can take all the traffic the LP plans, leaving the third
    slot at share 0, yet that model carries the newcomer's traffic once its bounds fall."""
    idx = np.flatnonzero(pool)
    u_all, c_all = shrunk_bounds(cells, kn, prior)
    u_cell, c_cell = u_all[:, idx], c_all[:, idx]
    u, c = bounds_of(stats, idx, kn, prior)  # the per-model bounds order the preferences
    n_r = stats[compiled.N_R, idx]
    share, need = config.canary_share, float(config.min_samples)
    caps = deploy_caps(n_r, alpha[idx], share, need, config.max_deployed)

    def solve(bounds: NDArray[np.float64]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        chosen = joint_deploy(np.where(bounds[None, :] < 0, -1.0, u_cell), c_cell, w, caps,
                              config, preference_order(bounds, c))[0]
        return chosen, chosen

    chosen_mask, _, u, _ = refill_one_newcomer(solve, u, c, n_r, alpha[idx], share, need, queries,
                                            config.max_deployed, cells.shape[1], lambda m: m)
    chosen = np.array([i for i in preference_order(u, c) if chosen_mask[i]], dtype=np.int64)
    final, _ = explorable(idx[chosen], stats[compiled.N_R], alpha, share, need, queries)
    return tuple(sorted(int(j) for j in final))


def run_stageroute_contextual(outcomes: OutcomeMatrix, seg: Segmentation, schedule: Schedule,
                              stream: Stream, config: ReplayConfig, alpha: NDArray[np.float64],
                              scale: float, prices: NDArray[np.float64]) -> Run:
    """Contextual StageRoute on one stream with bandit feedback (``run_policy``'s contract)."""
    n_models, n_seg = len(outcomes.models), len(seg.names)
    k_stages = schedule.pools.shape[0]
    stats = np.zeros((6, n_models))
    cells = np.zeros((6, n_seg, n_models))
    seen = np.zeros(n_seg)
    kn = policy_knobs(Policy.STAGEROUTE, config, scale)
    reward, cost = np.zeros(k_stages), np.zeros(k_stages)
    dropped = np.zeros(k_stages, dtype=np.int64)
    deployed: list[tuple[int, ...]] = []
    for k in range(k_stages):
        lo, hi = schedule.bounds[k], schedule.bounds[k + 1]
        prior = price_cost(prices[0], prices[1], typical_tokens(
            stats[compiled.MEAN_C], stats[compiled.N_C], prices[0], prices[1]))
        w = (seen + 1.0) / (seen.sum() + n_seg)
        current = _stage_set(schedule.pools[k], cells, stats, w, kn, prior, alpha,
                             config, float(hi - lo))
        out_model = np.empty(hi - lo, dtype=np.int64)
        out_reward, out_cost = np.empty(hi - lo), np.empty(hi - lo)
        run_contextual(np.array(current, dtype=np.int64), alpha, stream.prompts[lo:hi],
                       seg.of_prompt, stream.draws[lo:hi], outcomes.reward, outcomes.cost, cells,
                       stats, seen, prior, kn, config.budget, config.allow_drop,
                       config.canary_share, float(config.min_samples), config.refresh or 0,
                       out_model, out_reward, out_cost)
        reward[k], cost[k] = out_reward.sum(), out_cost.sum()
        dropped[k] = int((out_model < 0).sum())
        deployed.append(current)
    return Run(reward, cost, dropped, tuple(deployed))


def _port_run(port: PortRun, bounds: NDArray[np.int64]) -> Run:
    """PORT's per-query outcomes as per-stage sums (its allowed set per stage as deployed)."""
    starts = bounds[:-1]
    return Run(np.add.reduceat(port.reward, starts), np.add.reduceat(port.cost, starts),
               np.add.reduceat((port.served < 0).astype(np.int64), starts),
               tuple(tuple(int(j) for j in np.flatnonzero(row)) for row in port.allowed))


def contextual_policies(outcomes: OutcomeMatrix, seg: Segmentation, setup: Setup,
                        features: NDArray[np.float64] | None
                        ) -> tuple[dict[Policy, list[StageValue]],
                                   dict[Policy, Callable[[Stream, int], Run]]]:
    """What ``replay`` adds with ``contextual``: the contextual oracle's per-stage values and a
    runner per contextual learning policy (``runner(stream, seed) -> Run``). ``features`` [P, d]:
    the prompts' embedding, PORT's nearest-neighbour space (None: no PORT)."""
    config, schedule = setup.config, setup.schedule
    exact = {Policy.ORACLE_CONTEXTUAL: oracle_contextual(outcomes, seg, schedule, config,
                                                         setup.alpha)}

    def stageroute(stream: Stream, _: int) -> Run:
        return run_stageroute_contextual(outcomes, seg, schedule, stream, config, setup.alpha,
                                         setup.scale, setup.prices)

    runners: dict[Policy, Callable[[Stream, int], Run]] = {Policy.CONTEXTUAL: stageroute}
    if features is not None:
        unit = features

        def port(stream: Stream, seed: int) -> Run:
            # PORT's labelled history: every other prompt of the table (leave one out)
            out = run_port(unit, outcomes.reward, outcomes.cost, stream.prompts, schedule.pools,
                           schedule.bounds, config.budget, None,
                           max_deployed=config.max_deployed, seed=seed)
            return _port_run(out, schedule.bounds)

        runners[Policy.PORT] = port
    return exact, runners
