"""Gateway configs from a plan (``stageroute export``): LiteLLM, Envoy AI Gateway, Portkey.

The plan's routing table becomes integer weights (``integer_weights``) in the gateway's own
config. Every writer takes a mapping segment -> table and emits one group per segment: a plan of
``plan --segments`` has one table per segment (routing rows with ``segment``), any other plan one
(``DEFAULT_SEGMENT``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from stageroute.errors import BadDataError, UsageError, shown
from stageroute.inputs.catalog import MAX_ID_LENGTH, has_hidden, read_catalog
from stageroute.inputs.previous import HINT, read_plan

WEIGHT_TOTAL = 1000  # the weights' sum, raised (x10) until every share has RELATIVE_UNITS units
RELATIVE_UNITS = 100  # units a share needs for rounding to move it by under 1% of itself
MAX_WEIGHT_TOTAL = 1_000_000  # Gateway API's largest backendRef weight
DEFAULT_SEGMENT = "all"
K8S_NAME_MAX = 63  # RFC 1123 label
ENVOY_MODEL_HEADER = "x-ai-eg-model"  # Envoy AI Gateway puts the request's model name here


class ExportFormat(StrEnum):
    """The gateways ``stageroute export`` writes for."""

    LITELLM = "litellm"
    ENVOY = "envoy"
    PORTKEY = "portkey"


@dataclass(frozen=True, slots=True)
class Target:
    """One routed model of a segment: its share of the segment's traffic and its integer weight;
    ``litellm_model``, ``rpm``, ``tpm`` and ``provider`` come from the catalog when given."""

    model: str
    probability: float
    weight: int
    litellm_model: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class Export:
    """A gateway config: its text, and notes for the operator (models left out)."""

    text: str
    notes: tuple[str, ...]
    segments: Mapping[str, tuple[Target, ...]]


def integer_weights(shares: Sequence[float], total: int = WEIGHT_TOTAL) -> list[int]:
    """Integer weights proportional to ``shares`` (largest-remainder rounding).

    The weights sum to ``total``, raised tenfold (up to ``MAX_WEIGHT_TOTAL``) while a positive
    share is below ``RELATIVE_UNITS`` units: each proportion is then within 1/total (0.1
    percentage point) of its share, and within 1% of it relatively for shares down to 1e-4. A
    share that would still round to 0 gets weight 1, taken from the largest weight.

    >>> integer_weights([0.5, 0.3, 0.2])
    [500, 300, 200]
    >>> integer_weights([0.9995, 0.0005])
    [999500, 500]
    """
    if any(not math.isfinite(s) or s < 0 for s in shares) or not any(shares):
        raise ValueError(f"shares must be finite, >= 0 and not all 0, got {list(shares)}")
    norm = math.fsum(shares)
    props = [s / norm for s in shares]
    while total < MAX_WEIGHT_TOTAL and any(0 < p * total < RELATIVE_UNITS for p in props):
        total *= 10
    exact = [p * total for p in props]
    weights = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(props)), key=lambda i: (weights[i] - exact[i], i))
    for i in by_remainder[: total - sum(weights)]:
        weights[i] += 1
    for i, p in enumerate(props):
        if p > 0 and weights[i] == 0:
            weights[i] = 1
            weights[max(range(len(weights)), key=lambda j: (weights[j], -j))] -= 1
    return weights


def read_routing(plan_path: str | Path, option: str = "--plan",
                 ) -> tuple[dict[str, Any], list[tuple[str, float]]]:
    """The plan document at ``plan_path`` and its routing rows (model, probability) for a plan
    with one table; ``option`` names where the path was given, for the messages.

    Raises:
        InputMissingError: no such file.
        BadDataError: not a plan JSON, its routing rows are not (model id, probability in
            [0, 1]) with a positive total, or the plan has one table per segment.
    """
    doc, tables, segmented = _routing_tables(plan_path, option)
    if segmented:
        raise BadDataError(f"plan {plan_path} has one routing table per segment (plan "
                           f"--segments); {option} reads plans with one table")
    return doc, tables[DEFAULT_SEGMENT]


def read_segment_routing(plan_path: str | Path, option: str = "--plan",
                         ) -> tuple[dict[str, Any], dict[str, list[tuple[str, float]]]]:
    """The plan document and its routing rows (model, probability) per segment, in the plan's
    order: the rows' ``segment`` (``plan --segments``), or ``DEFAULT_SEGMENT`` for a plan with
    one table.

    Raises:
        InputMissingError: no such file.
        BadDataError: not a plan JSON, or a routing row that is not (model id, probability in
            [0, 1], segment text where given), a model twice in a segment, a segment (or plan)
            that routes no traffic.
    """
    doc, tables, _ = _routing_tables(plan_path, option)
    return doc, tables


def _routing_tables(plan_path: str | Path, option: str,
                    ) -> tuple[dict[str, Any], dict[str, list[tuple[str, float]]], bool]:
    """(document, rows per segment, whether the rows name segments)."""
    doc = read_plan(plan_path, option=option)
    routing = doc.get("routing")
    if not isinstance(routing, list) or not routing:
        raise BadDataError(f"plan {plan_path} has no 'routing' rows, so it routes nothing; "
                           f"pass {HINT}")
    segmented = any(isinstance(row, dict) and "segment" in row for row in routing)
    tables: dict[str, list[tuple[str, float]]] = {}
    for i, row in enumerate(routing):
        model = row.get("model") if isinstance(row, dict) else None
        prob = row.get("probability") if isinstance(row, dict) else None
        segment = row.get("segment") if isinstance(row, dict) and segmented else DEFAULT_SEGMENT
        if (not isinstance(model, str) or not model or isinstance(prob, bool)
                or not isinstance(prob, int | float) or not 0 <= prob <= 1
                or not isinstance(segment, str)):
            raise BadDataError(
                f"plan {plan_path}, routing row {i + 1} is {shown(row, 80)}; each row needs "
                "\"model\": \"<id>\" and \"probability\" in [0, 1]"
                + (" and \"segment\": \"<name>\"" if segmented else "") + "; pass " + HINT
            )
        if has_hidden(model) or len(model) > MAX_ID_LENGTH:
            raise BadDataError(
                f"plan {plan_path}, routing row {i + 1} has the model {shown(model, 80)}, which "
                "holds a control or invisible character or is too long for a model id (the "
                f"catalog refuses such ids); pass {HINT}")
        tables.setdefault(segment, []).append((model, float(prob)))
    for segment, rows in tables.items():
        where = f"segment {shown(segment, 60)} of " if segmented else ""
        if len({m for m, _ in rows}) < len(rows):
            raise BadDataError(f"{where}plan {plan_path} lists a model twice in 'routing'; "
                               f"pass {HINT}")
        if sum(p for _, p in rows) <= 0:
            raise BadDataError(f"{where}plan {plan_path} routes no traffic (every probability "
                               "is 0); a gateway needs at least one model with traffic")
    _check_totals(doc, tables, plan_path, segmented)
    if segmented:  # each becomes a group name: the rule plan --segments applied to the logs
        from stageroute.inputs.segmentation import check_segment_names

        check_segment_names(list(tables), f"plan {plan_path}")
    return doc, tables, segmented


SUM_TOLERANCE = 1e-6  # a plan's probabilities are rounded to 12 significant digits


def _check_totals(doc: dict[str, Any], tables: dict[str, list[tuple[str, float]]],
                  plan_path: str | Path, segmented: bool) -> None:
    """A table's probabilities add up to 1 less the share the plan drops (``dropped``; with one
    table per segment, at most 1), and every routed model is in the plan's deployment."""
    dropped = doc.get("dropped", 0.0)
    if isinstance(dropped, bool) or not isinstance(dropped, int | float) or not 0 <= dropped <= 1:
        raise BadDataError(f"plan {plan_path}: 'dropped' is {json.dumps(dropped)[:40]}, expected the "
                           f"share of traffic the plan drops, a number in [0, 1]; pass {HINT}")
    dropped = float(dropped)
    deployment = doc.get("deployment")
    if not isinstance(deployment, list) or not all(isinstance(e, dict) for e in deployment):
        raise BadDataError(f"plan {plan_path} has no 'deployment' list (the models deployed, "
                           f"which the routed ones must be among); pass {HINT}")
    deployed = {e.get("model") for e in deployment}
    for segment, rows in tables.items():
        where = f"segment {shown(segment, 60)} of " if segmented else ""
        total = sum(p for _, p in rows)
        low = 1.0 - (1.0 if segmented and dropped > 0 else dropped)
        if not low - SUM_TOLERANCE <= total <= 1.0 + SUM_TOLERANCE:
            expected = ("at most 1" if segmented and dropped > 0 else "1" if dropped == 0
                        else f"1 less 'dropped' ({dropped:.6g}) = {1.0 - dropped:.6g}")
            raise BadDataError(
                f"{where}plan {plan_path}: the routing probabilities add up to {total:.6g}, "
                f"expected {expected}; pass {HINT}")
        stray = [m for m, p in rows if p > 0 and m not in deployed]
        if stray:
            raise BadDataError(
                f"{where}plan {plan_path} routes traffic to {shown(stray[0], 60)}, which is not "
                f"in its 'deployment'; pass {HINT}")


