"""Contextual replay (SPEC 12): per-segment tables under one budget and one deployment set,
the contextual oracle, PORT in the replay, segments from a column or from prompt clusters."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import REPO_ROOT, ROUTERBENCH
from sklearn.metrics import adjusted_rand_score

from stageroute.errors import BadDataError
from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.outcomes import OutcomeMatrix, load_outcomes, to_matrix
from stageroute.inputs.segmentation import (
    Segmentation,
    cell_truth,
    check_segment_names,
    prompt_features,
    segmentation,
    segments_by_column,
)
from stageroute.optimize.joint import solve_joint_route
from stageroute.options import Policy
from stageroute.simulate import ctxloop
from stageroute.simulate.replay import ReplayConfig, replay

CONTEXTUAL = (Policy.STAGEROUTE, Policy.ORACLE, Policy.CONTEXTUAL, Policy.ORACLE_CONTEXTUAL)


@cache
def routerbench() -> tuple[pl.DataFrame, OutcomeMatrix, pl.DataFrame]:
    if not (ROUTERBENCH / "outcomes.parquet").is_file():
        pytest.skip("shared data missing")
    frame = load_outcomes(ROUTERBENCH / "outcomes.parquet")
    return frame, to_matrix(frame), load_catalog(ROUTERBENCH / "catalog.csv")


def config(**kw: object) -> ReplayConfig:
    base: dict[str, object] = {"budget": 0.3, "relative_budget": True, "max_deployed": 3,
                               "horizon": 20_000, "seeds": 2, "contextual": True,
                               "policies": CONTEXTUAL}
    return ReplayConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_segments_by_column_follow_the_outcomes() -> None:
    frame, matrix, _ = routerbench()
    seg = segments_by_column(frame, matrix, "eval_name")
    assert seg.names == ("arc-challenge", "mbpp", "winogrande")
    by_id = dict(zip(frame["sample_id"], frame["eval_name"], strict=True))
    assert [seg.names[i] for i in seg.of_prompt] == [by_id[s] for s in matrix.samples]
    assert seg.shares.sum() == pytest.approx(1.0)
    mu, _ = cell_truth(matrix, seg)
    # the shares weigh the cell means back into the model means
    assert seg.shares @ mu == pytest.approx(matrix.mean_reward)


def test_the_contextual_oracle_is_the_oracle_with_one_segment_and_beats_it_with_three() -> None:
    frame, matrix, catalog = routerbench()
    one = Segmentation(("all",), np.zeros(len(matrix.samples), dtype=np.int64))
    result = replay(matrix, catalog, config(seeds=1, policies=(Policy.ORACLE,
                                                                Policy.ORACLE_CONTEXTUAL)),
                    segments=one)
    for plain, ctx in zip(result.exact[Policy.ORACLE], result.exact[Policy.ORACLE_CONTEXTUAL],
                          strict=True):
        assert ctx.value == pytest.approx(plain.value, abs=1e-9)
    three = segments_by_column(frame, matrix, "eval_name")
    result = replay(matrix, catalog, config(seeds=1, policies=(Policy.ORACLE,
                                                                Policy.ORACLE_CONTEXTUAL)),
                    segments=three)
    gains = [ctx.value - plain.value for plain, ctx in
             zip(result.exact[Policy.ORACLE], result.exact[Policy.ORACLE_CONTEXTUAL], strict=True)]
    assert min(gains) >= -1e-9 and max(gains) > 0.01
    for v in result.exact[Policy.ORACLE_CONTEXTUAL]:
        assert v.cost <= result.config.budget * (1 + 1e-9) or v.over_budget


@pytest.mark.parametrize("refresh", [None, 7])
def test_contextual_stageroute_learns_the_segments_within_the_budget(refresh: int | None) -> None:
    """On RouterBench (segments = eval_name) it beats StageRoute, learns from bandit feedback
    only, and keeps the realised cost within 2% of the budget."""
    frame, matrix, catalog = routerbench()
    seg = segments_by_column(frame, matrix, "eval_name")
    result = replay(matrix, catalog, config(refresh=refresh, horizon=30_000), segments=seg)
    by = {p.policy: p for p in result.policies}
    ctx, plain = by[Policy.CONTEXTUAL], by[Policy.STAGEROUTE]
    assert ctx.mean_reward > plain.mean_reward
    assert ctx.mean_cost <= 1.02 * result.config.budget
    assert by[Policy.ORACLE_CONTEXTUAL].mean_reward > ctx.mean_reward


def test_the_compiled_loop_equals_its_python() -> None:
    frame, matrix, _ = routerbench()
    seg = segments_by_column(frame, matrix, "eval_name")
    rng = np.random.default_rng(3)
    n, models = 400, len(matrix.models)
    prompts = rng.integers(0, len(matrix.samples), n)
    draws = rng.random(n)
    kn = np.array([0.25, 0.05, 0.0, float(np.quantile(matrix.cost, 0.999)), 0.0, 1.0, 0.0])
    outs = []
    for fn in (ctxloop.run_contextual, ctxloop.run_contextual.py_func):
        cells, stats, seen = np.zeros((6, 3, models)), np.zeros((6, models)), np.zeros(3)
        out = (np.empty(n, dtype=np.int64), np.empty(n), np.empty(n))
        fn(np.array([1, 2, 7]), np.ones(models), prompts, seg.of_prompt, draws, matrix.reward,
           matrix.cost, cells, stats, seen, np.full(models, np.nan), kn, 0.001, False, 0.3, 40.0,
           0, *out)
        outs.append((out, cells))
    (a, cells_a), (b, cells_b) = outs
    assert np.array_equal(a[0], b[0]) and np.allclose(cells_a, cells_b)
    # per-segment counts: each served query was counted in its own cell and in no other
    assert cells_a[0].sum() == n == np.bincount(seg.of_prompt[prompts], minlength=3).sum()


def test_the_loop_routes_each_segment_by_its_own_table() -> None:
    """With known cells (many samples), the first table of the loop is the joint RouteOPT of the
    shrunk bounds, and queries of a segment only go to its table's models."""
    frame, matrix, _ = routerbench()
    seg = segments_by_column(frame, matrix, "eval_name")
    mu, mc = cell_truth(matrix, seg)
    deployed = np.array([1, 2, 10])  # claude-instant-v1, claude-v1, Yi-34B-Chat
    cells = np.zeros((6, 3, len(matrix.models)))
    big = 1e9
    cells[0], cells[1], cells[3], cells[4] = big, mu, big, mc
    stats = np.zeros((6, len(matrix.models)))
    stats[0], stats[3] = big * 3, big * 3
    stats[1], stats[4] = seg.shares @ mu, seg.shares @ mc
    budget = 0.0012
    kn = np.array([0.25, 0.05, 0.0, 1.0, 0.0, 1.0, 0.0])
    n = 3000
    rng = np.random.default_rng(0)
    prompts = rng.integers(0, len(matrix.samples), n)
    out = (np.empty(n, dtype=np.int64), np.empty(n), np.empty(n))
    ctxloop.run_contextual(deployed, np.ones(len(matrix.models)), prompts, seg.of_prompt,
                           rng.random(n), matrix.reward, matrix.cost, cells, stats,
                           np.array([462.0, 136.0, 402.0]), np.full(len(matrix.models), np.nan),
                           kn, budget, False, 0.3, 40.0, 1, *out)
    table = solve_joint_route(mu[:, deployed], mc[:, deployed], seg.shares, np.ones(3), budget)
    for s in range(3):
        served = set(out[0][seg.of_prompt[prompts] == s].tolist())
        assert served <= {int(deployed[i]) for i in np.flatnonzero(table.probability[s] > 1e-9)}


