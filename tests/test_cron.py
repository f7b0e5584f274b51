"""Acceptance (issue 9): eight weekly cron runs over the sample logs, state carried in --history.

Each Monday the job starts a few minutes late (02:07 for the 02:00 boundary) with --anchor, so it
plans the window that began at 02:00; a second run that day (03:15) is a no-op that leaves the
history byte for byte and gives --output the same bytes; models retire and arrive on the sample's
calendar (sample_logs/catalog.csv) and the plans follow; a concurrent run is refused with 75.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
from test_history import ROOT, start, wait_for_holder
from typer.testing import CliRunner

from stageroute.errors import ExitCode
from stageroute_cli.main import app

SAMPLE = ROOT / "sample_logs"
MONDAYS = [dt.date(2026, 9, 28) + dt.timedelta(weeks=k) for k in range(8)]  # to 2026-11-16
JOB = ["plan", "--logs", str(SAMPLE / "logs.parquet"), "--catalog", str(SAMPLE / "catalog.csv"),
       "--budget", "0.002", "--max-deployed", "3", "--anchor", "2026-01-05T02:00Z",
       "--history", "plans", "--output", "plans/current.json", "-q"]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("plan-*.json"))}


def in_pool(day: dt.date) -> set[str]:
    """The models the catalog makes available for the whole week from ``day`` 02:00 (an
    independent reading of the calendar: released by the start, not retired before the end)."""
    catalog = pl.read_csv(SAMPLE / "catalog.csv", try_parse_dates=True)
    start, end = day, day + dt.timedelta(days=7)
    return {m for m, released, retired in catalog.select("model", "released", "retired").iter_rows()
            if released <= start and (retired is None or retired >= end)}


def test_eight_weekly_cron_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plans").mkdir()
    runner = CliRunner()
    plans: list[dict] = []
    for monday in MONDAYS:
        late = runner.invoke(app, [*JOB, "--as-of", f"{monday}T02:07:00Z"])
        assert late.exit_code == 0, late.output
        assert late.stdout == ""  # a cron run with --output -q prints nothing
        history = snapshot(tmp_path / "plans")
        assert len(history) == len(plans) + 1  # one new plan a week, the earlier ones untouched
        current = (tmp_path / "plans" / "current.json").read_bytes()
        doc = json.loads(current)
        assert history[f"plan-{doc['run_id']}.json"] == current
        assert doc["window"]["start"] == f"{monday}T02:00:00Z"
        assert doc["logs"]["last"] < doc["window"]["start"]  # cut off at the window, not the run
        assert {c["model"] for c in doc["candidates"]} == in_pool(monday)
        assert {d["model"] for d in doc["deployment"]} <= in_pool(monday)
        for earlier in plans:
            assert earlier["run_id"] != doc["run_id"]

        (tmp_path / "plans" / "current.json").write_text("{}")  # the rerun restores it
        rerun = runner.invoke(app, [*JOB, "--as-of", f"{monday}T03:15:00Z"])
        assert rerun.exit_code == 0, rerun.output
        assert rerun.stdout == ""
        assert "already planned" in rerun.stderr and len(rerun.stderr.splitlines()) == 1
        assert snapshot(tmp_path / "plans") == history  # nothing new, nothing rewritten
        assert (tmp_path / "plans" / "current.json").read_bytes() == current
        plans.append(doc)

    def candidates(k: int) -> set[str]:
        return {c["model"] for c in plans[k]["candidates"]}

    def deployed(k: int) -> set[str]:
        return {d["model"] for d in plans[k]["deployment"]}

    # The calendar moves the plans: atlas-lite-1 retires on 2026-09-30 (mid-stage in week 0),
    # atlas-pro-1 on 2026-10-31 (from week 4 on), echo-reasoner arrives on 2026-11-10 (week 7).
    excluded = [{e["model"] for e in p["excluded"]} for p in plans]
    assert "atlas-lite-1" in excluded[0] and "atlas-lite-1" not in deployed(0)
    assert "atlas-pro-1" in candidates(3) and "atlas-pro-1" not in candidates(4)
    assert all("atlas-pro-1" not in deployed(k) for k in range(4, 8))
    assert "echo-reasoner" not in candidates(6) and "echo-reasoner" in candidates(7)
    assert "echo-reasoner" in deployed(7)  # the new, better model is added the week it can be
    assert len({frozenset(deployed(k)) for k in range(8)}) > 1  # the deployment changes
    assert len(snapshot(tmp_path / "plans")) == 8

    # A concurrent run (a real process holds the history) is refused with 75 and writes nothing.
    before = snapshot(tmp_path / "plans")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = start([*JOB, "--as-of", "2026-11-16T04:00:00Z"], tmp_path)  # a rerun: a no-op
    try:
        wait_for_holder(tmp_path / "plans" / "history.lock", first.pid, first)
        second = subprocess.run([sys.executable, "-m", "stageroute_cli", *JOB, "--as-of",
                                 "2026-11-16T02:07:00Z"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300, check=False)
        assert second.returncode == ExitCode.LOCKED, second.stderr
        assert f"pid {first.pid} on " in second.stderr
        assert snapshot(tmp_path / "plans") == before
    finally:
        os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0 and "already planned" in err
    assert snapshot(tmp_path / "plans") == before

    # diff reports the changes: the last two plans of the history (weeks 6 and 7) ...
    last = runner.invoke(app, ["diff", "--history", "plans", "--json"])
    assert last.exit_code == 0, last.output
    change = json.loads(last.stdout)
    assert change["before"]["window"]["start"] == plans[6]["window"]["start"]
    assert change["after"]["window"]["start"] == plans[7]["window"]["start"]
    assert set(change["added"]) == deployed(7) - deployed(6)
    assert set(change["evicted"]) == deployed(6) - deployed(7)
    assert "echo-reasoner" in change["added"] and change["changed"]
    # ... and any two weeks, with the shares that moved
    for k in range(7):
        pair = [str(tmp_path / "plans" / f"plan-{plans[j]['run_id']}.json") for j in (k, k + 1)]
        week = json.loads(runner.invoke(app, ["diff", *pair, "--json"]).stdout)
        assert set(week["kept"]) == deployed(k) & deployed(k + 1)
        assert week["changed"] == (deployed(k) != deployed(k + 1) or bool(week["moved"]))
