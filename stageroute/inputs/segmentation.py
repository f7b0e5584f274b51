"""Query segments of a full-information table: which segment each prompt belongs to (SPEC 12),
from a column of the outcomes or from clusters of the prompt text, and the true means per
(segment, model) cell that the contextual oracle uses."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import polars as pl
from numpy.typing import NDArray

from stageroute.errors import BadDataError, UsageError, shown
from stageroute.inputs.catalog import id_problem
from stageroute.inputs.files import quote
from stageroute.inputs.outcomes import OutcomeMatrix
from stageroute.inputs.prompts import load_prompts

DEFAULT_CLUSTERS = 8
# Every query solves one joint table over the segments, and each becomes a gateway group.
MAX_SEGMENTS = 256


@dataclass(frozen=True, slots=True)
class Segmentation:
    """The segment of every prompt of an outcome matrix: ``of_prompt[i]`` indexes ``names``."""

    names: tuple[str, ...]
    of_prompt: NDArray[np.int64]

    @property
    def shares(self) -> NDArray[np.float64]:
        """Each segment's share of the prompts (of the stream's traffic: prompts are uniform)."""
        counts = np.bincount(self.of_prompt, minlength=len(self.names)).astype(np.float64)
        shares: NDArray[np.float64] = counts / counts.sum()
        return shares


def segments_by_column(frame: pl.DataFrame, matrix: OutcomeMatrix, column: str) -> Segmentation:
    """Segments from a column of the long outcomes table (one value per prompt; missing: "")."""
    if column not in frame.columns:
        raise UsageError(f"--segments {shown(column)} is not a column of the outcomes (they have "
                         f"{', '.join(frame.columns)}); give a column or --segments auto with "
                         "--prompts FILE")
    dtype = frame.schema[column]
    if not (dtype in (pl.String, pl.Categorical, pl.Null, pl.Boolean)
            or isinstance(dtype, pl.Enum) or dtype.is_integer()):
        raise BadDataError(f"--segments {shown(column)}: the outcomes' column is of type {dtype}, "
                           "not text or integers; segments are labels (a task, a tenant), give "
                           "such a column or --segments auto with --prompts FILE")
    per = (frame.group_by("sample_id")
           .agg(pl.col(column).cast(pl.String).fill_null("").unique().sort().alias("seg"))
           .sort("sample_id"))
    mixed = per.filter(pl.col("seg").list.len() > 1)
    if mixed.height:
        sample, values = mixed.row(0)
        raise BadDataError(
            f"--segments {shown(column)}: sample_id {quote(sample)} has {len(values)} values in "
            f"it ({', '.join(quote(v) for v in values[:3])}), a segment is one per prompt; "
            "give a column that is the same on every model's row of a prompt"
        )
    per = per.with_columns(pl.col("seg").list.first())
    lookup = dict(zip(per["sample_id"], per["seg"], strict=True))
    labels = [lookup[s] for s in matrix.samples]
    names = tuple(sorted(set(labels)))
    check_segment_names(names, f"the outcomes' column {quote(column)}",
                        ", or cluster the prompts (--segments auto --clusters K)")
    code = {n: i for i, n in enumerate(names)}
    return Segmentation(names, np.array([code[x] for x in labels], dtype=np.int64))


def group_key(name: str) -> str:
    """A segment's part of its gateway group name (``export.group_name``): each run of
    whitespace (spaces, no-break or ideographic spaces) as one "-", since a model name clients
    send is one word."""
    return "-".join(name.split())


def check_segment_names(names: Sequence[str], where: str, fix: str = "") -> None:
    """Refuse segments that cannot become routing tables and gateway groups: more than
    ``MAX_SEGMENTS`` (``fix``: another way out, appended to that message), names that are no
    gateway name (``catalog.id_problem``), or two that would name the same group: equal after
    ``group_key``, case folding and Unicode normalisation (NFKC).

    Raises:
        BadDataError: naming ``where`` the segments come from and the first offending value.
    """
    if len(names) > MAX_SEGMENTS:
        raise BadDataError(
            f"{where} has {len(names):,} distinct segments, more than {MAX_SEGMENTS}: each is a "
            "routing table solved jointly and a gateway group; group the values into at most "
            f"{MAX_SEGMENTS} segments{fix}"
        )
    folded: dict[str, str] = {}
    for name in names:
        problem = id_problem(name)
        if problem is not None:
            raise BadDataError(f"{where} has the segment {quote(name)}, which {problem}; "
                               "write plain segment names (they name gateway groups)")
        other = folded.setdefault(unicodedata.normalize("NFKC", group_key(name)).casefold(), name)
        if other != name:
            raise BadDataError(f"{where} has the segments {quote(other)} and {quote(name)}, which "
                               "differ only in case, Unicode form (an accented letter as one "
                               "character or as letter and accent) or whitespace (which becomes "
                               "'-') and would name the same gateway group; keep one spelling")


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


def prompt_features(path: Path, matrix: OutcomeMatrix) -> NDArray[np.float64]:
    """The local embedding (``embed.embed_prompts``) of every prompt of ``matrix``, in its row
    order, from a prompts file (sample_id, prompt). Nothing leaves the machine.

    Raises:
        InputMissingError, BadDataError: a missing or bad file; a prompt of the outcomes that
            the file lacks.
    """
    from stageroute.embed import embed_prompts

    frame = load_prompts(path)
    lookup = dict(zip(frame["sample_id"], frame["prompt"], strict=True))
    missing = [s for s in matrix.samples if s not in lookup]
    if missing:
        raise BadDataError(
            f"{path}: no prompt for {len(missing):,} of the outcomes' {len(matrix.samples):,} "
            f"sample_ids (the first: {missing[0]!r}); give a prompts file that covers the outcomes"
        )
    return embed_prompts([lookup[s] for s in matrix.samples])


def segmentation(frame: pl.DataFrame, matrix: OutcomeMatrix, config: SegmentOptions,
                 features: NDArray[np.float64] | None) -> Segmentation:
    """The segments a contextual replay asks for: ``config.segments`` names a column of the
    outcomes, or is "auto": k-means clusters (``config.clusters``, default
    ``DEFAULT_CLUSTERS``) of the prompts' ``features``."""
    if config.segments != "auto":
        return segments_by_column(frame, matrix, config.segments)
    if features is None:
        raise UsageError("--segments auto clusters the prompts' text: give --prompts FILE "
                         "(sample_id, prompt)")
    from stageroute.embed import fit_clusters

    clusters = fit_clusters(features, config.clusters or DEFAULT_CLUSTERS)
    return Segmentation(clusters.names, clusters.assign(features))


class SegmentOptions(Protocol):
    """Where segments come from (``ReplayConfig`` has these)."""

    @property
    def segments(self) -> str: ...

    @property
    def prompts(self) -> Path | None: ...

    @property
    def clusters(self) -> int | None: ...
