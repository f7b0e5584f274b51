"""plan over a 20-million-row log: time against a bare Polars scan + group_by of the same files in
the same run, peak memory, and a run under a memory cap smaller than the log.

    python benchmarks/bench_plan.py [--rows 20000000] [--dir /tmp/stageroute-bench]

The log comes from sample_logs/generate.py (ten 2M-row files, all columns of the contract).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from _common import ROOT, best_of
from stageroute.plan import PlanConfig, make_plan

AS_OF = dt.datetime(2026, 11, 16, 2, tzinfo=dt.UTC)
RSS = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True); "
       "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def ensure_log(directory: Path, rows: int) -> Path:
    logs = directory / "logs"
    stamp = directory / f"rows-{rows}"
    if not stamp.exists():
        print(f"generating {rows:,} rows in {directory} ...", file=sys.stderr)
        chunk = -(-rows // 10)  # ten files, whatever the size
        subprocess.run([sys.executable, str(ROOT / "sample_logs" / "generate.py"), "--rows", str(rows),
                        "--chunk", str(chunk), "--out", str(directory)], check=True)
        stamp.touch()
    return logs


def child(args: list[str], cgroup: Path | None = None) -> tuple[int, float, float]:
    """Run ``args`` in a child (optionally inside a memory cgroup): exit code, seconds, peak MB."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    pre = None
    if cgroup is not None:
        def pre() -> None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", RSS, *args], env=env, capture_output=True, text=True,
                         preexec_fn=pre, check=True).stdout.split()
    return int(out[0]), time.perf_counter() - start, int(out[1]) / 1024


def memory_cgroup(limit: int) -> Path | None:
    """A cgroup-v1 memory cgroup capped at ``limit`` bytes, if this process may make one (root)."""
    group = Path("/sys/fs/cgroup/memory/stageroute-bench")
    try:
        group.mkdir(exist_ok=True)
        (group / "memory.limit_in_bytes").write_text(str(limit))
        (group / "memory.memsw.limit_in_bytes").write_text(str(limit)) if (
            group / "memory.memsw.limit_in_bytes").exists() else None
    except OSError:
        return None
    return group


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/stageroute-bench"))
    args = parser.parse_args()
    logs = ensure_log(args.dir, args.rows)
    catalog = args.dir / "catalog.csv"
    files = sorted(str(p) for p in logs.glob("*.parquet"))
    size = sum(Path(f).stat().st_size for f in files) / 1e6

    def bare() -> None:
        r, c = pl.col("reward"), pl.col("cost")
        pl.scan_parquet(files).group_by("model").agg(
            pl.len(), r.mean().alias("mr"), r.var().alias("vr"), c.mean().alias("mc"),
            c.var().alias("vc")).collect()

    config = PlanConfig(budget=0.002, max_deployed=3, as_of=AS_OF)
    make_plan(logs, catalog, config)  # warm the page cache and the imports once
    t_bare = best_of(bare)
    t_plan = best_of(lambda: make_plan(logs, catalog, config))
    print(f"log: {args.rows:,} rows, {len(files)} files, {size:.0f} MB of Parquet\n")
    print("| measurement | seconds (best of 3) | vs bare scan |")
    print("|---|---|---|")
    print(f"| bare Polars scan + group_by (count, mean, var of reward and cost per model) | {t_bare:.2f} | 1.00x |")
    print(f"| make_plan (validation, statistics, bounds, DeployOPT, RouteOPT) | {t_plan:.2f} | {t_plan / t_bare:.2f}x |")
    full = PlanConfig(budget=0.002, max_deployed=3, as_of=AS_OF, full_check=True)
    t_full = best_of(lambda: make_plan(logs, catalog, full))
    print(f"| make_plan with --full-check (request-id uniqueness, NaN propensities) | {t_full:.2f} | {t_full / t_bare:.2f}x |")

    cli = ["-m", "stageroute_cli", "plan", "--logs", str(logs), "--catalog", str(catalog), "--budget", "0.002",
           "--max-deployed", "3", "--as-of", AS_OF.isoformat(), "--json", "--quiet"]
    code, seconds, peak = child([sys.executable, *cli])
    print(f"| `stageroute plan` whole command (start-up and imports included) | {seconds:.2f} | {seconds / t_bare:.2f}x |")
    in_memory = pl.scan_parquet(files[0]).collect().estimated_size() * len(files)
    print(f"\npeak RSS of `stageroute plan`: {peak:.0f} MB (exit {code}); the log takes about "
          f"{in_memory / 1e6:,.0f} MB once loaded in memory")
    cap = int(in_memory // 3)
    if cap < 300e6:  # below the interpreter's and the libraries' own footprint: nothing to show
        print("(capped run skipped: a third of this log is smaller than the process itself)")
        return
    group = memory_cgroup(cap)
    if group is None:
        print("(no memory cgroup available here: run as root on cgroup v1 for the capped run)")
        return
    code_plan, _, peak_plan = child([sys.executable, *cli], group)
    load = ["-c", "import polars as pl, sys; pl.read_parquet(sys.argv[1:]); print('loaded')", *files]
    code_load, _, _ = child([sys.executable, *load], group)
    print(f"under a memory cap of {cap / 1e6:,.0f} MB (a third of the loaded log): `stageroute plan` "
          f"exits {code_plan} (peak {peak_plan:.0f} MB); loading the log with pl.read_parquet "
          f"exits {code_load} ({'killed' if code_load != 0 else 'fits'})")


if __name__ == "__main__":
    main()
