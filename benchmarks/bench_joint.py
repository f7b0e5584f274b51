"""Joint (contextual) RouteOPT speed: the exact solver against HiGHS (Pyomo) on the same instances.

50 segments x 32 models with a binding budget and binding throughput caps (the target: under
0.5 s per solve), then the per-query replay sizes (3 x 3 and 14 x 3) in microseconds, the
compiled kernel with its workspace allocated once, called from compiled code as the replay
loop calls it, from Python, and through the wrapper.

    python benchmarks/bench_joint.py                 # 20 instances
    python benchmarks/bench_joint.py --instances 2   # a quick run (the tests)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

from stageroute.optimize.joint import solve_joint_route, solve_joint_route_pyomo
from stageroute.optimize.joint_kernels import joint_route_into, joint_workspace
from stageroute.options import Solver

Instance = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]


def instance(seed: int, s: int, m: int) -> Instance:
    """Better models cost more and their caps bind; segments differ in rewards and prompt length;
    the budget lies between the cheapest and the most rewarding table, so it binds."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0.3, 0.9, m)
    u = np.clip(quality + rng.normal(0, 0.15, (s, m)), 0, 1)
    price = 1e-4 * np.exp(3 * quality) * rng.lognormal(0, 0.3, m)
    c = price * rng.lognormal(0, 0.5, s)[:, None]
    w = rng.dirichlet(np.ones(s))
    a = np.where(quality > np.quantile(quality, 0.6), rng.uniform(0.03, 0.12, m), 1.0)
    lo = float(w @ c.min(axis=1))
    hi = float(w @ c[np.arange(s), u.argmax(axis=1)])
    return u, c, w, a, lo + 0.4 * (hi - lo)


def timed(fn: object, *args: object) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start, out


def large(instances: int) -> None:
    solve_joint_route(*instance(0, 3, 3))  # compile (cached on disk after the first run)
    import pyomo.environ  # noqa: F401  (import once, outside the timings)

    fast, highs, diff = [], [], []
    budget_binds = caps_bind = 0
    for seed in range(instances):
        u, c, w, a, b = instance(seed, 50, 32)
        t_fast, ours = timed(solve_joint_route, u, c, w, a, b)
        t_highs, ref = timed(solve_joint_route_pyomo, u, c, w, a, b, None, False, Solver.HIGHS)
        fast.append(t_fast)
        highs.append(t_highs)
        diff.append(abs(ours.objective - ref.objective) / max(1.0, abs(ref.objective)))
        budget_binds += abs(ours.cost - b) <= 1e-9 * b
        caps_bind += bool(np.any(w @ ours.probability >= a - 1e-9))
    print(f"joint RouteOPT, 50 segments x 32 models, {instances} instances (budget binds in "
          f"{budget_binds}, caps bind in {caps_bind})\n")
    print("| solver | median (s) | max (s) |")
    print("|---|---|---|")
    print(f"| exact kernel (solve_joint_route) | {np.median(fast):.4f} | {max(fast):.4f} |")
    print(f"| HiGHS via Pyomo (solve_joint_route_pyomo) | {np.median(highs):.4f} | {max(highs):.4f} |")
    print(f"\nHiGHS / exact, medians: {np.median(highs) / np.median(fast):.0f}x; largest objective "
          f"gap (relative): {max(diff):.1e}\n")


@njit
def repeat(calls: int, u: np.ndarray, c: np.ndarray, w: np.ndarray, a: np.ndarray,
           floor: np.ndarray, b: float, p: np.ndarray) -> None:
    """The kernel called from compiled code, as the replay loop calls it (no dispatch cost)."""
    ws = joint_workspace(u.shape[0], u.shape[1])
    for _ in range(calls):
        joint_route_into(u, c, w, a, floor, b, p, ws)


def per_query(calls: int) -> None:
    print("| size (segments x models) | kernel from njit code (us) | kernel from Python (us) "
          "| solve_joint_route (us) |")
    print("|---|---|---|---|")
    for s, m in ((3, 3), (14, 3)):
        u, c, w, a, b = instance(7, s, m)
        a = np.maximum(a, 0.5)  # three models must carry all traffic
        floor = np.zeros(m)
        p = np.zeros((s, m))
        ws = joint_workspace(s, m)
        joint_route_into(u, c, w, a, floor, b, p, ws)
        repeat(1, u, c, w, a, floor, b, p)
        start = time.perf_counter()
        repeat(calls, u, c, w, a, floor, b, p)
        inner = (time.perf_counter() - start) / calls * 1e6
        start = time.perf_counter()
        for _ in range(calls):
            joint_route_into(u, c, w, a, floor, b, p, ws)
        kernel = (time.perf_counter() - start) / calls * 1e6
        start = time.perf_counter()
        for _ in range(calls // 10):
            solve_joint_route(u, c, w, a, b)
        wrapper = (time.perf_counter() - start) / (calls // 10) * 1e6
        print(f"| {s} x {m} | {inner:.1f} | {kernel:.1f} | {wrapper:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    large(args.instances)
    per_query(args.calls)


if __name__ == "__main__":
    main()
