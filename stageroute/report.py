"""Rendering for people: Rich tables of a plan. The only module that imports rich."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from stageroute.plan import Plan

_ACTION_STYLE = {"keep": "green", "add": "bold cyan", "evict": "red", "idle": "dim"}


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def render_plan(plan: Plan, console: Console) -> None:
    """Print the window, the deployment, the routing table, the expectations and the notes."""
    cfg = plan.config
    console.print(
        f"[bold]Stage[/] {plan.window.start:%Y-%m-%d %H:%M} -> {plan.window.end:%Y-%m-%d %H:%M} UTC"
        f"   budget {cfg.budget:.6g}/request   max deployed {cfg.max_deployed}   "
        f"solver {cfg.solver}   gamma {plan.gamma:.4g} ({cfg.radius})   run {plan.run_id}"
    )
    console.print(
        f"[dim]logs: {plan.logs.rows:,} rows, {plan.logs.rows_used:,} used (before the stage, "
        f"catalog models); cost from {plan.logs.cost_source}; cost scale {plan.cost_scale:.4g}[/]"
    )
    table = Table(title="Deployment", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("model", overflow="fold", ratio=2)
    for col in ("action", "n", "mean", "UCB", "cost", "cost LCB"):
        table.add_column(col, justify="left" if col == "action" else "right", no_wrap=True,
                         min_width=len(col) if col != "cost LCB" else 8)
    table.add_column("why", ratio=1)
    for m in plan.deployment:
        lcb = _money(m.cost_lcb) + ("" if m.cost_bound == "observed" else f" ({m.cost_bound})")
        table.add_row(m.model, f"[{_ACTION_STYLE[m.action]}]{m.action}[/]", f"{m.n_reward:,}",
                      _f(m.mean_reward), _f(m.reward_ucb), _money(m.mean_cost), lcb, m.reason)
    console.print(table)
    if plan.evicted:
        evicted = Table(title="Evicted", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        evicted.add_column("model", overflow="fold")
        evicted.add_column("UCB", justify="right", no_wrap=True)
        evicted.add_column("cost LCB", justify="right", no_wrap=True)
        evicted.add_column("why")
        lines = {m.model: m for m in plan.candidates}
        for name, reason in plan.evicted:
            line = lines.get(name)
            evicted.add_row(f"[red]{name}[/]", _f(line.reward_ucb) if line else "-",
                            _money(line.cost_lcb) if line else "-", reason)
        console.print(evicted)

    routing = Table(title="Routing table", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    routing.add_column("model")
    routing.add_column("probability", justify="right")
    routing.add_column("share cap", justify="right")
    for m in plan.deployment:
        routing.add_row(m.model, f"{m.probability:.4f}", f"{m.max_share:.2f}")
    if cfg.allow_drop:
        routing.add_row("[dim](refused / queued)[/]", f"{plan.dropped:.4f}", "")
    console.print(routing)

    exp = plan.expected
    console.print(
        f"Expected per request: reward {_f(exp['reward_ucb'])} (UCB) / {_f(exp['reward_mean'])} "
        f"(means); cost {_money(exp['cost_lcb'])} (LCB) / {_money(exp['cost_mean'])} (means)"
    )
    if plan.over_budget:
        console.print("[bold red]Budget: OVER[/] (the cheapest mixture is used)")
    else:
        console.print("[green]Budget: met under the cost bounds[/]")
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")
    if plan.excluded:
        console.print(
            "[dim]not in the pool: "
            + "; ".join(f"{m} ({r})" for m, r in plan.excluded)
            + "[/]"
        )
