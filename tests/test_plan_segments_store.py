"""plan --segments with the statistics store (--stats), drift windows (--window, --half-life),
routing refreshes (--routing-only --previous) and a change limit (--max-changes): the same cells
and tables as from the logs, and the one-table plan's semantics."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from jsonschema import Draft202012Validator
from test_plan_segments import AS_OF, tables, write_inputs
from typer.testing import CliRunner

from stageroute.errors import BadDataError
from stageroute.inputs.catalog import read_catalog
from stageroute.inputs.logs import summarise_logs
from stageroute.plan import PlanConfig, make_plan, plan_document
from stageroute.store.build import StoreOptions, build_store
from stageroute.store.read import Drift, StoreInput, logs_by_window, store_summary

DAY = dt.timedelta(days=1)


def config(**kw: Any) -> PlanConfig:
    return PlanConfig(**{"budget": 0.002, "max_deployed": 2, "as_of": AS_OF, **kw})


def doc_of(source: Any, catalog: Path, **kw: Any) -> dict[str, Any]:
    """The plan document without the key that says where the statistics came from."""
    doc = plan_document(make_plan(source, catalog, config(**kw)))
    doc["logs"].pop("source")
    return doc


def store_of(logs: Path, directory: Path) -> StoreInput:
    build_store(logs, directory)
    return StoreInput(directory)


def two_weeks(tmp_path: Path) -> tuple[Path, Path, pl.DataFrame]:
    """``write_inputs``' week, preceded by a week in which the segments' best models are
    swapped (x best on B, y on A): a window of the last week must forget it."""
    logs, cat = write_inputs(tmp_path, rows=6000)
    new = pl.read_parquet(logs)
    old = new.with_columns(
        pl.col("timestamp") - dt.timedelta(days=7),
        ("old-" + pl.col("request_id")).alias("request_id"),
        pl.when(pl.col("segment") == "A").then(pl.lit("B")).otherwise(pl.lit("A")).alias("segment"))
    both = pl.concat([old, new]).sort("timestamp")
    both.write_parquet(logs)
    return logs, cat, new


@pytest.mark.parametrize("as_of", [AS_OF, AS_OF - 2 * DAY], ids=["after-the-log", "inside-the-log"])
@pytest.mark.parametrize("kw", [{}, {"max_share": {"x": 0.3}, "extra_model": True}],
                         ids=["plain", "caps-and-an-untried-model"])
def test_the_store_plans_per_segment_as_the_logs_do(tmp_path, as_of, kw):
    logs, cat = write_inputs(tmp_path, **kw)
    store = store_of(logs, tmp_path / "stats")
    from_logs = doc_of(logs, cat, segments=True, as_of=as_of, max_deployed=3)
    from_store = doc_of(store, cat, segments=True, as_of=as_of, max_deployed=3)
    assert from_store == from_logs  # every key but logs.source: set, tables, shares, run id
    assert set(from_store["segments"]) == {"A", "B"}
    if as_of == AS_OF:
        assert {r["segment"] for r in from_store["routing"]} == {"A", "B"}
        assert tables(from_store)["A"]["x"] == pytest.approx(1.0 if not kw else 0.6)


def test_one_segment_value_in_the_store_plans_as_without_segments(tmp_path):
    logs, cat = write_inputs(tmp_path, max_share={"x": 0.4}, segments=("only",), extra_model=True)
    store = store_of(logs, tmp_path / "stats")
    seg = make_plan(store, cat, config(segments=True, max_deployed=3))
    flat = make_plan(store, cat, config(max_deployed=3))
    assert [(m.model, m.action, m.cap, m.reason) for m in seg.deployment] == \
        [(m.model, m.action, m.cap, m.reason) for m in flat.deployment]
    assert [m.probability for m in seg.deployment] == \
        pytest.approx([m.probability for m in flat.deployment], abs=1e-9)
    assert plan_document(seg)["segments"] == {"only": 1.0}


def test_a_store_without_segments_is_refused_as_logs_without_the_column(tmp_path):
    logs, cat = write_inputs(tmp_path, segments=None)
    store = store_of(logs, tmp_path / "stats")
    with pytest.raises(BadDataError, match=r"statistics store .*stats has no segments .*"
                                           r"column 'segment'.*--segments"):
        make_plan(store, cat, config(segments=True))
    with pytest.raises(BadDataError, match="no column 'segment'.*--segments"):  # by day (drift)
        make_plan(logs, cat, config(segments=True, drift=Drift(window=7 * DAY)))


def test_the_store_s_segment_names_are_checked(tmp_path):
    logs, cat = write_inputs(tmp_path)
    frame = pl.read_parquet(logs)
    frame.with_columns(pl.col("segment").replace({"B": "a"})).write_parquet(logs)
    store = store_of(logs, tmp_path / "stats")
    with pytest.raises(BadDataError, match="segments of statistics store .*'A' and 'a'.*case"):
        make_plan(store, cat, config(segments=True))


def test_null_segments_in_the_store_are_the_segment_named_empty(tmp_path):
    logs, cat = write_inputs(tmp_path)
    frame = pl.read_parquet(logs)
    frame.with_columns(pl.when(pl.col("segment") == "B").then(None).otherwise(pl.col("segment"))
                       .alias("segment")).write_parquet(logs)
    store = store_of(logs, tmp_path / "stats")
    assert doc_of(store, cat, segments=True) == doc_of(logs, cat, segments=True)
    assert set(doc_of(store, cat, segments=True)["segments"]) == {"", "A"}


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_an_all_null_segment_column_is_one_segment_named_empty_from_the_store_too(tmp_path,
                                                                                  engine):
    """Logs with a segment column that is null on every row plan one segment "" from the logs;
    the store keeps that segment (it refused them as a store without segments)."""
    logs, cat = write_inputs(tmp_path)
    pl.read_parquet(logs).with_columns(pl.lit(None, pl.String).alias("segment")).write_parquet(logs)
    build_store(logs, tmp_path / "stats", StoreOptions(engine=engine))
    from_logs = doc_of(logs, cat, segments=True)
    assert doc_of(StoreInput(tmp_path / "stats"), cat, segments=True) == from_logs
    assert set(from_logs["segments"]) == {""}


@pytest.mark.parametrize("from_store", [False, True], ids=["logs-by-day", "store"])
def test_a_window_gives_the_cells_of_the_log_without_its_old_rows(tmp_path, from_store):
    logs, cat, new = two_weeks(tmp_path)
    catalog, _ = read_catalog(cat)
    recent = tmp_path / "recent.parquet"
    new.write_parquet(recent)
    drift = Drift(window=7 * DAY)
    if from_store:
        build_store(logs, tmp_path / "stats")
        got = store_summary(tmp_path / "stats", catalog, AS_OF, drift, segments=True)
    else:
        got = logs_by_window(logs, catalog, AS_OF, None, drift, segments=True)
    want = summarise_logs(recent, catalog, AS_OF, segments=True)
    assert got.cells is not None and want.cells is not None
    assert got.cells.equals(want.cells)
    # the whole log without the window: the old week swaps the segments' best models
    everything = summarise_logs(logs, catalog, AS_OF, segments=True)
    assert everything.cells is not None and not everything.cells.equals(want.cells)
    # and the plans: the window's tables are those of the recent week alone
    windowed = doc_of(logs, cat, segments=True, drift=drift)
    alone = doc_of(recent, cat, segments=True)
    assert windowed["routing"] == alone["routing"]
    assert windowed["segments"] == alone["segments"]
    assert tables(windowed)["A"]["x"] == 1.0 and tables(windowed)["B"]["y"] == 1.0
    assert tables(doc_of(logs, cat, segments=True))["A"]["x"] != 1.0  # without the window


def test_a_half_life_weights_every_cell_like_the_per_model_statistics(tmp_path):
    """Each cell's effective count, mean and M2 from day windows weighted 2^(-age / half-life),
    age from the day's end to as-of, computed here from the rows."""
    logs, cat, _ = two_weeks(tmp_path)
    catalog, _ = read_catalog(cat)
    half = 3 * DAY
    build_store(logs, tmp_path / "stats")
    summary = store_summary(tmp_path / "stats", catalog, AS_OF, Drift(half_life=half), segments=True)
    by_day = logs_by_window(logs, catalog, AS_OF, None, Drift(half_life=half), segments=True)
    assert summary.cells is not None and by_day.cells is not None
    assert summary.cells.equals(by_day.cells)
    rows = pl.read_parquet(logs)
    since = (rows["timestamp"] - AS_OF).dt.total_seconds().to_numpy()
    day = np.floor(since / DAY.total_seconds())  # days [as_of + day, as_of + day + 1)
    age = (-day - 1) * DAY.total_seconds()  # from the day's end to as-of
    rows = rows.with_columns(pl.Series("w", np.exp2(-age / half.total_seconds())))
    want = (rows.group_by("segment", "model")
            .agg(pl.col("w").sum().alias("n"),
                 ((pl.col("w") * pl.col("reward")).sum() / pl.col("w").sum()).alias("mean"),
                 pl.len().alias("rows"))
            .sort("segment", "model"))
    got = summary.cells.sort("segment", "model")
    assert got["n_reward"].to_numpy() == pytest.approx(want["n"].to_numpy(), rel=1e-9)
    assert got["mean_reward"].to_numpy() == pytest.approx(want["mean"].to_numpy(), rel=1e-8)
    assert got["rows"].to_list() == want["rows"].to_list()  # the shares count rows, unweighted
    m2 = [float((g["w"] * (g["reward"] - mu) ** 2).sum())
          for (s, m), mu in zip(want.select("segment", "model").iter_rows(), want["mean"],
                                strict=True)
          for g in [rows.filter((pl.col("segment") == s) & (pl.col("model") == m))]]
    assert got["m2_reward"].to_numpy() == pytest.approx(np.array(m2), rel=1e-7)
    # per model, the cells merged are the per-model statistics of the same weights
    merged = got.group_by("model").agg(pl.col("n_reward").sum()).sort("model")
    assert merged["n_reward"].to_numpy() == pytest.approx(
        summary.stats.sort("model")["n_reward"].to_numpy(), rel=1e-9)


