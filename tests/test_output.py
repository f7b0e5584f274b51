"""Writing results for cron (write_atomic, locks) and the stable JSON helpers.

A failed write must leave the previous file intact and no temporary file behind; a second
writer must fail at once while the first holds the lock. Failures that need another process
(a lock held elsewhere, a file-size limit, a user who cannot write the directory) run in a child
Python process, so the test process itself is never limited.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from stageroute.errors import CannotWriteError, ExitCode, LockedError
from stageroute.render.output import iso_utc, json_number, to_json, write_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
OLD = b'{"old": true}\n'


def leftovers(directory: Path) -> list[str]:
    """Files in ``directory`` other than results and their lock files (temporary files)."""
    return sorted(p.name for p in directory.iterdir()
                  if p.name.endswith(".tmp") or p.name.startswith("."))


def child(code: str, cwd: Path, **kwargs) -> subprocess.Popen[str]:
    """A Python process running ``code`` (stageroute importable), its stdin/stdout piped."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


# ---------------------------------------------------------------------------------------------
# write_atomic: what it writes


@pytest.mark.parametrize("data", ["plan ✓ modèle\n", b"\x00\xffbinary", "", b""])
def test_writes_text_as_utf8_and_bytes_as_is(tmp_path, data):
    target = tmp_path / "plan.json"
    write_atomic(target, data)
    assert target.read_bytes() == (data.encode("utf-8") if isinstance(data, str) else data)
    assert target.stat().st_mode & 0o777 == 0o644
    assert leftovers(tmp_path) == []


def test_replaces_the_previous_file_and_accepts_a_string_path(tmp_path):
    target = tmp_path / "plan.json"
    target.write_bytes(OLD * 1000)
    write_atomic(str(target), "new")
    assert target.read_text() == "new"  # shorter than the old content: nothing of it remains
    write_atomic(target, "newer", lock=False)
    assert target.read_text() == "newer"
    assert leftovers(tmp_path) == []


def test_readers_see_the_old_or_the_new_file_never_a_mix(tmp_path):
    """A writer alternates two 2 MB versions; every read in between is one of them, whole."""
    target = tmp_path / "plan.json"
    versions = [b"a" * 2_000_000, b"b" * 2_000_000]
    target.write_bytes(versions[0])
    with child(f"""
        from stageroute.render.output import write_atomic
        for i in range(40):
            write_atomic({str(target)!r}, (b"b" if i % 2 == 0 else b"a") * 2_000_000)
        """, tmp_path) as writer:
        reads = 0
        while writer.poll() is None or reads == 0:
            assert target.read_bytes() in versions  # never missing, empty, or half written
            reads += 1
        _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert target.read_bytes() == versions[0]
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# write_atomic: when it cannot write


def test_a_missing_directory_is_named_and_not_created(tmp_path):
    target = tmp_path / "nowhere" / "plan.json"
    with pytest.raises(CannotWriteError) as info:
        write_atomic(target, "x")
    assert info.value.exit_code == ExitCode.CANNOT_WRITE
    assert str(tmp_path / "nowhere") in str(info.value) and "does not exist" in str(info.value)
    assert not (tmp_path / "nowhere").exists()


def test_a_directory_as_the_output_is_refused_and_left_alone(tmp_path):
    target = tmp_path / "plan.json"
    target.mkdir()
    (target / "inside").write_bytes(OLD)
    with pytest.raises(CannotWriteError, match="is a directory"):
        write_atomic(target, "x")
    assert [p.name for p in target.iterdir()] == ["inside"]
    assert (target / "inside").read_bytes() == OLD
    assert leftovers(tmp_path) == []


READ_ONLY_WRITER = """
    import os, sys
    from stageroute.errors import StagerouteError
    from stageroute.render.output import write_atomic
    os.chdir("ro")  # a relative path: the unprivileged user needs no access above the directory
    if os.geteuid() == 0:  # root writes anywhere: drop to nobody, as a cron user would be
        os.setgid(65534)
        os.setuid(65534)
    try:
        write_atomic("plan.json", "new", lock=sys.argv[1] == "lock")
    except StagerouteError as exc:
        print(type(exc).__name__, int(exc.exit_code), exc)
    """


