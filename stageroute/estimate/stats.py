"""Per-model statistics: counts, means and variances that merge exactly (Chan et al.)."""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit
from numpy.typing import NDArray

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
    """Cast to ``STATS_SCHEMA``, put 0 where a model has no sample, sort by model."""
    return (
        frame.select(
            pl.col(name).cast(dtype) for name, dtype in STATS_SCHEMA.items()
        )
        .with_columns(
            pl.col("n_reward", "n_cost").fill_null(0),
            pl.col("m2_reward", "m2_cost").fill_null(0.0),
        )
        .sort("model")
    )


def chan_merge(
    n_a: NDArray[np.float64], mean_a: NDArray[np.float64], m2_a: NDArray[np.float64],
    n_b: NDArray[np.float64], mean_b: NDArray[np.float64], m2_b: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Merge two partial (n, mean, M2) summaries: Chan, Golub and LeVeque's pairwise update."""
    n = n_a + n_b
    mean_a = np.where(n_a > 0, mean_a, 0.0)
    mean_b = np.where(n_b > 0, mean_b, 0.0)
    delta = mean_b - mean_a
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(n > 0, n_b / n, 0.0)
        mean = mean_a + delta * frac
        m2 = m2_a + m2_b + delta**2 * n_a * frac
    return n, np.where(n > 0, mean, np.nan), np.where(n > 0, m2, 0.0)


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