def _catalog_columns(catalog: str | Path | None, models: Sequence[str],
                     plan_path: str | Path) -> dict[str, dict[str, Any]]:
    """The export columns of the catalog for ``models`` (empty without a catalog)."""
    if catalog is None:
        return {}
    frame, _ = read_catalog(catalog)
    rows = {r["model"]: r for r in frame.select(
        "model", "litellm_model", "rpm", "tpm", "provider").iter_rows(named=True)}
    missing = [m for m in models if m not in rows]
    if missing:
        raise BadDataError(
            f"plan {plan_path} routes to {shown(missing[0], 60)}, which catalog {catalog} does "
            "not list; export with the catalog the plan was made with"
        )
    return rows


def build_targets(rows: Sequence[tuple[str, float]], columns: Mapping[str, Mapping[str, Any]],
                  ) -> tuple[tuple[Target, ...], tuple[str, ...]]:
    """The targets of the routed models (probability > 0), and one note per model left out."""
    routed = [(m, p) for m, p in rows if p > 0]
    weights = integer_weights([p for _, p in routed])
    targets = []
    for (model, prob), weight in zip(routed, weights, strict=True):
        col = columns.get(model, {})
        targets.append(Target(model, prob, weight, litellm_model=col.get("litellm_model") or None,
                              rpm=col.get("rpm"), tpm=col.get("tpm"),
                              provider=col.get("provider") or None))
    notes = tuple(f"model {shown(m, 60)} has routing probability 0 in the plan and is left out of "
                  "the gateway config" for m, p in rows if p <= 0)
    return tuple(targets), notes


