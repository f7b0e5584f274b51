"""Reading a plan JSON (``read_plan``: for export and diff), and the deployment a routing refresh
keeps (``plan --routing-only``): read from a previous plan, checked against the stage's pool.

A previous plan is a plan JSON as ``plan --json`` and ``plan --output`` write it (SPEC 7); a
routing refresh reads only its ``schema_version`` and the ``model`` of each ``deployment`` entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from stageroute.errors import BadDataError, InfeasibleError, InputMissingError, UsageError
from stageroute.inputs.files import first_line, quote, require_file

SCHEMA_VERSION = 1  # the plan JSON versions this reader understands (plan.SCHEMA_VERSION)
MAX_BYTES = 64 * 2**20  # a plan lists a few models; anything this large is not one
HINT = "a plan JSON written by 'stageroute plan --output'"


def read_plan(path: str | Path, kind: str = "plan", option: str = "--plan") -> dict[str, Any]:
    """The plan JSON document at ``path``, its ``schema_version`` checked (``kind`` and
    ``option`` name the file in messages: "previous plan", "--previous").

    Raises:
        InputMissingError: nothing there, a directory or other non-file, or unreadable.
        BadDataError: not JSON, not an object, or another schema version.
    """
    p = require_file(path, kind, option, HINT)
    doc = _parse(p, _text(p, kind, option), kind)
    version = doc.get("schema_version")
    if isinstance(version, bool) or version != SCHEMA_VERSION:  # true == 1 in Python
        raise BadDataError(
            f"{kind} {p} has schema_version {quote(version)}, this stageroute reads "
            f"version {SCHEMA_VERSION}; pass {HINT} by this version"
        )
    return doc


def read_previous(path: str | Path) -> tuple[str, ...]:
    """The deployed models of the plan JSON at ``path``, in the plan's order.

    Raises:
        InputMissingError: nothing there, a directory or other non-file, or unreadable.
        BadDataError: not a plan JSON (not JSON, another schema version, no deployment, a
            deployment entry without a model id, a model twice, or no model at all).
    """
    doc = read_plan(path, "previous plan", "--previous")
    p = Path(path)
    deployment = doc.get("deployment")
    if not isinstance(deployment, list):
        raise BadDataError(f"previous plan {p} has no 'deployment' list, so it is no plan; "
                           f"pass {HINT}")
    models: list[str] = []
    for i, entry in enumerate(deployment):
        model = entry.get("model") if isinstance(entry, dict) else None
        if not isinstance(model, str) or not model:
            raise BadDataError(
                f"previous plan {p}, deployment entry {i + 1} has no model id (got "
                f"{quote(entry, 60)}); each entry needs \"model\": \"<id>\"; pass {HINT}"
            )
        if model in models:
            raise BadDataError(f"previous plan {p} lists {quote(model)} twice in 'deployment'; "
                               f"pass {HINT}")
        models.append(model)
    if not models:
        raise BadDataError(f"previous plan {p} deploys no model; pass {HINT}, or --deployed a,b,c")
    return tuple(dict.fromkeys(models))


def _text(path: Path, kind: str, option: str) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputMissingError(
            f"{kind} {path} cannot be read ({exc.strerror}), pass {HINT} to {option}"
        ) from None
    if len(raw) > MAX_BYTES:
        raise BadDataError(f"{kind} {path} is larger than {MAX_BYTES // 2**20} MiB, so it "
                           f"is no plan; pass {HINT}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadDataError(f"{kind} {path} is not UTF-8 text ({first_line(exc)}); "
                           f"pass {HINT}") from None


def _parse(path: Path, text: str, kind: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else first_line(exc)
        raise BadDataError(f"{kind} {path} is not valid JSON ({reason}); pass {HINT}") from None
    if not isinstance(doc, dict):
        kind_of = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(doc), "a number")
        raise BadDataError(f"{kind} {path} holds {kind_of}, not a plan object; pass {HINT}")
    return doc


def still_available(given: tuple[str, ...], pool: list[str], excluded: pl.DataFrame, origin: str,
                    max_deployed: int) -> tuple[list[str], tuple[str, ...]]:
    """The models of a kept deployment that are in the stage's pool (sorted), and a warning for
    each other one (``excluded``: the catalog's models left out of the pool, with the reason;
    ``origin`` names where the deployment came from, for the messages).

    Raises:
        InfeasibleError: none is left.
        UsageError: more are left than ``max_deployed``.
    """
    why = {**dict.fromkeys(given, "is no longer in the catalog"),
           **{m: f"is not available for the stage ({reason})"
              for m, reason in excluded.iter_rows() if m in given}}
    in_pool = set(pool)
    kept = sorted(m for m in given if m in in_pool)
    gone = [m for m in given if m not in in_pool]
    if not kept:
        reasons = "; ".join(f"{quote(m, 40)} {why[m]}" for m in gone[:5])
        raise InfeasibleError(
            f"none of the models of {origin} is left to route to ({reasons}); run a full plan "
            "(without --routing-only) to choose a new deployment"
        )
    if len(kept) > max_deployed:
        raise UsageError(
            f"--routing-only keeps the {len(kept)} models of {origin}, more than --max-deployed "
            f"{max_deployed}; give --max-deployed {len(kept)}, or run a full plan"
        )
    return kept, tuple(f"model {quote(m, 40)} of {origin} {why[m]}: dropped from the deployment, "
                       "the table routes among the others" for m in gone)
