"""The plan and replay reports read at 60 to 120 columns: no line wider than the console, every model
name whole, data never taken for markup, and nothing the console cannot encode."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from stageroute.inputs.outcomes import OutcomeMatrix
from stageroute.plan import Plan, PlanConfig, make_plan
from stageroute.render.report import render_plan, render_replay
from stageroute.simulate.replay import ReplayConfig, ReplayResult, replay

WIDTHS = (60, 80, 100, 120)
UTC = dt.UTC
# Real model ids are long (RouterBench's, OpenRouter's); some ids are hostile.
LONG = ("mistralai/mixtral-8x7b-instruct-v0.1", "meta-llama/llama-3.1-405b-instruct-turbo",
        "anthropic/claude-3-5-sonnet-20241022")
HOSTILE = ("[bold]bold[/]", "[/]", "a[red]b", "tab\there")


@pytest.fixture(scope="module")
def plan(sample_logs, sample_catalog) -> Plan:
    """The README's demo plan (keep, add, evict, idle and excluded models; a price-bound LCB)."""
    config = PlanConfig(budget=0.002, max_deployed=3, as_of=dt.datetime(2026, 11, 16, 2, tzinfo=UTC))
    return make_plan(sample_logs, sample_catalog, config)


def rendered(render, result, width: int, encoding: str = "utf-8") -> list[str]:
    buffer = io.BytesIO()
    stream = io.TextIOWrapper(buffer, encoding=encoding)  # a pipe: no colours, no terminal
    render(result, Console(file=stream, width=width, color_system=None))
    stream.flush()
    return buffer.getvalue().decode(encoding).splitlines()


def renamed(plan: Plan, names: dict[str, str]) -> Plan:
    """The same plan with its models renamed (every table, the evictions and the exclusions)."""
    def name(old: str) -> str:
        return names.get(old, old)

    return dataclasses.replace(
        plan,
        candidates=tuple(dataclasses.replace(m, model=name(m.model)) for m in plan.candidates),
        evicted=tuple((name(m), why) for m, why in plan.evicted),
        excluded=tuple((name(m), why) for m, why in plan.excluded),
    )


def assert_readable(lines: list[str], width: int, names: list[str]) -> None:
    too_long = [line for line in lines if len(line) > width]
    assert not too_long, f"lines wider than {width}: {too_long}"
    for name in names:
        assert any(name in line for line in lines), f"{name!r} is not whole in:\n" + "\n".join(lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_plan_fits_the_width_and_shows_every_name_whole(plan: Plan, width: int) -> None:
    lines = rendered(render_plan, plan, width)
    names = [m.model for m in plan.candidates] + [m for m, _ in plan.excluded]
    assert_readable(lines, width, names)
    text = "\n".join(lines)
    for part in ("Deployment", "Routing table", "Expected per request", "Budget"):
        assert part in text
    for m in plan.deployment:  # each routing probability is printed
        assert f"{m.probability:.4f}" in text
    for reason in {m.reason for m in plan.deployment} | {why for _, why in plan.evicted}:
        assert " ".join(reason.split()) in " ".join(text.split())  # reasons are kept, wrapped


def test_plan_at_80_columns_keeps_long_model_names_whole(plan: Plan) -> None:
    deployed = [m.model for m in plan.deployment]
    plan = renamed(plan, dict(zip(deployed, LONG, strict=True)))
    for width in WIDTHS:
        assert_readable(rendered(render_plan, plan, width), width, list(LONG))
    lines = rendered(render_plan, plan, 80)
    assert sum(LONG[0] in line for line in lines) == 2  # the deployment and the routing table


def test_the_table_layout_is_used_where_it_fits(plan: Plan) -> None:
    wide = rendered(render_plan, plan, 120)
    narrow = rendered(render_plan, plan, 60)
    header = next(line for line in wide if line.startswith("model") and "UCB" in line)
    assert "LCB" in header and "why" in header
    assert not any(line.startswith("model") and "UCB" in line and "reward" in line for line in narrow)


def test_model_ids_are_never_read_as_markup(plan: Plan) -> None:
    names = [m.model for m in plan.candidates]
    hostile = dict(zip(names, HOSTILE, strict=False))
    lines = rendered(render_plan, renamed(plan, hostile), 80)
    assert_readable(lines, 80, ["[bold]bold[/]", "[/]", "a[red]b", "tab\\there"])


def test_a_newline_in_an_id_stays_on_one_line(plan: Plan) -> None:
    first = plan.deployment[0].model
    lines = rendered(render_plan, renamed(plan, {first: "two\nlines"}), 80)
    assert sum("two\\nlines" in line for line in lines) == 2
    assert not any(line.strip() == "lines" for line in lines)


def test_an_ascii_console_gets_escapes_not_an_encoding_error(plan: Plan) -> None:
    first = plan.deployment[0].model
    lines = rendered(render_plan, renamed(plan, {first: "modèle-ü"}), 80, encoding="ascii")
    assert sum("mod\\xe8le-\\xfc" in line for line in lines) == 2


@pytest.fixture(scope="module")
def replay_result() -> ReplayResult:
    """A small full-information world whose model ids are long, arriving over the run."""
    rng = np.random.default_rng(0)
    models = LONG + ("openai/gpt-4o-mini-2024-07-18", "qwen/qwen-2.5-72b-instruct")
    n, prompts = len(models), 80
    reward = (rng.random((prompts, n)) < rng.uniform(0.3, 0.9, n)).astype(float)
    cost = rng.uniform(0.1, 1.0, n) * rng.uniform(0.5, 1.5, (prompts, n))
    outcomes = OutcomeMatrix(tuple(f"s{i}" for i in range(prompts)), models, reward, cost)
    start = dt.datetime(2025, 1, 1, tzinfo=UTC)
    catalog = pl.DataFrame(
        {"model": list(models), "released": [start + dt.timedelta(days=10 * j) for j in range(n)],
         "retired": [None] * n, "max_share": [1.0] * n},
        schema_overrides={"retired": pl.Datetime("us", "UTC"), "released": pl.Datetime("us", "UTC")},
    )
    config = ReplayConfig(budget=0.5, max_deployed=3, horizon=2000, stages=6, seeds=2)
    return replay(outcomes, catalog, config)


@pytest.mark.parametrize("width", WIDTHS)
def test_replay_fits_the_width_and_shows_every_name_whole(replay_result: ReplayResult,
                                                          width: int) -> None:
    lines = rendered(render_replay, replay_result, width)
    policies = [str(p.policy) for p in replay_result.policies]
    shown = {m.split("/")[-1] for stage in replay_result.oracle for m in
             (replay_result.models[j] for j in stage.models)}
    assert_readable(lines, width, policies + sorted(shown))
    text = "\n".join(lines)
    for p in replay_result.policies:
        assert f"{p.mean_reward:.4f}" in text and f"{p.suboptimality:.2%}" in text


def test_replay_on_an_ascii_console_spells_plus_minus(replay_result: ReplayResult) -> None:
    lines = rendered(render_replay, replay_result, 80, encoding="ascii")
    assert any("+-" in line for line in lines)


@pytest.mark.parametrize("width", [0, 1, 39])
def test_a_console_too_narrow_to_read_is_taken_as_40_columns(plan: Plan, width: int) -> None:
    """COLUMNS=0 once printed nothing at all (exit 0); COLUMNS=1 one character a line."""
    lines = rendered(render_plan, plan, width)
    assert_readable(lines, 40, [m.model for m in plan.deployment])
