"""replay --window / --half-life (issue 10, drift): each stage is one window of statistics, merged
with weights 2^(-age / half-life) and cut beyond the window; the stationary replay is unchanged."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT
from test_replay import small_world
from typer.testing import CliRunner

from stageroute.errors import UsageError
from stageroute.optimize.route import solve_route
from stageroute.options import Policy, format_duration, parse_duration
from stageroute.simulate import loop as compiled
from stageroute.simulate.drift import stage_partial, weighted_stats
from stageroute.simulate.reference import reference_kernel
from stageroute.simulate.replay import (
    ReplayConfig,
    make_stream,
    prepare,
    replay,
    replay_document,
    run_policy,
)
from stageroute_cli.main import app

DAY = dt.timedelta(days=1)
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
try:
    import drift as drift_bench
    import scenarios
finally:
    sys.path.remove(str(REPO_ROOT / "benchmarks"))


def world_config(**options: object) -> ReplayConfig:
    base = {"budget": 0.5, "relative_budget": True, "max_deployed": 2, "horizon": 1200,
            "stages": 8, "start": START, "end": START + 8 * 7 * DAY, "refresh": 3}
    return ReplayConfig(**{**base, **options})  # type: ignore[arg-type]


def served_run(config: ReplayConfig, seed: int = 0, record: list[np.ndarray] | None = None):
    """(Run, served models per stage) of StageRoute on ``small_world``; ``record`` receives the
    statistics array each stage starts from."""
    outcomes, catalog = small_world(3, n_models=5, n_prompts=80)
    setup = prepare(outcomes, catalog, config)

    def kernel(*args):  # type: ignore[no-untyped-def]
        if record is not None:
            record.append(args[7].copy())
        compiled.run_queries(*args)

    served: list[np.ndarray] = []
    stream = make_stream(len(outcomes.samples), setup.config.horizon, seed)
    run = run_policy(Policy.STAGEROUTE, outcomes, setup.schedule, stream, setup.config,
                     setup.alpha, setup.scale, setup.prices, kernel=kernel, served=served)
    return run, served, outcomes, setup


def test_window_longer_than_the_run_is_the_stationary_replay() -> None:
    stationary, served_s, *_ = served_run(world_config())
    windowed, served_w, *_ = served_run(world_config(window=3650 * DAY))
    assert all(np.array_equal(a, b) for a, b in zip(served_s, served_w, strict=True))
    np.testing.assert_array_equal(stationary.reward, windowed.reward)
    np.testing.assert_array_equal(stationary.cost, windowed.cost)


@pytest.mark.parametrize("policy", [Policy.STAGEROUTE, Policy.PACED, Policy.GREEDY])
@pytest.mark.parametrize("refresh", [None, 3])
def test_compiled_loop_equals_the_reference_with_fractional_counts(policy, refresh) -> None:
    """Effective counts are fractional: both loops (and the exploration slice) take them alike."""
    outcomes, catalog = small_world(2, n_models=5, n_prompts=80)
    cfg = world_config(half_life=10 * DAY, window=30 * DAY, refresh=refresh, min_samples=15)
    setup = prepare(outcomes, catalog, cfg)
    stream = make_stream(len(outcomes.samples), setup.config.horizon, 1)
    record: list[np.ndarray] = []

    def kernel(*args):  # type: ignore[no-untyped-def]
        record.append(args[7].copy())
        compiled.run_queries(*args)

    fast: list[np.ndarray] = []
    slow: list[np.ndarray] = []
    args = (policy, outcomes, setup.schedule, stream, setup.config, setup.alpha, setup.scale,
            setup.prices)
    run_fast = run_policy(*args, kernel=kernel, served=fast)
    run_slow = run_policy(*args, kernel=reference_kernel(solve_route), served=slow)
    assert np.concatenate(fast).tolist() == np.concatenate(slow).tolist()
    assert run_fast.deployed == run_slow.deployed
    counts = np.concatenate([r[compiled.N_R] for r in record])
    assert (counts != np.round(counts)).any()  # the test did meet fractional counts


def test_a_huge_half_life_is_nearly_stationary() -> None:
    stationary, served_s, *_ = served_run(world_config())
    halved, served_h, *_ = served_run(world_config(half_life=1e6 * DAY))
    same = np.mean(np.concatenate(served_s) == np.concatenate(served_h))
    assert same > 0.99
    assert abs(halved.reward.sum() - stationary.reward.sum()) <= 0.01 * stationary.reward.sum()


def test_the_stationary_document_says_null_and_drift_options_are_echoed() -> None:
    outcomes, catalog = small_world(1)
    cfg = ReplayConfig(budget=0.5, relative_budget=True, max_deployed=2, horizon=300, stages=3,
                       policies=(Policy.ORACLE, Policy.STAGEROUTE))
    doc = replay_document(replay(outcomes, catalog, cfg))
    assert doc["window"] is None and doc["half_life"] is None
    doc = replay_document(replay(outcomes, catalog, dataclasses.replace(
        cfg, window=28 * DAY, half_life=dt.timedelta(hours=36))))
    assert (doc["window"], doc["half_life"]) == ("28d", "36h")


@pytest.mark.parametrize(("window", "half_life"), [(14 * DAY, None), (None, 10 * DAY),
                                                    (21 * DAY, 7 * DAY)])
def test_each_stage_starts_from_the_weighted_earlier_stages(window, half_life) -> None:
    """Against an independent weighted mean and M2 over the served queries themselves."""
    record: list[np.ndarray] = []
    _, served, outcomes, setup = served_run(world_config(window=window, half_life=half_life),
                                            seed=4, record=record)
    stream = make_stream(len(outcomes.samples), setup.config.horizon, 4)
    bounds, windows = setup.schedule.bounds, setup.schedule.windows
    for k in range(1, len(served)):
        got = record[k]
        for j in range(len(outcomes.models)):
            w, x, c = [], [], []
            for i in range(k):
                age = (windows[k].start - windows[i].end).total_seconds()
                weight = 2.0 ** (-age / half_life.total_seconds()) if half_life else 1.0
                if window is not None and age >= window.total_seconds():
                    weight = 0.0
                hits = np.flatnonzero(served[i] == j)
                prompts = stream.prompts[bounds[i] + hits]
                w += [weight] * hits.size
                x += list(outcomes.reward[prompts, j])
                c += list(outcomes.cost[prompts, j])
            w_, x_, c_ = np.array(w), np.array(x), np.array(c)
            n = w_.sum()
            assert got[compiled.N_R, j] == pytest.approx(n, abs=1e-9)
            assert got[compiled.N_C, j] == pytest.approx(n, abs=1e-9)
            if n > 0:
                for row, v in ((compiled.MEAN_R, x_), (compiled.MEAN_C, c_)):
                    mean = (w_ * v).sum() / n
                    assert got[row, j] == pytest.approx(mean, rel=1e-9, abs=1e-12)
                    assert got[row + 1, j] == pytest.approx((w_ * (v - mean) ** 2).sum(),
                                                            rel=1e-7, abs=1e-10)
            else:
                assert (got[[compiled.MEAN_R, compiled.M2_R], j] == 0).all()


def test_stage_partial_and_weights_of_a_tiny_table() -> None:
    served = np.array([0, 2, 0, -1, 0])
    reward = np.array([1.0, 0.5, 0.0, 0.0, 1.0])
    part = stage_partial(served, reward, reward * 2, 3)
    assert part[compiled.N_R].tolist() == [3.0, 0.0, 1.0]
    assert part[compiled.MEAN_R].tolist() == pytest.approx([2 / 3, 0.0, 0.5])
    assert part[compiled.M2_R, 0] == pytest.approx(2 / 3)  # (1/3)^2 * 2 + (2/3)^2
    assert part[compiled.MEAN_C, 0] == pytest.approx(4 / 3)
    older = stage_partial(np.array([0]), np.array([0.0]), np.array([0.0]), 3)
    both = weighted_stats(np.stack([older, part]), np.array([7 * 86400.0, 0.0]), None,
                          7 * 86400.0)
    # weights 1/2 (a half-life old) and 1: n = 3.5, mean = (0 * 0.5 + 2) / 3.5
    assert both[compiled.N_R, 0] == pytest.approx(3.5)
    assert both[compiled.MEAN_R, 0] == pytest.approx(2 / 3.5)
    x, w = np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.5, 1, 1, 1])
    assert both[compiled.M2_R, 0] == pytest.approx((w * (x - 2 / 3.5) ** 2).sum())
    cut = weighted_stats(np.stack([older, part]), np.array([7 * 86400.0, 0.0]), 86400.0, None)
    assert cut[compiled.N_R, 0] == 3.0 and cut[compiled.N_R, 1] == 0.0


def test_durations_are_validated_and_formatted() -> None:
    for bad in (dt.timedelta(0), -DAY):
        with pytest.raises(UsageError, match="--window"):
            world_config(window=bad)
        with pytest.raises(UsageError, match="--half-life"):
            world_config(half_life=bad)
    for text in ("28d", "36h", "90m", "1.5s", "14d"):
        assert format_duration(parse_duration(text)) == text
    assert format_duration(dt.timedelta(weeks=2)) == "14d"


def test_cli_replay_takes_window_and_half_life(routerbench) -> None:
    args = ["replay", "--outcomes", str(routerbench / "outcomes.parquet"), "--catalog",
            str(routerbench / "catalog.csv"), "--relative-budget", "0.3", "--max-deployed", "2",
            "--horizon", "2000", "--stages", "5", "--seeds", "1", "--policy", "stageroute",
            "--window", "4w", "--half-life", "2w", "--json", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["window"], doc["half_life"]) == ("28d", "14d")
    text = CliRunner().invoke(app, args[:-2])  # the report names the drift options
    assert text.exit_code == 0 and "statistics: window 28d, half-life 14d" in text.stdout
    bad = CliRunner().invoke(app, [*args[:-4], "--window", "soon"])
    assert bad.exit_code != 0 and "--window" in bad.output


def test_forgetting_moves_traffic_off_a_degraded_model_sooner() -> None:
    """The benchmark's degrading scenario, small: the good model falls to the worst model's
    rewards halfway; windows and half-lives leave it in fewer stages than the stationary bounds."""
    matrix, catalog = scenarios.cheap_strong(0)
    length = 7 * DAY
    base = ReplayConfig(budget=0.3, relative_budget=True, max_deployed=3, horizon=8000,
                        stages=16, refresh=7, start=START, end=START + 16 * length)
    scenario = drift_bench.degrading(matrix, catalog, base)
    leave = {}
    for label, opts in {"stationary": {}, "window": {"window": 4 * length},
                        "half-life": {"half_life": 2 * length}}.items():
        runs = [drift_bench.run_scenario(scenario, dataclasses.replace(base, **opts), seed)
                for seed in range(4)]
        # never leaving counts as the stages left after the change plus one
        leave[label] = np.mean([r.stages_to_leave or 9 for r in runs])
    assert leave["window"] < leave["stationary"]
    assert leave["half-life"] < leave["stationary"]
