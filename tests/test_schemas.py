"""The published JSON Schemas (schemas/): valid, in line with SPEC 7/8 and the README, strict
enough to catch a broken document, and wired into the whole suite (tests/schema_guard.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import schema_guard
from conftest import AS_OF, CATALOG_CSV, REPO_ROOT, small_logs
from jsonschema import Draft202012Validator

from stageroute.options import Policy
from stageroute.plan import Plan, PlanConfig, make_plan, plan_document

README = (REPO_ROOT / "README.md").read_text()

# SPEC 7 (fixed keys) and SPEC 8 (per policy).
SPEC_PLAN = {
    "": {"schema_version", "window", "budget", "max_deployed", "solver", "deployment", "evicted",
         "routing", "expected", "over_budget"},
    "window": {"start", "end"},
    "deployment": {"model", "action", "n", "mean_reward", "reward_ucb", "mean_cost", "cost_lcb"},
    "evicted": {"model", "reason"},
    "routing": {"model", "probability", "max_share"},
    "expected": {"reward_ucb", "cost_lcb", "reward_mean", "cost_mean"},
}
SPEC_REPLAY = {
    "": {"schema_version", "horizon", "stages", "seeds", "budget", "max_deployed", "oracle_value",
         "policies"},
    "policies": {"policy", "mean_reward", "mean_cost", "cost_over_budget", "regret", "suboptimality",
                 "ci95", "suboptimality_at_cost", "budget_violation", "worst_stage_cost_over_budget"},
    "ci95": {"mean_reward", "suboptimality"},
}


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with a local ``$ref`` followed (through the ``else`` of a conditional $ref: the
    full-information branch of the replay's policy entries)."""
    while "$ref" in node or "$ref" in node.get("else", {}):
        node = node if "$ref" in node else node["else"]
        node = schema["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return node


def part(schema: dict[str, Any], key: str) -> dict[str, Any]:
    """The schema of the object under the top-level ``key`` (the items of an array)."""
    if not key:
        return schema
    node = resolve(schema, schema["properties"][key])
    return resolve(schema, node["items"]) if node.get("type") == "array" else node


def property_names(node: object) -> set[str]:
    """Every property name declared anywhere in a schema."""
    if isinstance(node, dict):
        names = set(node.get("properties", {})) | set(node.get("required", []))
        return names.union(*(property_names(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(property_names(v) for v in node))
    return set()


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """A real plan of the small 3-model log (its document is checked by the guard too)."""
    directory = tmp_path_factory.mktemp("logs")
    small_logs().write_parquet(directory / "logs.parquet")
    (directory / "catalog.csv").write_text(CATALOG_CSV)
    return make_plan(directory / "logs.parquet", directory / "catalog.csv",
                     PlanConfig(budget=0.01, max_deployed=2, as_of=AS_OF))


@pytest.mark.parametrize("kind", ["plan", "replay"])
def test_the_schemas_are_valid_draft_2020_12(kind: str) -> None:
    schema = schema_guard.schema(kind)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object" and schema.get("additionalProperties", True) is True


@pytest.mark.parametrize(("kind", "spec"), [("plan", SPEC_PLAN), ("replay", SPEC_REPLAY)])
def test_the_schemas_require_the_fixed_keys_of_the_spec(kind: str, spec: dict[str, set[str]]) -> None:
    schema = schema_guard.schema(kind)
    for key, fixed in spec.items():
        node = part(schema, key) if key != "ci95" else resolve(
            schema, part(schema, "policies")["properties"]["ci95"])
        assert fixed <= set(node["required"]), (key, fixed - set(node["required"]))
        assert set(node["required"]) <= set(node.get("properties", node["required"])), key


def test_every_policy_is_a_policy_name_of_the_schema() -> None:
    names = set(part(schema_guard.schema("replay"), "policies")["properties"]["policy"]["enum"])
    assert {str(p) for p in Policy} <= names
    # SPEC 5's fixed names of later policies, so that their documents validate when they come
    assert {"port", "stageroute-contextual", "oracle-contextual", "uniform"} <= names


def test_ci95_has_an_interval_for_every_figure_of_a_policy() -> None:
    policy = part(schema_guard.schema("replay"), "policies")
    figures = {k for k, v in policy["properties"].items() if v.get("type") == "number"}
    assert set(policy["properties"]["ci95"]["required"]) == figures


def test_the_plan_document_validates_and_the_wrapper_checks_it(plan: Plan) -> None:
    doc = plan_document(plan)  # the wrapped function (conftest installed the guard)
    assert schema_guard.problems("plan", doc, "test") == []
    before = schema_guard.CHECKED["plan", False]
    plan_document(replace(plan, over_budget="no"))  # type: ignore[arg-type]
    assert schema_guard.CHECKED["plan", False] == before + 1
    assert schema_guard.take() == [  # taken here, so this test passes
        "plan document from plan_document, at /over_budget: 'no' is not of type 'boolean'"]


def _without(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != key}


def _first(doc: dict[str, Any], key: str, **changes: Any) -> dict[str, Any]:
    """``doc`` with ``changes`` in the first entry of the list ``doc[key]``."""
    return {**doc, key: [{**doc[key][0], **changes}, *doc[key][1:]]}


def assert_caught(found: list[str], expected: str) -> None:
    """One problem, at one place, and ``expected`` says what (an anyOf also reports itself)."""
    assert any(f.startswith(expected) for f in found), found
    assert len({f.split(": ", 1)[0] for f in found}) == 1, found


PLAN_BREAKS = {
    "a fixed key missing": (lambda d: _without(d, "routing"), "/: 'routing' is a required property"),
    "an extra key missing": (lambda d: _without(d, "run_id"), "/: 'run_id' is a required property"),
    "a float count": (lambda d: _first(d, "deployment", n=2.5),
                      "/deployment/0/n: 2.5 is not of type 'integer'"),
    "a null bound": (lambda d: _first(d, "deployment", reward_ucb=None),
                     "/deployment/0/reward_ucb: None is not of type 'number'"),
    "a mean without rewards": (lambda d: _first(d, "deployment", n=0),
                               "/deployment/0/mean_reward: 0.5 is not of type 'null'"),
    "an unknown action": (lambda d: _first(d, "deployment", action="evict"),
                          "/deployment/0/action: 'evict' is not one of ['keep', 'add']"),
    "a string probability": (lambda d: _first(d, "routing", probability="0.5"),
                             "/routing/0/probability: '0.5' is not of type 'number'"),
    "no cap": (lambda d: {**d, "routing": [_without(d["routing"][0], "cap")]},
               "/routing/0: 'cap' is a required property"),
    "a local time": (lambda d: {**d, "window": {**d["window"], "start": "2026-03-01T00:00:00+01:00"}},
                     "/window/start: '2026-03-01T00:00:00+01:00' does not match"),
    "a refresh with max_changes": (lambda d: {**d, "routing_only": True, "max_changes": 1},
                                   "/max_changes: 1 is not of type 'null'"),
    "an integer schema version 2": (lambda d: {**d, "schema_version": 2}, "/schema_version: 1 was expected"),
}


@pytest.mark.parametrize("case", PLAN_BREAKS, ids=list(PLAN_BREAKS))
def test_a_broken_plan_document_is_caught(plan: Plan, case: str) -> None:
    doc = json.loads(json.dumps(plan_document(plan)))
    doc["deployment"][0].update(n=3, mean_reward=0.5)  # a model with rewards (the breaks need one)
    assert schema_guard.problems("plan", doc, "test") == []
    broken, message = PLAN_BREAKS[case]
    found = schema_guard.problems("plan", broken(doc), "test")
    assert_caught(found, f"plan document from test, at {message}")


def _replay_doc(seeds: int) -> dict[str, Any]:
    """A replay document as replay_document writes it (two policies, one stage)."""
    figures = {"mean_reward": 0.7, "mean_cost": 0.001, "cost_over_budget": 0.9, "regret": 12.5,
               "suboptimality": 0.03, "suboptimality_at_cost": 0.02, "oracle_value_at_cost": 0.71,
               "budget_violation": 0.0, "worst_stage_cost_over_budget": 1.1}
    ci95 = {k: ([v - 0.01, v + 0.01] if seeds >= 3 else None) for k, v in figures.items()}
    return {
        "schema_version": 1, "horizon": 1000, "stages": 1, "seeds": seeds, "budget": 0.002,
        "max_deployed": 2, "oracle_value": 0.72,
        "policies": [{"policy": "stageroute", **figures, "ci95": ci95, "rank": 1},
                     {"policy": "oracle", **figures, "ci95": ci95, "rank": None}],
        "units": {"mean_reward": "r", "mean_cost": "c", "regret": "g", "suboptimality": "s"},
        "gamma": 0.25, "first_seed": 0, "radius": "variance", "refresh": "query", "cost_gamma": 0.05,
        "budget_safe": False, "canary_share": 0.3, "min_samples": 40, "cost_scale": 0.01,
        "relative_budget": None,
        "timeline": [{"stage": 1, "start": "2026-01-01T00:00:00Z", "end": "2026-01-08T00:00:00.5Z",
                      "queries": 1000, "pool": ["a", "b"], "oracle": ["a"], "stageroute": ["b"]}],
    }


def _policy(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return _first(doc, "policies", **changes)


def _interval(doc: dict[str, Any], regret: object) -> dict[str, Any]:
    """``doc`` with the first policy's regret interval replaced."""
    return _policy(doc, ci95={**doc["policies"][0]["ci95"], "regret": regret})


REPLAY_BREAKS = {
    "a fixed key missing": (3, lambda d: _without(d, "oracle_value"), "/: 'oracle_value' is a required"),
    "SPEC 8 missing": (3, lambda d: {**d, "policies": [_without(d["policies"][0], "suboptimality_at_cost")]},
                       "/policies/0: 'suboptimality_at_cost' is a required property"),
    "an interval of three": (3, lambda d: _interval(d, [1, 2, 3]),
                             "/policies/0/ci95/regret: [1, 2, 3] is too long"),
    "a null interval with 3 seeds": (3, lambda d: _interval(d, None),
                                     "/policies/0/ci95/regret: None is not of type 'array'"),
    "an interval with 2 seeds": (2, lambda d: _interval(d, [1, 2]),
                                 "/policies/0/ci95/regret: [1, 2] is not of type 'null'"),
    "an unranked learner": (3, lambda d: _policy(d, rank=None),
                            "/policies/0/rank: None is not of type 'integer'"),
    "a ranked oracle": (3, lambda d: {**d, "policies": [d["policies"][0], {**d["policies"][1], "rank": 2}]},
                        "/policies/1/rank: 2 is not of type 'null'"),
    "a fractional rank": (3, lambda d: _policy(d, rank=1.5), "/policies/0/rank: 1.5 is not of type"),
    "an unknown policy": (3, lambda d: _policy(d, policy="random"),
                          "/policies/0/policy: 'random' is not one of"),
    "a refresh by name": (3, lambda d: {**d, "refresh": "daily"}, "/refresh: 'daily' is not valid under any"),
    "a refresh of 0": (3, lambda d: {**d, "refresh": 0}, "/refresh: 0 is not valid under any"),
    "a deployment that is not a list": (3, lambda d: {**d, "timeline": [{**d["timeline"][0],
                                                                        "stageroute": "b"}]},
                                        "/timeline/0/stageroute: 'b' is not of type 'array'"),
    "a float horizon": (3, lambda d: {**d, "horizon": 1000.5}, "/horizon: 1000.5 is not of type 'integer'"),
}


@pytest.mark.parametrize("case", REPLAY_BREAKS, ids=list(REPLAY_BREAKS))
def test_a_broken_replay_document_is_caught(case: str) -> None:
    seeds, broken, message = REPLAY_BREAKS[case]
    doc = _replay_doc(seeds)
    assert schema_guard.problems("replay", doc, "test") == []
    found = schema_guard.problems("replay", broken(doc), "test")
    assert_caught(found, f"replay document from test, at {message}")


def test_refresh_takes_query_or_a_positive_integer() -> None:
    for refresh in ("query", 1, 7):
        assert schema_guard.problems("replay", {**_replay_doc(3), "refresh": refresh}, "test") == []


@pytest.mark.parametrize(("args", "kind"), [
    (["python", "-m", "stageroute_cli", "plan", "--json"], "plan"),
    ([".venv/bin/stageroute", "replay", "--output", "r.json"], "replay"),
    ("stageroute plan --logs logs.parquet --json", "plan"),
    (["python", "-c", "import stageroute_cli", "stageroute.plan:make_plan", "SIGINT", "plan"], "plan"),
    (["python", "-m", "stageroute_cli", "diff", "plan", "replay"], None),
    (["stageroute", "export", "--plan", "plan", "--format", "portkey"], None),
    (["stageroute", "import", "routerbench", "--out", "plan"], None),
    (["python", "-c", "print(1)", "plan"], None),  # not stageroute
])
def test_only_plan_and_replay_command_lines_are_checked(args: Any, kind: str | None) -> None:
    assert schema_guard.command_kind(schema_guard.words(args)) == kind


INNER_TEST = '''
import json, subprocess, sys

import schema_guard
import stageroute.plan

GOOD = json.loads(open("good.json").read())
# a child that prints or writes the document it is given, as `stageroute <command>` would
CHILD = ("import json, sys  # stageroute\\n"
         "args = sys.argv[2:]\\n"
         "out = args[args.index('--output') + 1] if '--output' in args else None\\n"
         "open(out, 'w').write(sys.argv[1]) if out else print(sys.argv[1])\\n")


def child(doc, *args):
    subprocess.run([sys.executable, "-c", CHILD, json.dumps(doc), *args], check=True,
                   capture_output=True)


def test_broken_plan_made_in_process(monkeypatch):
    broken = {**GOOD, "over_budget": "no"}
    monkeypatch.setitem(schema_guard._ORIGINALS, "plan", lambda plan: broken)
    assert stageroute.plan.plan_document(None) is broken


def test_broken_plan_on_the_stdout_of_a_child():
    child({k: v for k, v in GOOD.items() if k != "routing"}, "plan", "--json")


def test_broken_replay_in_the_output_file_of_a_child():
    child({"schema_version": 1, "policies": []}, "replay", "--output", "replay.json")


def test_valid_plan_on_stdout_and_in_a_file():
    child(GOOD, "plan", "--json")
    child(GOOD, "plan", "--output", "plan.json")


def test_documents_of_other_commands_are_left_alone():
    child({"added": [], "evicted": []}, "diff", "a.json", "b.json", "--json")
    child({"strategy": {"mode": "loadbalance"}}, "export", "--plan", "plan", "--output", "x.json")
'''


def test_a_document_off_the_schema_fails_the_test_that_made_it(plan: Plan, tmp_path: Path) -> None:
    """The guard end to end, in a pytest of its own: three tests make broken documents (in
    process, on a child's stdout, in a child's --output file) and fail; the others pass."""
    (tmp_path / "good.json").write_text(json.dumps(plan_document(plan)))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(textwrap.dedent(f'''
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import schema_guard
        from schema_guard import pytest_runtest_call, pytest_sessionfinish  # noqa: F401
        schema_guard.install()
        '''))
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE",
                             "-c", "pytest.ini", "--rootdir", ".", "test_inner.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert re.search(r"\b3 failed, 2 passed\b", out), out
    for name, message in [
        ("test_broken_plan_made_in_process", "at /over_budget: 'no' is not of type 'boolean'"),
        ("test_broken_plan_on_the_stdout_of_a_child", "at /: 'routing' is a required property"),
        ("test_broken_replay_in_the_output_file_of_a_child", "at /: 'horizon' is a required property"),
    ]:
        assert f"FAILED test_inner.py::{name}" in out, (name, out)
        assert message in out, (message, out)
    assert len(re.findall(r"^E +AssertionError: \d+ schema violation", out, re.M)) == 3, out


def readme_keys(text: str) -> set[str]:
    """The key names a README JSON shorthand quotes (a quoted value follows ':' or '|')."""
    return {m.group(1) for m in re.finditer(r'"([^"]+)"', text)
            if not text[:m.start()].rstrip().endswith((":", "|"))}


def readme_enums(text: str) -> dict[str, set[str]]:
    """The values the README lists for a key: ``"action": "keep"|"add"``."""
    return {m.group(1): set(re.findall(r'"([^"]+)"', m.group(2)))
            for m in re.finditer(r'"(\w+)": ("[^"]+"(?:\|"[^"]+")+)', text)}


def test_the_readme_plan_document_agrees_with_the_schema() -> None:
    start = README.index("The JSON document (`--json`, `--output`) has the keys of the contract")
    body = README.index("\n", README.index("```", start)) + 1
    block = README[body:README.index("```", body)]
    schema, keys = schema_guard.schema("plan"), readme_keys(block)
    assert keys <= property_names(schema), keys - property_names(schema)
    for key in ("", "window", "deployment", "evicted", "routing", "expected"):
        required = set(part(schema, key)["required"])
        assert required <= keys, (key, required - keys)
    enums = readme_enums(block)
    assert set(enums) == {"action", "cost_bound"}
    for key, values in enums.items():
        assert set(part(schema, "deployment")["properties"][key]["enum"]) == values, key


def test_the_readme_replay_document_agrees_with_the_schema() -> None:
    start = README.index("`replay --json` prints `{")
    paragraph = README[start:README.index("\n\n", start)]
    shorthand = paragraph[paragraph.index("`{") + 1:paragraph.index("}`") + 1]
    schema, keys = schema_guard.schema("replay"), readme_keys(shorthand)
    assert keys <= property_names(schema), keys - property_names(schema)
    named = keys | set(re.findall(r"`(\w+)`", paragraph))  # the extras are named in backticks
    for key in ("", "policies"):
        required = set(part(schema, key)["required"])
        assert required <= named, (key, required - named)
    ci95 = part(schema, "policies")["properties"]["ci95"]
    assert {"mean_reward", "suboptimality"} <= set(ci95["required"])
    assert '`refresh`: a number or `"query"`' in paragraph
