"""Off-policy estimates of fixed routing tables from a bandit log: IPS, SNIPS, doubly robust.

A fixed table pi (a plan's routing table, uniform over the available models, or the logging policy
itself) serves request i with pi(a | A_i), its weights restricted to the set A_i of models
available then and renormalised. With the logged model a_i, its propensity p_i and the weight
w_i = pi(a_i | A_i) / p_i, the value V(pi) of a per-request outcome y (reward, or cost) is
estimated by

    IPS     (1/n) sum_i w_i y_i
    SNIPS   sum_i w_i y_i / sum_i w_i
    DR      (1/n) sum_i [ sum_a pi(a | A_i) yhat(s_i, a) + w_i (y_i - yhat(s_i, a_i)) ]

with yhat the log's mean of y per (segment, model) (per model where the cell is empty; the
direct part). Intervals: a block bootstrap (contiguous blocks in time order, so that drift within
a block stays together), bias-corrected and accelerated (BCa: the acceleration from the
leave-one-block-out jackknife), the direct part held fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from stageroute.inputs.banditlog import BanditLog

BOOTSTRAP_RESAMPLES = 1000
MAX_BLOCKS = 1000
DEFAULT_MIN_KEPT = 200
# The propensity check: a (stage, available set) cell needs this many requests to be judged.
CHECK_MIN_ROWS = 200


class Estimator(StrEnum):
    IPS = "ips"
    SNIPS = "snips"
    DR = "dr"
    ON_POLICY = "on-policy"  # the logging policy itself: the plain means
    REPLAY = "replay"  # the replay method (Li et al.), for adaptive policies


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """Overlap figures: events with a weight > 0 (or accepted), (sum w)^2 / sum w^2, max w."""

    events: int
    kept: int
    kept_share: float
    effective_sample_size: float
    max_weight: float


@dataclass(frozen=True, slots=True)
class Estimate:
    """One policy's value under one estimator, with 95% bootstrap intervals."""

    policy: str
    estimator: Estimator
    mean_reward: float
    mean_cost: float
    ci_reward: tuple[float, float]
    ci_cost: tuple[float, float]
    diagnostics: Diagnostics
    warnings: tuple[str, ...] = ()


def table_probabilities(weights: NDArray[np.float64], available: NDArray[np.bool_]
                        ) -> NDArray[np.float64]:
    """pi(a | A) [P, N] of a table ``weights`` [N] on each available set: restricted and
    renormalised (a row of zeros where none of the table's models is available)."""
    w: NDArray[np.float64] = available * weights[None, :]
    total = w.sum(axis=1, keepdims=True)
    out: NDArray[np.float64] = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    return out


