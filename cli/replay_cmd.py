"""``stageroute replay``: the policies on a full-information table (--outcomes) or off-policy on
request logs (--logs)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from stageroute.config import (
    DEFAULT_CANARY_SHARE,
    DEFAULT_COST_GAMMA,
    DEFAULT_GAMMA,
    DEFAULT_MIN_SAMPLES,
    parse_gamma,
    parse_pair,
    parse_refresh,
    pick_budget,
)
from stageroute.options import (
    Policy,
    Radius,
    Solver,
    choice,
    parse_datetime,
    parse_duration,
    replay_policies,
)
from stageroute_cli import common, process
from stageroute_cli import options as opt

from .common import app


@contextmanager
def _progress_bar(quiet: bool, label: str) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar on stderr (only on a terminal); yields advance(done, total)."""
    if quiet or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from stageroute.render.report import progress_bar

    with progress_bar(label) as advance:
        yield advance



@app.command(epilog="""Examples:

\b
  stageroute replay --outcomes outcomes.parquet --catalog catalog.csv \\
    --relative-budget 0.3 --max-deployed 3 --seeds 10 --plot replay.png
  stageroute replay --outcomes outcomes.parquet --catalog catalog.csv --budget 0.0035 \\
    --max-deployed 2 --horizon 20000 --policy stageroute --policy oracle --json
""")
def replay(
    ctx: typer.Context,
    catalog: opt.Catalog,
    max_deployed: opt.MaxDeployed,
    budget: opt.Budget = None,
    relative_budget: Annotated[float | None, typer.Option(help="Budget as a fraction of the "
                                                          "largest per-model mean cost. "
                                                          "E.g. --relative-budget 0.3")] = None,
    horizon: Annotated[int, typer.Option(help="Queries T in the stream.")] = 100_000,
    stages: Annotated[int | None, typer.Option(help="Stages K (default: round(T^(1/3))).")] = None,
    seeds: Annotated[int, typer.Option(help="Independent streams; results are mean and 95% CI.")] = 5,
    seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    policy: Annotated[list[str] | None, typer.Option(
        metavar="|".join(Policy), help="Policy to simulate; repeat the option for several. "
        "Default: all.")] = None,
    refresh: Annotated[str, typer.Option(
        metavar="query|R", help="Routing tables per stage, each held fixed until the next "
        "(as a gateway executes a plan); 'query' re-solves for every query (the paper). "
        "E.g. --refresh 7")] = "query",
    gamma: opt.Gamma = str(DEFAULT_GAMMA),
    delta: opt.Delta = 0.05,
    radius: opt.Radius = "variance",
    cost_gamma: opt.CostGamma = DEFAULT_COST_GAMMA,
    budget_safe: opt.BudgetSafe = False,
    canary_share: opt.CanaryShare = DEFAULT_CANARY_SHARE,
    min_samples: opt.MinSamples = DEFAULT_MIN_SAMPLES,
    epsilon: Annotated[float, typer.Option(help="Exploration rate of epsilon-greedy.")] = 0.1,
    window: Annotated[str | None, typer.Option(help="Drift: a stage's bounds count only the "
                                               "stages that ended less than this before it "
                                               "(e.g. 28d). Default: all (stationary).")] = None,
    half_life: Annotated[str | None, typer.Option(help="Drift: weight each earlier stage's "
                                                  "statistics by 2^(-age / half-life) (e.g. "
                                                  "14d). Default: none (stationary).")] = None,
    start: Annotated[str | None, typer.Option(help="Time of the first query (default: the first "
                                              "release in the catalog).")] = None,
    end: Annotated[str | None, typer.Option(help="Time after the last query (default: one stage "
                                            "past the last release).")] = None,
    cost_scale: opt.CostScale = None,
    cost_clip: opt.CostClip = "0,1",
    allow_drop: opt.AllowDrop = False,
    solver: opt.Solver = "highs",
    json_out: opt.Json = False,
    output: opt.Output = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG: the oracle's reward-cost "
                                              "frontier with each policy, the cumulative regret "
                                              "curves and the deployment timeline.")] = None,
    quiet: opt.Quiet = False,
    config_file: opt.ConfigFile = None,
    outcomes: Annotated[Path | None, typer.Option(
        help="Full-information outcomes (long format: sample_id, model, reward, cost), Parquet or "
        "CSV; or --logs.")] = None,
    logs: Annotated[Path | None, typer.Option(
        help="Off-policy replay on request logs with propensities (see README, Off-policy "
        "replay) instead of --outcomes. E.g. --logs 'logs/*.parquet'")] = None,
    plan_file: Annotated[Path | None, typer.Option(
        "--plan", help="With --logs: a plan JSON whose routing table is estimated (--policy "
        "plan).")] = None,
    logging_policy: Annotated[str, typer.Option(
        metavar="logged|uniform", help="With --logs: the logger's probabilities, from the "
        "'propensity' column (logged) or 1 / the models available (uniform).")] = "logged",
    min_kept: Annotated[int, typer.Option(
        help="With --logs: warn when a policy keeps fewer events (or has a smaller effective "
        "sample size).")] = 200,
    contextual: Annotated[bool, typer.Option(
        "--contextual", help="Add per-segment routing (stageroute-contextual), PORT (with "
        "--prompts) and the contextual oracle (see README, Contextual routing).")] = False,
    segments: Annotated[str, typer.Option(
        metavar="COLUMN|auto", help="With --contextual: the outcomes column that names each "
        "prompt's segment, or 'auto' (clusters of the --prompts text).")] = "eval_name",
    prompts: Annotated[Path | None, typer.Option(
        help="With --contextual: prompt text (sample_id, prompt; Parquet or CSV), embedded "
        "locally for --segments auto and for PORT's neighbours.")] = None,
    clusters: Annotated[int | None, typer.Option(
        help="With --segments auto: the number of clusters (default: chosen by replay, see "
        "README).")] = None,
) -> None:
    """Simulate StageRoute, the oracle and baselines on a full-information outcome table, or
    estimate them off-policy from request logs (--logs)."""
    if logs is not None or outcomes is None:
        return _replay_logs(locals())
    outputs = {"--output": output, "--plot": plot}
    with process.command(outputs, {"--outcomes": outcomes, "--catalog": catalog}) as session:
        from stageroute.simulate.replay import ReplayConfig, replay_document, replay_from_files

        opt.refuse_unused(ctx, ("plan_file", "logging_policy", "min_kept"),
                          "with --outcomes (it is for --logs, off-policy replay)")

        value, relative = pick_budget(budget, relative_budget)
        policies = replay_policies(policy, contextual, prompts is not None)
        if Policy.EPSILON not in policies:
            opt.refuse_unused(ctx, ("epsilon",), "without --policy epsilon-greedy")
        config = ReplayConfig(
            budget=value, relative_budget=relative, max_deployed=max_deployed, horizon=horizon,
            stages=stages, seeds=seeds, first_seed=seed, policies=policies,
            gamma=parse_gamma(gamma), delta=delta, radius=choice(Radius, radius, "--radius"),
            epsilon=epsilon, solver=choice(Solver, solver, "--solver"), allow_drop=allow_drop,
            cost_scale=cost_scale, cost_clip=parse_pair(cost_clip, "--cost-clip"),
            start=parse_datetime(start, "--start") if start is not None else None,
            end=parse_datetime(end, "--end") if end is not None else None,
            refresh=parse_refresh(refresh), cost_gamma=cost_gamma, budget_safe=budget_safe,
            canary_share=canary_share, min_samples=min_samples,
            window=parse_duration(window, "--window") if window is not None else None,
            half_life=parse_duration(half_life, "--half-life") if half_life is not None else None,
            contextual=contextual, segments=segments, prompts=prompts, clusters=clusters,
        )
        with _progress_bar(quiet, "replaying") as advance:
            result = replay_from_files(outcomes, catalog, config, progress=advance)
        if plot is not None:
            from stageroute.render.plots import plot_replay

            plot_replay(result, plot, lock=False, guard=session.committing(plot))
        common.emit(replay_document(result), json_out, output, session, quiet)
        if not json_out and not (quiet and output is not None):
            common.render("render_replay", result)


