"""Off-policy replay from logs (SPEC 11): fixed-table estimators (IPS, SNIPS, DR) against the truth
of full-information tables and a brute-force computation, the replay method against the
full-information replay, and the refusals and warnings."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import REPO_ROOT, ROUTERBENCH

from stageroute.errors import BadDataError, InfeasibleError
from stageroute.inputs.banditlog import BanditLog, LoggingPolicy, bandit_log, load_bandit_log
from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.outcomes import OutcomeMatrix, load_outcomes, simulate_log, to_matrix
from stageroute.options import Policy
from stageroute.simulate.offpolicy import (
    Estimator,
    fixed_tables,
    table_probabilities,
)
from stageroute.simulate.offreplay import OffPolicyConfig, check_log, evaluate_log, offpolicy_document
from stageroute.simulate.replay import ReplayConfig, replay

MMLUPRO = ROUTERBENCH.parent / "mmlupro"

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
try:
    from offpolicy_coverage import SPAN, START, coverage, skewed
finally:
    sys.path.remove(str(REPO_ROOT / "benchmarks"))


@cache
def table(name: str) -> tuple[OutcomeMatrix, pl.DataFrame]:
    root = ROUTERBENCH if name == "routerbench" else MMLUPRO
    if not (root / "outcomes.parquet").is_file():
        pytest.skip(f"shared data {root} missing")
    return to_matrix(load_outcomes(root / "outcomes.parquet")), load_catalog(root / "catalog.csv")


def make_log(name: str, rows: int, seed: int, weights: np.ndarray | None) -> tuple[BanditLog, pl.DataFrame]:
    matrix, catalog = table(name)
    start = START[name]
    frame = simulate_log(matrix, catalog, rows, start, start + SPAN, seed, weights)
    return bandit_log(frame, catalog, LoggingPolicy.LOGGED, f"{name}-{seed}"), frame


@pytest.mark.parametrize("name", ["routerbench", "mmlupro"])
@pytest.mark.parametrize("logger", ["uniform", "skewed"])
def test_fixed_table_intervals_cover_the_truth_of_the_full_table(name: str, logger: str) -> None:
    """Every fixed-table estimate (plan-like, uniform and logging tables; IPS, SNIPS, DR, the
    on-policy mean; reward and cost): its 95% interval covers V(pi) of the full table in >= 90% of
    400 logs of 3,000 requests, and in >= 93% pooled over the cells.

    400 seeds, not 50: a cell whose interval covers exactly 95% of the time still falls below 45
    of 50 with probability 3.8%, so 28 cells at 50 seeds would test luck, not the interval. At 400
    seeds the count of a 95% cell has a standard deviation of 1.1 points."""
    matrix, catalog = table(name)
    weights = None if logger == "uniform" else skewed(len(matrix.models))
    cells = coverage(matrix, catalog, START[name], weights, range(400), 3000)
    assert len(cells) == 2 * 7
    shares = {cell: hit / 400 for cell, (hit, _, _) in cells.items()}
    assert min(shares.values()) >= 0.90, shares
    assert sum(shares.values()) / len(shares) >= 0.93, shares


def test_ips_and_snips_match_a_brute_force_computation() -> None:
    """Per request, by hand: the models available at its time, the table renormalised on them,
    the weight pi / propensity; then IPS and SNIPS, and DR with the per-model means."""
    matrix, catalog = table("routerbench")
    log, frame = make_log("routerbench", 400, 11, skewed(len(matrix.models)))
    weights = {m: 0.1 * (i + 1) for i, m in enumerate(sorted(matrix.models)[:4])}
    rows = frame.sort("timestamp", maintain_order=True).iter_rows(named=True)
    info = {r["model"]: r for r in catalog.iter_rows(named=True)}
    wr = wc = ws = 0.0
    for row in rows:
        t = row["timestamp"]
        avail = [m for m, r in info.items()
                 if r["released"] <= t and (r["retired"] is None or t < r["retired"])]
        mass = sum(weights.get(m, 0.0) for m in avail)
        pi = weights.get(row["model"], 0.0) / mass if mass > 0 else 0.0
        w = pi / row["propensity"]
        wr, wc, ws = wr + w * row["reward"], wc + w * row["cost"], ws + w
    vec = np.array([weights.get(m, 0.0) for m in log.models])
    targets = {"plan": table_probabilities(vec, log.available)}
    got = {e.estimator: e for e in fixed_tables(log, targets, 0, 10)}
    assert got[Estimator.IPS].mean_reward == pytest.approx(wr / 400, rel=1e-12)
    assert got[Estimator.IPS].mean_cost == pytest.approx(wc / 400, rel=1e-12)
    assert got[Estimator.SNIPS].mean_reward == pytest.approx(wr / ws, rel=1e-12)
    assert got[Estimator.SNIPS].mean_cost == pytest.approx(wc / ws, rel=1e-12)
    pi = table_probabilities(vec, log.available)[log.pattern, log.model]
    for e in got.values():
        assert e.ci_reward[0] <= e.mean_reward <= e.ci_reward[1]
        assert e.diagnostics.kept == int((pi > 0).sum())


def test_dr_with_the_logged_model_alone_is_its_mean() -> None:
    """Every model available (constant propensities), a table on one model: the DR correction
    sums to zero and SNIPS is the plain mean, so both are that model's mean reward in the log."""
    matrix, catalog = table("routerbench")
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    frame = simulate_log(matrix, catalog, 2000, start, start + SPAN, 5, skewed(len(matrix.models)))
    log = bandit_log(frame, catalog, LoggingPolicy.LOGGED, "constant")
    j = log.models.index("claude-v1")
    one = np.zeros(len(log.models))
    one[j] = 1.0
    targets = {"plan": table_probabilities(one, log.available)}
    est = {e.estimator: e for e in fixed_tables(log, targets, 0, 10)}
    assert est[Estimator.DR].mean_reward == pytest.approx(log.reward[log.model == j].mean(), rel=1e-9)
    assert est[Estimator.SNIPS].mean_reward == pytest.approx(log.reward[log.model == j].mean(), rel=1e-9)