@pytest.mark.parametrize("lock", ["lock", "no-lock"])
def test_a_read_only_directory_keeps_the_old_file_and_no_temporary(tmp_path, lock):
    directory = tmp_path / "ro"
    directory.mkdir()
    (directory / "plan.json").write_bytes(OLD)
    directory.chmod(0o555)
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(READ_ONLY_WRITER), lock],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                                check=False)
    finally:
        directory.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CannotWriteError 73 "), result.stdout
    assert "plan.json" in result.stdout
    assert (directory / "plan.json").read_bytes() == OLD
    assert leftovers(directory) == []


def test_a_write_cut_short_keeps_the_old_file_and_no_temporary(tmp_path):
    """A file-size limit (as a full disk would) stops the write half way."""
    target = tmp_path / "plan.json"
    target.write_bytes(OLD)
    code = f"""
        import resource, signal
        from stageroute.errors import StagerouteError
        from stageroute.render.output import write_atomic
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG, not a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            write_atomic({str(target)!r}, "x" * 100_000)
        except StagerouteError as exc:
            print(type(exc).__name__, int(exc.exit_code), exc)
        """
    with child(code, tmp_path) as proc:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("CannotWriteError 73 "), out
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_a_name_too_long_for_the_temporary_file_keeps_the_old_file(tmp_path):
    target = tmp_path / ("p" * 245 + ".json")  # the file fits in 255 bytes, its temporary does not
    target.write_bytes(OLD)
    for lock in (True, False):
        with pytest.raises(CannotWriteError):
            write_atomic(target, "new", lock=lock)
        assert target.read_bytes() == OLD
        assert leftovers(tmp_path) == []


def test_an_interrupt_during_the_rename_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "plan.json"
    target.write_bytes(OLD)
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(args)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new")
    monkeypatch.undo()
    assert calls  # the write got as far as the rename
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# write_atomic: two writers


def test_a_second_writer_fails_at_once_while_the_first_holds_the_lock(tmp_path):
    target = tmp_path / "plan.json"
    target.write_bytes(OLD)
    with child(f"""
        import sys
        from pathlib import Path
        from stageroute.render.output import locked
        with locked(Path({str(target)!r})):
            print("held", flush=True)
            sys.stdin.readline()  # until the test says so
        print("released", flush=True)
        """, tmp_path) as holder:
        try:
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline().strip() == "held"
            for _ in range(2):  # it fails every time, without waiting for the lock
                with pytest.raises(LockedError) as info:
                    write_atomic(target, "second")
                assert info.value.exit_code == ExitCode.LOCKED
                message = str(info.value)
                assert str(target) in message and "plan.json.lock" in message
                assert "another stageroute run" in message
                assert target.read_bytes() == OLD
                assert leftovers(tmp_path) == []
            holder.stdin.write("go\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "released"
            assert holder.wait(timeout=60) == 0
        finally:
            if holder.poll() is None:
                holder.kill()
    write_atomic(target, "second")  # the lock went with the first process
    assert target.read_text() == "second"


def test_two_processes_writing_at_once_leave_one_whole_version(tmp_path):
    """Each writes its own 1 MB version 20 times; a LockedError is the loser's only failure."""
    target = tmp_path / "plan.json"
    code = """
        import sys
        from stageroute.errors import LockedError
        from stageroute.render.output import write_atomic
        written = locked = 0
        for _ in range(20):
            try:
                write_atomic(sys.argv[1], sys.argv[2] * 1_000_000)
                written += 1
            except LockedError:
                locked += 1
        print(written, locked)
        """
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(target), tag],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in "ab"]
    with procs[0], procs[1]:
        results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        written, locked = map(int, out.split())
        assert written + locked == 20
    assert target.read_bytes() in (b"a" * 1_000_000, b"b" * 1_000_000)
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# json_number, iso_utc, to_json


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (math.nan, None), (math.inf, None), (-math.inf, None),
    (0.1 + 0.2, 0.3), (1 / 3, 0.333333333333), (2 / 3, 0.666666666667), (0.002, 0.002),
    (123456789.123456789, 123456789.123), (1e-300 / 3, 3.33333333333e-301), (5e-324, 5e-324),
    (1.7976931348623157e308, 1.79769313486e308), (-0.25, -0.25), (7, 7.0), (0.0, 0.0),
])
def test_json_number_known_values(value, expected):
    got = json_number(value)
    assert got == expected and (got is None) == (expected is None)
    assert got is None or type(got) is float


