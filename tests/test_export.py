"""stageroute export: integer weights within 1% of the table, and configs the gateways read."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stageroute.errors import BadDataError, InputMissingError, UsageError
from stageroute.export import (
    MAX_WEIGHT_TOTAL,
    ExportFormat,
    Target,
    export_plan,
    integer_weights,
    k8s_names,
    litellm_config,
    portkey_config,
)
from stageroute_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_logs"
RFC1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
ROUTING = [("openai/gpt-4o-mini", 0.55), ("Claude_3.5 Haiku", 0.3), ("tiny", 0.15), ("idle", 0.0)]


def plan_doc(routing: list[tuple[str, float]], dropped: float = 0.0) -> dict[str, object]:
    """The keys of a plan JSON that export and diff read."""
    return {"schema_version": 1,
            "window": {"start": "2026-11-16T02:00:00Z", "end": "2026-11-23T02:00:00Z"},
            "deployment": [{"model": m, "action": "keep"} for m, _ in routing],
            "routing": [{"model": m, "probability": p} for m, p in routing], "dropped": dropped}


def write_plan(path: Path, routing: list[tuple[str, float]], dropped: float = 0.0) -> Path:
    path.write_text(json.dumps(plan_doc(routing, dropped)))
    return path


def proportions(values: list[float] | list[int]) -> list[Fraction]:
    """Exact shares of the total (an independent computation of what the weights mean)."""
    exact = [Fraction(v) for v in values]
    return [v / sum(exact) for v in exact]


def assert_within_one_percent(weights: list[int], shares: list[float]) -> None:
    """Every proportion within 1 percentage point, and within 1% of itself down to shares 1e-4."""
    for w, p in zip(proportions(weights), proportions(shares), strict=True):
        assert abs(w - p) <= Fraction(1, 100)
        if p >= Fraction(1, 10_000):
            assert abs(w - p) <= p / 100
        assert (w > 0) == (p > 0)  # a routed model never vanishes, an idle one gets nothing


# --- integer weights ----------------------------------------------------------------------------

shares_strategy = st.lists(
    st.one_of(st.floats(0, 1), st.floats(1e-9, 1e-3), st.just(0.0)), min_size=1, max_size=12,
).filter(lambda xs: sum(xs) > 0)


@settings(max_examples=400, deadline=None)
@given(shares_strategy)
def test_weights_keep_the_proportions_within_one_percent(shares: list[float]) -> None:
    weights = integer_weights(shares)
    assert all(isinstance(w, int) and w >= 0 for w in weights)
    assert sum(weights) in {10**k for k in range(3, 7)}  # 1000, raised tenfold at most to 1e6
    assert sum(weights) <= MAX_WEIGHT_TOTAL
    assert_within_one_percent(weights, shares)


def test_weights_known_answers() -> None:
    assert integer_weights([0.5, 0.3, 0.2]) == [500, 300, 200]
    assert integer_weights([1 / 3, 1 / 3, 1 / 3]) == [334, 333, 333]  # remainder to the first
    assert integer_weights([0.9995, 0.0005]) == [999_500, 500]  # tiny share: the total is raised
    assert integer_weights([1 - 1e-9, 1e-9]) == [999_999, 1]  # below 1e-6: weight 1, not 0
    assert integer_weights([0.6, 0.0, 0.4]) == [600, 0, 400]


@pytest.mark.parametrize("bad", [[], [0.0, 0.0], [0.5, -0.1], [float("nan"), 1.0]])
def test_weights_refuse_a_table_that_routes_nothing(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="shares must be"):
        integer_weights(bad)


# --- the three formats --------------------------------------------------------------------------

def test_litellm_config_as_litellm_documents_it(tmp_path: Path) -> None:
    result = export_plan(write_plan(tmp_path / "p.json", ROUTING), ExportFormat.LITELLM)
    doc = yaml.safe_load(result.text)
    assert set(doc) == {"model_list", "router_settings"}
    assert doc["router_settings"] == {"routing_strategy": "simple-shuffle"}
    entries = doc["model_list"]
    assert {e["model_name"] for e in entries} == {"stageroute"}
    assert [e["litellm_params"]["model"] for e in entries] == [m for m, p in ROUTING if p > 0]
    weights = [e["litellm_params"]["weight"] for e in entries]
    assert all(type(w) is int for w in weights)
    assert_within_one_percent(weights, [p for _, p in ROUTING if p > 0])
    assert all(set(e["litellm_params"]) == {"model", "weight"} for e in entries)  # no catalog
    assert "# model 'idle' has routing probability 0" in result.text  # said where it is left out
    assert result.notes == ("model 'idle' has routing probability 0 in the plan and is left out "
                            "of the gateway config",)


def test_envoy_route_as_envoy_ai_gateway_documents_it(tmp_path: Path) -> None:
    result = export_plan(write_plan(tmp_path / "p.json", ROUTING), ExportFormat.ENVOY, "chat")
    doc = yaml.safe_load(result.text)
    assert doc["apiVersion"] == "aigateway.envoyproxy.io/v1alpha1"
    assert doc["kind"] == "AIGatewayRoute"
    assert doc["metadata"]["name"] == "chat"
    (rule,) = doc["spec"]["rules"]
    assert rule["matches"] == [{"headers": [{"type": "Exact", "name": "x-ai-eg-model",
                                             "value": "chat"}]}]
    refs = rule["backendRefs"]
    assert [r["name"] for r in refs] == ["openai-gpt-4o-mini", "claude-3-5-haiku", "tiny"]
    assert all(RFC1123.fullmatch(r["name"]) and len(r["name"]) <= 63 for r in refs)
    assert [r["modelNameOverride"] for r in refs] == ["openai/gpt-4o-mini", "Claude_3.5 Haiku",
                                                      "tiny"]
    assert_within_one_percent([r["weight"] for r in refs], [0.55, 0.3, 0.15])
    assert "# backend claude-3-5-haiku: model Claude_3.5 Haiku" in result.text  # the mapping


def test_portkey_config_as_portkey_documents_it(tmp_path: Path) -> None:
    result = export_plan(write_plan(tmp_path / "p.json", ROUTING), ExportFormat.PORTKEY)
    doc = json.loads(result.text)
    assert doc["strategy"] == {"mode": "loadbalance"}
    assert [t["override_params"]["model"] for t in doc["targets"]] == [m for m, p in ROUTING if p]
    assert_within_one_percent([t["weight"] for t in doc["targets"]], [0.55, 0.3, 0.15])


def test_catalog_columns_reach_the_configs(tmp_path: Path) -> None:
    catalog = tmp_path / "models.csv"
    catalog.write_text("model,released,litellm_model,rpm,tpm,provider\n"
                       "openai/gpt-4o-mini,2026-01-01,openai/gpt-4o-mini,500,200000,openai\n"
                       "Claude_3.5 Haiku,2026-01-01,anthropic/claude-3-5-haiku,,,anthropic\n"
                       "tiny,2026-01-01,,60,,\n")
    plan = write_plan(tmp_path / "p.json", ROUTING[:3])
    lite = yaml.safe_load(export_plan(plan, ExportFormat.LITELLM, catalog=catalog).text)
    assert [e["litellm_params"] for e in lite["model_list"]] == [
        {"model": "openai/gpt-4o-mini", "weight": 550, "rpm": 500, "tpm": 200000},
        {"model": "anthropic/claude-3-5-haiku", "weight": 300},
        {"model": "tiny", "weight": 150, "rpm": 60},
    ]
    portkey = json.loads(export_plan(plan, ExportFormat.PORTKEY, catalog=catalog).text)
    assert [t.get("provider") for t in portkey["targets"]] == ["openai", "anthropic", None]


def test_a_routed_model_missing_from_the_catalog_is_an_error(tmp_path: Path) -> None:
    catalog = tmp_path / "models.csv"
    catalog.write_text("model,released\ntiny,2026-01-01\nidle,2026-01-01\n")
    with pytest.raises(BadDataError, match="routes to 'openai/gpt-4o-mini', which catalog"):
        export_plan(write_plan(tmp_path / "p.json", ROUTING), ExportFormat.LITELLM,
                    catalog=catalog)


def test_dropped_traffic_is_noted(tmp_path: Path) -> None:
    result = export_plan(write_plan(tmp_path / "p.json", [("a", 0.6), ("b", 0.2)], dropped=0.2),
                         ExportFormat.PORTKEY)
    assert any("refuses a share 0.2" in n for n in result.notes)
    assert [t["weight"] for t in json.loads(result.text)["targets"]] == [750, 250]


def test_one_group_per_segment() -> None:
    segments = {"code": (Target("a", 0.7, 700), Target("b", 0.3, 300)),
                "chat": (Target("b", 1.0, 1000),)}
    lite = yaml.safe_load(litellm_config(segments, "sr"))
    assert [(e["model_name"], e["litellm_params"]["model"]) for e in lite["model_list"]] == [
        ("sr-code", "a"), ("sr-code", "b"), ("sr-chat", "b")]
    portkey = json.loads(portkey_config(segments, "sr"))
    assert portkey["strategy"]["mode"] == "conditional"
    assert [c["then"] for c in portkey["strategy"]["conditions"]] == ["sr-code", "sr-chat"]
    assert [(t["name"], [u["weight"] for u in t["targets"]]) for t in portkey["targets"]] == [
        ("sr-code", [700, 300]), ("sr-chat", [1000])]


def test_kubernetes_names_are_valid_and_unique() -> None:
    ids = ["A_b", "a-b", "x" * 80, "x" * 81, "---", "ünïcode/Model:v1"]
    names = k8s_names(ids)
    assert len(set(names.values())) == len(ids)
    assert all(RFC1123.fullmatch(n) and len(n) <= 63 for n in names.values())
    assert names["ünïcode/Model:v1"] == "n-code-model-v1"
    assert names["---"] == "model"
    assert names["A_b"].startswith("a-b-") and names["a-b"].startswith("a-b-")  # both hashed


@pytest.mark.parametrize(("text", "error", "words"), [
    ("[]", BadDataError, ["holds an array", "not a plan object"]),
    ('{"schema_version": 2}', BadDataError, ["schema_version 2"]),
    ('{"schema_version": 1}', BadDataError, ["no 'routing' rows"]),
    ('{"schema_version": 1, "routing": [{"model": "a", "probability": 1.5}]}', BadDataError,
     ["routing row 1", "probability\" in [0, 1]"]),
    ('{"schema_version": 1, "routing": [{"model": "a", "probability": 0}]}', BadDataError,
     ["routes no traffic"]),
    ('{"schema_version": 1, "routing": [{"model": "a", "probability": 0.5}, '
     '{"model": "a", "probability": 0.5}]}', BadDataError, ["lists a model twice"]),
    ("{", BadDataError, ["not valid JSON"]),
])
def test_invalid_plan(tmp_path: Path, text: str, error: type, words: list[str]) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(error) as info:
        export_plan(path, ExportFormat.LITELLM)
    for word in words:
        assert word in str(info.value)


def test_missing_plan_and_bad_model_name(tmp_path: Path) -> None:
    with pytest.raises(InputMissingError, match="does not exist, pass a plan JSON"):
        export_plan(tmp_path / "nope.json", ExportFormat.ENVOY)
    with pytest.raises(UsageError, match="--model-name"):
        export_plan(write_plan(tmp_path / "p.json", ROUTING), ExportFormat.LITELLM, " ")


# --- end to end ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real plan of the sample logs, from ``stageroute plan --json``."""
    result = CliRunner().invoke(app, [
        "plan", "--logs", str(SAMPLE / "logs.parquet"), "--catalog", str(SAMPLE / "catalog.csv"),
        "--budget", "0.002", "--max-deployed", "3", "--as-of", "2026-11-16T02:00:00Z", "--json",
        "-q"])
    assert result.exit_code == 0, result.output
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    path.write_text(result.stdout)
    return path


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_sample_plan_exports_end_to_end(sample_plan: Path, tmp_path: Path, fmt: str) -> None:
    table = [(r["model"], r["probability"]) for r in json.loads(sample_plan.read_text())["routing"]]
    routed = [(m, p) for m, p in table if p > 0]
    out = tmp_path / f"gateway.{fmt}"
    result = CliRunner().invoke(app, ["export", "--plan", str(sample_plan), "--format", fmt,
                                      "--output", str(out), "--catalog",
                                      str(SAMPLE / "catalog.csv")])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    text = out.read_text()
    if fmt == "litellm":
        pairs = [(e["litellm_params"]["model"], e["litellm_params"]["weight"])
                 for e in yaml.safe_load(text)["model_list"]]
    elif fmt == "envoy":
        pairs = [(r["modelNameOverride"], r["weight"])
                 for r in yaml.safe_load(text)["spec"]["rules"][0]["backendRefs"]]
    else:
        pairs = [(t["override_params"]["model"], t["weight"]) for t in json.loads(text)["targets"]]
    assert [m for m, _ in pairs] == [m for m, _ in routed]  # every routed model, in plan order
    assert_within_one_percent([w for _, w in pairs], [p for _, p in routed])
    stdout = CliRunner().invoke(app, ["export", "--plan", str(sample_plan), "--format", fmt,
                                      "--catalog", str(SAMPLE / "catalog.csv")])
    assert stdout.exit_code == 0 and stdout.stdout == text  # same config on stdout


def test_cli_notes_a_model_left_out_on_stderr(tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "p.json", ROUTING)
    result = CliRunner().invoke(app, ["export", "--plan", str(plan), "--format", "portkey"])
    assert result.exit_code == 0, result.output
    assert "stageroute: note: model 'idle' has routing probability 0" in result.stderr
    quiet = CliRunner().invoke(app, ["export", "--plan", str(plan), "--format", "portkey", "-q"])
    assert quiet.stderr == "" and json.loads(quiet.stdout)["targets"]