@pytest.mark.parametrize(("logger", "refresh"), [("uniform", None), ("uniform", 7), ("skewed", None)])
def test_the_replay_method_agrees_with_the_full_information_replay(logger: str,
                                                                   refresh: int | None) -> None:
    """StageRoute on a log (replay method, 5 runs) and on the full table (10 seeds, as many
    queries as the replay kept, the same stages and span): the full replay's mean reward and cost
    lie in the replay method's intervals."""
    matrix, catalog = table("routerbench")
    weights = None if logger == "uniform" else skewed(len(matrix.models))
    log, _ = make_log("routerbench", 60_000 if weights is None else 250_000, 3, weights)
    cfg = OffPolicyConfig(budget=0.3, relative_budget=True, max_deployed=3,
                          policies=("stageroute",), refresh=refresh, seeds=5)
    result = evaluate_log(log, catalog, cfg)
    (e,) = result.estimates
    assert e.estimator is Estimator.REPLAY
    assert abs(e.diagnostics.kept - log.size * log.propensity.min()) < 0.05 * e.diagnostics.kept
    full = replay(matrix, catalog, ReplayConfig(
        budget=result.budget, max_deployed=3, horizon=e.diagnostics.kept, stages=result.stages,
        seeds=10, policies=(Policy.STAGEROUTE,), start=START["routerbench"],
        end=START["routerbench"] + SPAN, refresh=refresh)).policies[0]
    assert e.ci_reward[0] <= full.mean_reward <= e.ci_reward[1]
    assert e.ci_cost[0] <= full.mean_cost <= e.ci_cost[1]
    assert e.ci_reward[1] - e.ci_reward[0] < 0.04


def test_the_replay_method_keeps_each_event_with_the_smallest_propensity() -> None:
    """Rejection sampling: whatever the policy routes, an event is kept with probability p_min."""
    matrix, catalog = table("routerbench")
    log, _ = make_log("routerbench", 40_000, 8, skewed(len(matrix.models)))
    p = log.propensity.min()
    cfg = OffPolicyConfig(budget=0.3, relative_budget=True, max_deployed=3,
                          policies=("stageroute", "greedy", "epsilon-greedy"))
    for e in evaluate_log(log, catalog, cfg).estimates:
        kept = e.diagnostics.kept
        assert abs(kept - p * log.size) < 4 * np.sqrt(p * log.size), (e.policy, kept, p * log.size)


def test_correct_propensities_pass_the_check_and_wrong_ones_warn() -> None:
    matrix, _ = table("mmlupro")
    for logger in (None, skewed(len(matrix.models))):
        log, _ = make_log("mmlupro", 20_000, 2, logger)
        stages = np.arange(log.size) * 10 // log.size
        assert check_log(log, stages) == []
    halved = log.__class__(**{**{f: getattr(log, f) for f in log.__slots__},
                              "propensity": 0.5 * log.propensity})
    (warning,) = check_log(halved, stages)
    assert "propensities do not sum to about 1" in warning and "mean of 1/propensity" in warning


def test_a_deterministic_logger_is_refused() -> None:
    log, _ = make_log("routerbench", 500, 1, None)
    one = log.__class__(**{**{f: getattr(log, f) for f in log.__slots__},
                           "propensity": np.ones(log.size)})
    with pytest.raises(BadDataError, match="every propensity is 1"):
        check_log(one, np.zeros(log.size, dtype=np.int64))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stageroute_cli", "replay", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})


