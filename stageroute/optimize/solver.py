"""Pyomo solver plumbing: which solvers exist, solving with a clear verdict, reading values."""

from __future__ import annotations

import math
import os
import shutil
from typing import Any

from stageroute.errors import SolverTimeLimitError, SolverUnavailableError, UsageError, shown
from stageroute.options import Solver

__all__ = ["Solver", "require_solver", "solve", "solver_available", "solver_time_limit"]

# Every solve stops after this many seconds (a MIP on absurd numbers can otherwise spin forever).
TIME_LIMIT_ENV = "STAGEROUTE_SOLVER_TIME_LIMIT"
DEFAULT_TIME_LIMIT = 60.0
MAX_TIME_LIMIT = 1e7  # about 4 months; GLPK takes an int of seconds

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


def solver_time_limit() -> float:
    """Seconds each solve may take: ``$STAGEROUTE_SOLVER_TIME_LIMIT``, default 60.

    Raises:
        UsageError: the variable is set to something other than a number of seconds > 0.
    """
    text = os.environ.get(TIME_LIMIT_ENV, "").strip()
    if not text:
        return DEFAULT_TIME_LIMIT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_TIME_LIMIT):
        raise UsageError(
            f"{TIME_LIMIT_ENV}={shown(text)} is not a number of seconds in (0, {MAX_TIME_LIMIT:g}]; "
            f"set it to e.g. 60, or unset it for the default ({DEFAULT_TIME_LIMIT:g} s)"
        )
    return value


def solve(model: Any, solver: Solver) -> bool:
    """Solve a Pyomo model in place; True if optimal (values loaded), False if infeasible.

    The interfaces report infeasibility differently (GLPK: a termination condition, HiGHS:
    a status, some versions an exception), so every path ends in the same boolean.

    Raises:
        SolverTimeLimitError: the solve took longer than ``solver_time_limit()`` seconds.
    """
    from pyomo.opt import SolverFactory, TerminationCondition, check_optimal_termination

    require_solver(solver)
    limit = solver_time_limit()
    factory = SolverFactory(solver.value)
    try:
        if solver is Solver.GLPK:
            for key, value in _OPTIONS[solver].items():
                factory.options[key] = value
            factory.options["tmlim"] = int(limit)  # whole seconds: glpsol takes an int
            result = factory.solve(model, load_solutions=False)
        else:
            options = {**_OPTIONS[solver], "time_limit": limit}
            result = factory.solve(model, load_solutions=False, options=options)
    except RuntimeError as exc:  # appsi/contrib interfaces raise on infeasible models
        if "infeasib" in str(exc).lower() or "feasible solution" in str(exc).lower():
            return False
        raise
    if result.solver.termination_condition == TerminationCondition.maxTimeLimit:
        raise SolverTimeLimitError(
            f"solver '{solver}' hit its time limit of {limit:g} s on {model.name} before proving "
            f"an optimum; raise {TIME_LIMIT_ENV} (seconds, default {DEFAULT_TIME_LIMIT:g}) or try "
            f"--solver {'glpk' if solver is Solver.HIGHS else 'highs'}"
        )
    if not check_optimal_termination(result):
        return False
    model.solutions.load_from(result)
    return True