def test_json_number_digits():
    assert json_number(0.123456, digits=3) == 0.123
    assert json_number(98765.4321, digits=2) == 99000.0


@given(st.floats(allow_nan=False, allow_infinity=False))
@example(0.30000000000000004)
@example(2.675e-5)
def test_json_number_keeps_12_significant_digits_and_is_stable(x):
    got = json_number(x)
    assert got is not None and math.isfinite(got)
    assert abs(got - x) <= 5e-12 * abs(x)
    assert json_number(got) == got  # rounding twice changes nothing: same inputs, same bytes
    mantissa = f"{got:.17e}".split("e")[0].replace("-", "").replace(".", "").rstrip("0")
    assert len(mantissa) <= 12 or float(f"{got:.12g}") == got


@pytest.mark.parametrize(("moment", "expected"), [
    (None, None),
    (dt.datetime(2026, 11, 16, 2, tzinfo=dt.UTC), "2026-11-16T02:00:00Z"),
    (dt.datetime(2026, 11, 16, 4, 30, tzinfo=dt.timezone(dt.timedelta(hours=2, minutes=30))),
     "2026-11-16T02:00:00Z"),
    (dt.datetime(2026, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=3))), "2025-12-31T22:00:00Z"),
    (dt.datetime(2026, 11, 16, 2, 0, 0, 250_000, tzinfo=dt.UTC), "2026-11-16T02:00:00.250000Z"),
    (dt.datetime(1, 1, 1, tzinfo=dt.UTC), "0001-01-01T00:00:00Z"),
    (dt.datetime.max.replace(tzinfo=dt.UTC), "9999-12-31T23:59:59.999999Z"),
])
def test_iso_utc_known_values(moment, expected):
    assert iso_utc(moment) == expected


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/St_Johns", "UTC"])
def test_iso_utc_reads_a_naive_time_as_utc_whatever_the_machines_zone(monkeypatch, zone):
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert iso_utc(dt.datetime(2026, 11, 16, 2)) == "2026-11-16T02:00:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()


DOC = {"schema_version": 1, "window": {"start": "2026-11-16T02:00:00Z"}, "budget": 0.002,
       "deployment": [{"model": "modèle-ü", "probability": 0.6}, {"model": "b", "n": None}],
       "over_budget": False, "notes": ["line one\nline two", "tab\there", "quote \" back \\"]}


def test_to_json_same_document_same_bytes_and_a_faithful_round_trip():
    text = to_json(DOC)
    assert text == to_json(json.loads(text)) == to_json(dict(DOC))
    assert json.loads(text) == DOC
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert "modèle-ü" in text  # UTF-8, not \u escapes
    assert '"line one\\nline two"' in text  # a newline in a value stays inside its line
    assert list(json.loads(text)) == list(DOC)  # keys in the document's order (fixed keys first)
    assert text.splitlines()[1] == '  "schema_version": 1,'  # two-space indent


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_to_json_refuses_non_finite_numbers(bad):
    with pytest.raises(ValueError, match="JSON"):
        to_json({"expected": {"cost_lcb": bad}})


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False).map(json_number),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20))
def test_to_json_round_trips_any_document_of_json_numbers(doc):
    text = to_json({"doc": doc})
    assert json.loads(text) == {"doc": doc}
    assert to_json(json.loads(text)) == text
