"""What ``plan`` and ``replay`` share: the budget, the cap on deployments and the bounds' knobs.

One validation for both commands: each check names the option a user typed and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stageroute.errors import BadDataError, UsageError, shown
from stageroute.options import Radius, Solver

# Defaults chosen by replay on RouterBench and MMLU-Pro, both refresh settings, relative budgets
# 0.3 and 0.7 (benchmarks/deployed_results.py; the README shows the table).
DEFAULT_GAMMA = 0.25
DEFAULT_COST_GAMMA = 0.05  # costs are far less noisy than rewards
# Exploration (SPEC 2a): the share of traffic for models with fewer than MIN_SAMPLES rewards.
DEFAULT_CANARY_SHARE = 0.3
DEFAULT_MIN_SAMPLES = 40
MAX_MIN_SAMPLES = 2**62  # compared with int64 counts
# Costs are normalised by the scale; below this the arithmetic leaves the range of a double
# (1e-320 made HiGHS spin). Budgets get the same floor: no currency is that fine-grained.
MIN_COST_SCALE = 1e-12
MAX_RELATIVE_BUDGET = 1e12
# --gamma theory is log(N T / delta): below this delta the ratio overflows a double.
MIN_DELTA = 1e-100
MAX_DEPLOYED = 1_000_000


def _positive(value: float, option: str, example: str, lo: float = 0.0, hi: float = math.inf) -> None:
    """``value`` is finite, > 0 and in [lo, hi]; else a UsageError naming option and value."""
    if math.isfinite(value) and value > 0 and lo <= value <= hi:
        return
    limits = "a finite number > 0" if lo == 0 and hi == math.inf else (
        f"a number >= {lo:g}" if hi == math.inf else f"a number in [{lo:g}, {hi:g}]")
    raise UsageError(f"{option} must be {limits}, got {value!r}; give e.g. {option} {example}")


def check_epsilon(epsilon: float) -> None:
    """epsilon-greedy's exploration rate is in [0, 1]; else a UsageError."""
    if not (math.isfinite(epsilon) and 0 <= epsilon <= 1):
        raise UsageError(f"--epsilon must be in [0, 1], got {epsilon!r}; give e.g. --epsilon 0.1")


