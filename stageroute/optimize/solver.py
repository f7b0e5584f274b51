"""Pyomo solver plumbing: which solvers exist, solving with a clear verdict, reading values."""

from __future__ import annotations

import shutil
from typing import Any

from stageroute.errors import SolverUnavailableError
from stageroute.options import Solver

__all__ = ["Solver", "require_solver", "solve", "solver_available"]

_INSTALL_HINT = {
    Solver.HIGHS: "install it with: pip install highspy",
    Solver.GLPK: "install it with: apt-get install -y glpk-utils (or: brew install glpk)",
}
# Exact MIP optimality: the defaults stop at a relative gap of 1e-4 (HiGHS), which can pick a
# different deployment set than the true optimum when two sets are close.
_OPTIONS: dict[Solver, dict[str, Any]] = {
    Solver.HIGHS: {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0, "threads": 1, "random_seed": 0},
    Solver.GLPK: {"mipgap": 0.0},
}


def solver_available(solver: Solver) -> bool:
    """True if the solver can be used (cheap check, does not import Pyomo for GLPK)."""
    if solver is Solver.GLPK:
        return shutil.which("glpsol") is not None
    try:
        import highspy  # noqa: F401
    except ImportError:
        return False
    return True


def require_solver(solver: Solver) -> None:
    """Raise ``SolverUnavailableError`` with an install hint if ``solver`` is missing."""
    if not solver_available(solver):
        what = "glpsol (GLPK)" if solver is Solver.GLPK else "highspy (HiGHS)"
        raise SolverUnavailableError(
            f"solver '{solver}' is not available, {what} was not found, "
            f"{_INSTALL_HINT[solver]} or pass --solver "
            f"{'highs' if solver is Solver.GLPK else 'glpk'}"
        )


def solve(model: Any, solver: Solver) -> bool:
    """Solve a Pyomo model in place; True if optimal (values loaded), False if infeasible.

    The interfaces report infeasibility differently (GLPK: a termination condition, HiGHS:
    a status, some versions an exception), so every path ends in the same boolean.
    """
    from pyomo.opt import SolverFactory, check_optimal_termination

    require_solver(solver)
    factory = SolverFactory(solver.value)
    try:
        if solver is Solver.GLPK:
            for key, value in _OPTIONS[solver].items():
                factory.options[key] = value
            result = factory.solve(model, load_solutions=False)
        else:
            result = factory.solve(model, load_solutions=False, options=_OPTIONS[solver])
    except RuntimeError as exc:  # appsi/contrib interfaces raise on infeasible models
        if "infeasib" in str(exc).lower() or "feasible solution" in str(exc).lower():
            return False
        raise
    if not check_optimal_termination(result):
        return False
    model.solutions.load_from(result)
    return True
