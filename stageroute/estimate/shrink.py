"""PLACEHOLDER (replaced by the segments branch): per-(segment, model) bounds shrunk toward the model."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from stageroute.simulate.loop import model_bounds

KAPPA = 20.0


@njit(cache=True)
def cell_bounds(cells, stats, s, j, kn, prior):  # type: ignore[no-untyped-def]
    cell = cells[s]
    n = cell[0, j]
    if stats[0, j] <= 0:
        return model_bounds(stats, j, kn, prior)
    tmp = np.zeros((6, 1))
    for r in (0, 3):
        nm = stats[r, j]
        mean_m = stats[r + 1, j]
        var_m = stats[r + 2, j] / nm
        mean = (n * cell[r + 1, j] + KAPPA * mean_m) / (n + KAPPA) if n > 0 else mean_m
        tmp[r, 0] = max(cell[r, j], 1e-9) if n > 0 else 0.0
        tmp[r + 1, 0] = mean
        tmp[r + 2, 0] = var_m * tmp[r, 0]
    pr = np.array([prior[j]])
    return model_bounds(tmp, 0, kn, pr)


def shrunk_bounds(cells, stats, idx, kn, prior):  # type: ignore[no-untyped-def]
    u = np.zeros((cells.shape[0], idx.size))
    c = np.zeros_like(u)
    for s in range(cells.shape[0]):
        for i, j in enumerate(idx):
            u[s, i], c[s, i] = cell_bounds(cells, stats, s, j, kn, prior)
    return u, c
