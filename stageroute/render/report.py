"""Rendering for people: Rich tables of a plan and of a replay. The only module that imports rich.

Every table is readable from 60 columns up: a table whose natural width fits the console is
printed as a table; otherwise the same figures are printed as records (a heading line, then
``label value`` items packed into the width with a hanging indent), so a model name is never
wrapped, folded or truncated. Long reasons go below the tables as numbered footnotes. Text that
comes from the data (model ids, reasons, notes) is never read as Rich markup, and characters the
console cannot show are escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from stageroute.diff import PlanDiff
from stageroute.options import format_duration
from stageroute.plan import Plan
from stageroute.simulate.evaluate import MIN_SEEDS
from stageroute.simulate.offreplay import OffPolicyResult
from stageroute.simulate.replay import ReplayResult
from stageroute.store.build import StoreReport

_ACTION_STYLE = {"keep": "green", "add": "bold cyan", "evict": "red", "idle": "dim"}
_GAP = 2  # spaces between the columns of a table and between the items of a record
_MIN_WIDTH = 40  # narrower consoles (COLUMNS=0, say) would print nothing readable, or nothing at all


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def _unicode(console: Console) -> bool:
    return console.encoding.lower().replace("_", "-").startswith("utf")


def _safe(console: Console, text: str) -> str:
    """``text`` on one line: control characters escaped, and anything the console cannot encode."""
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    if not _unicode(console):
        text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text


def _table(title: str | None = None) -> Table:
    """A borderless table: a rule under the header, two spaces between columns."""
    return Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                 show_edge=False, pad_edge=False, collapse_padding=True, padding=(0, 1))


def _fits(console: Console, table: Table) -> bool:
    """True if the table, every cell on one line, fits the console's width."""
    wide = console.options.update_width(1_000_000)
    return console.measure(table, options=wide).maximum <= console.width


def _pack(items: Sequence[str], width: int, sep: str = " " * _GAP) -> list[str]:
    """Greedy line filling; an item is never split (an item wider than ``width`` gets a line)."""
    lines: list[str] = []
    line = ""
    for item in items:
        if line and len(line) + len(sep) + len(item) > width:
            lines.append(line)
            line = ""
        line = f"{line}{sep}{item}" if line else item
    if line:
        lines.append(line)
    return lines


def _record(console: Console, head: Text, items: Sequence[str], indent: int = 2,
            sep: str = " " * _GAP) -> None:
    """A heading line, then ``items`` packed into the width under a hanging indent."""
    console.print(head, overflow="fold")
    pad = " " * indent
    for line in _pack(items, max(console.width - indent, 20), sep):
        console.print(Text(pad + line), overflow="fold")


def _packed_line(console: Console, label: str, items: Iterable[str], style: str = "dim",
                 sep: str = ", ") -> None:
    """``label item, item, ...`` wrapped between items, continuation lines indented."""
    parts = [_safe(console, item) for item in items]
    lines = _pack([f"{label} {parts[0]}", *parts[1:]] if parts else [label],
                  max(console.width - 3, 20), sep)
    for k, line in enumerate(lines):
        end = sep.rstrip() if k < len(lines) - 1 else ""
        console.print(Text(("  " if k else "") + line + end, style=style), overflow="fold")


