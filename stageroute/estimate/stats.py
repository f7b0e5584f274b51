"""Per-model statistics: counts, means and variances that merge exactly (Chan et al.)."""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit
from numpy.typing import NDArray

# Significant digits of the statistics a plan uses (``settle``).
SETTLE_DIGITS = 10

STATS_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "n_reward": pl.Int64(),
    "mean_reward": pl.Float64(),
    "m2_reward": pl.Float64(),  # sum of squared deviations from the mean
    "n_cost": pl.Int64(),
    "mean_cost": pl.Float64(),
    "m2_cost": pl.Float64(),
}


def stats_aggs(reward: pl.Expr, cost: pl.Expr) -> list[pl.Expr]:
    """Aggregations (for a ``group_by('model')``) that produce the ``STATS_SCHEMA`` columns."""
    return [
        reward.count().cast(pl.Int64).alias("n_reward"),
        reward.mean().alias("mean_reward"),
        (reward.var(ddof=0) * reward.count()).alias("m2_reward"),
        cost.count().cast(pl.Int64).alias("n_cost"),
        cost.mean().alias("mean_cost"),
        (cost.var(ddof=0) * cost.count()).alias("m2_cost"),
    ]


def compute_stats(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One pass over (model, reward, cost) rows; reward may be null (no feedback yet)."""
    lazy = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
    out = lazy.group_by("model").agg(stats_aggs(pl.col("reward"), pl.col("cost"))).collect()
    return normalise_stats(out)


def normalise_stats(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast to ``STATS_SCHEMA``, put 0 where a model has no sample, sort by model.

    Fractional counts (effective counts of weighted windows) stay Float64.
    """
    def dtype_of(name: str, dtype: pl.DataType) -> pl.DataType:
        weighted = name.startswith("n_") and frame.schema[name].is_float()
        return pl.Float64() if weighted else dtype

    return (
        frame.select(
            pl.col(name).cast(dtype_of(name, dtype)) for name, dtype in STATS_SCHEMA.items()
        )
        .with_columns(
            pl.col("n_reward", "n_cost").fill_null(0),
            pl.col("m2_reward", "m2_cost").fill_null(0.0),
        )
        .sort("model")
    )


@njit(cache=True)
def chan(n_a: float, mean_a: float, m2_a: float, n_b: float, mean_b: float, m2_b: float,
         ) -> tuple[float, float, float]:
    """Merge two partial (n, mean, M2) summaries: Chan, Golub and LeVeque's pairwise update.

    Counts may be fractional (weighted windows); an empty side (n = 0) leaves the other as is.
    """
    n = n_a + n_b
    if n_b <= 0.0:
        return n_a, mean_a, m2_a
    if n_a <= 0.0:
        return n_b, mean_b, m2_b
    delta = mean_b - mean_a
    frac = n_b / n
    return n, mean_a + delta * frac, m2_a + m2_b + delta * delta * n_a * frac


@njit(cache=True)
def _chan_arrays(n_a: NDArray[np.float64], mean_a: NDArray[np.float64], m2_a: NDArray[np.float64],
                 n_b: NDArray[np.float64], mean_b: NDArray[np.float64], m2_b: NDArray[np.float64],
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    n = np.empty_like(n_a)
    mean = np.empty_like(n_a)
    m2 = np.empty_like(n_a)
    for i in range(n_a.size):
        n[i], mean[i], m2[i] = chan(n_a[i], mean_a[i], m2_a[i], n_b[i], mean_b[i], m2_b[i])
        if n[i] <= 0.0:
            mean[i], m2[i] = np.nan, 0.0
    return n, mean, m2


def chan_merge(
    n_a: NDArray[np.float64], mean_a: NDArray[np.float64], m2_a: NDArray[np.float64],
    n_b: NDArray[np.float64], mean_b: NDArray[np.float64], m2_b: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """``chan`` element-wise over arrays (NaN mean where both sides are empty)."""
    def f(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.ascontiguousarray(x, dtype=np.float64)

    return _chan_arrays(f(n_a), f(mean_a), f(m2_a), f(n_b), f(mean_b), f(m2_b))


@njit(cache=True)
def fold(group: NDArray[np.int64], n: NDArray[np.float64], mean: NDArray[np.float64],
         m2: NDArray[np.float64], groups: int,
         ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Merge partial summaries into one per group, in the order given (``chan`` left to right).

    ``group[i]`` is the group (0..groups-1) of partial ``i``; a group without a sample gets
    n = 0, mean NaN, M2 = 0.
    """
    out_n = np.zeros(groups)
    out_mean = np.zeros(groups)
    out_m2 = np.zeros(groups)
    for i in range(group.size):
        g = group[i]
        if n[i] > 0.0:
            out_n[g], out_mean[g], out_m2[g] = chan(out_n[g], out_mean[g], out_m2[g],
                                                   n[i], mean[i], m2[i])
    for g in range(groups):
        if out_n[g] <= 0.0:
            out_mean[g] = np.nan
            out_m2[g] = 0.0
    return out_n, out_mean, out_m2


def settle(x: NDArray[np.float64], digits: int = SETTLE_DIGITS) -> NDArray[np.float64]:
    """``x`` rounded to ``digits`` significant decimal digits (NaN, 0 and infinities unchanged).

    A sum's last bits depend on the order it was added in: the number of threads, and how the
    log was split into windows of the statistics store. The plan uses its statistics settled,
    so that these bits never change a plan (``plan --stats`` gives the same bytes as ``--logs``).
    """
    x = np.asarray(x, dtype=np.float64)
    out = x.copy()
    ok = np.isfinite(x) & (x != 0)
    v = x[ok]
    # The decimal scale 10^(digits - 1 - exp) overflows for |x| below ~1e-297 (subnormals need up
    # to 10^333): apply it in two factors, each at most 10^300, so v * 10^a * 10^b is finite (it
    # has ``digits`` integer digits) and the quotients land within an ulp or so of the rounded
    # value. In the normal range b is 0 and 10^0 = 1: the bytes are those of v * 10^a / 10^a.
    power = digits - 1 - np.floor(np.log10(np.abs(v)))
    a = np.minimum(power, 300.0)
    scale_a, scale_b = 10.0 ** a, 10.0 ** (power - a)
    with np.errstate(over="ignore"):  # rounding up next to the largest double: keep v
        settled = np.round(v * scale_a * scale_b) / scale_b / scale_a
    out[ok] = np.where(np.isfinite(settled), settled, v)
    return out


def settle_m2(m2: NDArray[np.float64], n: NDArray[np.float64], mean: NDArray[np.float64],
              digits: int = SETTLE_DIGITS) -> NDArray[np.float64]:
    """M2 rounded to ``digits`` digits of its natural scale n * max(mean^2, M2 / n): a constant
    sample's M2 is 0 however it was summed (a one-pass variance leaves ~1e-16 mean^2 behind)."""
    m2 = np.asarray(m2, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        unit = np.where(n > 0, n * np.maximum(np.nan_to_num(mean) ** 2, m2 / np.maximum(n, 1e-300)),
                        0.0)
        ok = np.isfinite(m2) & np.isfinite(unit) & (unit > 0)
        exp = np.floor(np.log10(np.where(ok, unit, 1.0)))
        quantum = 10.0 ** (exp - (digits - 1))
        return np.where(ok, np.round(m2 / quantum) * quantum, m2)


def window_weights(age: NDArray[np.float64], window: float | None, half_life: float | None,
                   ) -> NDArray[np.float64]:
    """Weight of a window of statistics ``age`` seconds old: 0 beyond ``window`` seconds (a
    sliding window), 2^(-age / half_life) with a half-life, else 1 (the stationary estimator)."""
    age = np.maximum(np.asarray(age, dtype=np.float64), 0.0)
    weight = np.ones_like(age)
    if half_life is not None:
        weight = np.exp2(-age / half_life)
    if window is not None:
        weight = np.where(age < window, weight, 0.0)
    return weight


def merge_stats(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    """Merge two ``STATS_SCHEMA`` tables (same or different models) into one."""
    joined = a.join(b, on="model", how="full", coalesce=True, suffix="_b").sort("model")
    out: dict[str, object] = {"model": joined["model"]}
    for kind in ("reward", "cost"):
        def col(name: str, frame: pl.DataFrame = joined) -> NDArray[np.float64]:
            return frame[name].cast(pl.Float64).fill_null(0.0).to_numpy()

        n, mean, m2 = chan_merge(
            col(f"n_{kind}"), col(f"mean_{kind}"), col(f"m2_{kind}"),
            col(f"n_{kind}_b"), col(f"mean_{kind}_b"), col(f"m2_{kind}_b"),
        )
        out[f"n_{kind}"] = n.astype(np.int64)
        out[f"mean_{kind}"] = mean
        out[f"m2_{kind}"] = m2
    return normalise_stats(pl.DataFrame(out))


def variance(stats: pl.DataFrame, kind: str) -> NDArray[np.float64]:
    """Variance with divisor n (NaN where n = 0)."""
    n = stats[f"n_{kind}"].to_numpy().astype(np.float64)
    m2 = stats[f"m2_{kind}"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, m2 / n, np.nan)


@njit(cache=True)
def welford(stats: NDArray[np.float64], row_n: int, j: int, x: float) -> None:
    """Add ``x`` to the (n, mean, M2) state in rows row_n..row_n+2 of column ``j`` (Welford)."""
    n = stats[row_n, j] + 1.0
    d = x - stats[row_n + 1, j]
    stats[row_n, j] = n
    stats[row_n + 1, j] += d / n
    stats[row_n + 2, j] += d * (x - stats[row_n + 1, j])
