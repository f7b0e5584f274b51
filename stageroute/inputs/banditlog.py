"""Request logs as a bandit log for off-policy replay: one array per column, in time order.

The logs follow the contract of ``checks.py`` (the same value rules and messages as ``plan``);
off-policy replay also needs the logging policy's probability of each served model, the
``propensity`` column, unless the logger is declared uniform over the models available at each
request (``--logging-policy uniform``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

from stageroute.errors import BadDataError, InsufficientDataError
from stageroute.inputs.checks import Rule, _violation, rules
from stageroute.inputs.logs import open_logs
from stageroute.inputs.outcomes import available_mask


class LoggingPolicy(StrEnum):
    """Where the logging policy's probabilities come from."""

    LOGGED = "logged"  # the propensity column
    UNIFORM = "uniform"  # 1 / the models available at the request (the column is ignored)


@dataclass(frozen=True, slots=True)
class BanditLog:
    """The usable rows of a log, sorted by time; models are indices into ``models`` (the catalog).

    ``available[pattern[i]]`` is the set of models available at request i (the catalog's
    availability at its time, plus the served model); ``segment[i]`` indexes ``segments``
    (one segment "" when the log has no segment column).
    """

    models: tuple[str, ...]
    times: NDArray[np.datetime64]
    model: NDArray[np.int64]
    reward: NDArray[np.float64]
    cost: NDArray[np.float64]
    propensity: NDArray[np.float64]
    pattern: NDArray[np.int64]
    available: NDArray[np.bool_]  # [patterns, models]
    segment: NDArray[np.int64]
    segments: tuple[str, ...]
    label: str
    unknown_rows: int  # rows of models outside the catalog (left out)
    no_reward_rows: int  # rows without feedback (left out)

    @property
    def size(self) -> int:
        return int(self.model.size)


def _check_values(scan: object, data: pl.DataFrame, extra: list[Rule]) -> None:
    """Raise the contract's error (file, row, fix) for the first rule the rows break (the
    contract's, then ``extra``)."""
    contract = rules(scan) + extra  # type: ignore[arg-type]
    flags = data.select([r.violated.any().alias(str(i)) for i, r in enumerate(contract)]).row(0)
    for rule, broken in zip(contract, flags, strict=True):
        if broken:
            error = _violation(scan, rule)  # type: ignore[arg-type]
            raise error or BadDataError(f"logs: column '{rule.column}' {rule.what}, {rule.fix}")


def availability(catalog: pl.DataFrame, models: tuple[str, ...], times: NDArray[np.datetime64],
                 served: NDArray[np.int64]) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """The distinct available sets [P, N] and each request's set: the catalog's models available
    at its time (released, not retired) plus the model that served it.

    Availability changes only at release and retirement times, so a request's set is a function
    of (the interval between those times it falls in, the served model): one integer key each.
    """
    changes = np.unique(np.concatenate([
        catalog["released"].dt.replace_time_zone(None).to_numpy(),
        catalog["retired"].drop_nulls().dt.replace_time_zone(None).to_numpy(),
    ]).astype("datetime64[us]"))
    key = np.searchsorted(changes, times, side="right").astype(np.int64) * len(models) + served
    keys, first, pattern = np.unique(key, return_index=True, return_inverse=True)
    mask = available_mask(catalog, models, times[first])
    mask[np.arange(keys.size), served[first]] = True
    sets, same = np.unique(mask, axis=0, return_inverse=True)  # keys with the same set: one
    return sets, same.reshape(-1)[pattern.reshape(-1)].astype(np.int64)


def load_bandit_log(path: str | Path, catalog: pl.DataFrame, logging: LoggingPolicy) -> BanditLog:
    """Read and check the logs at ``path`` for off-policy replay.

    Raises:
        InputMissingError: no logs there. BadDataError: a broken contract, or no propensity
            column with ``LoggingPolicy.LOGGED``. InsufficientDataError: no usable row.
    """
    scan, _ = open_logs(path, catalog, None)
    label = scan.source.label
    if logging is LoggingPolicy.LOGGED and "propensity" not in scan.schema:
        raise BadDataError(
            f"logs {label} have no column 'propensity', so the logging policy's probabilities are "
            "unknown and no off-policy estimate can be trusted; log the probability of each "
            "served model as 'propensity', or give --logging-policy uniform if the logger chose "
            "uniformly among the available models"
        )
    try:
        data = scan.prepare(scan.source.scan()).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BadDataError(f"logs {label} cannot be read ({str(exc).splitlines()[0]})") from None
    _check_values(scan, data, _served_propensity(catalog) if logging is LoggingPolicy.LOGGED
                  else [])
    return bandit_log(data, catalog, logging, label)


def _served_propensity(catalog: pl.DataFrame) -> list[Rule]:
    """Off-policy replay weighs every rewarded request of a catalog model by 1 / propensity."""
    used = pl.col("model").is_in(catalog["model"].implode()) & pl.col("reward").is_not_null()
    return [Rule("propensity", pl.col("propensity").is_null() & used, "is empty",
                 "every rewarded request needs the logger's probability of the model it served")]


def bandit_log(data: pl.DataFrame, catalog: pl.DataFrame, logging: LoggingPolicy,
               label: str) -> BanditLog:
    """The usable rows of checked log rows ``data`` (catalog models with a reward) in time order.

    Raises:
        InsufficientDataError: no such row.
    """
    models = tuple(catalog["model"])
    known = data.filter(pl.col("model").is_in(list(models)))
    used = known.filter(pl.col("reward").is_not_null()).sort("timestamp", maintain_order=True)
    if used.height == 0:
        raise InsufficientDataError(
            f"logs {label} have no row of a catalog model with a reward, so there is nothing to "
            "replay; check --logs and --catalog"
        )
    index = {m: j for j, m in enumerate(models)}
    model = used["model"].replace_strict(index, return_dtype=pl.Int64).to_numpy()
    times = used["timestamp"].dt.replace_time_zone(None).to_numpy().astype("datetime64[us]")
    available, pattern = availability(catalog, models, times, model)
    if logging is LoggingPolicy.UNIFORM:
        propensity = 1.0 / available.sum(axis=1)[pattern]
    else:
        propensity = used["propensity"].to_numpy().astype(np.float64)
    if "segment" in used.columns:
        seg = used["segment"].fill_null("")
        segments = tuple(seg.unique().sort())
        codes = {s: i for i, s in enumerate(segments)}
        segment = seg.replace_strict(codes, return_dtype=pl.Int64).to_numpy()
    else:
        segment, segments = np.zeros(model.size, dtype=np.int64), ("",)
    return BanditLog(models, times, model, used["reward"].to_numpy().astype(np.float64),
                     used["cost"].to_numpy().astype(np.float64), propensity, pattern, available,
                     segment, segments, label, data.height - known.height,
                     known.height - used.height)