class _Footnotes:
    """Numbered reasons shared by the tables above them: equal reasons share a number."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}

    def ref(self, reason: str) -> str:
        number = self.numbers.setdefault(reason, len(self.numbers) + 1)
        return f"[{number}]"

    def render(self, console: Console) -> None:
        if not self.numbers:
            return
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, style="dim")
        grid.add_column(overflow="fold")
        for reason, number in self.numbers.items():
            grid.add_row(Text(f"[{number}]"), Text(_safe(console, reason)))
        console.print(Text("why:", style="dim"))
        console.print(grid)


# ---------------------------------------------------------------------------------------------
# plan


def render_plan(plan: Plan, console: Console) -> None:
    """Print the window, the deployment, the routing table, the expectations and the notes."""
    console.width = max(console.width, _MIN_WIDTH)
    _plan_heading(plan, console)
    notes = _Footnotes()
    _deployment(plan, console, notes)
    _evicted(plan, console, notes)
    notes.render(console)
    console.print()
    _routing(plan, console)
    idle = [m for m in plan.candidates if m.action == "idle"]
    if idle:
        _packed_line(console, "not deployed:",
                     (f"{m.model} (UCB {m.reward_ucb:.3f}, LCB {_money(m.cost_lcb)})" for m in idle))
    _plan_footer(plan, console)


def _plan_heading(plan: Plan, console: Console) -> None:
    cfg = plan.config
    console.print(
        f"[bold]Stage[/] {plan.window.start:%Y-%m-%d %H:%M} -> {plan.window.end:%Y-%m-%d %H:%M} UTC"
    )
    console.print(f"budget {cfg.budget:.6g}/request, max deployed {cfg.max_deployed}")
    logs = plan.logs
    _packed_line(console, "solver", [
        f"{cfg.solver}", f"gamma {plan.gamma:.4g} ({cfg.radius})", f"run {plan.run_id}",
        f"{'statistics store' if logs.source == 'stats' else 'logs'} {logs.label}: {logs.rows:,} rows",
        f"{logs.rows_used:,} used", f"cost from {logs.cost_source}",
        f"cost scale {plan.cost_scale:.4g}",
        *([cfg.drift.describe()] if not cfg.drift.stationary else []),
    ])
    console.print()


def _lcb(cost_lcb: float, bound: str) -> str:
    return _money(cost_lcb) + ("" if bound == "observed" else f" ({bound})")


def _deployment(plan: Plan, console: Console, notes: _Footnotes) -> None:
    table = _table("Deployment")
    table.add_column("model", no_wrap=True)
    table.add_column("action", no_wrap=True)
    for col in ("n", "reward", "UCB", "cost", "LCB"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("why", no_wrap=True)
    for m in plan.deployment:
        table.add_row(Text(_safe(console, m.model)), Text(m.action, style=_ACTION_STYLE[m.action]),
                      f"{m.n_reward:,}", _f(m.mean_reward), _f(m.reward_ucb), _money(m.mean_cost),
                      _lcb(m.cost_lcb, m.cost_bound), Text(notes.ref(m.reason)))
    if _fits(console, table):
        console.print(table)
    else:
        console.print(Text("Deployment", style="bold"))
        for m in plan.deployment:
            head = Text.assemble((f"{m.action:<5} ", _ACTION_STYLE[m.action]),
                                 (_safe(console, m.model), "bold"))
            _record(console, head, [
                f"n {m.n_reward:,}", f"reward {_f(m.mean_reward)}", f"UCB {_f(m.reward_ucb)}",
                f"cost {_money(m.mean_cost)}", f"LCB {_lcb(m.cost_lcb, m.cost_bound)}",
                f"why {notes.ref(m.reason)}",
            ], indent=6)
    console.print(Text("n: rewards seen; reward, cost: means; UCB, LCB: optimistic bounds",
                       style="dim"))


def _evicted(plan: Plan, console: Console, notes: _Footnotes) -> None:
    if not plan.evicted:
        return
    lines = {m.model: m for m in plan.candidates}
    rows = []
    for name, reason in plan.evicted:
        line = lines.get(name)
        rows.append((_safe(console, name), _f(line.reward_ucb) if line else "-",
                     _money(line.cost_lcb) if line else "-", notes.ref(reason)))
    table = _table("Evicted")
    table.add_column("model", no_wrap=True, style="red")
    table.add_column("UCB", justify="right", no_wrap=True)
    table.add_column("LCB", justify="right", no_wrap=True)
    table.add_column("why", no_wrap=True)
    for name, ucb, lcb, ref in rows:
        table.add_row(Text(name), ucb, lcb, Text(ref))
    console.print()
    if _fits(console, table):
        console.print(table)
        return
    console.print(Text("Evicted", style="bold"))
    for name, ucb, lcb, ref in rows:
        _record(console, Text(name, style="red"), [f"UCB {ucb}", f"LCB {lcb}", f"why {ref}"])


def _routing(plan: Plan, console: Console) -> None:
    """The routing table, or with ``plan --segments`` one per segment (its share of the traffic
    in the title; the share cap is each model's of all traffic)."""
    if plan.segments is None:
        rows = [(Text(_safe(console, m.model)), f"{m.probability:.4f}", f"{m.cap:.3g}")
                for m in plan.deployment]
        _routing_table(console, "Routing table", rows, plan.dropped if plan.config.allow_drop
                       else None)
        return
    tables = plan.segments
    caps = {m.model: m.cap for m in plan.deployment}
    for i, segment in enumerate(tables.names):
        order = sorted(range(len(tables.models)),
                       key=lambda j: (-tables.probability[i, j], tables.models[j]))
        rows = [(Text(_safe(console, tables.models[j])), f"{tables.probability[i, j]:.4f}",
                 f"{caps[tables.models[j]]:.3g}") for j in order]
        title = f"Segment {_safe(console, segment or '(none)')}: {tables.shares[i]:.1%}"
        _routing_table(console, title, rows,
                       float(tables.dropped[i]) if plan.config.allow_drop else None)


def _routing_table(console: Console, title: str, rows: list[tuple[Text, str, str]],
                   dropped: float | None) -> None:
    if dropped is not None:
        rows.append((Text("(refused / queued)", style="dim"), f"{dropped:.4f}", ""))
    table = _table(title)
    table.add_column("model", no_wrap=True)
    table.add_column("probability", justify="right", no_wrap=True)
    table.add_column("share cap", justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    if _fits(console, table):
        console.print(table)
        return
    console.print(Text(title, style="bold"))
    for name, probability, cap in rows:
        _record(console, name, [f"probability {probability}"] + ([f"share cap {cap}"] if cap else []))


def _plan_footer(plan: Plan, console: Console) -> None:
    exp = plan.expected
    console.print("Expected per request:")
    console.print(f"  reward {_f(exp['reward_ucb'])} (UCB), {_f(exp['reward_mean'])} (means)")
    console.print(f"  cost   {_money(exp['cost_lcb'])} (LCB), {_money(exp['cost_mean'])} (means)")
    if plan.over_budget:
        console.print("[bold red]Budget: OVER[/] (the cheapest mixture is used)")
    else:
        console.print("[green]Budget: met under the cost bounds[/]")
    for note in plan.notes:
        console.print(Text.assemble(("note: ", "yellow"), _safe(console, note)))
    if plan.excluded:
        _packed_line(console, "not in the pool:", (f"{m} ({r})" for m, r in plan.excluded),
                     sep="; ")


# ---------------------------------------------------------------------------------------------
# replay


def render_replay(result: ReplayResult, console: Console) -> None:
    """Per-policy results ranked on sub-optimality at cost, with 95% intervals over seeds (from 3
    seeds), the oracle as the reference line, then the deployment timeline."""
    console.width = max(console.width, _MIN_WIDTH)
    cfg = result.config
    pm = "±" if _unicode(console) else "+-"
    console.print(f"[bold]Replay[/] {cfg.horizon:,} queries, {cfg.stages} stages, "
                  f"{cfg.seeds} seed(s) from {cfg.first_seed}")
    console.print(f"budget {cfg.budget:.4g}/query, max deployed {cfg.max_deployed}")
    drift = [f"{name} {format_duration(length)}" for name, length in
             (("window", cfg.window), ("half-life", cfg.half_life)) if length is not None]
    if drift:  # the default (stationary) prints nothing here
        console.print("statistics: " + ", ".join(drift) + " (drift; default: stationary)")
    intervals = (f"{pm} is the half-width of the 95% interval over seeds" if cfg.seeds >= MIN_SEEDS
                 else f"no interval ({cfg.seeds} seed{'s' if cfg.seeds > 1 else ''} < {MIN_SEEDS})")
    _packed_line(console, "gamma", [
        f"{cfg.gamma:.4g} ({cfg.radius})", f"oracle value {result.oracle_value:.4f}/query",
        intervals,
    ])
    console.print()
    _policies(result, console, pm)
    _timeline(result, console)


def _pct(x: float) -> str:
    return f"{round(x, 6) + 0.0:.2%}"  # no "-0.00%" from rounding noise


# (column, header, format of the value, format of the half-width; None: no interval shown)
_REPLAY_COLUMNS: tuple[tuple[str, str, Callable[[float], str], Callable[[float], str] | None], ...] = (
    ("mean_reward", "reward", lambda x: f"{x:.4f}", lambda h: f"{h:.4f}"),
    ("mean_cost", "cost", lambda x: f"{x:.3g}", None),
    ("cost_over_budget", "cost/\nbudget", lambda x: f"{x:.3f}", lambda h: f"{h:.3f}"),
    ("worst_stage_cost_over_budget", "worst\nstage", lambda x: f"{x:.3f}", lambda h: f"{h:.3f}"),
    ("suboptimality_at_cost", "sub-opt\nat cost", _pct, _pct),
    ("suboptimality", "paper\nsub-opt", _pct, _pct),
    ("regret", "regret\n(reward)", lambda x: f"{x:,.0f}", lambda h: f"{h:,.0f}"),
)
_REPLAY_NOTES = (
    "reward, cost: per query; cost/budget: realised mean cost / budget; worst stage: the "
    "costliest stage's cost / budget (per seed, then the mean)",
    "sub-opt at cost: 1 - reward / the oracle's reward at the policy's own cost in each stage "
    "(ranked on it; * the best); paper sub-opt: 1 - reward / oracle value (overspending can "
    "beat it)",
    "regret: the oracle's expected reward minus the policy's, summed over the {horizon:,} "
    "queries (reward units); ref: the oracle, exact expected values, not ranked",
)


_Row = tuple[str, str, list[Text], list[str] | None]  # rank, policy, figures, half-widths


def _policy_rows(result: ReplayResult, pm: str) -> list[_Row]:
    """The policies best first, the oracle ("ref") last; half-widths when there are intervals."""
    rows: list[_Row] = []
    for p in sorted(result.policies, key=lambda p: (p.rank is None, p.rank or 0)):
        label = "ref" if p.rank is None else f"{p.rank}{' *' if p.rank == 1 else ''}"
        cells, halves = [], []
        for key, _, value, half in _REPLAY_COLUMNS:
            x = float(getattr(p, key))
            style = "red" if key == "cost_over_budget" and x > 1.02 else ""
            cells.append(Text(value(x) if math.isfinite(x) else "-", style=style))
            ci = p.ci95.get(key)
            halves.append(f"{pm}{half((ci[1] - ci[0]) / 2)}" if ci is not None and half else "")
        shown = p.rank is not None and any(halves)  # the oracle's figures are exact
        rows.append((label, str(p.policy), cells, halves if shown else None))
    return rows


def _policies(result: ReplayResult, console: Console, pm: str) -> None:
    """One table row per policy and one of half-widths under it; records on narrow consoles."""
    rows = _policy_rows(result, pm)
    table = _table()
    table.padding = 0  # the box's one-space separator only: nine columns fit 80 characters
    table.add_column("#", no_wrap=True)
    table.add_column("policy", no_wrap=True)
    for key, header, _, _ in _REPLAY_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True,
                         header_style="bold" if key == "suboptimality_at_cost" else "")
    for label, name, cells, halves in rows:
        table.add_row(label, name, *cells)
        if halves is not None:
            table.add_row("", "", *(Text(h, style="dim") for h in halves))
    if _fits(console, table):
        console.print(table)
    else:
        for label, name, cells, halves in rows:
            items = []
            for k, (_, header, _, _) in enumerate(_REPLAY_COLUMNS):
                title = header.replace("/\n", "/").replace("\n", " ")
                half = f" {halves[k]}" if halves is not None and halves[k] else ""
                items.append(f"{title} {cells[k].plain}{half}")
            _record(console, Text(f"{label} {name}", style="bold"), items)
    _replay_notes(result, console)


def _replay_notes(result: ReplayResult, console: Console) -> None:
    for note in _REPLAY_NOTES:
        first, *words = note.format(horizon=result.config.horizon).split()
        _packed_line(console, first, words, sep=" ")


def _timeline(result: ReplayResult, console: Console) -> None:
    cfg = result.config
    learner = next((p for p in result.policies if p.runs and str(p.policy) == "stageroute"), None)
    if learner is None:
        return
    short = [_safe(console, m.split("/")[-1]) for m in result.models]
    rows: list[tuple[str, str, str, list[str], list[str]]] = []
    previous: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    for k, window in enumerate(result.schedule.windows):
        now = (result.oracle[k].models, learner.runs[0].deployed[k])
        if now == previous:
            continue
        previous = now
        rows.append((str(k + 1), f"{window.start:%Y-%m-%d}", str(int(result.schedule.pools[k].sum())),
                     [short[j] for j in now[0]], [short[j] for j in now[1]]))
    title = f"Deployment timeline (stages where a set changes; seed {cfg.first_seed})"
    table = _table(title)
    for col in ("stage", "start", "pool"):
        table.add_column(col, no_wrap=True, justify="left" if col == "start" else "right")
    longest = max((len(name) for row in rows for name in row[3] + row[4]), default=1)
    for col in ("oracle", "stageroute"):
        table.add_column(col, min_width=longest + 1)  # wraps between names, never inside one
    for stage, start, pool, oracle, learned in rows:
        table.add_row(stage, start, pool, Text(", ".join(oracle)), Text(", ".join(learned)))
    console.print()
    wide = console.options.update_width(1_000_000)
    if console.measure(table, options=wide).minimum <= console.width:
        console.print(table)
        return
    console.print(Text(title, style="bold"))
    for stage, start, pool, oracle, learned in rows:
        console.print(Text(f"stage {stage} from {start}, pool {pool}"))
        for who, names in (("oracle", oracle), ("stageroute", learned)):
            packed = _pack([n + "," for n in names[:-1]] + names[-1:], console.width - 14, " ")
            for k, line in enumerate(packed):
                console.print(Text(f"  {who if k == 0 else '':<11} {line}"), overflow="fold")


# ---------------------------------------------------------------------------------------------
# diff


def render_diff(diff: PlanDiff, console: Console) -> None:
    """Print the two plans' windows, the deployment changes and the routing shares that moved."""
    for label, path, window in (("from", diff.before, diff.windows[0]),
                                ("to", diff.after, diff.windows[1])):
        console.print(Text(_safe(console, f"{label:>4} {path} (window {window.get('start', '?')} "
                                          f"to {window.get('end', '?')})"), style="bold"))
    status = {**dict.fromkeys(diff.kept, "keep"), **dict.fromkeys(diff.added, "add"),
              **dict.fromkeys(diff.evicted, "evict")}
    moved = {c.model for c in diff.moved}
    rows = []
    for c in diff.shares:
        action = status.get(c.model, "idle")
        rows.append((Text(_safe(console, c.model)), Text(action, style=_ACTION_STYLE[action]),
                     f"{c.before:.4f}", f"{c.after:.4f}",
                     f"{c.change:+.4f}" if c.model in moved else "same"))
    table = _table("Deployment and routing changes")
    table.add_column("model", no_wrap=True)
    table.add_column("action", no_wrap=True)
    for column in ("before", "after", "change"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    if _fits(console, table):
        console.print(table)
    else:
        console.print(Text("Deployment and routing changes", style="bold"))
        for model, verb, before, after, change in rows:
            _record(console, Text.assemble(model, "  ", verb),
                    [f"share {before} -> {after} ({change})"])
    if not (diff.added or diff.evicted or diff.moved):
        console.print("[green]No change[/]: same deployment, same routing table")
    else:
        console.print(f"added {len(diff.added)}, evicted {len(diff.evicted)}, kept "
                      f"{len(diff.kept)}, shares moved {len(diff.moved)}")


def render_store(report: StoreReport, console: Console) -> None:
    """What a ``stats`` run did to the store."""
    def span(values: Sequence[object]) -> str:
        days = sorted(str(v)[:16] for v in values)
        return "" if not days else (f" ({days[0]})" if len(days) == 1 else f" ({days[0]} .. {days[-1]})")

    if report.up_to_date:
        console.print(f"statistics store {report.out}: up to date ({report.files_known} file(s) "
                      f"summarised, {report.windows_total} window(s)); nothing read")
        return
    table = Table(box=box.SIMPLE, show_header=False)
    table.add_column()
    table.add_column()
    if report.full_rebuild:
        table.add_row("rebuilt", f"every window: {report.full_rebuild}")
    table.add_row("files read", f"{len(report.files_read)} new or changed, "
                  f"{len(report.files_partly_read)} for windows rebuilt, {report.files_known} "
                  "already summarised (not read)")
    for label, files in (("changed", report.changed), ("removed", report.removed)):
        if files:
            table.add_row(label, f"{len(files)} file(s) (e.g. {files[0]}): the windows they "
                          "touched were rebuilt")
    table.add_row("windows", f"{len(report.windows_written)} new{span(report.windows_written)}, "
                  f"{len(report.windows_merged)} merged{span(report.windows_merged)}, "
                  f"{len(report.windows_rebuilt)} rebuilt{span(report.windows_rebuilt)}, "
                  f"{len(report.windows_removed)} removed{span(report.windows_removed)}; "
                  f"{report.windows_total} in the store")
    table.add_row("rows", f"{report.rows:,} summarised by {report.engine}")
    console.print(f"statistics store {report.out}")
    console.print(table)


def stdout_console(on_broken_pipe: Callable[[], None]) -> Console:
    """A console on stdout whose broken pipe calls ``on_broken_pipe`` (Rich's default exits 1,
    as if the run had failed); width: the terminal's, else $COLUMNS or 80."""

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            on_broken_pipe()

    return _Console()


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar on stderr; yields advance(done, total)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(f"[bold]{label}[/]", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def render_offpolicy(result: OffPolicyResult, console: Console) -> None:
    """Off-policy estimates from logs: one row per (policy, estimator) with its 95% bootstrap
    interval and overlap diagnostics."""
    console.width = max(console.width, 150)
    cfg = result.config
    console.print(f"[bold]Off-policy replay[/] {result.events:,} logged events ({result.label}), "
                  f"{result.stages} stages, logging policy {cfg.logging}, smallest propensity "
                  f"{result.p_min:.3g}")
    console.print(f"budget {result.budget:.4g}/query, max deployed {cfg.max_deployed}")
    table = Table(box=box.SIMPLE_HEAD)
    for header in ("policy", "estimator", "reward [95%]", "cost [95%]", "cost/budget", "kept",
                   "ESS", "max w"):
        table.add_column(header, no_wrap=True,
                         justify="left" if header in ("policy", "estimator") else "right")
    for e in result.estimates:
        d = e.diagnostics
        table.add_row(e.policy, str(e.estimator),
                      f"{e.mean_reward:.4f} [{e.ci_reward[0]:.4f}, {e.ci_reward[1]:.4f}]",
                      f"{e.mean_cost:.3g} [{e.ci_cost[0]:.3g}, {e.ci_cost[1]:.3g}]",
                      f"{e.mean_cost / result.budget:.3f}", f"{d.kept:,} ({d.kept_share:.1%})",
                      f"{d.effective_sample_size:,.0f}", f"{d.max_weight:.3g}")
    console.print(table)
    console.print("replay: the replay method (Li et al.), kept events only; ips / snips / dr: "
                  "inverse propensity, self-normalised, doubly robust; on-policy: the log's "
                  "own means. Intervals: block bootstrap over time (replay: plus the variance "
                  "between the --seeds runs).")
