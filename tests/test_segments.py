"""Segments (SPEC 12): prompt loading, the local embedding and its clusters, and the bounds per
(segment, model) shrunk toward the model's global estimate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from numpy.typing import NDArray
from sklearn.metrics import adjusted_rand_score

from stageroute.embed import cluster, embed_prompts, fit_clusters, fit_embedding, segment_names
from stageroute.errors import BadDataError
from stageroute.estimate.segments import (
    BASE_R,
    EFFECT_PRIOR,
    FIT_R,
    KAPPA_R,
    PRIOR_SEGMENTS,
    VAR_R,
    cell_bounds,
    global_stats,
    pooling_of,
    shrunk_bounds,
    shrunk_cell,
)
from stageroute.inputs.prompts import load_prompts
from stageroute.simulate.loop import N_R, knobs, model_bounds

KN = knobs(2.0, 1.0, False, 0.01, (0.0, 1.0), False)


def cell_stats(rewards: list[list[NDArray[np.float64]]],
               costs: list[list[NDArray[np.float64]]] | None = None) -> NDArray[np.float64]:
    """stats[6, S, N] computed directly from the samples of each cell (rewards[s][j])."""
    segments, models = len(rewards), len(rewards[0])
    out = np.zeros((6, segments, models))
    for s in range(segments):
        for j in range(models):
            for row, x in ((0, rewards[s][j]), (3, (costs or rewards)[s][j])):
                if x.size:
                    out[row:row + 3, s, j] = x.size, x.mean(), ((x - x.mean()) ** 2).sum()
    return out


def bernoulli_cells(rng: np.random.Generator, truth: NDArray[np.float64],
                    counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """stats of Bernoulli(truth[s, j]) rewards, counts[s, j] of them per cell."""
    samples = [[(rng.random(counts[s, j]) < truth[s, j]).astype(np.float64)
                for j in range(truth.shape[1])] for s in range(truth.shape[0])]
    return cell_stats(samples)


def prior_means(stats: NDArray[np.float64]) -> NDArray[np.float64]:
    """[S, N] each cell's prior mean a_j + b_s (unclipped)."""
    pool, effects = pooling_of(stats, global_stats(stats))
    return pool[BASE_R][None, :] + effects


def shrunk_means(stats: NDArray[np.float64]) -> NDArray[np.float64]:
    pool, effects = pooling_of(stats, global_stats(stats))
    prior = np.clip(pool[BASE_R][None, :] + effects, 0.0, 1.0)
    segments, models = stats.shape[1:]
    return np.array([[shrunk_cell(stats, s, j, N_R, pool[KAPPA_R, j], pool[VAR_R, j],
                                  prior[s, j])[0]
                      for j in range(models)] for s in range(segments)])


def random_stats(seed: int, segments: int = 6, models: int = 4) -> NDArray[np.float64]:
    """Cells of random size (some empty), one model never seen."""
    rng = np.random.default_rng(seed)
    samples = [[rng.random(rng.integers(0, 12) if j < models - 1 else 0) for j in range(models)]
               for _ in range(segments)]
    costs = [[x * 0.01 + 0.001 for x in row] for row in samples]
    return cell_stats(samples, costs)


# --- the estimator -------------------------------------------------------------------------------


def test_global_stats_are_the_statistics_of_all_samples() -> None:
    rng = np.random.default_rng(1)
    samples = [[rng.random(n) for n in (3, 0, 7)], [rng.random(n) for n in (5, 0, 1)]]
    glob = global_stats(cell_stats(samples))
    for j in range(3):
        x = np.concatenate([samples[0][j], samples[1][j]])
        if x.size == 0:
            assert glob[:3, j].tolist() == [0.0, 0.0, 0.0]
            continue
        assert glob[:3, j] == pytest.approx([x.size, x.mean(), ((x - x.mean()) ** 2).sum()])


def test_one_segment_gives_the_non_contextual_bounds() -> None:
    stats = random_stats(2, segments=1)
    prior = np.array([np.nan, 0.002, np.nan, 0.003])
    pool, effects = pooling_of(stats, global_stats(stats))
    for j in range(stats.shape[2]):
        assert cell_bounds(stats, 0, j, pool, effects, KN, prior) == pytest.approx(
            model_bounds(stats[:, 0, :].copy(), j, KN, prior))
    # the model never seen is untried: mu_U = 1 and its cost prior
    assert cell_bounds(stats, 0, 3, pool, effects, KN, prior) == (1.0, 0.003)