def absolute_budget(fraction: float, top: float, source: str) -> float:
    """The budget in currency of ``--relative-budget fraction``: that fraction of ``top``, the
    largest per-model mean cost in ``source`` ("the outcomes", "the logs").

    Raises:
        BadDataError: every mean cost is 0 (nothing to be relative to).
        UsageError: the budget falls below the smallest one stageroute plans with.
    """
    if not (math.isfinite(top) and top > 0):
        raise BadDataError(f"every model's mean cost in {source} is 0, so --relative-budget has "
                           "nothing to be relative to; give --budget in currency instead")
    budget = fraction * top
    if not budget >= MIN_COST_SCALE:
        raise UsageError(f"--relative-budget {fraction:g} of the largest mean cost in {source} "
                         f"({top:.4g}) is a budget of {budget:.3g}, below the smallest stageroute "
                         f"plans with ({MIN_COST_SCALE:g}); give a larger --relative-budget")
    return budget


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedConfig:
    """Options of both ``plan`` and ``replay``; validated on construction.

    ``budget`` is per request in the data's currency, or with ``relative_budget`` a fraction of
    the largest per-model mean cost (``replay`` resolves it once the outcomes are read).
    ``gamma`` is a number or ``"theory"`` (log(N T / delta), resolved by ``resolve_gamma``).
    ``cost_gamma`` is the cost radius's gamma (None: the reward's gamma); ``budget_safe`` puts cost
    upper bounds in the budget row. ``canary_share`` is the share of traffic that models with
    fewer than ``min_samples`` rewards share (1: no cap, the paper).
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
    cost_gamma: float | None = DEFAULT_COST_GAMMA
    budget_safe: bool = False
    canary_share: float = DEFAULT_CANARY_SHARE
    min_samples: int = DEFAULT_MIN_SAMPLES

    def __post_init__(self) -> None:
        if self.relative_budget:
            _positive(self.budget, "--relative-budget", "0.3", MIN_COST_SCALE, MAX_RELATIVE_BUDGET)
        else:
            _positive(self.budget, "--budget", "0.002", MIN_COST_SCALE)
        if not 1 <= self.max_deployed <= MAX_DEPLOYED:
            raise UsageError(f"--max-deployed must be an integer in [1, {MAX_DEPLOYED:,}], got "
                             f"{self.max_deployed}; give e.g. --max-deployed 3")
        if isinstance(self.gamma, str):
            if self.gamma != "theory":
                raise UsageError(f"--gamma must be a number > 0 or 'theory', got {shown(self.gamma)}")
        else:
            _positive(self.gamma, "--gamma", "1.0")
        if not (math.isfinite(self.delta) and MIN_DELTA <= self.delta < 1):
            raise UsageError(f"--delta must be in (0, 1) and at least {MIN_DELTA:g}, got "
                             f"{self.delta!r}; give e.g. --delta 0.05")
        if self.cost_scale is not None:
            _positive(self.cost_scale, "--cost-scale", "0.05", MIN_COST_SCALE)
        lo, hi = self.cost_clip
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi <= 1e6):
            raise UsageError(f"--cost-clip must be LO,HI with 0 <= LO < HI <= 1e6, got {lo!r},{hi!r}; "
                             "give e.g. --cost-clip 0,1")
        if self.cost_gamma is not None and not (math.isfinite(self.cost_gamma)
                                                and self.cost_gamma >= 0):
            raise UsageError(f"--cost-gamma must be a finite number >= 0, got {self.cost_gamma!r}; "
                             "give e.g. --cost-gamma 0.1")
        if not (math.isfinite(self.canary_share) and 0 < self.canary_share <= 1):
            raise UsageError(f"--canary-share must be in (0, 1], got {self.canary_share!r}; give "
                             "e.g. --canary-share 0.1 (1 turns the cap off)")
        if not 0 <= self.min_samples <= MAX_MIN_SAMPLES:
            raise UsageError(f"--min-samples must be an integer in [0, {MAX_MIN_SAMPLES:,}], got "
                             f"{self.min_samples}; give e.g. --min-samples 30")

    def resolve_gamma(self, n_models: int, horizon: int) -> float:
        """gamma as a number: the given one, or log(N T / delta) for ``"theory"``."""
        if isinstance(self.gamma, str):
            from stageroute.estimate.bounds import theory_gamma  # numba: not at CLI start-up

            return theory_gamma(n_models, max(horizon, 1), self.delta)
        return float(self.gamma)

    def resolve_cost_gamma(self, gamma: float) -> float:
        """The cost radius's gamma given the resolved reward gamma."""
        return gamma if self.cost_gamma is None else float(self.cost_gamma)


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
        raise UsageError(f"--gamma {shown(text)} is not a number, give a number > 0 or 'theory'") from None


def parse_pair(text: str, option: str) -> tuple[float, float]:
    """'LO,HI' -> (lo, hi)."""
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"{option} {shown(text)} is not two numbers LO,HI, give e.g. {option} 0,1") from None
    return lo, hi


def parse_models(text: str | None, option: str) -> tuple[str, ...] | None:
    """'a, b,c' -> ('a', 'b', 'c'); None (not given) stays None. A value that names no model
    ('', ',,,') is an error: read as "not given" it would silently plan from another source."""
    if text is None:
        return None
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    if not names:
        raise UsageError(f"{option} {shown(text)} names no model; give model ids from the "
                         f"catalog separated by commas (e.g. {option} a,b), or leave {option} out")
    twice = sorted({m for m in names if names.count(m) > 1})
    if twice:
        raise UsageError(f"{option} names {shown(twice[0])} twice; a model is deployed once, "
                         "give each id once")
    return names


def parse_refresh(text: str) -> int | None:
    """--refresh: 'query' (None: a table per query) or a number of tables per stage."""
    if text.strip().lower() == "query":
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--refresh {shown(text)} is neither 'query' nor an integer, give e.g. "
                         "--refresh 7 (tables per stage) or --refresh query") from None
