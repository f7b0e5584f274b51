"""stats with each engine on one log: seconds, rows/s and the peak memory of the whole process tree
(Spark's JVM included), and DuckDB under a --memory-limit smaller than the log once in memory.

    python benchmarks/bench_engines.py [--rows 10000000] [--dir /tmp/stageroute-bench-engines]

The log comes from sample_logs/generate.py (ten files, all columns of the contract). Each run is
a fresh `stageroute stats` command in a child process (start-up included: for Spark that is the
JVM's), building a new store of daily windows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
from bench_plan import ensure_log
from polars.testing import assert_frame_equal

from _common import ROOT
from stageroute.store.layout import load_store

# (label, engine, extra options); the DuckDB cap is filled in from the log's size.
RUNS = [("Polars (streaming)", "polars", []), ("DuckDB", "duckdb", []),
        ("DuckDB, --memory-limit {cap}", "duckdb", ["--memory-limit", "{cap}"]),
        ("Spark, local[*]", "spark", [])]


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (from /proc; 0 once they are gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def run(args: list[str]) -> tuple[int, float, float]:
    """Run a command: exit code, seconds, peak resident MB of its process tree (sampled 20/s)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_rss(child.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        print(child.stderr.read().decode() if child.stderr else "", file=sys.stderr)
    return child.returncode, seconds, peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/stageroute-bench-engines"))
    args = parser.parse_args()
    logs = ensure_log(args.dir, args.rows)
    files = sorted(logs.glob("*.parquet"))
    size = sum(f.stat().st_size for f in files) / 1e6
    in_memory = sum(pl.scan_parquet(f).collect().estimated_size() for f in files)
    cap_mb = max(int(in_memory / 1e6 / 4), 64)
    cap = f"{cap_mb}MB"
    print(f"log: {args.rows:,} rows, {len(files)} files, {size:.0f} MB of Parquet, "
          f"{in_memory / 1e6:,.0f} MB once loaded in memory (Polars); {os.cpu_count()} CPUs\n")
    print("| engine | exit | seconds | rows/s | peak RSS, process tree (MB) |")
    print("|---|---|---|---|---|")
    for label, engine, extra in RUNS:
        out = args.dir / f"store-{engine}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "stageroute_cli", "stats", "--logs", str(logs), "--out", str(out),
               "--engine", engine, "--quiet", *(e.format(cap=cap) for e in extra)]
        code, seconds, peak = run(cmd)
        print(f"| {label.format(cap=cap)} | {code} | {seconds:.1f} | {args.rows / seconds:,.0f} | {peak:,.0f} |",
              flush=True)
    stores = [load_store(args.dir / f"store-{engine}")[1] for engine in ("polars", "duckdb", "spark")]
    for other in stores[1:]:
        assert_frame_equal(stores[0], other, check_exact=False, rel_tol=1e-9, abs_tol=1e-15)
    print(f"\nThe three stores are equal (to 1e-9, {stores[0].height:,} rows of statistics). "
          f"The DuckDB cap ({cap}) is a quarter of the log's in-memory size; DuckDB spills what "
          "does not fit to a temporary directory. Peak RSS counts the interpreter, the libraries "
          "and (Spark) the JVM.")


if __name__ == "__main__":
    main()
