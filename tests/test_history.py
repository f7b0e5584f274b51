"""plan --history (a rerun of a planned window and inputs is a no-op), the whole-run lock, and
the stage windows of --anchor / --grace."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stageroute.errors import ExitCode, UsageError
from stageroute.options import parse_grace, window_start
from stageroute.plan import PlanConfig
from stageroute_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_logs"
PLAN = ["plan", "--logs", str(SAMPLE / "logs.parquet"), "--catalog", str(SAMPLE / "catalog.csv"),
        "--budget", "0.002", "--max-deployed", "3", "--anchor", "2026-01-05T02:00Z"]
UTC = dt.UTC


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


WEEK, HOUR = dt.timedelta(days=7), dt.timedelta(hours=1)
ANCHOR = t("2026-01-05T02:00")  # a Monday


# ---------------------------------------------------------------------------------------------
# windows


@pytest.mark.parametrize(("as_of", "grace", "start"), [
    ("2026-11-16T02:00", None, "2026-11-16T02:00"),  # exactly on a boundary: that window
    ("2026-11-16T02:00", dt.timedelta(0), "2026-11-16T02:00"),
    ("2026-11-16T02:07", None, "2026-11-16T02:00"),  # a late cron run: the window that began
    ("2026-11-16T02:07", dt.timedelta(0), "2026-11-23T02:00"),  # grace 0: strictly the next one
    ("2026-11-16T01:50", None, "2026-11-16T02:00"),  # an early run: the window about to begin
    ("2026-11-19T14:00", None, "2026-11-16T02:00"),  # exactly halfway: late for the earlier one
    ("2026-11-19T14:01", None, "2026-11-23T02:00"),  # past halfway: early for the next one
    ("2026-11-16T08:00", dt.timedelta(hours=6), "2026-11-16T02:00"),  # at the end of the grace
    ("2026-11-16T08:01", dt.timedelta(hours=6), "2026-11-23T02:00"),
])
def test_the_window_is_the_boundary_the_run_belongs_to(as_of, grace, start):
    assert window_start(t(as_of), ANCHOR, WEEK, grace) == t(start)


@pytest.mark.parametrize("anchor", ["2027-03-01T02:00", "2026-11-16T02:00", "1990-01-01T02:00"])
def test_an_anchor_in_the_future_or_far_past_gives_the_same_boundaries(anchor):
    """Boundaries extend both ways: any Monday 02:00 anchor gives the same weekly windows."""
    for as_of, start in [("2026-11-16T02:07", "2026-11-16T02:00"),
                         ("2026-11-22T23:00", "2026-11-23T02:00")]:
        assert window_start(t(as_of), t(anchor), WEEK, dt.timedelta(hours=12)) == t(start)


def test_windows_agree_with_a_brute_force_walk_over_the_boundaries():
    """Every hour of a month of daily stages at 03:30, against the boundaries listed one by one."""
    anchor, day = t("2026-06-01T03:30"), dt.timedelta(days=1)
    boundaries = [anchor + k * day for k in range(-40, 80)]
    for grace in (dt.timedelta(0), dt.timedelta(hours=2), None):
        limit = day / 2 if grace is None else grace
        for h in range(24 * 30):
            as_of = t("2026-05-20T00:00") + h * HOUR + dt.timedelta(minutes=17 * (h % 4))
            before = max(b for b in boundaries if b <= as_of)
            expected = before if as_of - before <= limit else before + day
            assert window_start(as_of, anchor, day, grace) == expected


@pytest.mark.parametrize("grace", [dt.timedelta(days=7), dt.timedelta(days=8), -HOUR])
def test_a_grace_outside_the_stage_is_a_usage_error(grace):
    with pytest.raises(UsageError, match="--grace"):
        window_start(t("2026-11-16T02:00"), ANCHOR, WEEK, grace)


def test_parse_grace():
    assert parse_grace(None) is None
    assert parse_grace("0") == dt.timedelta(0) == parse_grace("0s")
    assert parse_grace("6h") == dt.timedelta(hours=6)
    with pytest.raises(UsageError, match="--grace"):
        parse_grace("soon")


def test_plan_config_moves_as_of_to_the_window_start():
    config = PlanConfig(budget=0.002, max_deployed=3, as_of=t("2026-11-16T02:07"), anchor=ANCHOR)
    assert config.as_of == t("2026-11-16T02:00")  # also the logs' cut-off
    assert (config.window.start, config.window.end) == (t("2026-11-16T02:00"), t("2026-11-23T02:00"))
    daily = PlanConfig(budget=0.002, max_deployed=3, as_of=t("2026-11-16T02:07"), anchor=ANCHOR,
                       stage_length=dt.timedelta(days=1), grace=dt.timedelta(0))
    assert daily.window.start == t("2026-11-17T02:00")
    with pytest.raises(UsageError, match="--anchor"):
        PlanConfig(budget=0.002, max_deployed=3, as_of=t("2026-11-16T02:07"), grace=HOUR)


# ---------------------------------------------------------------------------------------------
# history and idempotence (in process)


def files_in(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_rerun_of_a_planned_window_is_a_no_op_with_the_same_bytes(tmp_path):
    runner = CliRunner()
    history, out = tmp_path / "plans", tmp_path / "current.json"
    first = runner.invoke(app, [*PLAN, "--as-of", "2026-11-16T02:05Z", "--history", str(history),
                                "--output", str(out), "-q"])
    assert first.exit_code == 0, first.output
    assert first.stdout == ""  # a cron run (--output -q) is silent
    stored = sorted(history.glob("plan-*.json"))
    assert len(stored) == 1
    doc = json.loads(stored[0].read_text())
    assert stored[0].name == f"plan-{doc['run_id']}.json"
    assert doc["run_id"].startswith("20261116T0200-")
    assert doc["window"] == {"start": "2026-11-16T02:00:00Z", "end": "2026-11-23T02:00:00Z"}
    assert out.read_bytes() == stored[0].read_bytes()
    before = files_in(history)
    mtime = stored[0].stat().st_mtime_ns

    out.unlink()  # the rerun (later, same window, same inputs) still gives --output the plan
    again = runner.invoke(app, [*PLAN, "--as-of", "2026-11-16T03:40Z", "--history", str(history),
                                "--output", str(out), "-q", "--json"])
    assert again.exit_code == 0, again.output
    assert files_in(history) == before and stored[0].stat().st_mtime_ns == mtime
    assert out.read_bytes() == stored[0].read_bytes()
    assert again.stdout == stored[0].read_text()  # --json: the stored document
    lines = again.stderr.splitlines()
    assert len(lines) == 1 and "already planned" in lines[0] and stored[0].name in lines[0]
    assert "Error" not in again.stderr


def test_other_inputs_for_the_same_window_are_planned_again(tmp_path):
    runner = CliRunner()
    history = tmp_path / "plans"
    for budget in ("0.002", "0.0025"):
        args = [*PLAN, "--as-of", "2026-11-16T02:05Z", "--history", str(history), "-q", "--json"]
        args[args.index("--budget") + 1] = budget
        assert runner.invoke(app, args).exit_code == 0
    names = sorted(p.name for p in history.glob("plan-*.json"))
    assert len(names) == 2 and all(n.startswith("plan-20261116T0200-") for n in names)


def test_the_run_id_is_the_same_for_a_window_given_by_as_of_or_by_anchor(tmp_path):
    runner = CliRunner()
    by_anchor = runner.invoke(app, [*PLAN, "--as-of", "2026-11-16T02:30Z", "--json", "-q"])
    plain = [a for a in PLAN if a not in ("--anchor", "2026-01-05T02:00Z")]
    by_as_of = runner.invoke(app, [*plain, "--as-of", "2026-11-16T02:00Z", "--json", "-q"])
    assert by_anchor.exit_code == by_as_of.exit_code == 0
    assert by_anchor.stdout == by_as_of.stdout


# ---------------------------------------------------------------------------------------------
# the whole-run lock, with two real processes


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "stageroute_cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_holder(lock: Path, pid: int, first: subprocess.Popen[str]) -> None:
    """Until ``pid`` has written itself into ``lock`` (it took the lock), then stop it there."""
    deadline = time.monotonic() + 120
    while f"pid {pid} " not in (lock.read_text() if lock.exists() else ""):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.01)
    os.kill(pid, signal.SIGSTOP)  # it holds the lock for as long as the test needs


@pytest.mark.parametrize("shared", ["--history", "--output"])
def test_a_concurrent_second_run_exits_75_naming_the_holder(tmp_path, shared):
    where = tmp_path / ("plans" if shared == "--history" else "current.json")
    lock = where / "history.lock" if shared == "--history" else tmp_path / "current.json.lock"
    args = [*PLAN, "--as-of", "2026-11-16T02:05Z", shared, str(where), "-q"]
    if shared == "--history":
        args += ["--output", str(tmp_path / "first.json")]
    first = start(args, tmp_path)
    try:
        wait_for_holder(lock, first.pid, first)
        second_args = [a if a != str(tmp_path / "first.json") else str(tmp_path / "second.json")
                       for a in args]
        second = subprocess.run([sys.executable, "-m", "stageroute_cli", *second_args],
                                cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                capture_output=True, text=True, timeout=300, check=False)
        assert second.returncode == ExitCode.LOCKED, second.stderr
        error = second.stderr.strip()
        assert error.startswith("Error: another stageroute run (pid ")
        assert f"pid {first.pid} on " in error and " since 20" in error  # pid, host, start time
        assert len(error.splitlines()) == 1
        assert not (tmp_path / "second.json").exists()
        os.kill(first.pid, signal.SIGCONT)
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.wait()
    if shared == "--history":
        assert len(list(where.glob("plan-*.json"))) == 1
    assert json.loads(where.read_text() if shared == "--output" else
                      (tmp_path / "first.json").read_text())["run_id"].startswith("20261116T0200-")


# ---------------------------------------------------------------------------------------------
# a cron expression as the anchor (croniter)


@pytest.mark.parametrize(("as_of", "grace", "start"), [
    ("2026-11-16T02:00", None, "2026-11-16T02:00"),  # on a boundary
    ("2026-11-16T02:07", None, "2026-11-16T02:00"),  # late
    ("2026-11-16T02:07", dt.timedelta(0), "2026-11-23T02:00"),
    ("2026-11-15T23:00", None, "2026-11-16T02:00"),  # early
    ("2026-11-19T14:00", None, "2026-11-16T02:00"),  # halfway
    ("2026-11-19T14:01", None, "2026-11-23T02:00"),
])
def test_a_cron_expression_gives_the_same_windows_as_its_anchor(as_of, grace, start):
    from stageroute.options import parse_anchor

    cron = parse_anchor("0 2 * * 1")  # Mondays 02:00 UTC
    assert cron == "0 2 * * 1"
    assert window_start(t(as_of), cron, WEEK, grace) == t(start)
    assert window_start(t(as_of), ANCHOR, WEEK, grace) == t(start)


def test_a_bad_anchor_is_a_usage_error():
    from stageroute.options import parse_anchor

    assert parse_anchor("2026-01-05T02:00Z") == ANCHOR
    for text in ("0 2 * * mon-funday", "every monday"):
        with pytest.raises(UsageError, match="--anchor"):
            parse_anchor(text)


def test_plan_with_a_cron_anchor_names_the_same_window_and_run_id(tmp_path):
    runner = CliRunner()
    cron = [a if a != "2026-01-05T02:00Z" else "0 2 * * 1" for a in PLAN]
    by_cron = runner.invoke(app, [*cron, "--as-of", "2026-11-16T02:30Z", "--json", "-q"])
    by_date = runner.invoke(app, [*PLAN, "--as-of", "2026-11-16T02:30Z", "--json", "-q"])
    assert by_cron.exit_code == 0, by_cron.output
    assert by_cron.stdout == by_date.stdout
