"""Synthetic full-information worlds for choosing defaults on more than the shared tables.

Each scenario returns an outcome matrix (reward and USD cost of every model on every prompt) and
a catalog with release dates and list prices, as ``replay`` reads them. Costs are priced from
tokens (input tokens per prompt, output tokens per prompt and model) so that the price-based
estimate of an untried model has to work as it does on real data; rewards are Bernoulli with a
per-prompt difficulty shared by all models.

    streaming    16 models arriving over a year, quality loosely rising with price
    near-tied    9 models, the best three within 0.01 of each other at very different prices
    cheap-strong expensive incumbents, then cheap newcomers that are as good or better
    pricey-new   cheap incumbents, then expensive newcomers (untried models must not look free)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import polars as pl

from stageroute.inputs.outcomes import OutcomeMatrix

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _world(quality: np.ndarray, price_in: np.ndarray, price_out: np.ndarray, days: np.ndarray,
           seed: int, prompts: int = 4000, verbosity: np.ndarray | None = None,
           ) -> tuple[OutcomeMatrix, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    n = quality.size
    difficulty = rng.normal(0.0, 0.6, prompts)[:, None]
    logit = np.log(quality / (1 - quality))[None, :] - difficulty
    reward = (rng.random((prompts, n)) < 1 / (1 + np.exp(-logit))).astype(float)
    tokens_in = rng.lognormal(np.log(700), 0.7, prompts)[:, None]
    verbose = np.ones(n) if verbosity is None else verbosity
    tokens_out = rng.lognormal(np.log(300), 0.6, (prompts, n)) * verbose[None, :]
    cost = (tokens_in * price_in[None, :] + tokens_out * price_out[None, :]) / 1e6
    models = tuple(f"model-{j:02d}" for j in range(n))
    catalog = pl.DataFrame({
        "model": list(models),
        "released": [START + dt.timedelta(days=int(d)) for d in days],
        "retired": [None] * n,
        "max_share": [1.0] * n,
        "usd_per_mtok_in": price_in.tolist(),
        "usd_per_mtok_out": price_out.tolist(),
    }, schema_overrides={"retired": pl.Datetime("us", "UTC"), "released": pl.Datetime("us", "UTC")})
    return OutcomeMatrix(tuple(f"s{i}" for i in range(prompts)), models, reward, cost), catalog


def streaming(seed: int = 0) -> tuple[OutcomeMatrix, pl.DataFrame]:
    rng = np.random.default_rng(100 + seed)
    n = 16
    price_in = np.exp(rng.uniform(np.log(0.1), np.log(10), n))
    quality = np.clip(0.45 + 0.07 * np.log(price_in) + rng.normal(0, 0.06, n), 0.2, 0.92)
    days = np.sort(rng.integers(0, 365, n))
    days[:2] = 0
    return _world(quality, price_in, 3 * price_in, days, seed,
                  verbosity=rng.uniform(0.6, 1.6, n))


def near_tied(seed: int = 0) -> tuple[OutcomeMatrix, pl.DataFrame]:
    quality = np.array([0.78, 0.775, 0.77, 0.70, 0.66, 0.62, 0.60, 0.55, 0.50])
    price_in = np.array([8.0, 2.0, 0.5, 1.0, 0.3, 0.2, 4.0, 0.1, 0.05])
    days = np.array([0, 0, 120, 0, 30, 60, 90, 150, 200])
    return _world(quality, price_in, 3 * price_in, days, seed)


def cheap_strong(seed: int = 0) -> tuple[OutcomeMatrix, pl.DataFrame]:
    quality = np.array([0.80, 0.74, 0.65, 0.82, 0.78, 0.70])
    price_in = np.array([10.0, 5.0, 2.0, 0.4, 0.15, 0.1])
    days = np.array([0, 0, 0, 150, 220, 300])
    return _world(quality, price_in, 3 * price_in, days, seed)


def pricey_new(seed: int = 0) -> tuple[OutcomeMatrix, pl.DataFrame]:
    quality = np.array([0.60, 0.55, 0.50, 0.85, 0.80, 0.88])
    price_in = np.array([0.3, 0.15, 0.1, 12.0, 6.0, 20.0])
    days = np.array([0, 0, 0, 100, 200, 300])
    return _world(quality, price_in, 3 * price_in, days, seed, verbosity=np.array(
        [1.0, 1.0, 1.0, 1.5, 1.2, 1.8]))


SCENARIOS: dict[str, Callable[[int], tuple[OutcomeMatrix, pl.DataFrame]]] = {
    "streaming": streaming, "near-tied": near_tied, "cheap-strong": cheap_strong,
    "pricey-new": pricey_new,
}