def _replay_logs(a: dict[str, Any]) -> None:
    """replay --logs: off-policy estimates from request logs (SPEC 11)."""
    with process.command({"--output": a["output"]}, {"--logs": a["logs"], "--catalog": a["catalog"],
                                                     "--plan": a["plan_file"]}) as session:
        from stageroute.errors import UsageError
        from stageroute.inputs.banditlog import LoggingPolicy
        from stageroute.simulate.offreplay import (
            DEFAULT_POLICIES,
            OffPolicyConfig,
            evaluate_log_files,
            offpolicy_document,
        )

        if (a["logs"] is None) == (a["outcomes"] is None):
            raise UsageError("give a full-information table with --outcomes PATH, or request logs "
                             "with --logs PATH (one of the two)")
        if a["plot"] is not None:
            raise UsageError("--plot needs --outcomes (an oracle frontier); leave it out with --logs")
        opt.refuse_unused(a["ctx"], ("horizon", "contextual", "segments", "prompts", "clusters",
                                     "start", "end", "window", "half_life"),
                          "with --logs (the log's own events and times are replayed)")
        value, relative = pick_budget(a["budget"], a["relative_budget"])
        default = DEFAULT_POLICIES + (("plan",) if a["plan_file"] is not None else ())
        if "epsilon-greedy" not in {p.lower() for p in (a["policy"] or default)}:
            opt.refuse_unused(a["ctx"], ("epsilon",), "without --policy epsilon-greedy")
        config = OffPolicyConfig(
            budget=value, relative_budget=relative, max_deployed=a["max_deployed"],
            policies=tuple(dict.fromkeys(a["policy"] or default)), plan=a["plan_file"],
            logging=choice(LoggingPolicy, a["logging_policy"], "--logging-policy"),
            stages=a["stages"], refresh=parse_refresh(a["refresh"]), epsilon=a["epsilon"],
            seed=a["seed"], seeds=a["seeds"], min_kept=a["min_kept"], gamma=parse_gamma(a["gamma"]),
            delta=a["delta"], radius=choice(Radius, a["radius"], "--radius"),
            solver=choice(Solver, a["solver"], "--solver"), allow_drop=a["allow_drop"],
            cost_scale=a["cost_scale"], cost_clip=parse_pair(a["cost_clip"], "--cost-clip"),
            cost_gamma=a["cost_gamma"], budget_safe=a["budget_safe"],
            canary_share=a["canary_share"], min_samples=a["min_samples"])
        result = evaluate_log_files(a["logs"], a["catalog"], config)
        doc = offpolicy_document(result)
        process.warn(doc["warnings"])
        common.emit(doc, a["json_out"], a["output"], session, a["quiet"])
        if not a["json_out"] and not (a["quiet"] and a["output"] is not None):
            common.render("render_offpolicy", result)
