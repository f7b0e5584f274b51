"""Confidence bounds of StageRoute: optimistic on reward, optimistic-for-the-router on cost.

All functions are pure and vectorised over numpy arrays (one entry per model).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stageroute.options import Radius

MAX_VARIANCE = 0.25  # the largest variance of a variable on [0, 1]


def theory_gamma(n_models: int, horizon: int, delta: float = 0.05) -> float:
    """gamma = log(N T / delta), the value of the regret analysis (very conservative)."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    return math.log(max(n_models, 1) * max(horizon, 1) / delta)


def f_rad(v: ArrayLike, n: ArrayLike, gamma: float) -> NDArray[np.float64]:
    """f_rad(v, n) = sqrt(gamma v / n) + gamma / n; infinite where n = 0."""
    v = np.asarray(v, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(gamma * np.maximum(v, 0.0) / n) + gamma / n
    return np.where(n > 0, out, np.inf)


def _spread(mean: NDArray[np.float64], var: NDArray[np.float64], n: NDArray[np.float64],
            radius: Radius) -> NDArray[np.float64]:
    if radius is Radius.MEAN:
        return np.clip(mean, 0.0, 1.0)
    return np.where(n < 2, MAX_VARIANCE, var)


def reward_ucb(mean: ArrayLike, var: ArrayLike, n: ArrayLike, gamma: float,
               radius: Radius = Radius.VARIANCE) -> NDArray[np.float64]:
    """mu_U = clip(mean + 2 f_rad(v, n), 0, 1); exactly 1 for an untried model (n = 0)."""
    n = np.asarray(n, dtype=np.float64)
    mean = np.nan_to_num(np.asarray(mean, dtype=np.float64), nan=0.0)
    var = np.nan_to_num(np.asarray(var, dtype=np.float64), nan=MAX_VARIANCE)
    rad = f_rad(_spread(mean, var, n, radius), n, gamma)
    return np.where(n > 0, np.clip(mean + 2.0 * rad, 0.0, 1.0), 1.0)


def cost_lcb(mean: ArrayLike, var: ArrayLike, n: ArrayLike, gamma: float, scale: float,
             radius: Radius = Radius.VARIANCE, lo: float = 0.0, hi: float = 1.0,
             untried: ArrayLike | None = None) -> NDArray[np.float64]:
    """c_L = clip(mean - 2 f_rad(v, n), lo, hi) on costs normalised by ``scale``, in currency.

    Args:
        mean, var: per-request cost mean and variance in currency.
        scale: robust upper bound of a request's cost (currency); costs are divided by it.
        lo, hi: the clip range of the normalised cost.
        untried: the cost bound to use where n = 0 (e.g. a price-based estimate, currency);
            NaN entries fall back to ``lo * scale``.
    """
    if scale <= 0:
        raise ValueError(f"cost scale must be > 0, got {scale}")
    n = np.asarray(n, dtype=np.float64)
    m = np.nan_to_num(np.asarray(mean, dtype=np.float64), nan=0.0) / scale
    v = np.nan_to_num(np.asarray(var, dtype=np.float64), nan=MAX_VARIANCE) / scale**2
    rad = f_rad(_spread(m, v, n, radius), n, gamma)
    with np.errstate(invalid="ignore"):
        bound = np.clip(m - 2.0 * rad, lo, hi) * scale
    fallback = np.full_like(n, lo * scale)
    if untried is not None:
        prior = np.asarray(untried, dtype=np.float64)
        fallback = np.where(np.isnan(prior), fallback, prior)
    return np.where(n > 0, bound, fallback)