def export_plan(plan_path: str | Path, fmt: ExportFormat, model_name: str = "stageroute",
                catalog: str | Path | None = None) -> Export:
    """The gateway config of ``fmt`` for the plan JSON at ``plan_path``.

    Raises:
        InputMissingError: the plan or the catalog is missing.
        BadDataError: not a plan JSON, a catalog that is invalid or misses a routed model.
        UsageError: an empty ``model_name``, or one with spaces or control characters.
    """
    if not model_name or not model_name.isprintable() or model_name != "".join(model_name.split()):
        raise UsageError(f"--model-name {shown(model_name)} is not a model name clients can send; "
                         "give one word such as stageroute")
    doc, tables = read_segment_routing(plan_path)
    routed = list(dict.fromkeys(m for rows in tables.values() for m, p in rows if p > 0))
    columns = _catalog_columns(catalog, routed, plan_path)
    segments: dict[str, tuple[Target, ...]] = {}
    notes: tuple[str, ...] = ()
    for segment, rows in tables.items():
        segments[segment], left_out = build_targets(rows, columns)
        where = "" if len(tables) == 1 else f"segment {shown(segment, 60)}: "
        notes += tuple(where + note for note in left_out)
    dropped = doc.get("dropped")
    if isinstance(dropped, int | float) and not isinstance(dropped, bool) and dropped > 0:
        notes += (f"the plan refuses a share {dropped:.4g} of requests (--allow-drop); the "
                  "gateway config routes all of them among the models above",)
    window: dict[str, Any] = doc["window"] if isinstance(doc.get("window"), dict) else {}
    header = [f"stageroute export of plan {Path(plan_path).name} (window {window.get('start')} to "
              f"{window.get('end')})", *notes]
    writer = {ExportFormat.LITELLM: litellm_config, ExportFormat.ENVOY: envoy_config,
              ExportFormat.PORTKEY: portkey_config}[fmt]
    return Export(writer(segments, model_name, header), notes, segments)


def group_name(model_name: str, segment: str, segments: Mapping[str, object]) -> str:
    """The gateway's model name of a segment: ``model_name`` alone while there is one segment
    (and for the segment "", the rows whose segment was null), else
    ``model_name-<segmentation.group_key(segment)>`` (whitespace as "-"; ``check_segment_names``
    refuses two segments that would name one group)."""
    from stageroute.inputs.segmentation import group_key

    return model_name if len(segments) == 1 or not segment else f"{model_name}-{group_key(segment)}"


def _comments(header: Sequence[str]) -> str:
    """YAML comment lines; what the plan file brings (its name, window, model ids) cannot end
    a comment: characters YAML breaks lines at, or any other unprintable one, are escaped."""
    return "".join(f"# {_printable(line)}\n" for line in header)


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)


