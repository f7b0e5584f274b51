"""Bounds per (segment, model), each cell shrunk toward its model's global estimate (SPEC 12).

The statistics are an array ``stats[6, S, N]`` in the rows of ``simulate.loop`` (n, mean, M2 of
the reward, then of the cost) for S segments and N models; the model's global statistics
``glob[6, N]`` are the Chan merge of its segments (``global_stats``).

The estimator: empirical-Bayes normal-normal shrinkage toward an additive prior. Cell (s, m) has
n samples with mean x and sum of squared deviations M2. Its prior mean is a_m + b_s: the model's
level plus the segment's effect (how much easier or harder the segment is for every model).
The levels and effects are first fitted jointly to all the cells by least squares weighted by
the counts (``fit_effects``, an exact solve; each b_s carries EFFECT_PRIOR pseudo-samples at 0, so a
segment nobody was served in has no effect). Model m's prior then takes the effects as the other
models show them (``others_effects``: its own cells left out, so a cell's prior never contains
its own samples), and a_m is m's mean less the count-weighted mean of those effects over its
cells. The cell means of a model are taken to scatter around their prior means with variance
tau2 (the model-segment interaction), its samples around their cell's mean with variance sigma2
(within). The posterior of the cell's mean then has

    mean  = (n x + kappa (a_m + b_s)) / (n + kappa),      kappa = sigma2 / tau2
    var   = sigma2 / (n + kappa)

so the prior counts as kappa samples at a_m + b_s. The bound is StageRoute's own
(``reward_bound``, ``cost_bound``) at that mean with the count n + kappa and the spread
(M2 + kappa sigma2) / (n + kappa) (the cell's variance, with the prior's kappa pseudo-samples at
variance sigma2).

- Why the segment effect: the segments a model was served in are the policy's choice, so its
  plain global mean mixes segments of every difficulty in the policy's proportions. With the
  prior at that mean, replay on RouterBench pulled claude-v1's cell on arc-challenge (true mean
  0.91) down to its mean over winogrande, where it was mostly served (0.56), and never tried it
  there again. With a_m + b_s, a model's cell on an easy segment starts where the other models
  say that segment is. The cost keeps b_s = 0 (its segments differ by prompt length, which
  scales with each model's price rather than adding to it): its prior mean is the model's mean.
- sigma2 is the pooled within-segment variance: sum_s M2_s / (n_m - S_m), over the S_m segments
  with samples (the global variance M2_m / n_m when no segment has two samples).
- tau2 is the method-of-moments (ANOVA, DerSimonian-Laird) estimate of the unbalanced one-way
  random-effects model on the residuals d_s = x_s - a_m - b_s: Q = sum_s n_s d_s^2 has
  expectation (S_m - 1) sigma2 + tau2 (n_m - sum_s n_s^2 / n_m), so
  tau2 = (Q - (S_m - 1) sigma2) / (n_m - sum_s n_s^2 / n_m).
- kappa = sigma2 / tau2, capped at min(PRIOR_SEGMENTS, S_m - 1) n_m / S_m: the prior counts as
  at most three average segments of the model, and never as more than its samples outside one
  average segment (so a cell nobody tried is never surer than the model's other cells together).
  With S_m > 3 that floors tau2 at sigma2 S_m / (3 n_m), about the DerSimonian-Laird estimate's
  own standard error when tau2 = 0, sigma2 sqrt(2 (S_m - 1)) / n_m (0.9 of it at S_m = 14): an
  interaction the estimate cannot tell from 0. tau2 <= 0 (segments look alike) gives the cap.
  The factor was chosen by replay (below): the true interaction on both shared tables is small
  (sigma2 / tau2 of the true cell means is 20-700), and with a cap of one segment a newcomer's
  40 samples over MMLU-Pro's 14 segments (3 per segment) left each cell's radius 2.6 times the
  model's, so every cell was explored on its own.
- A cell nobody tried (n = 0) of a model seen in two segments or more gets the prior alone: mean
  a_m + b_s, count kappa. A model seen in one segment only: tau2 is not identified and kappa = 0,
  no pooling, its other cells untried (mu_U = 1 and the cost prior, as in the non-contextual
  bounds); a model seen nowhere, the same. With one segment the bounds are exactly the
  non-contextual ones (``simulate.loop.model_bounds``): kappa = 0. With one model, b = 0 (no
  other model shows an effect) and the prior is the model's mean.

The posterior variance sigma2 / (n + kappa) is what the shrunk mean is worth when the normal
model holds and tau2 is estimated well: a Bayesian credible bound (it covers the true cell means
on average over the segments; a test checks it on a simulation), not a per-cell frequentist
guarantee. The floor on tau2 bounds how far the prior narrows a cell's radius.

Measured in replay (``benchmarks/contextual_results.py`` cases, T = 100,000, 10 seeds, M_max 3,
segments = eval_name, per-query tables, before the one-newcomer rule of
``optimize.explore.one_newcomer``; reward per query at relative budgets 0.3 / 0.7):
RouterBench 0.7187 / 0.7465 and MMLU-Pro 0.4955 / 0.5125 with this prior; 0.7171 / 0.7421 and
0.4927 / 0.5098 with the prior at the model's plain mean and kept from untried cells (kappa <= n,
the previous estimator); 0.7172 / 0.7425 and 0.4956 / 0.5117 with the joint fit's effects (own
cells included) and kappa <= n; 0.7180 / 0.7459 and 0.4958 / 0.5127 with them and no such cap.

The factor PRIOR_SEGMENTS (the same replay, with the one-newcomer rule and DeployOPT's ties by
preference, seeds 0-9; RouterBench / MMLU-Pro at 0.3 / 0.7): 1 gave 0.7182 / 0.7466 and
0.4988 / 0.5144; 2: 0.7181 / 0.7449 and 0.4985 / 0.5150; 3: 0.7182 / 0.7457 and 0.4994 /
0.5153; 6: 0.7179 / 0.7456 and 0.4979 / 0.5151; 12: 0.7152 / 0.7446 and 0.4979 / 0.5153; the
standard-error floor sqrt(2 (S_m - 1)): 0.7170 / 0.7462 and 0.4982 / 0.5151. On seeds 10-19,
MMLU-Pro: 1 gave 0.4995 / 0.5147, 3 gave 0.4994 / 0.5153. The bound S_m - 1 came after (a
reviewer's point: with 2 or 3 segments three average segments outweigh the rest of the model);
with it and ``optimize.explore.refill_one_newcomer`` (seeds 0-9): RouterBench 0.7171 / 0.7452,
MMLU-Pro 0.4996 / 0.5156.
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

# Rows of the pooling array [7, N]: kappa, the pooled within-segment variance sigma2 and the
# model's base level (for the cost, its mean), for the reward and the cost; and the model's level
# in the joint fit of the segment effects (``fit_effects``).
KAPPA_R, VAR_R, KAPPA_C, VAR_C, BASE_R, BASE_C, FIT_R = range(7)
EFFECT_PRIOR = 1.0  # pseudo-samples at 0 on each segment effect (keeps an empty segment at 0)
PRIOR_SEGMENTS = 3.0  # the prior counts as at most this many average segments of the model


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
def model_base(stats, glob, effect, j, row_n):  # type: ignore[no-untyped-def]
    """Model ``j``'s level: its global mean less the count-weighted mean of its segments'
    effects ``effect`` [S] (the least-squares a_j of x_sj = a_j + b_s given b); O(S)."""
    total = glob[row_n, j]
    if total <= 0:
        return 0.0
    shift = 0.0
    for s in range(stats.shape[1]):
        shift += stats[row_n, s, j] * effect[s]
    return glob[row_n + 1, j] - shift / total


@njit(cache=True)
def model_pooling(stats, glob, effect, weight, base, j, row_n):  # type: ignore[no-untyped-def]
    """(kappa, sigma2) of model ``j`` for the kind whose count is in row ``row_n`` (N_R or N_C),
    from the cells ``stats[:, :, j]``, their merge ``glob[:, j]`` and the prior means
    base + weight effect[s]; O(S)."""
    total = glob[row_n, j]
    seen = 0
    within = 0.0
    q = 0.0
    square = 0.0
    for s in range(stats.shape[1]):
        n = stats[row_n, s, j]
        if n > 0:
            seen += 1
            within += stats[row_n + 2, s, j]
            d = stats[row_n + 1, s, j] - base - weight * effect[s]
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
    cap = min(PRIOR_SEGMENTS, seen - 1.0) * total / seen
    if tau2 <= 0.0:
        return cap, sigma2
    return min(sigma2 / tau2, cap), sigma2


@njit(cache=True)
def others_effects(stats, pooling, num, den, j, out):  # type: ignore[no-untyped-def]
    """The reward's segment effects as the models other than ``j`` show them, into ``out`` [S]:
    b_s = sum_m n_sm (x_sm - a_m) / (EFFECT_PRIOR + sum_m n_sm) over m != j, with each model's
    level a_m of the joint fit (``pooling[FIT_R]``), from the sums over all models ``num`` and
    ``den`` [S] (``fit_effects``) less model j's own terms; O(S)."""
    for s in range(stats.shape[1]):
        n = stats[N_R, s, j]
        if n > 0:
            out[s] = ((num[s] - n * (stats[N_R + 1, s, j] - pooling[FIT_R, j]))
                      / (den[s] - n))
        else:
            out[s] = num[s] / den[s]