def test_the_cli_prints_the_replay_document_with_estimators_and_diagnostics(tmp_path: Path) -> None:
    matrix, _ = table("routerbench")
    _, frame = make_log("routerbench", 20_000, 4, skewed(len(matrix.models)))
    frame.write_parquet(tmp_path / "logs.parquet")
    plan = {"schema_version": 1, "routing": [{"model": "claude-v1", "probability": 0.4},
                                              {"model": "gpt-3.5-turbo-1106", "probability": 0.6}],
            "deployment": [{"model": "claude-v1"}, {"model": "gpt-3.5-turbo-1106"}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    result = _cli("--logs", "logs.parquet", "--catalog", str(ROUTERBENCH / "catalog.csv"),
                  "--relative-budget", "0.3", "--max-deployed", "3", "--plan", "plan.json",
                  "--json", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["source"] == "logs" and doc["horizon"] == 20_000
    seen = {(p["policy"], p["estimator"]) for p in doc["policies"]}
    assert {("stageroute", "replay"), ("uniform", "ips"), ("uniform", "snips"), ("uniform", "dr"),
            ("logging", "on-policy"), ("plan", "dr")} <= seen
    for p in doc["policies"]:
        lo, hi = p["ci95"]["mean_reward"]
        assert lo <= p["mean_reward"] <= hi and p["diagnostics"]["events"] == 20_000
    assert doc["warnings"] == [] and "warning" not in result.stderr


def test_too_few_kept_events_warn_on_stderr_and_in_the_json(tmp_path: Path) -> None:
    _, frame = make_log("routerbench", 3000, 4, None)
    frame.write_parquet(tmp_path / "logs.parquet")
    result = _cli("--logs", "logs.parquet", "--catalog", str(ROUTERBENCH / "catalog.csv"),
                  "--budget", "0.002", "--max-deployed", "3", "--policy", "stageroute",
                  "--policy", "uniform", "--min-kept", "1000", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    (replayed,) = [p for p in doc["policies"] if p["policy"] == "stageroute"]
    assert replayed["diagnostics"]["kept"] < 1000
    assert any("fewer than --min-kept 1000" in w for w in replayed["warnings"])
    assert "stageroute: warning: policy stageroute: only" in result.stderr
    assert not any("policy uniform" in w for w in doc["warnings"])  # 3000 kept, ESS 3000


def test_wrong_propensities_warn_on_the_cli(tmp_path: Path) -> None:
    matrix, _ = table("routerbench")
    _, frame = make_log("routerbench", 20_000, 4, skewed(len(matrix.models)))
    frame.with_columns(pl.col("propensity") * 0.6).write_parquet(tmp_path / "logs.parquet")
    result = _cli("--logs", "logs.parquet", "--catalog", str(ROUTERBENCH / "catalog.csv"),
                  "--budget", "0.002", "--max-deployed", "3", "--policy", "uniform", "--json",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stageroute: warning: propensities do not sum to about 1" in result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert any("propensities do not sum" in w for w in warnings)
    assert any("mean importance weight" in w for w in warnings)  # 1 / 0.6 on average


def test_a_policy_off_the_loggers_support_is_flagged() -> None:
    """A logger that never serves two of the models: uniform over all puts traffic there."""
    matrix, catalog = table("routerbench")
    w = np.ones(len(matrix.models))
    w[:2] = 0.0
    log, _ = make_log("routerbench", 5000, 3, w)
    cfg = OffPolicyConfig(budget=0.002, max_deployed=3, policies=("uniform",))
    (ips, *_) = evaluate_log(log, catalog, cfg).estimates
    assert any("mean importance weight" in x and "did not choose" in x for x in ips.warnings)
    assert check_log(log, np.zeros(log.size, dtype=np.int64)) == []


def test_a_declared_uniform_logger_needs_no_propensity_column(tmp_path: Path) -> None:
    log, frame = make_log("routerbench", 5000, 6, None)
    frame.drop("propensity").write_parquet(tmp_path / "logs.parquet")
    args = ("--logs", "logs.parquet", "--catalog", str(ROUTERBENCH / "catalog.csv"), "--budget",
            "0.002", "--max-deployed", "3", "--policy", "uniform", "--json")
    refused = _cli(*args, cwd=tmp_path)
    assert refused.returncode == 65 and "no column 'propensity'" in refused.stderr
    declared = _cli(*args, "--logging-policy", "uniform", cwd=tmp_path)
    assert declared.returncode == 0, declared.stderr
    ips = json.loads(declared.stdout)["policies"][0]
    assert ips["estimator"] == "ips" and ips["mean_reward"] == pytest.approx(log.reward.mean())


def test_the_document_of_the_library_validates() -> None:
    log, _ = make_log("routerbench", 5000, 6, None)
    _, catalog = table("routerbench")
    doc = offpolicy_document(evaluate_log(log, catalog, OffPolicyConfig(
        budget=0.002, max_deployed=2, policies=("greedy", "uniform", "logging"))))
    assert [p["estimator"] for p in doc["policies"]] == ["replay", "ips", "snips", "dr", "on-policy"]


def test_dr_uses_the_mean_per_segment_and_model_by_hand() -> None:
    """DR's direct part per (segment, model), recomputed with Polars group-bys and a loop."""
    matrix, catalog = table("routerbench")
    _, frame = make_log("routerbench", 3000, 9, skewed(len(matrix.models)))
    rng = np.random.default_rng(0)
    frame = frame.with_columns(pl.Series("segment", rng.choice(["chat", "code", "math"], frame.height)))
    log = bandit_log(frame, catalog, LoggingPolicy.LOGGED, "segments")
    assert log.segments == ("chat", "code", "math")
    weights = np.zeros(len(log.models))
    weights[[log.models.index(m) for m in ("claude-v1", "gpt-4-1106-preview")]] = (0.7, 0.3)
    pi = table_probabilities(weights, log.available)
    (dr,) = [e for e in fixed_tables(log, {"plan": pi}, 0, 10) if e.estimator is Estimator.DR]
    cells = {(r["segment"], r["model"]): r["reward"] for r in
             frame.group_by("segment", "model").agg(pl.col("reward").mean()).iter_rows(named=True)}
    total = 0.0
    for i in range(log.size):
        seg, a = log.segments[log.segment[i]], log.model[i]
        row = pi[log.pattern[i]]
        direct = sum(row[j] * cells[(seg, log.models[j])] for j in np.flatnonzero(row))
        total += direct + row[a] / log.propensity[i] * (log.reward[i] - cells[(seg, log.models[a])])
    assert dr.mean_reward == pytest.approx(total / log.size, rel=1e-10)


@pytest.mark.parametrize(("stages", "extra"), [
    (3, ()), (2, ("--logging-policy", "uniform", "--policy", "epsilon-greedy"))])
def test_a_stage_whose_known_models_cannot_carry_the_rest_still_replays(
        stages: int, extra: tuple[str, ...], tmp_path: Path, sample_logs: Path,
        sample_catalog: Path) -> None:
    """The sample logs: in the last stage, the one well-sampled model of the pool has max_share
    0.6 and the exploration slice split over two slots (0.15 each) left DeployOPT caps summing to
    0.9 < 1, while the pool's max_share values (three models at 1.0) carry all traffic. The
    replay exited 10 blaming the catalog's max_share; the slice now rises just enough."""
    result = _cli("--logs", str(sample_logs), "--catalog", str(sample_catalog), "--budget", "0.002",
                  "--max-deployed", "3", "--seeds", "1", "--stages", str(stages), "--json",
                  "--quiet", *extra, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["source"] == "logs" and doc["stages"] == stages
    assert any(p["estimator"] == "replay" for p in doc["policies"])


def test_a_stage_whose_pool_cannot_carry_the_traffic_names_the_stage_and_the_pool(
        tmp_path: Path, sample_logs: Path, sample_catalog: Path) -> None:
    """max_share 0.3 for every model and M_max 3: no set can carry all traffic, as in the
    full-information replay (exit 10); the message says which stage and that the pool is the
    models the logger served."""
    catalog = pl.read_csv(sample_catalog).with_columns(pl.lit(0.3).alias("max_share"))
    catalog.write_csv(tmp_path / "catalog.csv")
    cat = load_catalog(tmp_path / "catalog.csv")
    log = load_bandit_log(sample_logs, cat, LoggingPolicy.LOGGED)
    config = OffPolicyConfig(budget=0.002, max_deployed=3, stages=3, policies=("stageroute",))
    with pytest.raises(InfeasibleError, match=r"stage 1 of 3 .*max_share values sum to 0\.9 < 1.*"
                                              r"that the logger served: 'atlas-lite-1'"):
        evaluate_log(log, cat, config)


@pytest.mark.parametrize("epsilon", [-0.1, 2.0, float("nan")])
def test_an_exploration_rate_outside_0_1_is_refused_as_in_replay(epsilon: float) -> None:
    from stageroute.errors import UsageError

    with pytest.raises(UsageError, match=r"--epsilon must be in \[0, 1\].*--epsilon 0.1"):
        OffPolicyConfig(budget=0.002, max_deployed=3, policies=("uniform",), epsilon=epsilon)
