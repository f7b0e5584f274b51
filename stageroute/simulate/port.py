"""PORT as a replay baseline: training-free online routing by nearest neighbours and dual prices.

PORT: "Efficient Training-Free Online Routing for High-Volume Multi-LLM Serving" (Wu and Silwal,
NeurIPS 2025, arXiv 2509.02718), published code github.com/fzwark/PORT. What that code does
(``algo.py`` class ``Router``, driven by ``test.py``; data split in ``data.py``, budget split in
``utils.py``):

- Past queries are a labelled historical set, disjoint from the test stream: ``data.split`` draws
  10,000 RouterBench prompts as the stream and keeps the other 26,497, with every model's reward
  and cost, as the base of an HNSW index (``ANN``, top_k = 5). The index is fixed: served queries
  are never added to it.
- For each query, d_hat_i and g_hat_i are the means of model i's reward and cost over the k
  nearest historical queries (``Router._calc_batch``).
- The first ceil(eps T) queries (eps = 0.025 in the README's RouterBench command) are routed
  uniformly at random among the M models and "none" (``np.random.randint(0, M + 1)``; "none"
  loses the query), and their estimates are recorded.
- Then once (``Router._optimize_gamma``) the dual prices gamma minimise
      F(gamma) = eps * gamma . B + sum_{j in warm-up} max_i (alpha d_hat_ij - gamma_i g_hat_ij)
  over the box 0 <= gamma_i <= 1, by scipy L-BFGS-B from gamma = 1/M with finite-difference
  gradients; alpha = 1e-4 on RouterBench (a scale that brings rewards to the cost scale). F is
  the LP dual of "maximise estimated reward, each query to exactly one model, model i spends at
  most eps B_i" on the warm-up queries. Every later query goes to argmax_i (alpha d_hat_i -
  gamma_i g_hat_i): never "none".
- Budgets are per model: B_i = budget x w_i / sum w, with the "weighted" split (the README's
  command) w_i = sqrt(mean performance_i / mean cost_i) (constants per dataset in ``utils.py``),
  and the total budget a multiple of the cheapest model's cost on the stream. A query whose
  model's budget cannot pay its cost (spent_i + c > B_i) is lost: reward 0, cost 0, no fallback.
  The warm-up queries count against the same budgets. Arithmetic is float32.
- ``ANN.py`` (the HNSW wrapper: its metric and parameters) was not available to us; PORT's own
  exact-kNN baseline (``utils.knn``) uses cosine distance.

Our port, for ``replay``'s full-information tables (rows = prompts, columns = models):

- The historical set is ``reference``: rows of the outcome table disjoint from the stream's rows
  (``split_reference`` draws it with PORT's share 26,497 / 36,497); ``run_port`` refuses a stream
  that visits a reference row (its own outcome would be its nearest neighbour). With
  ``reference`` None (what ``replay --contextual`` uses, so that PORT serves the same stream as
  every other policy), the historical set is every other row of the table: leave one out, a
  query's own row is never its neighbour. PORT therefore sees every model's outcome on the
  historical rows, which the bandit-feedback policies of ``replay`` never see: that is the
  paper's setting, and it favours PORT.
- Exact kNN: cosine similarity (rows are normalised here, so a dot product), brute force by
  matrix products over the fixed reference set, computed once per distinct stream row; ties at the
  k-th neighbour go to the lower reference row. PORT uses an approximate HNSW index.
- Prices are reported as lambda_i = gamma_i / alpha (reward per unit of cost; routing maximises
  d_hat_i - lambda_i g_hat_i, the same argmax), in the same box 0 <= lambda_i <= 1 / alpha. The
  dual is minimised exactly, as a linear program on HiGHS, instead of L-BFGS-B on a non-smooth
  function (which stops short of the minimum in general); its value is F / alpha. Warm-up
  queries on the same prompt row (same estimates) are one LP row weighted by their count (the
  same LP). alpha = 1e-4 is PORT's value for RouterBench's USD costs: with costs in other units
  the box [0, 1 / alpha] means something else (pass ``alpha``). Arithmetic is float64.
- The weighted split takes mean reward and cost over the reference rows, and each model's weight
  is multiplied by the share of the stream during which it can serve (PORT's models are always
  available; a model released half-way gets half the budget weight). The total is b x T. A model
  whose mean reward or cost is 0 gets weight 0 (a free model is still served: 0 + 0 <= 0).
- Stages: a model outside the stage's pool (not released yet, or retired) is never drawn in the
  warm-up nor chosen after it. The dual is solved over every model that is in some stage's pool
  (the warm-up queries' estimates exist for all of them), once, on the first ceil(warmup T)
  queries of the stream; it is not solved again when the pool changes.
- ``max_deployed`` (PORT has no deployment cap): at each stage, the at most M models of the pool
  chosen greedily to maximise sum over the warm-up queries of max_{i in set} (d_hat_i - lambda_i
  g_hat_i), the dual objective's per-query term; the warm-up draws and the argmax run over that
  set. The per-model budgets are then recomputed from the deployed shares (prices are not
  re-learned). This looks ahead at the warm-up queries' features (not their outcomes) for the
  stages that start before the warm-up ends.
- Randomness: one uniform draw per query from ``seed`` (numpy), used by the warm-up only.

Not done: PORT on bandit feedback alone (neighbours among the queries it served, each model's
estimate from the neighbours that model served), which would put it on the other policies' footing
but is no longer the published algorithm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from stageroute.errors import BadDataError, InfeasibleError, UsageError
from stageroute.optimize.solver import Solver, require_solver

NEIGHBOURS = 5  # PORT's top_k
WARMUP = 0.025  # PORT's eps in the README's RouterBench command
ALPHA = 1e-4  # PORT's alpha on RouterBench: the price box is [0, 1 / alpha]
REFERENCE_SHARE = 26_497 / 36_497  # PORT's historical share of RouterBench
SPLITS = ("weighted", "uniform")
_CHUNK = 1024  # stream rows per matrix product in the kNN


@dataclass(frozen=True, slots=True)
class PortRun:
    """One PORT run: per query the served model (-1 = dropped), its reward and cost; the prices,
    the per-model budgets over the horizon, and the models each stage could route to."""

    served: NDArray[np.int64]  # [T]
    reward: NDArray[np.float64]  # [T]
    cost: NDArray[np.float64]  # [T]
    prices: NDArray[np.float64]  # [N] lambda_i = gamma_i / alpha; 0 for models in no pool
    dual_value: float  # the minimised dual objective, in reward units (F / alpha)
    model_budget: NDArray[np.float64]  # [N] B_i, summing to b x T
    allowed: NDArray[np.bool_]  # [K, N] the pool, or the deployed set under max_deployed


def split_reference(n_rows: int, seed: int, share: float = REFERENCE_SHARE
                    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(reference rows, stream rows): a random ``share`` of the table's rows as PORT's labelled
    historical set, the rest for the stream (both sorted)."""
    if not 0 < share < 1:
        raise UsageError(f"the reference share must be in (0, 1), got {share!r}")
    n_ref = int(round(share * n_rows))
    if not 0 < n_ref < n_rows:
        raise UsageError(f"{n_rows} rows cannot be split into a reference set and a stream")
    order = np.random.default_rng(seed).permutation(n_rows)
    return np.sort(order[:n_ref]).astype(np.int64), np.sort(order[n_ref:]).astype(np.int64)


