"""Drift in replay: each stage is one window of statistics, and the bounds of a stage use the
earlier windows merged with weights (``estimate.stats.window_weights``: a sliding window, a
half-life, or both).

A window's weight w scales its count n and its M2 (its mean is unchanged), so the merged counts
are effective counts; the merge is ``estimate.stats.fold`` (Chan, oldest window first). The
stationary replay (no window, no half-life) never comes here: it keeps one running Welford state.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from numpy.typing import NDArray

from stageroute.estimate.stats import fold, window_weights
from stageroute.inputs.catalog import Window
from stageroute.simulate.loop import N_C, N_R


def stage_partial(served: NDArray[np.int64], reward: NDArray[np.float64],
                  cost: NDArray[np.float64], n_models: int) -> NDArray[np.float64]:
    """The [6, N] statistics (rows as ``simulate.loop``) of one stage's own served queries
    (``served`` -1: refused, not counted); a model without a query has n = mean = M2 = 0."""
    ok = served >= 0
    group = np.ascontiguousarray(served[ok], dtype=np.int64)
    ones, zeros = np.ones(group.size), np.zeros(group.size)
    out = np.zeros((6, n_models))
    for row, x in ((N_R, reward[ok]), (N_C, cost[ok])):
        n, mean, m2 = fold(group, ones, np.ascontiguousarray(x, dtype=np.float64), zeros, n_models)
        out[row], out[row + 1], out[row + 2] = n, np.where(n > 0, mean, 0.0), m2
    return out


def weighted_stats(partials: NDArray[np.float64], ages: NDArray[np.float64],
                   window: float | None, half_life: float | None) -> NDArray[np.float64]:
    """The [6, N] statistics of the stages ``partials`` [k, 6, N] (oldest first), each weighted
    by ``window_weights(age)`` (seconds from its end to now): effective counts n, their means,
    M2 scaled like n. A model left with no weight gets n = mean = M2 = 0 (untried)."""
    k, _, n_models = partials.shape
    weight = window_weights(ages, window, half_life)[:, None]
    group = np.tile(np.arange(n_models, dtype=np.int64), k)
    out = np.zeros((6, n_models))
    for row in (N_R, N_C):
        n, mean, m2 = fold(group, np.ascontiguousarray((partials[:, row] * weight).ravel()),
                           np.ascontiguousarray(partials[:, row + 1].ravel()),
                           np.ascontiguousarray((partials[:, row + 2] * weight).ravel()), n_models)
        out[row], out[row + 1], out[row + 2] = n, np.where(n > 0, mean, 0.0), m2
    return out


def stage_ages(windows: tuple[Window, ...], k: int) -> NDArray[np.float64]:
    """Seconds from the end of each stage before ``k`` to the start of stage ``k``."""
    start = windows[k].start
    return np.array([(start - w.end) / dt.timedelta(seconds=1) for w in windows[:k]],
                    dtype=np.float64)


def seconds(length: dt.timedelta | None) -> float | None:
    """A duration in seconds (None stays None)."""
    return None if length is None else length / dt.timedelta(seconds=1)