def test_a_model_seen_in_one_segment_is_untried_elsewhere() -> None:
    rng = np.random.default_rng(3)
    empty = np.zeros(0)
    stats = cell_stats([[empty], [rng.random(9)], [empty]])
    glob = global_stats(stats)
    pool, effects = pooling_of(stats, glob)
    assert pool[KAPPA_R, 0] == 0.0
    assert cell_bounds(stats, 0, 0, pool, effects, KN, np.array([0.004])) == (1.0, 0.004)
    assert cell_bounds(stats, 1, 0, pool, effects, KN, np.array([0.004])) == pytest.approx(
        model_bounds(glob, 0, KN, np.array([0.004])))


@pytest.mark.parametrize("seed", range(4))
def test_compiled_kernels_equal_their_python(seed: int) -> None:
    stats = random_stats(seed)
    prior = np.full(stats.shape[2], np.nan)
    glob = global_stats(stats)
    assert global_stats.py_func(stats) == pytest.approx(glob, nan_ok=True)
    pool, effects = pooling_of(stats, glob)
    py_pool, py_effects = pooling_of.py_func(stats, glob)
    assert py_pool == pytest.approx(pool) and py_effects == pytest.approx(effects)
    u, c = shrunk_bounds(stats, KN, prior)
    for s in range(stats.shape[1]):
        for j in range(stats.shape[2]):
            expected = cell_bounds.py_func(stats, s, j, pool, effects, KN, prior)
            assert cell_bounds(stats, s, j, pool, effects, KN, prior) == pytest.approx(expected)
            assert (u[s, j], c[s, j]) == pytest.approx(expected)


def test_shrinkage_lowers_the_error_of_sparse_similar_segments() -> None:
    rng = np.random.default_rng(4)
    raw_err, shrunk_err = [], []
    for _ in range(5):
        truth = np.clip(np.array([0.7, 0.4])[None, :] + rng.normal(0, 0.02, (60, 2)), 0, 1)
        stats = bernoulli_cells(rng, truth, rng.integers(2, 10, truth.shape))
        raw_err.append(((stats[1] - truth) ** 2).mean())
        shrunk_err.append(((shrunk_means(stats) - truth) ** 2).mean())
    # measured 0.28x: the prior weighs at most as much as the cell's own samples
    assert np.mean(shrunk_err) < 0.4 * np.mean(raw_err)


def test_well_sampled_cells_keep_their_own_mean() -> None:
    rng = np.random.default_rng(5)
    truth = np.clip(0.6 + rng.normal(0, 0.1, (8, 2)), 0, 1)
    stats = bernoulli_cells(rng, truth, np.full(truth.shape, 20_000))
    shrunk = shrunk_means(stats)
    raw = stats[1]
    assert np.abs(shrunk - raw).max() < 2e-3
    # pulled toward the prior mean, never past it
    mu = prior_means(stats)
    assert np.all(np.abs(shrunk - mu) <= np.abs(raw - mu) + 1e-12)


def test_kappa_recovers_the_between_segment_variance() -> None:
    rng = np.random.default_rng(6)
    segments, tau, sigma = 2000, 0.3, 1.0
    means = 2.0 + rng.normal(0, tau, segments)
    counts = rng.integers(5, 80, segments)
    samples = [[rng.normal(means[s], sigma, counts[s])] for s in range(segments)]
    stats = cell_stats(samples)
    pool = pooling_of(stats, global_stats(stats))[0]
    assert pool[VAR_R, 0] == pytest.approx(sigma**2, rel=0.03)
    assert pool[VAR_R, 0] / pool[KAPPA_R, 0] == pytest.approx(tau**2, rel=0.15)


@pytest.mark.parametrize(("segments", "kappa"), [(2, 4.0), (3, 8.0), (4, PRIOR_SEGMENTS * 4.0),
                                                 (6, PRIOR_SEGMENTS * 4.0)])
def test_identical_segments_pool_fully_up_to_the_cap(segments: int, kappa: float) -> None:
    """tau2 estimate <= 0: kappa is the cap, PRIOR_SEGMENTS average segments (4 samples each
    here), but never more than the samples outside one segment: a cell's prior never outweighs
    the rest of the model."""
    x = np.array([0.0, 1.0, 1.0, 0.0])
    stats = cell_stats([[x]] * segments)
    pool = pooling_of(stats, global_stats(stats))[0]
    assert pool[KAPPA_R, 0] == kappa


