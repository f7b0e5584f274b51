"""stageroute: plan LLM deployments and routing tables from request/feedback logs (StageRoute).

The public API; everything else is internal and may change::

    from stageroute import PlanConfig, make_plan, plan_document
    plan = make_plan("logs/", "catalog.csv", PlanConfig(budget=0.002, max_deployed=3, as_of=now))

Heavy dependencies (Polars, numba, Pyomo) load on first use of a name, so that importing the
package (and ``stageroute --help``) stays instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "PlanConfig": "stageroute.plan",
    "Plan": "stageroute.plan",
    "make_plan": "stageroute.plan",
    "plan_document": "stageroute.plan",
    "ReplayConfig": "stageroute.simulate.replay",
    "ReplayResult": "stageroute.simulate.replay",
    "replay": "stageroute.simulate.replay",
    "replay_from_files": "stageroute.simulate.replay",
    "replay_document": "stageroute.simulate.replay",
    "load_catalog": "stageroute.inputs.catalog",
    "load_outcomes": "stageroute.inputs.outcomes",
    "solve_route": "stageroute.optimize.route",
    "solve_deploy": "stageroute.optimize.deploy",
    "Policy": "stageroute.options",
    "Radius": "stageroute.options",
    "Solver": "stageroute.options",
    "StagerouteError": "stageroute.errors",
    "ExitCode": "stageroute.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from stageroute.errors import ExitCode, StagerouteError
    from stageroute.inputs.catalog import load_catalog
    from stageroute.inputs.outcomes import load_outcomes
    from stageroute.optimize.deploy import solve_deploy
    from stageroute.optimize.route import solve_route
    from stageroute.options import Policy, Radius, Solver
    from stageroute.plan import Plan, PlanConfig, make_plan, plan_document
    from stageroute.simulate.replay import (
        ReplayConfig,
        ReplayResult,
        replay,
        replay_document,
        replay_from_files,
    )


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stageroute' has no attribute {name!r}")
