"""Bounds per (segment, model), each cell shrunk toward its model's global estimate (SPEC 12).

The statistics are an array ``stats[6, S, N]`` in the rows of ``simulate.loop`` (n, mean, M2 of
the reward, then of the cost) for S segments and N models; the model's global statistics
``glob[6, N]`` are the Chan merge of its segments (``global_stats``).

The estimator: empirical-Bayes normal-normal shrinkage, per model and per kind (reward, cost).
Cell (s, m) has n samples with mean x and sum of squared deviations M2; the model's global mean
is mu. Its segment means are taken to scatter around mu with variance tau2 (between segments),
its samples around their segment's mean with variance sigma2 (within). The posterior of the
cell's mean then has

    mean  = (n x + kappa mu) / (n + kappa),      kappa = sigma2 / tau2
    var   = sigma2 / (n + kappa)

so the prior counts as kappa samples at mu. The bound is StageRoute's own (``reward_bound``,
``cost_bound``) at that mean with the count n + kappa and the spread (M2 + kappa sigma2) /
(n + kappa) (the cell's variance, with the prior's kappa pseudo-samples at variance sigma2).

- sigma2 is the pooled within-segment variance: sum_s M2_s / (n_m - S_m), over the S_m segments
  with samples (the global variance M2_m / n_m when no segment has two samples).
- tau2 is the method-of-moments (ANOVA, DerSimonian-Laird) estimate of the unbalanced one-way
  random-effects model: Q = sum_s n_s (x_s - mu)^2 has expectation (S_m - 1) sigma2 +
  tau2 (n_m - sum_s n_s^2 / n_m), so tau2 = (Q - (S_m - 1) sigma2) / (n_m - sum_s n_s^2 / n_m).
- kappa = sigma2 / tau2, capped at n_m / S_m (the mean count of a seen segment): tau2 is floored
  at sigma2 / (n_m / S_m), the sampling variance of one average segment's mean, a spread that
  S_m segments cannot tell from 0. tau2 <= 0 (segments look alike) gives the cap: the prior then
  counts as one average segment, never as all the model's samples.
- The prior never outweighs the cell's own samples: the count is n + min(kappa, n). A cell
  nobody tried (n = 0) is untried, mu_U = 1 and the cost prior, as in the non-contextual
  bounds. This keeps the bounds optimistic where the data cannot speak for the cell, which a
  bandit needs: the model's global mean mu comes from wherever the policy served it, so it can
  sit far from a segment the model was rarely tried in. Without the cap (the prior counting
  kappa samples, up to n_m / S_m, even at n = 0), replay on RouterBench shrank claude-v1's bound
  on arc-challenge (true mean 0.91, 13 samples) to its mean over winogrande (0.56) and never
  tried it there again: 0.7319 reward per query against 0.7457 with the cap (relative budget
  0.7, T = 100,000, 2 seeds), and lower on all four table/budget cases measured.
- A model seen in one segment only: tau2 is not identified and kappa = 0, no pooling. A model
  seen nowhere: kappa = 0, the same. With one segment the bounds are exactly the
  non-contextual ones (``simulate.loop.model_bounds``).

Why the count n + min(kappa, n) in the radius: the posterior variance sigma2 / (n + kappa) is
what the shrunk mean is worth when the normal model holds and tau2 is estimated well; it is a
Bayesian credible bound (it covers the true cell means on average over the segments; a test
checks it on a simulation), not a per-cell frequentist guarantee, and the cap bounds how much
narrower than the cell's own it gets (at most by sqrt(2)): a cell's own samples weigh at least
half. The floor on tau2 keeps kappa finite when the segments look alike.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

from stageroute.estimate.bounds import cost_bound, reward_bound
from stageroute.estimate.stats import fold
from stageroute.simulate.loop import (
    C_HI,
    C_LO,
    COST_GAMMA,
    COST_UPPER,
    GAMMA,
    N_C,
    N_R,
    RADIUS_MEAN,
    SCALE,
)

# Rows of the pooling array [4, N]: kappa and the pooled within-segment variance sigma2, for the
# reward and for the cost.
KAPPA_R, VAR_R, KAPPA_C, VAR_C = range(4)


@njit(cache=True)
def global_stats(stats):  # type: ignore[no-untyped-def]
    """The model's statistics [6, N]: each kind's (n, mean, M2) Chan-merged over the segments
    (mean 0 where a model has no sample, as in a fresh statistics array)."""
    segments, models = stats.shape[1], stats.shape[2]
    group = np.empty(segments * models, dtype=np.int64)
    for s in range(segments):
        for j in range(models):
            group[s * models + j] = j
    out = np.zeros((6, models))
    for row in (N_R, N_C):
        n, mean, m2 = fold(group, stats[row].ravel(), stats[row + 1].ravel(),
                           stats[row + 2].ravel(), models)
        for j in range(models):
            out[row, j] = n[j]
            out[row + 1, j] = mean[j] if n[j] > 0 else 0.0
            out[row + 2, j] = m2[j]
    return out


@njit(cache=True)
def model_pooling(stats, glob, j, row_n):  # type: ignore[no-untyped-def]
    """(kappa, sigma2) of model ``j`` for the kind whose count is in row ``row_n`` (N_R or N_C),
    from the cells ``stats[:, :, j]`` and their merge ``glob[:, j]``; O(S)."""
    total = glob[row_n, j]
    mu = glob[row_n + 1, j]
    seen = 0
    within = 0.0
    q = 0.0
    square = 0.0
    for s in range(stats.shape[1]):
        n = stats[row_n, s, j]
        if n > 0:
            seen += 1
            within += stats[row_n + 2, s, j]
            d = stats[row_n + 1, s, j] - mu
            q += n * d * d
            square += n * n
    if seen == 0 or total <= 0:
        return 0.0, 0.0
    dof = total - seen
    sigma2 = within / dof if dof > 0 else glob[row_n + 2, j] / total
    if seen < 2:
        return 0.0, sigma2
    spread = total - square / total
    tau2 = (q - (seen - 1) * sigma2) / spread if spread > 0 else 0.0
    cap = total / seen
    if tau2 <= 0.0:
        return cap, sigma2
    return min(sigma2 / tau2, cap), sigma2


@njit(cache=True)
def pool_model(stats, glob, j, pooling):  # type: ignore[no-untyped-def]
    """Refresh column ``j`` of the pooling array (after an update of model ``j``); O(S)."""
    pooling[KAPPA_R, j], pooling[VAR_R, j] = model_pooling(stats, glob, j, N_R)
    pooling[KAPPA_C, j], pooling[VAR_C, j] = model_pooling(stats, glob, j, N_C)


@njit(cache=True)
def pooling_of(stats, glob):  # type: ignore[no-untyped-def]
    """The pooling array [4, N] (rows KAPPA_R, VAR_R, KAPPA_C, VAR_C) of every model."""
    out = np.zeros((4, stats.shape[2]))
    for j in range(stats.shape[2]):
        pool_model(stats, glob, j, out)
    return out


@njit(cache=True)
def shrunk_cell(stats, glob, s, j, row_n, kappa, sigma2):  # type: ignore[no-untyped-def]
    """(mean, variance, count) of cell (s, j) for one kind after shrinkage, kappa capped at the
    cell's count n: the mean and count of the module docstring, the variance
    (M2 + kappa sigma2) / (n + kappa); NaN variance and count 0 for a cell with no samples."""
    n = stats[row_n, s, j]
    kappa = min(kappa, n)  # the prior never outweighs the cell's own samples
    count = n + kappa
    if count <= 0:
        return 0.0, math.nan, 0.0
    mean = (n * stats[row_n + 1, s, j] + kappa * glob[row_n + 1, j]) / count
    return mean, (stats[row_n + 2, s, j] + kappa * sigma2) / count, count


@njit(cache=True)
def cell_bounds(stats, glob, s, j, pooling, kn, prior):  # type: ignore[no-untyped-def]
    """(mu_U, cost bound) of cell (segment ``s``, model ``j``): ``simulate.loop.model_bounds``
    on the shrunk statistics (``kn``: the knobs of ``simulate.loop.knobs``; ``prior[j]``: the
    cost of an untried model, NaN for the floor)."""
    radius_mean = kn[RADIUS_MEAN] > 0
    mean, var, n = shrunk_cell(stats, glob, s, j, N_R, pooling[KAPPA_R, j], pooling[VAR_R, j])
    u = reward_bound(mean, var, n, kn[GAMMA], radius_mean)
    mean, var, n = shrunk_cell(stats, glob, s, j, N_C, pooling[KAPPA_C, j], pooling[VAR_C, j])
    c = cost_bound(mean, var, n, kn[COST_GAMMA], radius_mean, kn[SCALE], kn[C_LO], kn[C_HI],
                   prior[j], kn[COST_UPPER] > 0)
    return u, c


@njit(cache=True)
def _all_bounds(stats, glob, pooling, kn, prior, u, c):  # type: ignore[no-untyped-def]
    for s in range(stats.shape[1]):
        for j in range(stats.shape[2]):
            u[s, j], c[s, j] = cell_bounds(stats, glob, s, j, pooling, kn, prior)


def shrunk_bounds(stats: NDArray[np.float64], kn: NDArray[np.float64],
                  prior: NDArray[np.float64],
                  ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(mu_U [S, N], cost bound [S, N]) of every cell of ``stats`` [6, S, N].

    Args:
        stats: per-(segment, model) statistics in the rows of ``simulate.loop``.
        kn: the bounds' knobs (``simulate.loop.knobs``).
        prior: [N] the cost bound of an untried model (NaN: the floor, ``lo * scale``).
    """
    stats = np.ascontiguousarray(stats, dtype=np.float64)
    if stats.ndim != 3 or stats.shape[0] != 6:
        raise ValueError(f"stats must have shape (6, S, N), got {stats.shape}")
    prior = np.ascontiguousarray(prior, dtype=np.float64)
    if prior.shape != (stats.shape[2],):
        raise ValueError(f"prior must have shape ({stats.shape[2]},), got {prior.shape}")
    glob = global_stats(stats)
    u = np.empty(stats.shape[1:])
    c = np.empty(stats.shape[1:])
    _all_bounds(stats, glob, pooling_of(stats, glob), np.asarray(kn, dtype=np.float64), prior,
                u, c)
    return u, c