@njit(cache=True)
def pool_model(stats, glob, pooling, effects, j):  # type: ignore[no-untyped-def]
    """Refresh model ``j``'s column of ``pooling`` [7, N] from its cells and the segment effects
    its prior uses, ``effects[:, j]`` (held; ``fit_effects`` refreshes them); O(S)."""
    effect = effects[:, j]
    base = model_base(stats, glob, effect, j, N_R)
    pooling[BASE_R, j] = base
    pooling[KAPPA_R, j], pooling[VAR_R, j] = model_pooling(stats, glob, effect, 1.0, base, j,
                                                           N_R)
    pooling[BASE_C, j] = glob[N_C + 1, j]  # the cost has no segment effect
    pooling[KAPPA_C, j], pooling[VAR_C, j] = model_pooling(stats, glob, effect, 0.0,
                                                           pooling[BASE_C, j], j, N_C)


@njit(cache=True)
def fit_effects(stats, glob, pooling, effects):  # type: ignore[no-untyped-def]
    """Fit the models' levels a (``pooling[FIT_R]``) and the segments' effects b of
    x_sm = a_m + b_s by least squares weighted by the counts, b with EFFECT_PRIOR pseudo-samples
    at 0; then each model's effects as the others show them into ``effects`` [S, N] and every
    model's pooling.

    Exact: with a_m = xbar_m - sum_s n_sm b_s / n_m substituted, the normal equations of b are
    the S x S system (EFFECT_PRIOR + n_s.) b_s - sum_m n_sm / n_m sum_t n_tm b_t
    = sum_m n_sm (x_sm - xbar_m), symmetric positive definite; O(S^2 N + S^3). Each model's
    effects are the all-model sums less its own terms (``others_effects``), O(S N) in all."""
    segments, models = stats.shape[1], stats.shape[2]
    lhs = np.zeros((segments, segments))
    rhs = np.zeros(segments)
    for m in range(models):
        total = glob[N_R, m]
        if total <= 0:
            continue
        for s in range(segments):
            n = stats[N_R, s, m]
            if n <= 0:
                continue
            lhs[s, s] += n
            rhs[s] += n * (stats[N_R + 1, s, m] - glob[N_R + 1, m])
            for t in range(segments):
                lhs[s, t] -= n * stats[N_R, t, m] / total
    for s in range(segments):
        lhs[s, s] += EFFECT_PRIOR
    effect = np.linalg.solve(lhs, rhs)
    for m in range(models):
        pooling[FIT_R, m] = model_base(stats, glob, effect, m, N_R)
    num = np.zeros(segments)
    den = np.full(segments, EFFECT_PRIOR)
    for s in range(segments):
        for m in range(models):
            n = stats[N_R, s, m]
            if n > 0:
                num[s] += n * (stats[N_R + 1, s, m] - pooling[FIT_R, m])
                den[s] += n
    for m in range(models):
        others_effects(stats, pooling, num, den, m, effects[:, m])
        pool_model(stats, glob, pooling, effects, m)