def test_auto_segments_cluster_the_prompt_text() -> None:
    frame, matrix, _ = routerbench()
    features = prompt_features(ROUTERBENCH / "prompts.parquet", matrix)
    assert features.shape == (len(matrix.samples), 64)
    cfg = config(segments="auto", prompts=ROUTERBENCH / "prompts.parquet", clusters=3)
    seg = segmentation(frame, matrix, cfg, features)
    tasks = segments_by_column(frame, matrix, "eval_name")
    assert len(seg.names) == 3 and adjusted_rand_score(tasks.of_prompt, seg.of_prompt) > 0.9


def test_port_in_the_replay_keeps_its_budget() -> None:
    frame, matrix, catalog = routerbench()
    features = prompt_features(ROUTERBENCH / "prompts.parquet", matrix)
    seg = segments_by_column(frame, matrix, "eval_name")
    result = replay(matrix, catalog, config(policies=(Policy.ORACLE, Policy.PORT), horizon=10_000,
                                            prompts=ROUTERBENCH / "prompts.parquet"),
                    segments=seg, features=features)
    port = next(p for p in result.policies if p.policy is Policy.PORT)
    assert 0.3 < port.mean_reward < 1.0
    # per-model budgets that sum to b x T: the total is never exceeded
    assert port.mean_cost <= result.config.budget * (1 + 1e-9)
    assert all(len(d) <= 3 for run in port.runs for d in run.deployed)


