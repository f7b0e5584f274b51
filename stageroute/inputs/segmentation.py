"""Query segments of a full-information table: which segment each prompt belongs to (SPEC 12),
from a column of the outcomes or from clusters of the prompt text, and the true means per
(segment, model) cell that the contextual oracle uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import polars as pl
from numpy.typing import NDArray

from stageroute.errors import UsageError, shown
from stageroute.inputs.outcomes import OutcomeMatrix


@dataclass(frozen=True, slots=True)
class Segmentation:
    """The segment of every prompt of an outcome matrix: ``of_prompt[i]`` indexes ``names``."""

    names: tuple[str, ...]
    of_prompt: NDArray[np.int64]

    @property
    def shares(self) -> NDArray[np.float64]:
        """Each segment's share of the prompts (of the stream's traffic: prompts are uniform)."""
        counts = np.bincount(self.of_prompt, minlength=len(self.names)).astype(np.float64)
        return counts / counts.sum()


def segments_by_column(frame: pl.DataFrame, matrix: OutcomeMatrix, column: str) -> Segmentation:
    """Segments from a column of the long outcomes table (one value per prompt; missing: "")."""
    if column not in frame.columns:
        raise UsageError(f"--segments {shown(column)} is not a column of the outcomes (they have "
                         f"{', '.join(frame.columns)}); give a column or --segments auto with "
                         "--prompts FILE")
    per = (frame.select("sample_id", pl.col(column).cast(pl.String).fill_null("").alias("seg"))
           .unique("sample_id", keep="first"))
    lookup = dict(zip(per["sample_id"], per["seg"], strict=True))
    labels = [lookup[s] for s in matrix.samples]
    names = tuple(sorted(set(labels)))
    code = {n: i for i, n in enumerate(names)}
    return Segmentation(names, np.array([code[x] for x in labels], dtype=np.int64))


def cell_truth(matrix: OutcomeMatrix, seg: Segmentation
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The true mean reward and cost per (segment, model) [S, N]."""
    n_seg = len(seg.names)
    counts = np.bincount(seg.of_prompt, minlength=n_seg).astype(np.float64)[:, None]
    mu = np.zeros((n_seg, len(matrix.models)))
    mc = np.zeros_like(mu)
    np.add.at(mu, seg.of_prompt, matrix.reward)
    np.add.at(mc, seg.of_prompt, matrix.cost)
    return mu / np.maximum(counts, 1.0), mc / np.maximum(counts, 1.0)


def segmentation(frame: pl.DataFrame, matrix: OutcomeMatrix, config: SegmentOptions) -> Segmentation:
    """The segments a contextual replay asks for: ``config.segments`` names a column of the
    outcomes, or is "auto" (clusters of ``config.prompts``' text)."""
    if config.segments != "auto":
        return segments_by_column(frame, matrix, config.segments)
    raise UsageError("--segments auto is not available yet")


class SegmentOptions(Protocol):
    """Where segments come from (``ReplayConfig`` has these)."""

    @property
    def segments(self) -> str: ...

    @property
    def prompts(self) -> Path | None: ...

    @property
    def clusters(self) -> int | None: ...
