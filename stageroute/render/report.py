"""Rendering for people: Rich tables of a plan. The only module that imports rich."""

from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.table import Table

from stageroute.plan import Plan
from stageroute.simulate.replay import ReplayResult

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
        f"   budget {cfg.budget:.6g}/request   max deployed {cfg.max_deployed}"
    )
    console.print(
        f"[dim]solver {cfg.solver}, gamma {plan.gamma:.4g} ({cfg.radius}), run {plan.run_id}; "
        f"logs: {plan.logs.rows:,} rows, {plan.logs.rows_used:,} used, cost from "
        f"{plan.logs.cost_source}, cost scale {plan.cost_scale:.4g}[/]"
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

    idle = [m for m in plan.candidates if m.action == "idle"]
    if idle:
        console.print("[dim]not deployed: " + ", ".join(
            f"{m.model} (UCB {m.reward_ucb:.3f}, LCB {_money(m.cost_lcb)})" for m in idle) + "[/]")
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


def render_replay(result: ReplayResult, console: Console) -> None:
    """Per-policy results with 95% intervals over seeds, then the deployment timeline."""
    cfg = result.config
    console.print(
        f"[bold]Replay[/] {cfg.horizon:,} queries, {cfg.stages} stages, {cfg.seeds} seed(s) from "
        f"{cfg.first_seed}; budget {cfg.budget:.4g}/query, max deployed {cfg.max_deployed}"
    )
    console.print(
        f"[dim]gamma {cfg.gamma:.4g} ({cfg.radius}); oracle value {result.oracle_value:.4f}/query; "
        "± is the half-width of the 95% interval over seeds[/]"
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("policy", "reward/query", "cost/query", "cost/budget", "regret", "sub-optimality"):
        table.add_column(col, justify="left" if col == "policy" else "right", no_wrap=True)
    for p in result.policies:
        lo, hi = p.ci95["mean_reward"]
        slo, shi = p.ci95["suboptimality"]
        ratio = p.cost_over_budget
        ratio_text = f"{ratio:.3f}" if math.isfinite(ratio) else "-"
        if ratio > 1.02:
            ratio_text = f"[red]{ratio_text}[/]"
        table.add_row(str(p.policy), f"{p.mean_reward:.4f} ±{(hi - lo) / 2:.4f}",
                      f"{p.mean_cost:.4g}", ratio_text, f"{p.regret:,.0f}",
                      f"{p.suboptimality:.2%} ±{(shi - slo) / 2:.2%}")
    console.print(table)
    learner = next((p for p in result.policies if p.runs and str(p.policy) == "stageroute"), None)
    if learner is None:
        return
    timeline = Table(title=f"Deployment timeline (stages where a set changes; seed {cfg.first_seed})",
                     title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("stage", "start", "pool", "oracle", "stageroute"):
        timeline.add_column(col, overflow="fold")
    previous: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    short = [m.split("/")[-1] for m in result.models]
    for k, window in enumerate(result.schedule.windows):
        now = (result.oracle[k].models, learner.runs[0].deployed[k])
        if now == previous:
            continue
        previous = now
        timeline.add_row(str(k + 1), f"{window.start:%Y-%m-%d}",
                         str(int(result.schedule.pools[k].sum())),
                         ", ".join(short[j] for j in now[0]), ", ".join(short[j] for j in now[1]))
    console.print(timeline)
