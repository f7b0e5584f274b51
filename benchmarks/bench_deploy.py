"""DeployOPT speed: 1,000 candidate models, M_max = 32, on HiGHS and GLPK (same instance).

    python benchmarks/bench_deploy.py
"""

from __future__ import annotations

import numpy as np

from _common import best_of
from stageroute.optimize.deploy import solve_deploy
from stageroute.options import Solver


def main() -> None:
    rng = np.random.default_rng(0)
    n = 1000
    # Better models cost more (so the budget binds); a third have throughput caps below 1.
    u = rng.uniform(0.3, 0.95, n)
    c = 1e-4 * np.exp(4 * u) * rng.lognormal(0, 0.3, n)
    a = np.where(rng.random(n) < 0.3, rng.uniform(0.05, 0.5, n), 1.0)
    budget = float(np.quantile(c, 0.3))
    import pyomo.environ  # noqa: F401  (import once, outside the timings)

    print("| solver | DeployOPT, 1,000 candidates, M_max 32 (best of 3, s) | chosen | value |")
    print("|---|---|---|---|")
    for solver in Solver:
        dep = solve_deploy(u, c, a, budget, 32, solver)
        seconds = best_of(lambda s=solver: solve_deploy(u, c, a, budget, 32, s))
        print(f"| {solver} | {seconds:.3f} | {int(dep.chosen.sum())} | {dep.value:.6f} |")


if __name__ == "__main__":
    main()
