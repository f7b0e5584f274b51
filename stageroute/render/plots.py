"""Pictures of a replay: cumulative regret per policy and the deployment timeline (PNG)."""

from __future__ import annotations

import io
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from stageroute.render.output import write_atomic
from stageroute.simulate.replay import ReplayResult


def plot_replay(result: ReplayResult, path: str | Path, lock: bool = True,
                guard: AbstractContextManager[Any] | None = None) -> None:
    """Write a two-panel PNG: regret curves (mean over seeds) and who was deployed when.

    ``lock`` and ``guard`` are ``write_atomic``'s.

    Raises:
        CannotWriteError: the file cannot be written.
        LockedError: another run is writing it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    sizes = np.diff(result.schedule.bounds).astype(float)
    ends = result.schedule.bounds[1:]
    oracle_cum = np.cumsum([v.value * n for v, n in zip(result.oracle, sizes, strict=True)])
    fig, (ax, tl) = plt.subplots(2, 1, figsize=(11, 8.5), height_ratios=[1, 1.1])
    for p in result.policies:
        if not p.runs:
            continue
        cum = np.mean([np.cumsum(r.reward) for r in p.runs], axis=0)
        ax.plot(ends, oracle_cum - cum, label=f"{p.policy} ({p.suboptimality:.2%})", lw=1.6)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("queries")
    ax.set_ylabel("cumulative regret vs oracle")
    cfg = result.config
    ax.set_title(f"Replay: budget {cfg.budget:.3g}, M_max {cfg.max_deployed}, T {cfg.horizon:,}, "
                 f"{cfg.seeds} seed(s); sub-optimality in the legend")
    ax.legend(fontsize=8, loc="upper left")

    models = result.models
    stage_route = next((p for p in result.policies if p.runs and str(p.policy) == "stageroute"),
                       next((p for p in result.policies if p.runs), None))
    grid = np.zeros((len(models), len(sizes)))
    for k in range(len(sizes)):
        grid[result.schedule.pools[k], k] = 1  # available
        if stage_route is not None:
            grid[list(stage_route.runs[0].deployed[k]), k] = 2
        for j in result.oracle[k].models:
            grid[j, k] = 3 if grid[j, k] == 2 else max(grid[j, k], 1.5)
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["white", "#e8e8e8", "#f4b183", "#5b9bd5", "#2e75b6"])
    tl.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
    tl.set_yticks(range(len(models)), [m.split("/")[-1] for m in models], fontsize=8)
    tl.set_xlabel("stage")
    who = stage_route.policy if stage_route is not None else "policy"
    tl.set_title(f"Deployment timeline (seed {cfg.first_seed}): grey available, orange oracle only, "
                 f"light blue {who} only, dark blue both")
    fig.tight_layout()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    # Atomic and under the same lock as --output: a reader never sees half a PNG, and an
    # interrupted write leaves no temporary file.
    write_atomic(path, buffer.getvalue(), lock=lock, guard=guard)
