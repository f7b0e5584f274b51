"""Pictures of a replay (PNG): the oracle's reward-cost frontier with each policy as a point, the
cumulative regret curves and the deployment timeline. Every line and point is labelled where it
is drawn, so there is no legend to look up."""

from __future__ import annotations

import io
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from stageroute.render.output import write_atomic
from stageroute.simulate.evaluate import frontier_curve
from stageroute.simulate.replay import PolicySummary, ReplayResult

_FONT = 8  # points, for the labels placed beside the data
_RISE = 5  # points from a point up to its label's baseline: clear of the error bar's caps


def plot_replay(result: ReplayResult, path: str | Path, lock: bool = True,
                guard: AbstractContextManager[Any] | None = None) -> None:
    """Write a three-panel PNG: frontier and policies, regret curves, who was deployed when.

    ``lock`` and ``guard`` are ``write_atomic``'s.

    Raises:
        CannotWriteError: the file cannot be written.
        LockedError: another run is writing it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (front, regret, timeline) = plt.subplots(3, 1, figsize=(11, 14),
                                                  height_ratios=[1.25, 1, 1])
    colours = {p.policy: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(result.policies)}
    _frontier(front, result, colours)
    _regret(regret, result, colours)
    _timeline(timeline, result)
    fig.tight_layout()
    _place_labels(fig)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    # Atomic and under the same lock as --output: a reader never sees half a PNG, and an
    # interrupted write leaves no temporary file.
    write_atomic(Path(path), buffer.getvalue(), lock=lock, guard=guard)


def _frontier(ax: Any, result: ReplayResult, colours: dict[Any, Any]) -> None:
    """The oracle's value per query against the budget, and each policy at (cost, reward)."""
    cfg = result.config
    sizes = np.diff(result.schedule.bounds).astype(float)
    curve = frontier_curve(result.frontier, sizes, [cfg.budget, *(p.mean_cost for p in
                                                                   result.policies)])
    ax.plot(curve.budget, curve.value, color="black", lw=1.4, zorder=1)
    xs = [p.mean_cost for p in result.policies]
    ys = [p.mean_reward for p in result.policies]
    lo, hi = min(*xs, cfg.budget), max(*xs, cfg.budget)
    pad = 0.15 * (hi - lo or hi or 1.0)
    x_view = (max(lo - pad, float(curve.budget[0])), hi + pad)
    inside = (curve.budget >= x_view[0]) & (curve.budget <= x_view[1])
    y_lo = min(*ys, float(curve.value[inside].min()) if inside.any() else min(ys))
    y_hi = max(*ys, float(curve.value[inside].max()) if inside.any() else max(ys))
    y_pad = 0.12 * (y_hi - y_lo or y_hi or 1.0)
    ax.set_xlim(*x_view)
    ax.set_ylim(y_lo - y_pad, y_hi + y_pad)
    ax.axvline(cfg.budget, color="grey", lw=1, ls="--", zorder=0)
    ax.annotate("budget", (cfg.budget, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                textcoords="offset points", fontsize=_FONT, color="grey")
    right = min(int(np.searchsorted(curve.budget, x_view[1])), curve.budget.size - 1)
    ax.annotate("oracle frontier", (x_view[1], float(curve.value[right])), xytext=(-4, -5),
                textcoords="offset points", ha="right", va="top", fontsize=_FONT)
    for p in result.policies:
        colour = colours[p.policy]
        if p.rank is not None:  # the gap that suboptimality_at_cost measures
            ax.plot([p.mean_cost] * 2, [p.mean_reward, p.oracle_value_at_cost], color=colour,
                    lw=0.8, ls=":", zorder=2)
            ax.plot(p.mean_cost, p.oracle_value_at_cost, marker="_", ms=12, mew=1.5,
                    color=colour, zorder=2)
        ax.errorbar(p.mean_cost, p.mean_reward, xerr=_err(p, "mean_cost"),
                    yerr=_err(p, "mean_reward"), fmt="*" if p.rank is None else "o", color=colour,
                    ms=10 if p.rank is None else 6, capsize=3, zorder=3)
        name = (f"{p.policy} (reference)" if p.rank is None else
                f"{p.rank}. {p.policy}: {p.suboptimality_at_cost:.2%}")
        _label(ax, name, (p.mean_cost, p.mean_reward), colour)
    ax.set_xlabel("mean cost per query (for the frontier: the budget)")
    ax.set_ylabel("mean reward per query")
    ax.text(0.99, 0.02, "frontier: the oracle's reward per query with one budget in every "
            "stage\ndotted to a dash: the oracle at the policy's own cost in each stage (the gap "
            "is the sub-optimality at cost)", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=_FONT, color="dimgrey")
    seeds = (f"95% intervals over {cfg.seeds} seeds" if any(p.ci95.get("mean_reward")
                                                             for p in result.policies)
             else f"no interval ({cfg.seeds} seed{'s' if cfg.seeds > 1 else ''} < 3)")
    ax.set_title(f"Reward against cost: policies ranked by sub-optimality at cost ({seeds}); "
                 f"M_max {cfg.max_deployed}, T {cfg.horizon:,}", fontsize=10)


def _err(p: PolicySummary, key: str) -> list[list[float]] | None:
    ci = p.ci95.get(key)
    if ci is None:
        return None
    value = float(getattr(p, key))
    return [[max(value - ci[0], 0.0)], [max(ci[1] - value, 0.0)]]


def _regret(ax: Any, result: ReplayResult, colours: dict[Any, Any]) -> None:
    """Cumulative regret (mean over seeds) per learning policy, labelled at its right end."""
    sizes = np.diff(result.schedule.bounds).astype(float)
    ends = result.schedule.bounds[1:]
    oracle_cum = np.cumsum([v.value * n for v, n in zip(result.oracle, sizes, strict=True)])
    for p in result.policies:
        if not p.runs:
            continue
        cum = np.mean([np.cumsum(r.reward) for r in p.runs], axis=0)
        ax.plot(ends, oracle_cum - cum, color=colours[p.policy], lw=1.6)
        _label(ax, f"{p.policy} ({p.suboptimality_at_cost:.2%} at cost)",
               (float(ends[-1]), float(oracle_cum[-1] - cum[-1])), colours[p.policy])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlim(0, float(ends[-1]) * 1.3)  # room for the labels at the right end
    ax.set_xlabel("queries")
    ax.set_ylabel("cumulative regret (reward)")
    ax.set_title("Cumulative regret: the oracle's expected reward minus the policy's (mean over "
                 "seeds)", fontsize=10)


def _timeline(ax: Any, result: ReplayResult) -> None:
    from matplotlib.colors import ListedColormap

    models = result.models
    stages = len(result.schedule.windows)
    learner = next((p for p in result.policies if p.runs and str(p.policy) == "stageroute"),
                   next((p for p in result.policies if p.runs), None))
    grid = np.zeros((len(models), stages))
    for k in range(stages):
        grid[result.schedule.pools[k], k] = 1  # available
        if learner is not None:
            grid[list(learner.runs[0].deployed[k]), k] = 2
        for j in result.oracle[k].models:
            grid[j, k] = 3 if grid[j, k] == 2 else max(grid[j, k], 1.5)
    cmap = ListedColormap(["white", "#e8e8e8", "#f4b183", "#5b9bd5", "#2e75b6"])
    ax.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
    ax.set_yticks(range(len(models)), [m.split("/")[-1] for m in models],
                  fontsize=max(4, min(8, 240 // max(len(models), 1))))
    ax.set_xlabel("stage")
    who = learner.policy if learner is not None else "policy"
    ax.set_title(f"Deployment timeline (seed {result.config.first_seed}): grey available, "
                 f"orange oracle only, light blue {who} only, dark blue both", fontsize=10)


def _label(ax: Any, text: str, xy: tuple[float, float], colour: Any) -> None:
    """A label beside a data point; ``_place_labels`` moves it off the others once laid out."""
    ax.annotate(text, xy, xytext=(6, _RISE), textcoords="offset points", fontsize=_FONT,
                color=colour, va="bottom", gid="label",
                arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.6, "alpha": 0})


def _place_labels(fig: Any) -> None:
    """Move labels up or down (in steps of a line) until none overlaps another label or another
    labelled point and each stays inside its panel; draw a thin leader to the point of each
    label that moved."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        frame = ax.get_window_extent(renderer)
        labels = sorted((t for t in ax.texts if t.get_gid() == "label"),
                        key=lambda t: -ax.transData.transform(t.xy)[1])
        points = [Bbox.from_bounds(x - 4, y - 4, 8, 8)
                  for x, y in (ax.transData.transform(t.xy) for t in labels)]
        placed: list[Any] = []
        for i, text in enumerate(labels):
            box = text.get_window_extent(renderer)
            step = box.height * 1.05
            obstacles = placed + points[:i] + points[i + 1:]
            moved, shift = box, 0
            for shift in _shifts():
                moved = box.translated(0, shift * step)
                if (frame.y0 <= moved.y0 and moved.y1 <= frame.y1
                        and not any(moved.overlaps(other) for other in obstacles)):
                    break
            placed.append(moved)
            if shift:
                text.set_position((6, _RISE + shift * step * 72 / fig.dpi))
                text.arrow_patch.set_alpha(1)


def _shifts() -> Any:
    """0, -1, 1, -2, 2, ... lines (down first: the labels are placed from the top)."""
    yield 0
    for k in range(1, 60):
        yield -k
        yield k
