"""What an untried model will cost: its list prices times the typical tokens of a request.

An untried model has no cost statistics. Priced at the bound's floor it looks free, and a table
that routes to it overspends (SPEC 2a). With list prices (USD per million tokens, in and out) and
the typical tokens of a request, its expected cost is

    prior_m = (price_in_m * tokens_in + price_out_m * tokens_out) / 1e6

The typical tokens come from the logs' token counts when they have them. Outcome tables and logs
without token counts still say what each tried model cost; with its list prices that fixes the
tokens: cost_j = (price_in_j * t_in + price_out_j * t_out) / 1e6 for every tried model j. Two
unknowns, one equation per tried model: ``typical_tokens`` fits them by least squares on the
relative error (so cheap and expensive models count alike), with t_in, t_out >= 0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

PER_TOKENS = 1e6  # catalog prices are per million tokens
MIN_TOKENS = 1e-6  # fewer tokens per request than this is arithmetic noise, not a request


def typical_tokens(mean_cost: NDArray[np.float64], n_cost: NDArray[np.float64],
                   price_in: NDArray[np.float64], price_out: NDArray[np.float64],
                   ) -> tuple[float, float] | None:
    """(tokens in, tokens out) per request implied by the tried models' costs and list prices.

    Uses the models with cost observations, a positive finite mean cost and both prices; None
    when there is none, or when no positive finite fit exists. With one such model (or prices in
    the same ratio for all of them) the split is not identified and the tokens are split evenly.
    A model billed far from its list price (cached, discounted or self-hosted: its tokens more
    than 4x off the median model's) is left out of the fit, so that one outlier cannot make
    untried models look free again.

    >>> t = typical_tokens(np.array([0.0011, 0.0031]), np.array([5.0, 9.0]),
    ...                    np.array([1.0, 1.0]), np.array([2.0, 6.0]))
    >>> [round(x, 6) for x in t]
    [100.0, 500.0]
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        cost = mean_cost * PER_TOKENS
        ok = ((n_cost > 0) & np.isfinite(cost) & (cost > 0) & np.isfinite(price_in)
              & np.isfinite(price_out) & (price_in >= 0) & (price_out >= 0)
              & (price_in + price_out > 0))
        if not ok.any():
            return None
        # relative error: each equation divided by the model's cost
        design = np.column_stack([price_in[ok], price_out[ok]]) / cost[ok, None]
        # each model's tokens if in and out were equal; the fit uses the models within 4x of
        # their median (robust: one outlier cannot move the median)
        even = 1.0 / design.sum(axis=1)
        middle = float(np.median(even))
        keep = (even >= middle / 4) & (even <= middle * 4)
        tokens = _fit(design[keep])
    if tokens is None or not all(np.isfinite(tokens)) or max(tokens) < MIN_TOKENS:
        return None
    return tokens


def _fit(design: NDArray[np.float64]) -> tuple[float, float] | None:
    """Least squares of design @ (t_in, t_out) = 1 with t >= 0 (two unknowns)."""
    target = np.ones(design.shape[0])
    scale = float(np.abs(design).max())
    if not (np.isfinite(scale) and scale > 0):
        return None
    if np.linalg.matrix_rank(design, tol=1e-9 * scale) == 2:
        tokens, *_ = np.linalg.lstsq(design, target, rcond=None)
        if (tokens >= 0).all():
            return float(tokens[0]), float(tokens[1])
    # one free parameter: t tokens each way, or all of them on one side if that fits better
    best: tuple[float, tuple[float, float]] | None = None
    for w_in, w_out in ((0.5, 0.5), (1.0, 0.0), (0.0, 1.0)):
        x = design @ np.array([w_in, w_out])
        if not (x > 0).any():
            continue
        t = float(x @ target / (x @ x))
        err = float(((x * t - target) ** 2).sum())
        if best is None or err < best[0] - 1e-12:
            best = (err, (w_in * t, w_out * t))
    return None if best is None else best[1]


def price_cost(price_in: NDArray[np.float64], price_out: NDArray[np.float64],
               tokens: tuple[float, float] | None) -> NDArray[np.float64]:
    """Expected cost of a request per model from list prices (NaN where a price or the tokens
    are unknown; inf where the product overflows: the caller names the model)."""
    if tokens is None:
        return np.full(price_in.shape, np.nan)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray((price_in * tokens[0] + price_out * tokens[1]) / PER_TOKENS,
                          dtype=np.float64)