def test_shrunk_bounds_cover_the_true_cell_means() -> None:
    """A credible bound: on average over the segments it covers their true means."""
    rng = np.random.default_rng(7)
    kn = knobs(1.0, 1.0, False, 1.0, (0.0, 1.0), False)
    covered = []
    for _ in range(20):
        truth = np.clip(np.array([0.8, 0.5, 0.3])[None, :] + rng.normal(0, 0.05, (40, 3)), 0, 1)
        stats = bernoulli_cells(rng, truth, rng.integers(0, 30, truth.shape))
        u, _ = shrunk_bounds(stats, kn, np.full(3, np.nan))
        covered.append((u >= truth).mean())
    assert np.mean(covered) >= 0.98 and min(covered) >= 0.95  # measured 0.9996 and 0.992


def test_the_effects_are_the_weighted_least_squares_fit() -> None:
    """The joint fit of x_sm = a_m + b_s (counts as weights, EFFECT_PRIOR pseudo-samples at 0
    on each b_s) equals the normal equations solved directly, on unbalanced cells with holes."""
    rng = np.random.default_rng(8)
    segments, models = 7, 5
    counts = rng.integers(0, 40, (segments, models)) * (rng.random((segments, models)) < 0.7)
    counts[0, :] = 5  # every model seen somewhere
    samples = [[rng.random(counts[s, j]) * (0.3 + 0.1 * j + 0.05 * s) for j in range(models)]
               for s in range(segments)]
    stats = cell_stats(samples)
    pool, _ = pooling_of(stats, global_stats(stats))
    rows, target, weight = [], [], []
    for s in range(segments):
        for j in range(models):
            if counts[s, j]:
                row = np.zeros(models + segments)
                row[j], row[models + s] = 1.0, 1.0
                rows.append(row)
                target.append(stats[1, s, j])
                weight.append(counts[s, j])
    a = np.array(rows) * np.sqrt(weight)[:, None]
    b = np.array(target) * np.sqrt(weight)
    ridge = np.hstack([np.zeros((segments, models)), np.eye(segments) * np.sqrt(EFFECT_PRIOR)])
    solution = np.linalg.lstsq(np.vstack([a, ridge]), np.r_[b, np.zeros(segments)], rcond=None)[0]
    assert pool[FIT_R] == pytest.approx(solution[:models], abs=1e-7)


def test_a_cells_prior_is_what_the_other_models_say_of_its_segment() -> None:
    """Each model's prior takes the segment effects from the other models only: the lock-in
    the segment effect prevents. Model 0 is served 5,000 times in a hard segment (0.56) and 10
    times in an easy one where it is excellent; model 1 shows the easy segment is 0.35 easier
    and a third segment 0.25 easier. Model 0's easy cell is shrunk toward 0.56 + 0.35, not
    toward its global 0.56, and its untried third cell starts at 0.56 + 0.25."""
    hard0 = np.r_[np.ones(2800), np.zeros(2200)]
    hard1, easy1, third1 = (np.r_[np.ones(k), np.zeros(1000 - k)] for k in (500, 850, 750))
    stats = cell_stats([[hard0, hard1], [np.ones(10), easy1], [np.zeros(0), third1]])
    pool, effects = pooling_of(stats, global_stats(stats))
    prior = pool[BASE_R][None, :] + effects
    assert prior[1, 0] == pytest.approx(0.56 + 0.35, abs=0.01)
    assert prior[2, 0] == pytest.approx(0.56 + 0.25, abs=0.01)
    u, _ = shrunk_bounds(stats, KN, np.full(2, np.nan))
    assert u[1, 0] > 0.9 and u[1, 0] > u[0, 0]
    assert 0.81 < u[2, 0] < 1.0  # the prior alone: optimistic, not untried


def test_with_one_model_the_prior_is_the_models_mean() -> None:
    """No other model shows a segment effect: the prior is the model's own global mean."""
    stats = random_stats(9, models=2)[:, :, :1].copy()
    glob = global_stats(stats)
    pool, effects = pooling_of(stats, glob)
    assert np.all(effects == 0.0) and pool[BASE_R, 0] == pytest.approx(glob[1, 0])


def test_shrunk_bounds_check_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        shrunk_bounds(np.zeros((6, 3)), KN, np.zeros(3))
    with pytest.raises(ValueError, match="prior"):
        shrunk_bounds(np.zeros((6, 2, 3)), KN, np.zeros(2))


# --- embedding and clusters ----------------------------------------------------------------------


TEXTS = ["What is the capital of France?", "Name the capital city of Italy.",
         "Write a Python function that sorts a list.", "Write a function in Python to reverse a list.",
         "Which city is the capital of Spain?", "Implement a Python function returning a sorted list."]


