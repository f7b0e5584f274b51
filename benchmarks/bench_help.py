"""Start-up time: `stageroute --help` and `stageroute plan --help` as a user runs them.

    python benchmarks/bench_help.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time

from _common import ROOT


def timed(args: list[str], repeat: int = 10) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    script = shutil.which("stageroute") or os.path.join(os.path.dirname(sys.executable), "stageroute")
    base = [script] if os.path.exists(script) else [sys.executable, "-m", "stageroute_cli"]
    python = timed([sys.executable, "-c", "pass"])
    print("| command | median (s) | best (s) |")
    print("|---|---|---|")
    print(f"| python -c pass (interpreter start-up, for scale) | {statistics.median(python):.3f} "
          f"| {min(python):.3f} |")
    for args in (["--help"], ["plan", "--help"], ["replay", "--help"]):
        t = timed([*base, *args])
        print(f"| stageroute {' '.join(args)} | {statistics.median(t):.3f} | {min(t):.3f} |")


if __name__ == "__main__":
    main()
