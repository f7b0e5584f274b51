import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageroute.estimate.stats import compute_stats, merge_stats, variance

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
