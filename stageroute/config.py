"""What ``plan`` and ``replay`` share: the budget, the cap on deployments and the bounds' knobs.

One validation for both commands: each check names the option a user typed and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stageroute.errors import UsageError
from stageroute.options import Radius, Solver

DEFAULT_GAMMA = 1.0
# Costs are normalised by the scale; below this the arithmetic leaves the range of a double.
MIN_COST_SCALE = 1e-12


def _positive(value: float, option: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option} must be a finite number > 0, got {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedConfig:
    """Options of both ``plan`` and ``replay``; validated on construction.

    ``budget`` is per request in the data's currency, or with ``relative_budget`` a fraction of
    the largest per-model mean cost (``replay`` resolves it once the outcomes are read).
    ``gamma`` is a number or ``"theory"`` (log(N T / delta), resolved by ``resolve_gamma``).
    """

    budget: float
    max_deployed: int
    relative_budget: bool = False
    solver: Solver = Solver.HIGHS
    gamma: float | str = DEFAULT_GAMMA
    radius: Radius = Radius.VARIANCE
    delta: float = 0.05
    cost_scale: float | None = None
    cost_clip: tuple[float, float] = (0.0, 1.0)  # [c_lo, c_hi] of the normalised cost bound
    allow_drop: bool = False

    def __post_init__(self) -> None:
        _positive(self.budget, "--relative-budget" if self.relative_budget else "--budget")
        if not 1 <= self.max_deployed <= 1_000_000:
            raise UsageError(f"--max-deployed must be an integer >= 1, got {self.max_deployed}")
        if isinstance(self.gamma, str):
            if self.gamma != "theory":
                raise UsageError(f"--gamma must be a number > 0 or 'theory', got '{self.gamma}'")
        else:
            _positive(self.gamma, "--gamma")
        if not (math.isfinite(self.delta) and 0 < self.delta < 1):
            raise UsageError(f"--delta must be in (0, 1), got {self.delta}")
        if self.cost_scale is not None and not (
                math.isfinite(self.cost_scale) and self.cost_scale >= MIN_COST_SCALE):
            raise UsageError(
                f"--cost-scale must be a finite number >= {MIN_COST_SCALE:g} (a per-request cost), "
                f"got {self.cost_scale}"
            )
        lo, hi = self.cost_clip
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi <= 1e6):
            raise UsageError(f"--cost-clip must be LO,HI with 0 <= LO < HI <= 1e6, got {lo},{hi}")

    def resolve_gamma(self, n_models: int, horizon: int) -> float:
        """gamma as a number: the given one, or log(N T / delta) for ``"theory"``."""
        if isinstance(self.gamma, str):
            from stageroute.estimate.bounds import theory_gamma  # numba: not at CLI start-up

            return theory_gamma(n_models, max(horizon, 1), self.delta)
        return float(self.gamma)


def pick_budget(budget: float | None, relative_budget: float | None) -> tuple[float, bool]:
    """(value, relative) from the --budget and --relative-budget options: exactly one is given."""
    if budget is not None and relative_budget is None:
        return budget, False
    if budget is None and relative_budget is not None:
        return relative_budget, True
    given = "neither was given" if budget is None else "both were given"
    raise UsageError(f"give exactly one of --budget and --relative-budget ({given})")


def parse_gamma(text: str) -> float | str:
    """--gamma: 'theory' or a number (``SharedConfig`` checks that it is > 0)."""
    if text.strip().lower() == "theory":
        return "theory"
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--gamma '{text}' is not a number, give a number > 0 or 'theory'") from None


def parse_pair(text: str, option: str) -> tuple[float, float]:
    """'LO,HI' -> (lo, hi)."""
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"{option} '{text}' is not two numbers LO,HI such as 0,1") from None
    return lo, hi
