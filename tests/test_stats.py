import math
import warnings

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageroute.estimate.stats import (
    STATS_SCHEMA,
    chan_merge,
    compute_stats,
    merge_stats,
    settle,
    variance,
    welford,
)

rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.one_of(st.none(), st.floats(0, 1)),
        st.floats(0, 10, allow_subnormal=False),
    ),
    min_size=1,
    max_size=200,
)


def frame(data):
    return pl.DataFrame(data, schema={"model": pl.String, "reward": pl.Float64, "cost": pl.Float64},
                        orient="row")


@settings(max_examples=200, deadline=None)
@given(rows, st.lists(st.integers(0, 200), max_size=4))
def test_merged_partial_statistics_equal_one_pass(data, cuts):
    whole = compute_stats(frame(data))
    bounds = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    parts = [compute_stats(frame(data[lo:hi])) for lo, hi in zip(bounds, bounds[1:], strict=False)
             if hi > lo]
    merged = parts[0]
    for part in parts[1:]:
        merged = merge_stats(merged, part)
    assert merged["model"].to_list() == whole["model"].to_list()
    for col in ("n_reward", "n_cost"):
        assert merged[col].to_list() == whole[col].to_list()
    for col in ("mean_reward", "m2_reward", "mean_cost", "m2_cost"):
        a, b = merged[col].to_numpy(), whole[col].to_numpy()
        assert np.allclose(np.nan_to_num(a, nan=-1), np.nan_to_num(b, nan=-1), rtol=1e-9, atol=1e-9)


def test_known_answer_counts_feedback_rows_for_reward_and_all_rows_for_cost():
    stats = compute_stats(frame([("a", 1.0, 2.0), ("a", None, 4.0), ("a", 0.0, 6.0), ("b", None, 1.0)]))
    a = stats.row(0, named=True)
    assert (a["n_reward"], a["n_cost"]) == (2, 3)
    assert a["mean_reward"] == pytest.approx(0.5)
    assert a["mean_cost"] == pytest.approx(4.0)
    assert variance(stats, "cost")[0] == pytest.approx(8 / 3)  # divisor n
    b = stats.row(1, named=True)
    assert b["n_reward"] == 0 and b["m2_reward"] == 0.0


def by_hand(data):
    """Counts, means and sums of squared deviations per model, two passes with exact sums."""
    out = {}
    for model in sorted({m for m, _, _ in data}):
        row = {"model": model}
        for kind, values in (("reward", [r for m, r, _ in data if m == model and r is not None]),
                             ("cost", [c for m, _, c in data if m == model])):
            n = len(values)
            mean = math.fsum(values) / n if n else None
            row[f"n_{kind}"] = n
            row[f"mean_{kind}"] = mean
            row[f"m2_{kind}"] = math.fsum((x - mean) ** 2 for x in values) if n else 0.0
        out[model] = row
    return out


@settings(max_examples=200, deadline=None)
@given(rows)
def test_statistics_equal_an_independent_two_pass_computation(data):
    stats = compute_stats(frame(data))
    expected = by_hand(data)
    assert stats["model"].to_list() == list(expected)  # sorted, one row per model
    assert stats.schema == pl.Schema(STATS_SCHEMA)
    for got in stats.iter_rows(named=True):
        want = expected[got["model"]]
        for kind in ("reward", "cost"):
            assert got[f"n_{kind}"] == want[f"n_{kind}"]
            if want[f"n_{kind}"] == 0:
                assert got[f"mean_{kind}"] is None or math.isnan(got[f"mean_{kind}"])
            else:
                assert got[f"mean_{kind}"] == pytest.approx(want[f"mean_{kind}"], rel=1e-12, abs=1e-12)
            assert got[f"m2_{kind}"] == pytest.approx(want[f"m2_{kind}"], rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 10, allow_subnormal=False), min_size=1, max_size=100),
       st.integers(0, 100))
def test_welford_updates_equal_two_pass_statistics_and_merge_with_chan(values, cut):
    """The replay's per-query update (compiled and interpreted) against numpy, and a split
    stream merged with Chan's formula against the whole."""
    for update in (welford, welford.py_func):
        state = np.zeros((3, 2))
        for x in values:
            update(state, 0, 1, x)
        assert state[0, 1] == len(values)
        assert state[1, 1] == pytest.approx(np.mean(values), rel=1e-12, abs=1e-12)
        assert state[2, 1] == pytest.approx(np.var(values) * len(values), rel=1e-9, abs=1e-9)
        assert state[:, 0].tolist() == [0.0, 0.0, 0.0]  # other columns untouched
    cut = min(cut, len(values))
    parts = []
    for chunk in (values[:cut], values[cut:]):
        state = np.zeros((3, 1))
        for x in chunk:
            welford.py_func(state, 0, 0, x)
        parts.append(state[:, 0])
    n, mean, m2 = chan_merge(*(np.array([v]) for v in (*parts[0], *parts[1])))
    assert n[0] == len(values)
    assert mean[0] == pytest.approx(np.mean(values), rel=1e-12, abs=1e-12)
    assert m2[0] == pytest.approx(np.var(values) * len(values), rel=1e-9, abs=1e-9)


def test_merging_disjoint_models_keeps_both_and_empty_sides_are_neutral():
    a = compute_stats(frame([("a", 1.0, 2.0), ("a", 0.0, 4.0)]))
    b = compute_stats(frame([("b", None, 1.0)]))
    merged = merge_stats(a, b)
    assert merged.rows()[0] == ("a", 2, 0.5, 0.5, 2, 3.0, 2.0)
    b_row = merged.rows()[1]
    assert b_row[:2] == ("b", 0) and b_row[3:] == (0.0, 1, 1.0, 0.0)
    assert b_row[2] is None or math.isnan(b_row[2])  # no reward: no mean
    assert merge_stats(a, a.head(0)).equals(a)


def test_settle_is_exact_and_quiet_for_tiny_subnormal_and_zero_values():
    """Below ~1e-297 the decimal scale 10^(digits - 1 - exponent) overflowed a double: the
    settled value was NaN (null in the plan JSON) with RuntimeWarnings."""
    x = np.array([0.0, 5e-324, 1e-310, 1e-300, 1e-200, 0.5, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = settle(x)
        assert np.isfinite(y).all()
        assert y[0] == 0.0 and y[1] == 5e-324  # the smallest subnormal is itself
        np.testing.assert_allclose(y, x, rtol=1e-9, atol=0)
        np.testing.assert_array_equal(settle(-x), -y)
        np.testing.assert_array_equal(settle(y), y)  # settled values stay put
        big = np.array([1.7976931348623157e308, np.nan, np.inf])  # rounds up past the largest
        np.testing.assert_array_equal(settle(big), big)
    assert settle(x).tobytes() == y.tobytes()  # same inputs, same bytes