@njit(cache=True)
def pooling_of(stats, glob):  # type: ignore[no-untyped-def]
    """(pooling [7, N], the segment effects of each model's prior [S, N]) (``fit_effects``)."""
    pooling = np.zeros((7, stats.shape[2]))
    effects = np.zeros(stats.shape[1:])
    fit_effects(stats, glob, pooling, effects)
    return pooling, effects


@njit(cache=True)
def shrunk_cell(stats, s, j, row_n, kappa, sigma2, prior):  # type: ignore[no-untyped-def]
    """(mean, variance, count) of cell (s, j) for one kind after shrinkage toward the prior mean
    ``prior``: the mean and count of the module docstring, the variance
    (M2 + kappa sigma2) / (n + kappa); NaN variance and count 0 when both n and kappa are 0."""
    n = stats[row_n, s, j]
    count = n + kappa
    if count <= 0:
        return 0.0, math.nan, 0.0
    mean = (n * stats[row_n + 1, s, j] + kappa * prior) / count
    return mean, (stats[row_n + 2, s, j] + kappa * sigma2) / count, count


@njit(cache=True)
def cell_bounds(stats, s, j, pooling, effects, kn, prior):  # type: ignore[no-untyped-def]
    """(mu_U, cost bound) of cell (segment ``s``, model ``j``): ``simulate.loop.model_bounds``
    on the shrunk statistics (``pooling`` and ``effects``: ``pooling_of``'s; ``kn``: the knobs of
    ``simulate.loop.knobs``; ``prior[j]``: the cost of an untried model, NaN for the floor)."""
    radius_mean = kn[RADIUS_MEAN] > 0
    base = min(max(pooling[BASE_R, j] + effects[s, j], 0.0), 1.0)
    mean, var, n = shrunk_cell(stats, s, j, N_R, pooling[KAPPA_R, j], pooling[VAR_R, j], base)
    u = reward_bound(mean, var, n, kn[GAMMA], radius_mean)
    mean, var, n = shrunk_cell(stats, s, j, N_C, pooling[KAPPA_C, j], pooling[VAR_C, j],
                               pooling[BASE_C, j])
    c = cost_bound(mean, var, n, kn[COST_GAMMA], radius_mean, kn[SCALE], kn[C_LO], kn[C_HI],
                   prior[j], kn[COST_UPPER] > 0)
    return u, c


@njit(cache=True)
def _all_bounds(stats, pooling, effects, kn, prior, u, c):  # type: ignore[no-untyped-def]
    for s in range(stats.shape[1]):
        for j in range(stats.shape[2]):
            u[s, j], c[s, j] = cell_bounds(stats, s, j, pooling, effects, kn, prior)


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
    pooling, effects = pooling_of(stats, global_stats(stats))
    u = np.empty(stats.shape[1:])
    c = np.empty(stats.shape[1:])
    _all_bounds(stats, pooling, effects, np.asarray(kn, dtype=np.float64), prior, u, c)
    return u, c
