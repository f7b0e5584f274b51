"""stageroute diff: models added, evicted and kept, routing shares that moved, --history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_export import write_plan
from typer.testing import CliRunner

from stageroute.diff import diff_document, diff_plans, latest_two
from stageroute.errors import InputMissingError
from stageroute_cli.main import app

BEFORE = [("a", 0.5), ("b", 0.3), ("c", 0.2), ("idle", 0.0)]
AFTER = [("a", 0.5), ("b", 0.1), ("d", 0.4)]


def test_added_evicted_kept_and_moved(tmp_path: Path) -> None:
    diff = diff_plans(write_plan(tmp_path / "a.json", BEFORE), write_plan(tmp_path / "b.json", AFTER))
    assert diff.added == ("d",)
    assert diff.evicted == ("c", "idle")
    assert diff.kept == ("a", "b")
    assert [(c.model, c.before, c.after, c.change) for c in diff.moved] == [
        ("d", 0.0, 0.4, 0.4), ("b", 0.3, 0.1, -0.2), ("c", 0.2, 0.0, -0.2)]
    assert {c.model for c in diff.shares} == {"a", "b", "c", "idle", "d"}  # a and idle: unmoved
    doc = diff_document(diff)
    assert doc["changed"] is True
    assert doc["moved"][1] == {"model": "b", "before": 0.3, "after": 0.1, "change": -0.2}
    assert sum(c["change"] for c in doc["shares"]) == pytest.approx(0.0)  # both tables sum to 1


def test_the_same_plan_has_no_change(tmp_path: Path) -> None:
    diff = diff_plans(write_plan(tmp_path / "a.json", BEFORE), write_plan(tmp_path / "b.json", BEFORE))
    assert (diff.added, diff.evicted, diff.moved) == ((), (), ())
    assert diff_document(diff)["changed"] is False
    result = CliRunner().invoke(app, ["diff", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.output
    assert "No change" in result.stdout


def test_cli_table_and_json(tmp_path: Path) -> None:
    a, b = write_plan(tmp_path / "a.json", BEFORE), write_plan(tmp_path / "b.json", AFTER)
    table = CliRunner(env={"COLUMNS": "100"}).invoke(app, ["diff", str(a), str(b)])
    assert table.exit_code == 0, table.output
    lines = {line.split()[0]: line.split()[1:] for line in table.stdout.splitlines()
             if line.split() and line.split()[0] in {"a", "b", "c", "d", "idle"}}
    assert lines == {"a": ["keep", "0.5000", "0.5000", "same"],
                     "b": ["keep", "0.3000", "0.1000", "-0.2000"],
                     "c": ["evict", "0.2000", "0.0000", "-0.2000"],
                     "idle": ["evict", "0.0000", "0.0000", "same"],
                     "d": ["add", "0.0000", "0.4000", "+0.4000"]}
    assert "added 1, evicted 2, kept 2, shares moved 3" in table.stdout
    as_json = CliRunner().invoke(app, ["diff", str(a), str(b), "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == diff_document(diff_plans(a, b))


def test_history_takes_the_last_two_by_window_start_then_name(tmp_path: Path) -> None:
    for name, table in [("plan-2026-11-09T02:00:00Z-aaaa.json", BEFORE),
                        ("plan-2026-11-16T02:00:00Z-0f0f.json", BEFORE),
                        ("plan-2026-11-16T02:00:00Z-ffff.json", AFTER),
                        ("plan-2026-10-01T02:00:00Z-zzzz.json", AFTER)]:
        write_plan(tmp_path / name, table)
    (tmp_path / "plan.json.lock").write_text("")
    (tmp_path / "notes.json").write_text("{}")
    older, newer = latest_two(tmp_path)
    assert (older.name, newer.name) == ("plan-2026-11-16T02:00:00Z-0f0f.json",
                                        "plan-2026-11-16T02:00:00Z-ffff.json")
    result = CliRunner().invoke(app, ["diff", "--history", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["added"] == ["d"]


def test_history_orders_by_time_not_by_text(tmp_path: Path) -> None:
    """Offsets differ in text but not in time: the window start decides."""
    write_plan(tmp_path / "plan-2026-11-16T03:00:00+02:00-b.json", AFTER)  # 01:00 UTC
    write_plan(tmp_path / "plan-2026-11-16T02:00:00Z-a.json", BEFORE)
    assert [p.name for p in latest_two(tmp_path)] == ["plan-2026-11-16T03:00:00+02:00-b.json",
                                                      "plan-2026-11-16T02:00:00Z-a.json"]


def test_history_needs_two_plans(tmp_path: Path) -> None:
    write_plan(tmp_path / "plan-2026-11-16T02:00:00Z-a.json", BEFORE)
    with pytest.raises(InputMissingError, match="holds 1 plan file"):
        latest_two(tmp_path)
    with pytest.raises(InputMissingError, match="is not a directory"):
        latest_two(tmp_path / "nowhere")


@pytest.mark.parametrize("args", [[], ["a.json"], ["a.json", "b.json", "c.json"],
                                  ["a.json", "--history", "."]])
def test_cli_needs_two_plans_or_history_alone(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["diff", *args])
    assert result.exit_code == 2
    assert "two plan files" in result.stderr and "--history DIR alone" in result.stderr