def uniform_probabilities(available: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Uniform over the models available at each request."""
    return table_probabilities(np.ones(available.shape[1]), available)


def table_truth(log: BanditLog, models: tuple[str, ...], mean_reward: NDArray[np.float64],
                mean_cost: NDArray[np.float64], pi: NDArray[np.float64]) -> tuple[float, float]:
    """The true V(pi) (reward, cost) of a table ``pi`` [P, N] on a log simulated from a
    full-information table (``inputs.outcomes.simulate_log``): per request, sum_a pi(a | A_i)
    times model a's mean over the table's prompts (``models`` with ``mean_reward``/``mean_cost``;
    models of the log outside the table never serve)."""
    order = [log.models.index(m) for m in models]
    mu_r, mu_c = np.zeros(len(log.models)), np.zeros(len(log.models))
    mu_r[order], mu_c[order] = mean_reward, mean_cost
    per = pi[log.pattern]
    return float((per @ mu_r).mean()), float((per @ mu_c).mean())


def cell_means(log: BanditLog, y: NDArray[np.float64]) -> NDArray[np.float64]:
    """yhat [S, N]: the log's mean of ``y`` per (segment, model); per model where the cell is
    empty, the overall mean where the model never served."""
    s, n = len(log.segments), len(log.models)
    cell = log.segment * n + log.model
    count = np.bincount(cell, minlength=s * n).reshape(s, n)
    total = np.bincount(cell, weights=y, minlength=s * n).reshape(s, n)
    per_model_n = count.sum(axis=0)
    per_model = np.where(per_model_n > 0, total.sum(axis=0) / np.maximum(per_model_n, 1),
                         float(y.mean()))
    return np.where(count > 0, total / np.maximum(count, 1), per_model[None, :])


def _blocks(n: int) -> NDArray[np.int64]:
    """Start indices of the bootstrap's contiguous blocks."""
    return np.unique(np.linspace(0, n, min(n, MAX_BLOCKS) + 1).astype(np.int64)[:-1])


def block_sums(columns: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The column sums and the row count of each bootstrap block ([b, q], [b])."""
    n = columns.shape[0]
    starts = _blocks(n)
    return (np.add.reduceat(columns, starts, axis=0),
            np.diff(np.append(starts, n)).astype(np.float64))


def bootstrap_totals(columns: NDArray[np.float64], seed: int,
                     resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[NDArray[np.float64],
                                                                    NDArray[np.float64]]:
    """Block-bootstrap resamples of the column sums of ``columns`` [n, q] and of the row count.

    Returns ([resamples, q] sums, [resamples] counts).
    """
    sums, sizes = block_sums(columns)
    b = sizes.size
    # resample r draws b blocks with replacement: its counts, from one flat bincount
    picks = np.random.default_rng(seed).integers(0, b, size=(resamples, b))
    picks += np.arange(resamples)[:, None] * b
    flat = np.bincount(picks.ravel(), minlength=resamples * b)
    counts: NDArray[np.float64] = flat.reshape(resamples, b).astype(np.float64)
    return counts @ sums, counts @ sizes


def _interval(values: NDArray[np.float64], lo: float = 0.025, hi: float = 0.975,
              ) -> tuple[float, float]:
    low, high = np.percentile(values, [100.0 * lo, 100.0 * hi])
    return float(low), float(high)


def support_warning(name: str, w: NDArray[np.float64]) -> tuple[str, ...]:
    """E[w] is the share of the policy's traffic on models the logger could choose (1 with full
    overlap): a mean weight clearly below 1 means IPS counts the rest as reward 0; clearly above
    1, the propensities are too small."""
    if w.size < 2:
        return ()
    mean = float(w.mean())
    se = float(w.std()) / math.sqrt(w.size)
    if mean > 1.0 + 0.02 + 4.0 * se:
        return (f"policy {name}: the mean importance weight is {mean:.3f}, above 1: the logged "
                "propensities are too small for the models this policy serves, so IPS "
                "overstates its reward and cost (SNIPS and DR less so); check the propensities",)
    if mean >= 1.0 - 0.02 - 4.0 * se:
        return ()
    return (f"policy {name}: the mean importance weight is {mean:.3f}, not 1: about "
            f"{1.0 - mean:.0%} of its traffic goes to models the logger did not choose at the "
            "time, which IPS counts as reward 0 and cost 0, SNIPS renormalises away and DR fills "
            "in from the per-model means; trust none of them for that share",)


def diagnostics(w: NDArray[np.float64]) -> Diagnostics:
    """Overlap of a target with the logger from the importance weights ``w``."""
    kept = int((w > 0).sum())
    sq = float((w * w).sum())
    return Diagnostics(int(w.size), kept, kept / max(w.size, 1),
                       float(w.sum()) ** 2 / sq if sq > 0 else 0.0,
                       float(w.max()) if w.size else 0.0)


def _target_columns(log: BanditLog, pi: NDArray[np.float64] | None) -> NDArray[np.float64]:
    """Per event: w, w r, w c and the DR terms of reward and cost of the table ``pi`` (None: the
    logging policy, w = 1 and DR = the plain outcome)."""
    r, c = log.reward, log.cost
    if pi is None:
        one = np.ones(log.size)
        return np.column_stack([one, r, c, r, c])
    w = pi[log.pattern, log.model] / log.propensity
    r_hat, c_hat = cell_means(log, r), cell_means(log, c)
    # the direct part per (available set, segment): sum_a pi(a | A) yhat(s, a)
    dm_r = (pi @ r_hat.T)[log.pattern, log.segment]
    dm_c = (pi @ c_hat.T)[log.pattern, log.segment]
    dr_r = dm_r + w * (r - r_hat[log.segment, log.model])
    dr_c = dm_c + w * (c - c_hat[log.segment, log.model])
    return np.column_stack([w, w * r, w * c, dr_r, dr_c])


def fixed_tables(log: BanditLog, targets: dict[str, NDArray[np.float64] | None], seed: int,
                 min_kept: int) -> list[Estimate]:
    """IPS, SNIPS and DR of each table ``pi`` [P, N] of ``targets`` (None: the logging policy,
    estimated on-policy by the log's means). Reward and cost are both estimated; one bootstrap
    (the same resamples) serves every target. Each estimate carries its overlap warnings."""
    cols = np.hstack([_target_columns(log, pi) for pi in targets.values()])
    totals, count = bootstrap_totals(cols, seed)
    blocks, sizes = block_sums(cols)
    full, n = cols.sum(axis=0), float(log.size)
    # leave-one-block-out sums, for the intervals' acceleration (BCa)
    jack, jack_n = full[None, :] - blocks, n - sizes
    out = []
    for k, (name, pi) in enumerate(targets.items()):
        cut = slice(5 * k, 5 * k + 5)
        f, t, j = full[cut], totals[:, cut], jack[:, cut]
        diag = diagnostics(cols[:, 5 * k])
        kinds = [Estimator.ON_POLICY] if pi is None else [Estimator.IPS, Estimator.SNIPS,
                                                          Estimator.DR]
        warn = () if pi is None else (overlap_warnings(name, diag, min_kept)
                                      + support_warning(name, cols[:, 5 * k]))
        for est in kinds:
            point = _estimate(est, f, n)
            boot, jk = _estimate(est, t, count), _estimate(est, j, jack_n)
            ci = [bca_interval(boot[i], point[i], jk[i]) for i in range(2)]
            out.append(Estimate(name, est, _finite(float(point[0])), _finite(float(point[1])), ci[0], ci[1],
                                diag, warn))
    return out


def _estimate(est: Estimator, sums: NDArray[np.float64], n: NDArray[np.float64] | float,
              ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(reward, cost) of an estimator from the column sums [..., 5] (weight, w r, w c, DR r, DR c)
    over ``n`` requests: the one formula for the point, the bootstrap and the jackknife."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if est is Estimator.SNIPS:
            return sums[..., 1] / sums[..., 0], sums[..., 2] / sums[..., 0]
        if est is Estimator.DR:
            return sums[..., 3] / n, sums[..., 4] / n
        return sums[..., 1] / n, sums[..., 2] / n  # IPS; on-policy (weights 1) is the same sum


def bca_interval(boot: NDArray[np.float64], point: float | NDArray[np.float64],
                 jack: NDArray[np.float64], level: float = 0.95) -> tuple[float, float]:
    """Bias-corrected and accelerated bootstrap interval (Efron 1987): the percentile interval
    moved by the bootstrap's median bias (z0) and skewness (the jackknife's acceleration a).
    Heavy-tailed costs under importance weights make the plain percentile interval too short on
    the long side; BCa corrects for it. Falls back to the percentiles when either is undefined."""
    boot = _keep(boot)
    jack = jack[np.isfinite(jack)]
    point = float(point)
    normal = NormalDist()
    share = float(np.mean(boot < point)) if math.isfinite(point) else 0.5
    d = jack.mean() - jack if jack.size > 2 else np.zeros(1)
    spread = float(np.sum(d**2))
    accel = float(np.sum(d**3)) / (6.0 * spread**1.5) if spread > 0 else 0.0
    tail = (1.0 - level) / 2.0
    if not 0.0 < share < 1.0:
        return _interval(boot, tail, 1.0 - tail)
    z0 = normal.inv_cdf(share)

    def adjusted(q: float) -> float:
        z = z0 + normal.inv_cdf(q)
        denom = 1.0 - accel * z
        return normal.cdf(z0 + z / denom) if denom > 0 else (1.0 if q > 0.5 else 0.0)

    return _interval(boot, adjusted(tail), adjusted(1.0 - tail))


def _finite(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0


def _keep(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Resamples with a defined ratio (SNIPS over resamples where no weight is > 0 is not)."""
    kept = values[np.isfinite(values)]
    return kept if kept.size else np.zeros(1)


def overlap_warnings(name: str, diag: Diagnostics, min_kept: int) -> tuple[str, ...]:
    """Why an estimate rests on too little: few kept events, or a small effective sample."""
    out = []
    if diag.kept < min_kept:
        out.append(f"policy {name}: only {diag.kept} of {diag.events} logged events are kept "
                    f"(the policy's choice matches the log), fewer than --min-kept {min_kept}; "
                    "the estimate rests on too few events, log longer or log with more "
                    "exploration")
    elif diag.effective_sample_size < min_kept:
        out.append(f"policy {name}: the effective sample size is "
                   f"{diag.effective_sample_size:.0f} (largest weight {diag.max_weight:.3g}), "
                   f"below --min-kept {min_kept}; a few heavily weighted events decide the "
                   "estimate, trust DR or SNIPS over IPS and log with more exploration")
    return tuple(out)