def _yaml(doc: Any) -> str:
    import yaml

    return str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True))


def litellm_config(segments: Mapping[str, Sequence[Target]], model_name: str,
                   header: Sequence[str] = ()) -> str:
    """A LiteLLM proxy config: one ``model_list`` group per segment, weighted simple-shuffle."""
    entries = []
    for segment, targets in segments.items():
        for t in targets:
            params: dict[str, Any] = {"model": t.litellm_model or t.model, "weight": t.weight}
            params.update({k: v for k, v in (("rpm", t.rpm), ("tpm", t.tpm)) if v is not None})
            entries.append({"model_name": group_name(model_name, segment, segments),
                            "litellm_params": params})
    doc = {"model_list": entries, "router_settings": {"routing_strategy": "simple-shuffle"}}
    return _comments(header) + _yaml(doc)


def k8s_names(models: Sequence[str]) -> dict[str, str]:
    """RFC 1123 names for model ids, unique: lowercase, every run of characters outside
    [a-z0-9] becomes one '-', '-' trimmed at both ends, cut to 54 characters; an id that was cut
    or whose name another id also maps to gets '-' and 8 hex digits of its SHA-256 appended.

    >>> k8s_names(["openai/GPT-4o_mini", "claude 3.5"])
    {'openai/GPT-4o_mini': 'openai-gpt-4o-mini', 'claude 3.5': 'claude-3-5'}
    """
    def base(model: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "model"

    bases = {m: base(m) for m in models}
    counts: dict[str, int] = {}
    for b in bases.values():
        counts[b[:54]] = counts.get(b[:54], 0) + 1
    names = {}
    for m, b in bases.items():
        if len(b) > 54 or counts[b[:54]] > 1:
            digest = hashlib.sha256(m.encode("utf-8")).hexdigest()[:8]
            b = f"{b[:54].rstrip('-')}-{digest}"
        names[m] = b
    if len(set(names.values())) < len(names):  # 8 hex digits colliding as well
        raise BadDataError(f"model ids {shown(list(models), 200)} do not map to distinct "
                           "Kubernetes names; rename one in the catalog")
    return names


def envoy_config(segments: Mapping[str, Sequence[Target]], model_name: str,
                 header: Sequence[str] = ()) -> str:
    """An Envoy AI Gateway ``AIGatewayRoute``: one rule per segment, matched on the model name
    clients send, whose ``backendRefs`` (one AIServiceBackend per model) carry the weights."""
    names = k8s_names(sorted({t.model for ts in segments.values() for t in ts}))
    route = k8s_names([model_name])[model_name]
    rules = []
    for segment, targets in segments.items():
        match = {"headers": [{"type": "Exact", "name": ENVOY_MODEL_HEADER,
                              "value": group_name(model_name, segment, segments)}]}
        refs = [{"name": names[t.model], "modelNameOverride": t.litellm_model or t.model,
                 "weight": t.weight} for t in targets]
        rules.append({"matches": [match], "backendRefs": refs})
    doc = {"apiVersion": "aigateway.envoyproxy.io/v1alpha1", "kind": "AIGatewayRoute",
           "metadata": {"name": route},
           "spec": {"parentRefs": [{"name": route, "kind": "Gateway",
                                    "group": "gateway.networking.k8s.io"}],
                    "rules": rules}}
    mapping = [f"backend {names[m]}: model {m}" for m in names if names[m] != m]
    return _comments([*header, *mapping]) + _yaml(doc)


def portkey_config(segments: Mapping[str, Sequence[Target]], model_name: str,
                   header: Sequence[str] = ()) -> str:
    """A Portkey config: ``loadbalance`` over the targets; several segments become a
    ``conditional`` config on ``metadata.segment`` whose targets are the loadbalance groups."""
    def group(targets: Sequence[Target]) -> dict[str, Any]:
        return {"strategy": {"mode": "loadbalance"},
                "targets": [{**({"provider": t.provider} if t.provider else {}),
                             "override_params": {"model": t.litellm_model or t.model},
                             "weight": t.weight} for t in targets]}

    if len(segments) == 1:
        doc = group(next(iter(segments.values())))
    else:
        names = {s: group_name(model_name, s, segments) for s in segments}
        doc = {"strategy": {"mode": "conditional",
                            "conditions": [{"query": {"metadata.segment": {"$eq": s}},
                                            "then": names[s]} for s in segments],
                            "default": names[next(iter(segments))]},
               "targets": [{"name": names[s], **group(ts)} for s, ts in segments.items()]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