def test_embedding_is_deterministic_and_unit_length() -> None:
    a = embed_prompts(TEXTS, dim=4, seed=0)
    assert a.shape == (6, 4)
    assert np.array_equal(a, embed_prompts(TEXTS, dim=4, seed=0))
    assert np.linalg.norm(a, axis=1) == pytest.approx(np.ones(6))
    # capitals are nearer each other than to the Python questions
    sim = a @ a.T
    assert sim[0, 4] > sim[0, 2] and sim[2, 3] > sim[2, 4]


def test_new_prompts_embed_in_the_fitted_space() -> None:
    emb = fit_embedding(TEXTS, dim=3, seed=1)
    new = emb.transform(["The capital of Germany?", "zzz qqq"])
    assert new.shape == (2, 3)
    assert np.linalg.norm(new[0]) == pytest.approx(1.0)
    assert new[1].tolist() == [0.0, 0.0, 0.0]  # no known term: the zero vector
    assert emb.transform(TEXTS) == pytest.approx(embed_prompts(TEXTS, dim=3, seed=1))


def test_clusters_are_numbered_by_size_and_assign_new_rows() -> None:
    rng = np.random.default_rng(8)
    x = np.vstack([rng.normal(0, 0.1, (30, 2)), rng.normal(5, 0.1, (50, 2))])
    fitted = fit_clusters(x, 2, seed=0)
    labels = cluster(x, 2, seed=0)
    assert labels.tolist() == [1] * 30 + [0] * 50
    assert fitted.assign(np.array([[5.1, 4.9], [0.1, 0.0]])).tolist() == [0, 1]
    assert fitted.names == ("auto-00", "auto-01")
    assert fit_clusters(np.ones((5, 2)), 3).centroids.shape == (1, 2)  # at most the distinct rows
    assert segment_names(101)[-1] == "auto-100"


def test_routerbench_clusters_follow_the_tasks(routerbench: Path) -> None:
    frame = pl.read_parquet(routerbench / "prompts.parquet")
    features = embed_prompts(load_prompts(routerbench / "prompts.parquet")["prompt"].to_list())
    labels = cluster(features, frame["eval_name"].n_unique(), seed=0)
    ari = adjusted_rand_score(frame["eval_name"].to_list(), labels)
    assert ari > 0.9  # measured 1.0 (the three tasks are told apart); chance is 0


# --- load_prompts ----------------------------------------------------------------------------


def test_load_prompts_reads_csv_ids_as_text(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("sample_id,prompt,eval_name\n007,hello,x\n8,bye,y\n")
    out = load_prompts(path)
    assert out.schema == pl.Schema({"sample_id": pl.String, "prompt": pl.String})
    assert out["sample_id"].to_list() == ["007", "8"]


def test_load_prompts_casts_integer_ids(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pl.DataFrame({"sample_id": [3, 4], "prompt": ["a", "b"]}).write_parquet(path)
    assert load_prompts(path)["sample_id"].to_list() == ["3", "4"]


@pytest.mark.parametrize(("frame", "message"), [
    (pl.DataFrame({"sample_id": ["a"], "text": ["x"]}), "have no column 'prompt'"),
    (pl.DataFrame({"sample_id": ["a", "b"], "prompt": ["x", None]}),
     "column 'prompt' is empty \\(0-based row 1, sample_id 'b'\\)"),
    (pl.DataFrame({"sample_id": ["a", None], "prompt": ["x", "y"]}), "column 'sample_id' is empty"),
    (pl.DataFrame({"sample_id": ["a", "b", "a"], "prompt": ["x", "y", "z"]}),
     "list sample_id 'a' twice \\(0-based row 0\\), keep one row per sample_id"),
    (pl.DataFrame({"sample_id": ["a"], "prompt": [1.5]}),
     "column 'prompt' has type Float64, expected text"),
    (pl.DataFrame(schema={"sample_id": pl.String, "prompt": pl.String}), "have no rows"),
])
def test_load_prompts_refuses_bad_tables(tmp_path: Path, frame: pl.DataFrame, message: str) -> None:
    path = tmp_path / "prompts.parquet"
    frame.write_parquet(path)
    with pytest.raises(BadDataError, match=message) as info:
        load_prompts(path)
    assert str(path) in str(info.value)


def test_load_prompts_refuses_an_empty_csv(tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv"
    path.write_text("sample_id,prompt\n")
    with pytest.raises(BadDataError, match="have no rows"):
        load_prompts(path)