@pytest.mark.parametrize("drift", [Drift(window=7 * DAY), Drift(half_life=2 * DAY)],
                         ids=["window", "half-life"])
def test_drift_plans_from_the_store_equal_those_from_the_logs(tmp_path, drift):
    logs, cat, _ = two_weeks(tmp_path)
    store = store_of(logs, tmp_path / "stats")
    from_store = doc_of(store, cat, segments=True, drift=drift, max_deployed=3)
    assert from_store == doc_of(logs, cat, segments=True, drift=drift, max_deployed=3)
    assert from_store["drift"]["window" if drift.window else "half_life"] is not None


@pytest.mark.parametrize("source", ["logs", "store"])
@pytest.mark.parametrize("kw", [{}, {"max_share": {"x": 0.3}, "extra_model": True}],
                         ids=["plain", "caps-and-an-untried-model"])
def test_a_routing_refresh_keeps_the_set_and_re_solves_the_tables(tmp_path, source, kw):
    logs, cat = write_inputs(tmp_path, **kw)
    src: Any = logs if source == "logs" else store_of(logs, tmp_path / "stats")
    full = doc_of(src, cat, segments=True, max_deployed=3)
    previous = tmp_path / "plan.json"
    previous.write_text(json.dumps(full))
    refresh = doc_of(src, cat, segments=True, max_deployed=3, routing_only=True,
                     previous=previous)
    assert refresh["routing_only"] is True and full["routing_only"] is False
    assert [(m["model"], m["action"]) for m in refresh["deployment"]] == \
        [(m["model"], "keep") for m in full["deployment"]]
    assert refresh["routing"] == full["routing"]  # the same function, the same set
    assert all("segment" in r for r in refresh["routing"])
    assert refresh["segments"] == full["segments"]
    assert refresh["expected"] == full["expected"]
    assert any("routing tables per segment are re-solved" in n for n in refresh["notes"])
    schema = json.loads((Path(__file__).parent.parent / "schemas" / "plan.schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(refresh)) == []


def test_a_routing_refresh_of_another_set_solves_its_tables_on_that_set(tmp_path):
    """--deployed y,z: x is not deployed, so segment A (x's best) goes to z (0.5 > y's 0.3)."""
    logs, cat = write_inputs(tmp_path)
    doc = doc_of(logs, cat, segments=True, routing_only=True, deployed=("y", "z"))
    assert {m["model"] for m in doc["deployment"]} == {"y", "z"}
    assert tables(doc) == {"A": {"z": 1.0, "y": 0.0}, "B": {"y": 1.0, "z": 0.0}}


def test_max_changes_keeps_the_set_and_says_what_it_would_change(tmp_path):
    """Deployed now: x and z. Without a limit the set is {x, y} (y is B's best); --max-changes 0
    keeps {x, z} with the one-table plan's reasons and note; 1 allows y in."""
    logs, cat = write_inputs(tmp_path)
    free = plan_document(make_plan(logs, cat, config(segments=True, deployed=("x", "z"))))
    assert {m["model"]: m["action"] for m in free["candidates"]} == \
        {"x": "keep", "y": "add", "z": "evict"}
    held = plan_document(make_plan(logs, cat, config(segments=True, deployed=("x", "z"),
                                                     max_changes=0)))
    lines = {m["model"]: (m["action"], m["reason"]) for m in held["candidates"]}
    assert lines["x"][0] == "keep" and lines["y"][0] == "idle" and lines["z"][0] == "keep"
    assert lines["z"][1].endswith("; kept by --max-changes 0 (without the limit it would be "
                                  "evicted)")
    assert lines["y"][1] == ("not added: --max-changes 0 allows 0 addition(s) (without the "
                             "limit it would be deployed)")
    assert any(n.startswith("--max-changes 0 binds: the plan adds 0 model(s) (at most 0); "
                            "without the limit DeployOPT would deploy 'x', 'y'")
               for n in held["notes"])
    assert tables(held) == {"A": {"x": 1.0, "z": 0.0}, "B": {"z": 1.0, "x": 0.0}}
    assert held["max_changes"] == 0
    one = plan_document(make_plan(logs, cat, config(segments=True, deployed=("x", "z"),
                                                    max_changes=1)))
    assert one["routing"] == free["routing"] and one["deployment"] == free["deployment"]


@pytest.mark.parametrize("changes", [0, 1])
def test_max_changes_with_one_segment_value_is_the_one_table_plan(tmp_path, changes):
    logs, cat = write_inputs(tmp_path, max_share={"x": 0.4}, segments=("only",), extra_model=True)
    kw = {"max_deployed": 3, "deployed": ("z", "w"), "max_changes": changes}
    seg = plan_document(make_plan(logs, cat, config(segments=True, **kw)))
    flat = plan_document(make_plan(logs, cat, config(**kw)))
    assert [(m["model"], m["action"], m["reason"]) for m in seg["candidates"]] == \
        [(m["model"], m["action"], m["reason"]) for m in flat["candidates"]]
    assert [n for n in seg["notes"] if "--max-changes" in n] == \
        [n for n in flat["notes"] if "--max-changes" in n]
    assert any("--max-changes" in n for n in flat["notes"])  # the limit binds in both


def test_the_limited_enumeration_is_the_joint_deploy_opt_within_the_limit():
    """Random instances: without a binding limit the enumeration picks deploy_joint's set (the
    same key and tie rule); with one, its value is the best of deploy_joint over every sub-pool
    of the current models plus ``additions`` others (an independent search)."""
    from itertools import combinations

    from stageroute.optimize.deploy import ChangeLimit, preference_order
    from stageroute.optimize.joint import deploy_joint
    from stageroute.plan_segments import joint_deploy_within

    rng = np.random.default_rng(12)
    for _ in range(60):
        n, segs, k = int(rng.integers(4, 8)), int(rng.integers(1, 4)), int(rng.integers(2, 4))
        u = np.round(rng.random((segs, n)), 1)  # rounded: ties between sets happen
        c = np.round(rng.random((segs, n)), 1) * 1e-3 + 1e-4
        w = rng.dirichlet(np.ones(segs))
        a = rng.choice([0.3, 0.6, 1.0], n)
        budget = float(rng.choice([2e-4, 5e-4, 1e-3]))
        order = preference_order(u.mean(axis=0), c.mean(axis=0))
        a[order[0]] = 1.0  # some set carries the traffic
        current = np.zeros(n, dtype=bool)
        current[rng.choice(n, k, replace=False)] = True
        free = ChangeLimit(~current, k)
        chosen, table = joint_deploy_within(u, c, w, a, budget, k, False, order, free)
        want, want_table = deploy_joint(u, c, w, a, budget, k, order=order)
        assert chosen.tolist() == want.tolist()
        assert table.objective == pytest.approx(want_table.objective, abs=1e-12)
        for additions in (0, 1):
            limit = ChangeLimit(~current, additions)
            try:
                chosen, table = joint_deploy_within(u, c, w, a, budget, k, False, order, limit)
            except Exception as exc:  # no set within the limit carries the traffic
                assert "--max-changes" in str(exc)
                continue
            assert limit.allows(chosen) and chosen.sum() == k
            best = None
            for extra in combinations(np.flatnonzero(~current), additions):
                pool = current.copy()
                pool[list(extra)] = True
                idx = np.flatnonzero(pool)
                if np.sort(a[idx])[::-1][:k].sum() < 1 - 1e-12:
                    continue  # no k of these carry the traffic
                sub, sub_table = deploy_joint(u[:, idx], c[:, idx], w, a[idx], budget, k)
                key = (not sub_table.over_budget, -sub_table.cost if sub_table.over_budget
                       else 0.0, sub_table.objective)
                best = key if best is None or key > best else best
            assert best is not None
            got = (not table.over_budget, -table.cost if table.over_budget else 0.0,
                   table.objective)
            assert got[0] == best[0] and got[1] == pytest.approx(best[1], abs=1e-9)
            assert got[2] == pytest.approx(best[2], abs=1e-9)


def test_cli_plans_per_segment_from_the_store(tmp_path):
    from stageroute_cli.main import app

    logs, cat = write_inputs(tmp_path)
    runner = CliRunner()
    built = runner.invoke(app, ["stats", "--logs", str(logs), "--out", str(tmp_path / "stats"), "-q"])
    assert built.exit_code == 0, built.output
    result = runner.invoke(app, [
        "plan", "--stats", str(tmp_path / "stats"), "--catalog", str(cat), "--budget", "0.002",
        "--max-deployed", "2", "--as-of", "2026-03-01T00:00:00Z", "--segments", "--window", "7d",
        "-q"])
    assert result.exit_code == 0, result.output
    assert "Segment A: 50.0%" in result.output and "Segment B: 50.0%" in result.output


def test_too_many_sets_within_the_limit_are_refused_with_the_fix():
    from stageroute.errors import UsageError
    from stageroute.optimize.deploy import ChangeLimit
    from stageroute.plan_segments import joint_deploy_within

    n = 6
    current = np.array([True, True] + [False] * (n - 2))
    u, c = np.full((2, n), 0.5), np.full((2, n), 1e-4)
    with pytest.raises(UsageError, match=r"--max-changes 1 with --segments .* 9 on 2 segments "
                                         r"\(18 segment tables, at most 16\); lower --max-changes "
                                         "or --max-deployed, or use fewer segments"):
        # sets of 2: the current pair, or one of the 2 with one of the 4 others (8)
        joint_deploy_within(u, c, np.ones(2) / 2, np.ones(n), 1.0, 2, False, np.arange(n),
                            ChangeLimit(~current, 1), most=16)


@pytest.mark.parametrize("from_store", [False, True])
def test_a_segment_of_only_models_outside_the_catalog_is_named_in_a_warning(tmp_path, from_store):
    """Its rows are ignored with their models, so the plan has no table for it: say so."""
    logs, catalog = write_inputs(tmp_path)
    frame = pl.read_parquet(logs)
    ghost = frame.head(500).with_columns(pl.lit("Z").alias("segment"), pl.lit("ghost").alias("model"),
                                         (pl.col("request_id") + "z").alias("request_id"))
    pl.concat([frame, ghost]).write_parquet(logs)
    source = store_of(logs, tmp_path / "stats") if from_store else logs
    doc = doc_of(source, catalog, segments=True)
    assert set(doc["segments"]) == {"A", "B"}
    lost = [w for w in doc["warnings"] if "segment 'Z'" in w]
    assert len(lost) == 1 and "only in rows of models not in the catalog (500 rows)" in lost[0]
    assert ("statistics store" in lost[0]) == from_store
    plain = doc_of(logs if not from_store else source, catalog)  # without --segments: no word
    assert not any("segment 'Z'" in w for w in plain["warnings"])