def test_the_cli_prints_and_writes_the_contextual_document(tmp_path: Path) -> None:
    routerbench()
    out = tmp_path / "replay.json"
    args = ["replay", "--outcomes", str(ROUTERBENCH / "outcomes.parquet"), "--catalog",
            str(ROUTERBENCH / "catalog.csv"), "--relative-budget", "0.3", "--max-deployed", "3",
            "--horizon", "6000", "--seeds", "3", "--contextual", "--prompts",
            str(ROUTERBENCH / "prompts.parquet"), "--output", str(out), "--json"]
    result = subprocess.run([sys.executable, "-m", "stageroute_cli", *args], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    assert json.loads(result.stdout) == doc
    names = [p["policy"] for p in doc["policies"]]
    for policy in ("stageroute-contextual", "port", "oracle-contextual", "oracle", "stageroute"):
        assert policy in names
    assert doc["contextual"]["segments"] == "eval_name"
    assert set(doc["contextual"]["segment_shares"]) == {"arc-challenge", "mbpp", "winogrande"}
    assert doc["contextual"]["oracle_contextual_value"] > doc["oracle_value"]
    ranks = {p["policy"]: p["rank"] for p in doc["policies"]}
    assert ranks["oracle-contextual"] is None and ranks["stageroute-contextual"] >= 1
    assert "oracle-contextual" in doc["timeline"][0]


@pytest.mark.parametrize(("names", "message"), [
    ([f"s{i}" for i in range(257)], "257 distinct segments, more than 256"),
    (["chat", "a\nb"], "control or invisible character"),
    (["chat", "zero\u200bwidth"], "control or invisible character"),
    (["chat", "lone\ud800surrogate"], "control or invisible character"),  # from a plan's JSON
    (["chat", "x" * 1001], "1,001 characters long"),
    (["chat", " code"], "surrounding whitespace"),
    (["Code", "code"], "differ only in case"),
    (["caf\u00e9", "cafe\u0301"], "differ only in case, Unicode form"),  # NFC and NFD
    (["\uff21", "a"], "differ only in case, Unicode form"),  # fullwidth A (NFKC)
    (["a b", "a-b"], "or whitespace"),  # one gateway group, chat-a-b
])
def test_segments_that_cannot_name_gateway_groups_are_refused(names: list[str],
                                                              message: str) -> None:
    """A column with thousands of values would make every query's joint table huge (a replay
    that never ends); odd names would become broken gateway group names."""
    with pytest.raises(BadDataError, match=message):
        check_segment_names(sorted(names), "the column 'x'")
    check_segment_names(["", "chat", "code", "日本語 ✨", "a/b c"], "the column 'x'")


def test_a_column_with_a_value_per_prompt_is_refused_before_replaying() -> None:
    frame, matrix, _ = routerbench()
    with pytest.raises(BadDataError, match="3,150 distinct segments.*--segments auto"):
        segments_by_column(frame, matrix, "sample_id")


def test_a_free_slot_goes_to_the_most_promising_model_not_the_first_in_the_pool() -> None:
    # Two segments; a well-sampled expensive model (2) that the budget holds at 0.7, a newcomer
    # (3, untried: mu_U = 1 on its 0.3 slice): the LP plans no traffic for the third slot, so
    # models 0 (weak) and 1 (strong) tie on the objective. The slot goes to model 1, the higher
    # bound (plan --segments' tie rule), not to model 0, the first in the pool.
    from stageroute.simulate import loop as compiled
    from stageroute.simulate.contextual import _stage_set
    from stageroute.simulate.replay import policy_knobs

    n_seg, n_models, n = 2, 4, 5_000.0
    cells = np.zeros((6, n_seg, n_models))
    for j, (reward, cost) in enumerate([(0.3, 0.1), (0.6, 0.1), (0.9, 10.0)]):
        cells[compiled.N_R, :, j] = cells[compiled.N_C, :, j] = n
        cells[compiled.MEAN_R, :, j], cells[compiled.MEAN_C, :, j] = reward, cost
        cells[compiled.M2_R, :, j] = n * reward * (1 - reward)
    stats = cells.sum(axis=1)
    stats[compiled.MEAN_R] = cells[compiled.MEAN_R, 0]
    stats[compiled.MEAN_C] = cells[compiled.MEAN_C, 0]
    stats[compiled.M2_R] = cells[compiled.M2_R].sum(axis=0)
    cfg = ReplayConfig(budget=7.1, max_deployed=3, horizon=1_000, contextual=True)
    kn = policy_knobs(Policy.CONTEXTUAL, cfg, 10.0)
    prior = np.array([np.nan, np.nan, np.nan, 0.1])
    chosen = _stage_set(np.ones(n_models, dtype=bool), cells, stats, np.full(n_seg, 0.5), kn,
                        prior, np.ones(n_models), cfg, 1_000.0)
    assert chosen == (1, 2, 3)
