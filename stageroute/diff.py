"""What changed between two plans (``stageroute diff``): models added, evicted and kept, and the
routing shares that moved."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stageroute.errors import BadDataError, InputMissingError, shown
from stageroute.export import read_routing
from stageroute.inputs.previous import HINT

MOVE_TOLERANCE = 1e-4  # a share that moved by less (0.01 percentage point) did not move
HISTORY_FILE = re.compile(r"plan-(?P<start>.+)-(?P<digest>[0-9A-Za-z]+)\.json")


@dataclass(frozen=True, slots=True)
class ShareChange:
    """A model's routing probability in the first plan and in the second (0 where not routed)."""

    model: str
    before: float
    after: float

    @property
    def change(self) -> float:
        return round(self.after - self.before, 12)  # 0.3 - 0.1 is not 0.19999999999999998


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """The difference between plan ``before`` and plan ``after`` (file names and windows)."""

    before: str
    after: str
    windows: tuple[dict[str, Any], dict[str, Any]]
    added: tuple[str, ...]
    evicted: tuple[str, ...]
    kept: tuple[str, ...]
    shares: tuple[ShareChange, ...]  # every model deployed or routed in either plan

    @property
    def moved(self) -> tuple[ShareChange, ...]:
        """The shares that changed by ``MOVE_TOLERANCE`` or more, largest change first."""
        moved = [c for c in self.shares if abs(c.change) >= MOVE_TOLERANCE]
        return tuple(sorted(moved, key=lambda c: (-abs(c.change), c.model)))


def _deployed(doc: dict[str, Any], path: str | Path) -> list[str]:
    deployment = doc.get("deployment")
    models = [e.get("model") for e in deployment if isinstance(e, dict)] \
        if isinstance(deployment, list) else None
    if models is None or not all(isinstance(m, str) and m for m in models):
        raise BadDataError(f"plan {path} has no 'deployment' list of model ids; pass {HINT}")
    return list(dict.fromkeys(str(m) for m in models))


def diff_plans(before: str | Path, after: str | Path) -> PlanDiff:
    """Compare the plan JSON files ``before`` and ``after``.

    Raises:
        InputMissingError: a file is missing.
        BadDataError: a file is not a plan JSON.
    """
    doc_a, rows_a = read_routing(before, "stageroute diff")
    doc_b, rows_b = read_routing(after, "stageroute diff")
    dep_a, dep_b = _deployed(doc_a, before), _deployed(doc_b, after)
    share_a, share_b = dict(rows_a), dict(rows_b)
    models = list(dict.fromkeys([*dep_a, *share_a, *dep_b, *share_b]))

    def window(doc: dict[str, Any]) -> dict[str, Any]:
        w = doc.get("window")
        return {"start": w.get("start"), "end": w.get("end")} if isinstance(w, dict) else {}

    return PlanDiff(
        before=str(before), after=str(after), windows=(window(doc_a), window(doc_b)),
        added=tuple(m for m in dep_b if m not in dep_a),
        evicted=tuple(m for m in dep_a if m not in dep_b),
        kept=tuple(m for m in dep_a if m in dep_b),
        shares=tuple(ShareChange(m, share_a.get(m, 0.0), share_b.get(m, 0.0)) for m in models),
    )


def diff_document(diff: PlanDiff) -> dict[str, Any]:
    """The JSON document of ``stageroute diff --json``."""
    return {
        "before": {"plan": diff.before, "window": diff.windows[0]},
        "after": {"plan": diff.after, "window": diff.windows[1]},
        "added": list(diff.added),
        "evicted": list(diff.evicted),
        "kept": list(diff.kept),
        "moved": [_share(c) for c in diff.moved],
        "shares": [_share(c) for c in diff.shares],
        "changed": bool(diff.added or diff.evicted or diff.moved),
    }


def _share(c: ShareChange) -> dict[str, Any]:
    return {"model": c.model, "before": c.before, "after": c.after, "change": c.change}


def _start(name: str) -> dt.datetime:
    """The window start of a history file name; unreadable starts sort first."""
    match = HISTORY_FILE.fullmatch(name)
    text = match.group("start") if match else ""
    try:
        start = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return start if start.tzinfo else start.replace(tzinfo=dt.UTC)


def latest_two(history: str | Path) -> tuple[Path, Path]:
    """The last two plan files of a ``--history`` directory (``plan-<window start>-<digest>.json``),
    by window start then name: (older, newer).

    Raises:
        InputMissingError: not a directory, or it holds fewer than two plan files.
    """
    folder = Path(history)
    if not folder.is_dir():
        raise InputMissingError(f"history {shown(folder, 200)} is not a directory, pass the "
                                "--history directory of 'stageroute plan' to --history")
    files = sorted((p for p in folder.iterdir() if HISTORY_FILE.fullmatch(p.name) and p.is_file()),
                   key=lambda p: (_start(p.name), p.name))
    if len(files) < 2:
        raise InputMissingError(
            f"history {shown(folder, 200)} holds {len(files)} plan file(s) "
            "(plan-<window start>-<digest>.json), diff needs two; run 'stageroute plan "
            "--history' again at the next window, or pass two plan files"
        )
    return files[-2], files[-1]
