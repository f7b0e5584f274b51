import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageroute.estimate.bounds import cost_lcb, f_rad, reward_ucb, theory_gamma
from stageroute.options import Radius

means = st.floats(0, 1)
gammas = st.floats(0.01, 30)
ns = st.integers(1, 10**7)


@given(means, st.floats(0, 0.25), ns, gammas, st.sampled_from(list(Radius)))
def test_reward_upper_bound_is_above_the_mean_and_in_unit_interval(mean, var, n, gamma, radius):
    u = reward_ucb([mean], [var], [n], gamma, radius)[0]
    assert mean <= u <= 1.0


@given(st.floats(0, 5), st.floats(0, 6), ns, gammas, st.floats(0.1, 10))
def test_cost_lower_bound_is_below_the_mean_and_nonnegative(mean, var, n, gamma, scale):
    c = cost_lcb([mean], [var], [n], gamma, scale)[0]
    assert 0.0 <= c <= mean + 1e-12


@given(st.floats(1.5, 100), st.integers(2, 1000), gammas)
def test_an_expensive_model_is_never_clipped_below_its_observed_mean(ratio, n, gamma):
    # A rarely used model at `ratio` x the cost scale: its bound is the normalised LCB, clipped
    # at most down to the mean itself, never to the scale (a 33x underestimate before).
    scale, mean = 0.0015, 0.0015 * ratio
    c = cost_lcb([mean], [0.0], [n], gamma, scale)[0]
    assert c == pytest.approx(max(0.0, mean - 2 * gamma / n * scale))
    assert c > scale or mean - 2 * gamma / n * scale <= scale


@given(means, st.floats(0, 0.25), st.integers(1, 10**6), gammas)
def test_width_shrinks_with_n(mean, var, n, gamma):
    n_arr = [n, 2 * n, 10 * n]
    u = reward_ucb([mean] * 3, [var] * 3, n_arr, gamma)
    c = cost_lcb([mean] * 3, [var] * 3, n_arr, gamma, scale=1.0)
    assert u[0] >= u[1] >= u[2] >= mean
    assert c[0] <= c[1] <= c[2] <= mean
    r = [f_rad(var, k, gamma) for k in n_arr]
    assert r[0] > r[1] > r[2]


def test_untried_model_is_maximally_optimistic_on_reward_and_uses_the_price_prior_on_cost():
    assert reward_ucb([np.nan], [np.nan], [0], 1.0)[0] == 1.0
    assert cost_lcb([np.nan], [np.nan], [0], 1.0, scale=1.0)[0] == 0.0
    assert cost_lcb([np.nan, np.nan], [np.nan, np.nan], [0, 0], 1.0, scale=1.0,
                    untried=[0.004, np.nan]).tolist() == [0.004, 0.0]


def test_known_values_and_small_sample_variance():
    # n = 1 uses the largest variance 1/4 whatever the observed variance.
    assert reward_ucb([0.5], [0.0], [1], 1.0)[0] == 1.0
    expected = 0.6 + 2 * (math.sqrt(1.0 * 0.04 / 100) + 1.0 / 100)
    assert reward_ucb([0.6], [0.04], [100], 1.0)[0] == pytest.approx(expected)
    # the BwK radius uses the mean as v
    expected_mean = 0.2 + 2 * (math.sqrt(0.5 * 0.2 / 400) + 0.5 / 400)
    assert reward_ucb([0.2], [0.01], [400], 0.5, Radius.MEAN)[0] == pytest.approx(expected_mean)
    # costs: normalised by the scale, reported in currency
    c = cost_lcb([0.002], [1e-6], [100], 1.0, scale=0.01)[0]
    assert c == pytest.approx((0.2 - 2 * (math.sqrt(0.01 / 100) + 0.01)) * 0.01)
    assert theory_gamma(10, 1000, 0.05) == pytest.approx(math.log(10 * 1000 / 0.05))