def neighbour_estimates(features: NDArray[np.float64], R: NDArray[np.float64],
                        C: NDArray[np.float64], reference: NDArray[np.int64] | None,
                        rows: NDArray[np.int64], k: int
                        ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(d_hat, g_hat) [len(rows), N]: each model's mean reward and cost over the ``k`` reference
    rows most similar (cosine) to each of ``rows``. ``reference`` None: every other row of the
    table (leave one out: a row is never its own neighbour)."""
    unit = _unit_rows(features)
    ref_rows = np.arange(R.shape[0]) if reference is None else reference
    ref = unit[ref_rows]
    d_hat = np.empty((rows.size, R.shape[1]))
    g_hat = np.empty((rows.size, R.shape[1]))
    r_ref, c_ref = R[ref_rows], C[ref_rows]
    for lo in range(0, rows.size, _CHUNK):
        chunk = rows[lo:lo + _CHUNK]
        sims = unit[chunk] @ ref.T
        if reference is None:
            sims[np.arange(chunk.size), chunk] = -np.inf
        near = top_k(sims, k)
        d_hat[lo:lo + _CHUNK] = r_ref[near].mean(axis=1)
        g_hat[lo:lo + _CHUNK] = c_ref[near].mean(axis=1)
    return d_hat, g_hat


@njit(cache=True)
def top_k(sims, k):  # type: ignore[no-untyped-def]
    """[n, k] per row of ``sims`` the columns of its k largest values, largest first (ties: the
    lower column first)."""
    n, m = sims.shape
    out = np.empty((n, k), dtype=np.int64)
    vals = np.empty(k)
    for r in range(n):
        filled = 0
        for c in range(m):
            v = sims[r, c]
            if filled == k and v <= vals[k - 1]:
                continue
            pos = min(filled, k - 1)
            while pos > 0 and vals[pos - 1] < v:
                vals[pos] = vals[pos - 1]
                out[r, pos] = out[r, pos - 1]
                pos -= 1
            vals[pos] = v
            out[r, pos] = c
            filled = min(filled + 1, k)
    return out


def _unit_rows(features: NDArray[np.float64]) -> NDArray[np.float64]:
    norm = np.linalg.norm(features, axis=1, keepdims=True)
    return np.asarray(features / np.where(norm > 0, norm, 1.0), dtype=np.float64)


def serving_share(allowed: NDArray[np.bool_], bounds: NDArray[np.int64]) -> NDArray[np.float64]:
    """[N] the share of the stream's queries at which each model may serve."""
    sizes = np.diff(bounds).astype(np.float64)
    return np.asarray(sizes @ allowed / max(sizes.sum(), 1.0), dtype=np.float64)


def budget_split(mean_reward: NDArray[np.float64], mean_cost: NDArray[np.float64],
                 share: NDArray[np.float64], total: float, split: str) -> NDArray[np.float64]:
    """[N] per-model budgets B_i = total x w_i s_i / sum_j w_j s_j, with s the serving share and
    w_i = sqrt(mean reward / mean cost) ("weighted", PORT's default; 0 when either is 0) or 1."""
    if split == "weighted":
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where((mean_cost > 0) & (mean_reward > 0), np.sqrt(mean_reward / mean_cost), 0.0)
    else:
        w = np.ones_like(mean_cost)
    w = w * share
    if not w.sum() > 0:
        w = share.copy()  # no model has a positive weight: split by serving share alone
    return np.asarray(total * w / w.sum(), dtype=np.float64)


def dual_prices(d_hat: NDArray[np.float64], g_hat: NDArray[np.float64],
                candidates: NDArray[np.bool_], model_budget: NDArray[np.float64], warmup: float,
                alpha: float, count: NDArray[np.float64] | None = None
                ) -> tuple[NDArray[np.float64], float]:
    """(lambda [N], value): the minimum over 0 <= lambda_i <= 1 / alpha of PORT's dual
        G(lambda) = warmup * lambda . B + sum_j n_j max_{i cand.} (d_hat_ji - lambda_i g_hat_ji)
    on the warm-up queries' estimates (rows j, each standing for ``count`` n_j >= 1 queries with
    the same estimates; default 1), solved exactly as a linear program on HiGHS (epigraph
    variables z_j >= d_hat_ji - lambda_i g_hat_ji). Non-candidates get lambda = 0.
    """
    idx = np.flatnonzero(candidates)
    d, g = d_hat[:, idx], g_hat[:, idx]
    n, m = d.shape
    prices = np.zeros(candidates.size)
    if n == 0 or m == 0:
        return prices, 0.0
    scale = float(g.max())
    if not scale > 0:  # every cost is 0: prices change nothing
        return prices, float(d.max(axis=1) @ (np.ones(n) if count is None else count))
    # Scaled variables mu = lambda * scale keep the coefficients near 1 for the solver.
    weight = np.ones(n) if count is None else count
    cost = np.concatenate([warmup * model_budget[idx] / scale, weight])
    upper = np.concatenate([np.full(m, scale / alpha), np.full(n, np.inf)])
    lower = np.concatenate([np.zeros(m), np.full(n, -np.inf)])
    rows = np.arange(n * m)
    index = np.stack([np.tile(np.arange(m), n), m + np.repeat(np.arange(n), m)], axis=1).ravel()
    value = np.stack([(g / scale).ravel(), np.ones(n * m)], axis=1).ravel()
    x, objective = _solve_lp(cost, lower, upper, 2 * rows, index, value, d.ravel())
    prices[idx] = np.clip(x[:m] / scale, 0.0, 1.0 / alpha) + 0.0  # + 0.0: no -0.0
    return prices, objective


def _solve_lp(cost: NDArray[np.float64], lower: NDArray[np.float64], upper: NDArray[np.float64],
              starts: NDArray[np.int64], index: NDArray[np.int64], value: NDArray[np.float64],
              row_lower: NDArray[np.float64]) -> tuple[NDArray[np.float64], float]:
    """min cost . x, lower <= x <= upper, A x >= row_lower (A row-wise: starts, index, value),
    on HiGHS without its banner (the private ``_Highs``: ``Highs`` prints one when built)."""
    require_solver(Solver.HIGHS)
    import highspy

    h = highspy._Highs()  # type: ignore[attr-defined]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = cost.size, row_lower.size
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lower, upper
    lp.row_lower_, lp.row_upper_ = row_lower, np.full(row_lower.size, np.inf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.append(starts, index.size)
    lp.a_matrix_.index_, lp.a_matrix_.value_ = index, value
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise InfeasibleError(f"PORT's dual prices: HiGHS ended with {h.getModelStatus()}")
    return np.asarray(h.getSolution().col_value), float(h.getInfo().objective_function_value)


def capped_sets(scores: NDArray[np.float64], pools: NDArray[np.bool_], max_deployed: int
                ) -> NDArray[np.bool_]:
    """[K, N] per stage, at most ``max_deployed`` models of its pool, chosen greedily to maximise
    sum_j max_{i in set} scores[j, i] (ties: the lower index)."""
    out = np.zeros_like(pools)
    cache: dict[bytes, NDArray[np.bool_]] = {}
    for k, pool in enumerate(pools):
        key = pool.tobytes()
        if key not in cache:
            chosen = np.zeros_like(pool)
            best = np.full(scores.shape[0], -np.inf)
            for _ in range(min(max_deployed, int(pool.sum()))):
                gains = [np.maximum(best, scores[:, i]).sum() if pool[i] and not chosen[i]
                         else -np.inf for i in range(pool.size)]
                pick = int(np.argmax(gains))
                chosen[pick] = True
                best = np.maximum(best, scores[:, pick])
            cache[key] = chosen
        out[k] = cache[key]
    return out


@njit(cache=True)
def route_queries(allowed, bounds, prompts, est, R, C, d_hat, g_hat, prices, model_budget,  # type: ignore[no-untyped-def]
                  n_warm, draws, out_model, out_reward, out_cost):
    """PORT's per-query loop. Query t (stage k: bounds[k] <= t < bounds[k + 1]) is prompt row
    ``prompts[t]`` with estimates row ``est[t]``; the first ``n_warm`` pick uniformly by
    ``draws[t]`` among the allowed models and "none", the others argmax_i (d_hat - price g_hat)
    over the allowed models (the lowest index on ties). The pick is served if its budget can pay
    the cost, else the query is dropped. Writes the served model (-1: dropped), reward and cost."""
    n_models = prices.size
    spent = np.zeros(n_models)
    k = 0
    for t in range(prompts.size):
        while t >= bounds[k + 1]:
            k += 1
        e = est[t]
        pick = -1
        if t < n_warm:
            n_ok = 0
            for i in range(n_models):
                if allowed[k, i]:
                    n_ok += 1
            slot = int(draws[t] * (n_ok + 1))
            for i in range(n_models):
                if allowed[k, i]:
                    if slot == 0:
                        pick = i
                        break
                    slot -= 1
        else:
            best = -np.inf
            for i in range(n_models):
                if allowed[k, i]:
                    score = d_hat[e, i] - prices[i] * g_hat[e, i]
                    if score > best:
                        best = score
                        pick = i
        out_model[t] = -1
        out_reward[t] = 0.0
        out_cost[t] = 0.0
        if pick >= 0:
            c = C[prompts[t], pick]
            if spent[pick] + c <= model_budget[pick]:
                spent[pick] += c
                out_model[t] = pick
                out_reward[t] = R[prompts[t], pick]
                out_cost[t] = c


def _check(features: NDArray[np.float64], R: NDArray[np.float64], prompts: NDArray[np.int64],
           pools: NDArray[np.bool_], bounds: NDArray[np.int64],
           reference: NDArray[np.int64] | None, budget: float, k: int, warmup: float,
           split: str, max_deployed: int | None) -> None:
    p, n = R.shape
    if features.ndim != 2 or features.shape[0] != p or pools.ndim != 2 or pools.shape[1] != n:
        raise UsageError(f"PORT: features {features.shape}, outcomes {R.shape} and pools "
                         f"{pools.shape} do not agree")
    if bounds.size != pools.shape[0] + 1 or bounds[0] != 0 or bounds[-1] != prompts.size or (
            np.diff(bounds) < 0).any():
        raise UsageError("PORT: bounds must run from 0 to the stream's length, one stage per pool")
    n_ref = p - 1 if reference is None else reference.size
    if not 1 <= k <= n_ref:
        raise UsageError(f"PORT: k must be in [1, {n_ref}] (the reference rows), got {k}")
    if not 0 < warmup <= 1 or not (math.isfinite(budget) and budget >= 0):
        raise UsageError(f"PORT: warmup must be in (0, 1] and the budget >= 0, got {warmup!r}, "
                         f"{budget!r}")
    if max_deployed is not None and max_deployed < 1:
        raise UsageError(f"PORT: max_deployed must be >= 1 or None, got {max_deployed}")
    if split not in SPLITS:
        raise UsageError(f"PORT: split must be one of {', '.join(SPLITS)}, got {split!r}")
    if reference is not None and np.isin(prompts, reference).any():
        raise UsageError("PORT: the stream visits rows of the reference set; draw it from the "
                         "other rows (split_reference)")
    if not np.isfinite(features).all():
        raise BadDataError("PORT: the features hold NaN or infinite values")


def run_port(features: NDArray[np.float64], R: NDArray[np.float64], C: NDArray[np.float64],
             prompts: NDArray[np.int64], pools: NDArray[np.bool_], bounds: NDArray[np.int64],
             budget: float, reference: NDArray[np.int64] | None, *, k: int = NEIGHBOURS,
             warmup: float = WARMUP, alpha: float = ALPHA, split: str = "weighted",
             max_deployed: int | None = None, seed: int = 0) -> PortRun:
    """PORT on a stream of prompt rows (see the module docstring for what is PORT's and ours).

    ``features`` [P, d] per row of ``R``/``C`` [P, N]; ``prompts`` [T] the stream's rows;
    ``pools`` [K, N] the models available in stage k, which is queries bounds[k]..bounds[k+1]-1;
    ``budget`` per query (b x T in all); ``reference`` the labelled rows (disjoint from the
    stream), or None: every row but the query's own (leave one out).

    Raises:
        UsageError: shapes or parameters that do not fit; BadDataError: non-finite features;
            SolverUnavailableError: no HiGHS.
    """
    _check(features, R, prompts, pools, bounds, reference, budget, k, warmup, split, max_deployed)
    rows, est = np.unique(prompts, return_inverse=True)
    d_hat, g_hat = neighbour_estimates(features, R, C, reference, rows.astype(np.int64), k)
    n_warm = min(prompts.size, math.ceil(warmup * prompts.size))
    ref_rows = slice(None) if reference is None else reference
    mean_r, mean_c = R[ref_rows].mean(axis=0), C[ref_rows].mean(axis=0)
    total = budget * prompts.size
    model_budget = budget_split(mean_r, mean_c, serving_share(pools, bounds), total, split)
    warm, count = np.unique(est[:n_warm], return_counts=True)  # one LP row per distinct prompt
    prices, value = dual_prices(d_hat[warm], g_hat[warm], np.asarray(pools.any(axis=0)), model_budget,
                                warmup, alpha, count.astype(np.float64))
    allowed = pools
    if max_deployed is not None:
        first = est[:n_warm]
        allowed = capped_sets(d_hat[first] - prices * g_hat[first], pools, max_deployed)
        model_budget = budget_split(mean_r, mean_c, serving_share(allowed, bounds), total, split)
    draws = np.random.default_rng(seed).random(prompts.size)
    served = np.empty(prompts.size, dtype=np.int64)
    reward = np.empty(prompts.size)
    cost = np.empty(prompts.size)
    route_queries(allowed, bounds.astype(np.int64), prompts.astype(np.int64),
                  est.astype(np.int64), R, C, d_hat, g_hat, prices, model_budget, n_warm, draws,
                  served, reward, cost)
    return PortRun(served, reward, cost, prices, value, model_budget, allowed)
