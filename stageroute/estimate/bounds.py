"""Confidence bounds of StageRoute: optimistic on reward, optimistic-for-the-router on cost.

    f_rad(v, n) = sqrt(gamma v / n) + gamma / n
    mu_U = clip(mean_r + 2 f_rad(v_r, n_r), 0, 1)                   (1 when n_r = 0)
    c_L  = clip(mean_c / s - 2 f_rad(v_c, n_c), c_lo, max(c_hi, mean_c / s)) * s
    c_U  = clip(mean_c / s + 2 f_rad(v_c, n_c), c_lo, max(c_hi, mean_c / s)) * s   (budget-safe)

with s the cost scale. The cost radius has its own gamma (costs are far less noisy than rewards;
gamma_c = 0 puts the plain mean in the budget row).

The upper clip never goes below the observed mean: a model whose mean cost is above the scale (a
rarely used expensive model in a log of cheap requests) keeps a bound near what the data say it
costs, instead of looking as cheap as the scale.

The scalar kernels (``reward_bound``, ``cost_bound``) are the one implementation: compiled, they
serve replay's per-query loop; the array functions below apply them to a whole pool.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from stageroute.options import Radius

MAX_VARIANCE = 0.25  # the largest variance of a variable on [0, 1]


def theory_gamma(n_models: int, horizon: int, delta: float = 0.05) -> float:
    """gamma = log(N T / delta), the value of the regret analysis (very conservative).

    >>> round(theory_gamma(10, 1000, 0.05), 3)
    12.206
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    return math.log(max(n_models, 1) * max(horizon, 1) / delta)


@njit(cache=True)
def f_rad(v: float, n: float, gamma: float) -> float:
    """f_rad(v, n) = sqrt(gamma v / n) + gamma / n, for n > 0."""
    return math.sqrt(gamma * max(v, 0.0) / n) + gamma / n


@njit(cache=True)
def _spread(mean: float, var: float, n: float, radius_mean: bool) -> float:
    """v of the radius: the mean (clipped to [0, 1]) or the variance (the largest below 2 samples)."""
    if radius_mean:
        return min(max(mean, 0.0), 1.0)
    if n < 2 or math.isnan(var):
        return MAX_VARIANCE
    return var


@njit(cache=True)
def reward_bound(mean: float, var: float, n: float, gamma: float, radius_mean: bool) -> float:
    """mu_U of one model; exactly 1 for an untried model (n = 0)."""
    if n <= 0:
        return 1.0
    return min(max(mean + 2.0 * f_rad(_spread(mean, var, n, radius_mean), n, gamma), 0.0), 1.0)


@njit(cache=True)
def cost_bound(mean: float, var: float, n: float, gamma: float, radius_mean: bool, scale: float,
               lo: float, hi: float, prior: float, upper: bool = False) -> float:
    """c_L (``upper``: c_U) of one model in currency; ``prior`` when untried (if NaN: ``lo * scale``,
    or ``hi * scale`` for the upper bound)."""
    if n <= 0:
        if math.isnan(prior):
            return (hi if upper else lo) * scale
        return prior
    m = mean / scale
    v = _spread(m, var / (scale * scale), n, radius_mean)
    width = 2.0 * f_rad(v, n, gamma)
    return min(max(m + width if upper else m - width, lo), max(hi, m)) * scale


@njit(cache=True)
def _reward_bounds(mean, var, n, gamma, radius_mean, out):  # type: ignore[no-untyped-def]
    for i in range(n.size):
        out[i] = reward_bound(mean[i], var[i], n[i], gamma, radius_mean)


@njit(cache=True)
def _cost_bounds(mean, var, n, gamma, radius_mean, scale, lo, hi, prior, upper, out):  # type: ignore[no-untyped-def]
    for i in range(n.size):
        out[i] = cost_bound(mean[i], var[i], n[i], gamma, radius_mean, scale, lo, hi, prior[i],
                            upper)


def _floats(x: ArrayLike, size: int | None = None, fill: float = np.nan) -> NDArray[np.float64]:
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim == 0 and size is not None:
        arr = np.full(size, float(arr) if arr.size else fill)
    return np.atleast_1d(arr)


def reward_ucb(mean: ArrayLike, var: ArrayLike, n: ArrayLike, gamma: float,
               radius: Radius = Radius.VARIANCE) -> NDArray[np.float64]:
    """mu_U per model (``reward_bound`` over arrays); NaN means and variances count as unknown."""
    n_ = _floats(n)
    mean_ = np.nan_to_num(_floats(mean, n_.size), nan=0.0)
    var_ = _floats(var, n_.size)
    out = np.empty(n_.size)
    _reward_bounds(mean_, var_, n_, float(gamma), radius is Radius.MEAN, out)
    return out


def cost_lcb(mean: ArrayLike, var: ArrayLike, n: ArrayLike, gamma: float, scale: float,
             radius: Radius = Radius.VARIANCE, lo: float = 0.0, hi: float = 1.0,
             untried: ArrayLike | None = None, upper: bool = False) -> NDArray[np.float64]:
    """c_L per model (``cost_bound`` over arrays), in currency; c_U with ``upper``.

    Args:
        mean, var: per-request cost mean and variance in currency.
        scale: robust upper bound of a request's cost (currency); costs are divided by it.
        lo, hi: the clip range of the normalised cost (the upper end never below the mean).
        untried: the cost bound to use where n = 0 (e.g. a price-based estimate, currency);
            NaN entries fall back to ``lo * scale`` (``hi * scale`` for the upper bound).
    """
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"cost scale must be finite and > 0, got {scale}")
    n_ = _floats(n)
    mean_ = np.nan_to_num(_floats(mean, n_.size), nan=0.0)
    var_ = _floats(var, n_.size)
    prior = _floats(untried, n_.size) if untried is not None else np.full(n_.size, np.nan)
    out = np.empty(n_.size)
    _cost_bounds(mean_, var_, n_, float(gamma), radius is Radius.MEAN, float(scale), float(lo),
                 float(hi), prior, bool(upper), out)
    return out
