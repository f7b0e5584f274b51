"""plan --segments: one deployment set, one routing table per segment; export per segment."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from conftest import REPO_ROOT
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from stageroute.errors import BadDataError
from stageroute.export import ExportFormat, export_plan, read_routing
from stageroute.inputs.catalog import read_catalog
from stageroute.inputs.logs import summarise_logs
from stageroute.plan import PlanConfig, make_plan, plan_document

AS_OF = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
# true mean reward per segment and model; every model costs the same in both segments
TRUTH = {"A": {"x": 0.9, "y": 0.3, "z": 0.5}, "B": {"x": 0.3, "y": 0.9, "z": 0.5}}
COST = {"x": 0.001, "y": 0.001, "z": 0.0005}


def write_inputs(tmp_path: Path, max_share: dict[str, float] | None = None, rows: int = 6000,
                 segments: tuple[str, ...] | None = ("A", "B"), extra_model: bool = False,
                 ) -> tuple[Path, Path]:
    """A log of ``rows`` requests over a week before AS_OF, segments alternating, models drawn
    uniformly, Bernoulli rewards with the TRUTH means (``segments`` None: no segment column;
    one value: every row in it, with the means of segment A and B alternating as before)."""
    caps = {"x": 1.0, "y": 1.0, "z": 1.0, **(max_share or {})}
    models = ["x", "y", "z"]
    cat = tmp_path / "catalog.csv"
    lines = ["model,released,retired,max_share,usd_per_mtok_in,usd_per_mtok_out"]
    lines += [f"{m},2026-01-01,,{caps[m]},1.0,2.0" for m in models]
    lines += ["w,2026-01-01,,1.0,1.0,2.0"] if extra_model else []  # untried: explored
    cat.write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(7)
    start = AS_OF - dt.timedelta(days=7)
    seg = ["AB"[i % 2] for i in range(rows)]
    model = [models[k] for k in rng.integers(0, 3, rows)]
    reward = (rng.random(rows) < [TRUTH[s][m] for s, m in zip(seg, model, strict=True)])
    frame = pl.DataFrame({
        "request_id": [f"r{i}" for i in range(rows)],
        "timestamp": [start + dt.timedelta(seconds=100 * i) for i in range(rows)],
        "model": model,
        "reward": reward.astype(np.float64),
        "cost": [COST[m] for m in model],
    }, schema_overrides={"timestamp": pl.Datetime("us", "UTC")})
    if segments is not None:
        values = seg if len(segments) > 1 else [segments[0]] * rows
        frame = frame.with_columns(pl.Series("segment", values))
    logs = tmp_path / "logs.parquet"
    frame.write_parquet(logs)
    return logs, cat


def config(**kw: object) -> PlanConfig:
    return PlanConfig(**{"budget": 0.002, "max_deployed": 2, "as_of": AS_OF, **kw})  # type: ignore[arg-type]


def tables(doc: dict) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for row in doc["routing"]:
        out.setdefault(row["segment"], {})[row["model"]] = row["probability"]
    return out


def test_each_segment_goes_to_its_best_model(tmp_path):
    logs, cat = write_inputs(tmp_path)
    plan = make_plan(logs, cat, config(segments=True))
    doc = plan_document(plan)
    assert {m["model"] for m in doc["deployment"]} == {"x", "y"}
    assert doc["segments"] == pytest.approx({"A": 0.5, "B": 0.5})
    assert tables(doc) == {"A": {"x": 1.0, "y": 0.0}, "B": {"y": 1.0, "x": 0.0}}
    # the table without segments cannot tell x from y: its reward bound is far lower
    flat = make_plan(logs, cat, config())
    assert doc["expected"]["reward_ucb"] > flat.expected["reward_ucb"] + 0.25
    assert doc["expected"]["reward_mean"] == pytest.approx(0.9, abs=0.02)
    # the per-model view: each model carries its segment's share
    assert {m.model: m.probability for m in plan.deployment} == pytest.approx({"x": 0.5, "y": 0.5})


def test_the_shared_cap_and_budget_bind_across_segments(tmp_path):
    """x may carry 30% of all traffic: segment A (half of it) gets x for 60% of its requests and
    its next best deployed model for the rest; the budget row holds under the cost bounds."""
    logs, cat = write_inputs(tmp_path, max_share={"x": 0.3})
    plan = make_plan(logs, cat, config(segments=True))
    doc = plan_document(plan)
    got = tables(doc)
    assert {m["model"] for m in doc["deployment"]} == {"x", "y"}
    assert got["A"]["x"] == pytest.approx(0.6, abs=1e-9)
    assert got["A"]["y"] == pytest.approx(0.4, abs=1e-9)
    assert got["B"] == pytest.approx({"y": 1.0, "x": 0.0})
    w = doc["segments"]
    share_x = sum(w[s] * got[s]["x"] for s in w)
    assert share_x <= 0.3 + 1e-9
    cost = {(r["segment"], r["model"]): r["cost_lcb"] for r in doc["routing"]}
    spent = sum(w[s] * p * cost[s, m] for s in w for m, p in got[s].items())
    assert spent == pytest.approx(doc["expected"]["cost_lcb"], rel=1e-9)
    assert spent <= doc["budget"] * (1 + 1e-9)
    # a tight budget (0.0007): x and y (0.001 each) cannot both be deployed, x is capped; the
    # best is {y, z}: A all on z (0.5 > y's 0.3), B on y as far as the budget goes
    # (0.0005 + 0.00025 q <= 0.0007: q = 0.8), spending the budget exactly
    tight = plan_document(make_plan(logs, cat, config(segments=True, budget=0.0007)))
    cost = {(r["segment"], r["model"]): r["cost_lcb"] for r in tight["routing"]}
    got = tables(tight)
    assert got["A"] == pytest.approx({"z": 1.0, "y": 0.0})
    assert got["B"] == pytest.approx({"y": 0.8, "z": 0.2}, abs=0.01)
    spent = sum(w[s] * p * cost[s, m] for s in w for m, p in got[s].items())
    assert not tight["over_budget"]
    assert spent == pytest.approx(0.0007, rel=1e-9)


@pytest.mark.parametrize("extra_model", [False, True])
def test_one_segment_value_plans_as_without_segments(tmp_path, extra_model):
    """With one segment the cells are the models: the same bounds, set and table (an untried
    model exercises the exploration caps and floors)."""
    logs, cat = write_inputs(tmp_path, max_share={"x": 0.4}, segments=("only",),
                             extra_model=extra_model)
    for budget in (0.002, 0.0008):
        seg = make_plan(logs, cat, config(segments=True, budget=budget, max_deployed=3))
        flat = make_plan(logs, cat, config(budget=budget, max_deployed=3))
        assert [(m.model, m.action, m.cap) for m in seg.deployment] == \
            [(m.model, m.action, m.cap) for m in flat.deployment]
        assert [m.probability for m in seg.deployment] == \
            pytest.approx([m.probability for m in flat.deployment], abs=1e-9)
        assert [m.reason for m in seg.deployment] == [m.reason for m in flat.deployment]
        for key, value in flat.expected.items():
            assert seg.expected[key] == pytest.approx(value, abs=1e-9), key
        doc = plan_document(seg)
        assert doc["segments"] == {"only": 1.0}
        assert {r["model"]: r["probability"] for r in doc["routing"]} == pytest.approx(
            {r["model"]: r["probability"] for r in plan_document(flat)["routing"]}, abs=1e-9)


def test_without_segments_nothing_changes(tmp_path):
    """The non-segmented summary and plan of a log with a segment column: no cells, no
    ``segment`` in routing rows, no ``segments`` key; the per-model statistics the segmented
    pass merges from its cells are the same."""
    logs, cat = write_inputs(tmp_path)
    catalog, _ = read_catalog(cat)
    flat = summarise_logs(logs, catalog, AS_OF)
    split = summarise_logs(logs, catalog, AS_OF, segments=True)
    assert flat.cells is None and split.cells is not None
    assert flat.stats.equals(split.stats)
    cells = split.cells
    assert cells["rows"].sum() == flat.rows_used
    assert sorted(set(cells["segment"])) == ["A", "B"]
    doc = plan_document(make_plan(logs, cat, config()))
    assert "segments" not in doc and all("segment" not in r for r in doc["routing"])


def test_cell_statistics_match_a_direct_group_by(tmp_path):
    logs, cat = write_inputs(tmp_path)
    catalog, _ = read_catalog(cat)
    cells = summarise_logs(logs, catalog, AS_OF, segments=True).cells
    direct = (pl.read_parquet(logs).group_by("segment", "model")
              .agg(pl.len().alias("rows"), pl.col("reward").mean().alias("mean"),
                   (pl.col("reward").var(ddof=0) * pl.len()).alias("m2"))
              .sort("segment", "model"))
    assert cells["rows"].to_list() == direct["rows"].to_list()
    assert cells["mean_reward"].to_numpy() == pytest.approx(direct["mean"].to_numpy(), rel=1e-9)
    assert cells["m2_reward"].to_numpy() == pytest.approx(direct["m2"].to_numpy(), rel=1e-8)


def test_the_document_validates_and_export_writes_one_group_per_segment(tmp_path):
    logs, cat = write_inputs(tmp_path, max_share={"x": 0.3})
    doc = plan_document(make_plan(logs, cat, config(segments=True)))
    schema = json.loads((REPO_ROOT / "schemas" / "plan.schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(doc)) == []
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    out = export_plan(path, ExportFormat.LITELLM, model_name="chat")
    config_doc = yaml.safe_load(out.text)
    groups: dict[str, dict[str, int]] = {}
    for entry in config_doc["model_list"]:
        groups.setdefault(entry["model_name"], {})[entry["litellm_params"]["model"]] = \
            entry["litellm_params"]["weight"]
    assert set(groups) == {"chat-A", "chat-B"}
    for segment, probs in tables(doc).items():
        weights = groups[f"chat-{segment}"]
        assert set(weights) == {m for m, p in probs.items() if p > 0}
        total = sum(weights.values())
        for model, weight in weights.items():
            assert weight / total == pytest.approx(probs[model], abs=1e-3)
    assert any("segment 'B'" in note and "'x'" in note for note in out.notes)  # x: 0 in B
    portkey = json.loads(export_plan(path, ExportFormat.PORTKEY).text)
    assert [c["query"]["metadata.segment"]["$eq"] for c in portkey["strategy"]["conditions"]] \
        == ["A", "B"]
    with pytest.raises(BadDataError, match="one routing table per segment"):
        read_routing(path, "stageroute diff")


def plan_with_segment_renamed(tmp_path: Path, name: str) -> tuple[Path, dict]:
    """A plan --segments document (segments A and B) with segment A renamed ``name``, written
    to plan.json as a hand edit would: (its path, the document)."""
    logs, cat = write_inputs(tmp_path)
    doc = plan_document(make_plan(logs, cat, config(segments=True)))
    for row in doc["routing"]:
        if row["segment"] == "A":
            row["segment"] = name
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    return path, doc


@pytest.mark.parametrize(("name", "why"), [("a\nb", "control or invisible"),
                                           ("b", "differ only in case"), (" A", "whitespace")])
def test_export_refuses_segment_names_that_cannot_be_group_names(tmp_path, name, why):
    """A plan edited by hand (or by another tool) meets the rule plan --segments applies."""
    path, _ = plan_with_segment_renamed(tmp_path, name)
    with pytest.raises(BadDataError, match=why):
        export_plan(path, ExportFormat.LITELLM)


def test_export_of_a_plan_without_segments_is_one_group(tmp_path):
    logs, cat = write_inputs(tmp_path)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan_document(make_plan(logs, cat, config()))))
    text = export_plan(path, ExportFormat.LITELLM).text
    assert {e["model_name"] for e in yaml.safe_load(text)["model_list"]} == {"stageroute"}


def test_null_segments_form_the_segment_named_empty(tmp_path):
    logs, cat = write_inputs(tmp_path)
    frame = pl.read_parquet(logs)
    frame.with_columns(pl.when(pl.col("segment") == "B").then(None).otherwise(pl.col("segment"))
                       .alias("segment")).write_parquet(logs)
    doc = plan_document(make_plan(logs, cat, config(segments=True)))
    assert set(doc["segments"]) == {"", "A"}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    names = {e["model_name"] for e in yaml.safe_load(
        export_plan(path, ExportFormat.LITELLM).text)["model_list"]}
    assert names == {"stageroute", "stageroute-A"}


def test_logs_without_a_segment_column_are_refused(tmp_path):
    logs, cat = write_inputs(tmp_path, segments=None)
    with pytest.raises(BadDataError, match="no column 'segment'.*--segments"):
        make_plan(logs, cat, config(segments=True))


def test_cli_renders_one_table_per_segment(tmp_path):
    from stageroute_cli.main import app

    logs, cat = write_inputs(tmp_path)
    result = CliRunner().invoke(app, [
        "plan", "--logs", str(logs), "--catalog", str(cat), "--budget", "0.002",
        "--max-deployed", "2", "--as-of", "2026-03-01T00:00:00Z", "--segments", "-q"])
    assert result.exit_code == 0, result.output
    assert "Segment A: 50.0%" in result.output and "Segment B: 50.0%" in result.output


def test_same_inputs_give_the_same_bytes_and_the_solver_agrees(tmp_path):
    logs, cat = write_inputs(tmp_path, max_share={"x": 0.3}, extra_model=True)
    plans = [make_plan(logs, cat, config(segments=True, max_deployed=3)) for _ in range(2)]
    docs = [json.dumps(plan_document(p)) for p in plans]
    assert docs[0] == docs[1]
    assert not any("cross-check" in w for w in plans[0].warnings)


def test_a_joint_table_the_solver_disagrees_with_is_reported(tmp_path, monkeypatch):
    import stageroute.plan_segments as ps

    def worse(u, c, w, a, budget, floor=None, allow_drop=False):  # x's table on y, y's on x
        right = ps.solve_joint_route(u, c, w, a, budget, floor, allow_drop)
        flipped = right.probability[:, ::-1].copy()
        return ps.JointRouting(flipped, float(w @ (flipped * u).sum(axis=1)),
                               float(w @ (flipped * c).sum(axis=1)), False, right.dropped)

    logs, cat = write_inputs(tmp_path)
    monkeypatch.setattr(ps, "joint_table", lambda u, c, w, cap, floor, b, drop: (
        worse(u, c, w, cap, b, floor, drop), floor))
    plan = make_plan(logs, cat, config(segments=True))
    assert any(w.startswith("cross-check: highs's joint RouteOPT") for w in plan.warnings)


def test_with_segments_a_stage_explores_one_untried_model_and_the_other_waits(tmp_path):
    """Two untried models beside three known ones, M_max 3: plan --segments deploys one of
    them (the higher list price) beside two known models; the other waits, and says why."""
    logs, cat = write_inputs(tmp_path)
    with cat.open("a") as out:
        out.write("v,2026-01-01,,1.0,1.2,2.4\nw,2026-01-01,,1.0,1.0,2.0\n")
    doc = plan_document(make_plan(logs, cat, config(max_deployed=3, segments=True)))
    deployed = {line["model"] for line in doc["deployment"]}
    assert "v" in deployed and "w" not in deployed and len(deployed) == 3
    reasons = {line["model"]: line["reason"] for line in doc["candidates"]}
    assert reasons["w"].startswith("waiting: fewer than 40 rewards")
    # the one-table plan keeps the paper's DeployOPT (both may enter)
    flat = plan_document(make_plan(logs, cat, config(max_deployed=3)))
    assert not any(r["reason"].startswith("waiting") for r in flat["candidates"])


def test_one_segment_value_with_two_newcomers_plans_as_without_segments(tmp_path):
    """The one-newcomer rule is the contextual plan's: with one segment value the plan is the
    one-table plan's, two untried models included."""
    logs, cat = write_inputs(tmp_path, segments=("only",))
    with cat.open("a") as out:
        out.write("v,2026-01-01,,1.0,1.2,2.4\nw,2026-01-01,,1.0,1.0,2.0\n")
    seg = make_plan(logs, cat, config(segments=True, max_deployed=3))
    flat = make_plan(logs, cat, config(max_deployed=3))
    assert [(m.model, m.action, m.reason) for m in seg.candidates] == \
        [(m.model, m.action, m.reason) for m in flat.candidates]


@pytest.mark.parametrize("name", ["x y", "x\u00a0y", "x\u3000 y"])
def test_whitespace_in_a_segment_becomes_a_dash_in_its_group_name(tmp_path, name):
    """A group name is a model name clients send: one word, as --model-name is."""
    path, doc = plan_with_segment_renamed(tmp_path, name)
    groups = {e["model_name"] for e in
              yaml.safe_load(export_plan(path, ExportFormat.LITELLM, "chat").text)["model_list"]}
    assert groups == {"chat-x-y", "chat-B"}
    doc["routing"] = [{**row, "segment": "x-y"} if row["segment"] == "B" else row
                      for row in doc["routing"]]
    path.write_text(json.dumps(doc))
    with pytest.raises(BadDataError, match="would name the same gateway group"):
        export_plan(path, ExportFormat.ENVOY, "chat")
    # and where plans come from: a log whose segments would name one group
    logs, cat = write_inputs(tmp_path)
    frame = pl.read_parquet(logs)
    frame.with_columns(pl.col("segment").replace({"A": "x y", "B": "X-Y"})).write_parquet(logs)
    with pytest.raises(BadDataError, match="'X-Y' and 'x y'.*whitespace.*same gateway group"):
        make_plan(logs, cat, config(segments=True))
