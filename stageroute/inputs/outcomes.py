"""Full-information outcome tables (every model's reward and cost for every prompt).

They drive ``replay`` and can be turned into a bandit-feedback request log for ``plan``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from stageroute.errors import BadDataError
from stageroute.inputs.catalog import id_problem
from stageroute.inputs.checks import MAX_AMOUNT
from stageroute.inputs.files import (
    csv_header_problem,
    first_line,
    names,
    parquet_schema_problem,
    quote,
    read_table,
    require_file,
)

# Positive costs below this cannot be normalised (their squares underflow to 0); no real request
# costs less than 1e-100 of any currency unit.
MIN_COST = 1e-100

OUTCOMES_SCHEMA: dict[str, pl.DataType] = {
    "sample_id": pl.String(),
    "model": pl.String(),
    "reward": pl.Float64(),
    "cost": pl.Float64(),
}


@dataclass(frozen=True, slots=True)
class OutcomeMatrix:
    """Outcomes as dense arrays: ``reward[i, j]`` is model ``models[j]`` on prompt ``samples[i]``."""

    samples: tuple[str, ...]
    models: tuple[str, ...]
    reward: NDArray[np.float64]
    cost: NDArray[np.float64]

    @property
    def mean_reward(self) -> NDArray[np.float64]:
        return np.asarray(self.reward.mean(axis=0))

    @property
    def mean_cost(self) -> NDArray[np.float64]:
        return np.asarray(self.cost.mean(axis=0))


def _id_type(t: pl.DataType) -> bool:
    return t in (pl.String, pl.Categorical, pl.Null) or isinstance(t, pl.Enum) or t.is_integer()


_TYPES = {
    "sample_id": ("text or an integer", _id_type),
    "model": ("text (string)", lambda t: t in (pl.String, pl.Categorical, pl.Null)
              or isinstance(t, pl.Enum) or t.is_integer()),
    "reward": ("a number in [0, 1]", lambda t: t.is_numeric() or t == pl.Null),
    "cost": ("a number >= 0", lambda t: t.is_numeric() or t == pl.Null),
}


def _check_columns(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """The four columns, present and of a usable type, cast to ``OUTCOMES_SCHEMA``."""
    for name in OUTCOMES_SCHEMA:
        if name not in frame.columns:
            raise BadDataError(
                f"outcomes {path} have no column '{name}' (they have: {names(frame.columns)}), "
                "the long format needs sample_id, model, reward, cost"
            )
    for name, (expected, ok) in _TYPES.items():
        if not ok(frame.schema[name]):
            raise BadDataError(
                f"outcomes {path}, column '{name}' has type {frame.schema[name]}, expected "
                f"{expected}; fix the writer of the table"
            )
    return frame.with_columns(pl.col(name).cast(dtype) for name, dtype in OUTCOMES_SCHEMA.items())


def first_bad_value(frame: pl.DataFrame) -> tuple[str, str, str, dict[str, Any]] | None:
    """The first row of ``frame`` (its ``OUTCOMES_SCHEMA`` columns cast to that schema) that
    breaks a rule of the outcomes table: an empty id, a reward outside [0, 1] or a cost out of
    range. Rules are tried in order, rows in the frame's order.

    Returns:
        (column, what is wrong, how to fix it, that row with all its columns), or None.
    """
    r, c = pl.col("reward"), pl.col("cost")
    checks = [
        ("sample_id", pl.col("sample_id").is_null(), "is empty", "give every row its prompt id"),
        ("model", pl.col("model").is_null(), "is empty", "give every row its model id"),
        ("reward", r.is_null() | r.is_nan(), "is empty or NaN", "fix the table"),
        ("reward", (r < 0) | (r > 1), "is outside [0, 1]", "fix the table"),
        ("cost", c.is_null() | ~c.is_finite(), "is empty or not finite", "fix the table"),
        ("cost", c < 0, "is negative", "fix the table"),
        ("cost", (c > MAX_AMOUNT) | ((c > 0) & (c < MIN_COST)),
         f"is outside the range stageroute can normalise (0, or {MIN_COST:g} to {MAX_AMOUNT:g})",
         "write costs in a unit that keeps them in that range"),
    ]
    for column, pred, what, fix in checks:
        bad = frame.filter(pred)
        if bad.height:
            return column, what, fix, bad.row(0, named=True)
    return None


def _check_values(frame: pl.DataFrame, path: Path) -> None:
    """Raise for the first row with an empty id, a reward outside [0, 1] or a cost out of range."""
    indexed = frame.select(*OUTCOMES_SCHEMA).with_row_index("row")  # no user column is "row" here
    problem = first_bad_value(indexed)
    if problem is not None:
        column, what, fix, row = problem
        value = "" if row[column] is None else f": {quote(row[column])}"
        raise BadDataError(
            f"outcomes {path}, column '{column}' {what}{value} (0-based row {row['row']}, "
            f"sample_id {quote(row['sample_id'])}, model {quote(row['model'])}), {fix}"
        )


def load_outcomes(path: str | Path) -> pl.DataFrame:
    """Load and validate a long outcomes table (Parquet or CSV).

    Raises:
        InputMissingError: no such file, or not a regular file.
        BadDataError: missing or mistyped column, empty id, bad value, duplicate (sample_id, model).
    """
    path = require_file(path, "outcomes", "--outcomes")
    frame = read_table(path, "outcomes")
    if frame.height == 0:
        raise BadDataError(f"outcomes {path} have no rows, add one row per (sample_id, model)")
    frame = _check_columns(frame, path)
    _check_values(frame, path)
    dup = frame.filter(pl.struct("sample_id", "model").is_duplicated())
    if dup.height:
        row = dup.row(0, named=True)
        raise BadDataError(
            f"outcomes {path} list (sample_id {quote(row['sample_id'])}, model "
            f"{quote(row['model'])}) twice, keep one row per pair"
        )
    return frame


def to_matrix(outcomes: pl.DataFrame, models: list[str] | None = None) -> OutcomeMatrix:
    """Pivot to dense arrays (models sorted unless given); every pair must be present."""
    names = sorted(outcomes["model"].unique().to_list()) if models is None else list(models)
    frame = outcomes.filter(pl.col("model").is_in(names))
    samples = sorted(frame["sample_id"].unique().to_list())
    wide = {}
    for kind in ("reward", "cost"):
        pivot = frame.pivot(on="model", index="sample_id", values=kind).sort("sample_id")
        missing = [m for m in names if m not in pivot.columns]
        if missing or pivot.select(names).null_count().sum_horizontal()[0] > 0:
            raise BadDataError(
                f"outcomes are incomplete: not every prompt has a {kind} for every model "
                f"({missing[0] if missing else 'some pairs'} missing); replay needs the full table"
            )
        wide[kind] = pivot.select(names).to_numpy().astype(np.float64)
    return OutcomeMatrix(tuple(samples), tuple(names), wide["reward"], wide["cost"])


def available_mask(catalog: pl.DataFrame, models: tuple[str, ...],
                   times: NDArray[np.datetime64]) -> NDArray[np.bool_]:
    """``mask[t, j]``: model j is released and not retired at time ``times[t]``."""
    info = {r["model"]: r for r in catalog.iter_rows(named=True)}
    rel = np.array([_np_time(info[m]["released"]) for m in models])
    ret = np.array([_np_time(info[m]["retired"]) if info[m]["retired"] is not None
                    else np.datetime64("9999-01-01T00:00:00", "us") for m in models])
    return (rel[None, :] <= times[:, None]) & (times[:, None] < ret[None, :])


def _np_time(t: dt.datetime) -> np.datetime64:
    return np.datetime64(t.astimezone(dt.UTC).replace(tzinfo=None), "us")


def simulate_log(outcomes: OutcomeMatrix, catalog: pl.DataFrame, rows: int,
                 start: dt.datetime, end: dt.datetime, seed: int,
                 weights: NDArray[np.float64] | None = None) -> pl.DataFrame:
    """A bandit-feedback log: random prompts, each served by a model drawn among those available
    then (uniformly, or with probability proportional to ``weights`` [N] > 0), with that pair's
    real reward and cost and the logging propensity."""
    rng = np.random.default_rng(seed)
    t0, t1 = _np_time(start), _np_time(end)
    times = t0 + ((t1 - t0) * (np.arange(rows) / rows)).astype("timedelta64[us]")
    avail = available_mask(catalog, outcomes.models, times)
    if not avail.any(axis=1).all():
        raise BadDataError("some requests fall where no model of the catalog is available")
    prompt = rng.integers(0, len(outcomes.samples), rows)
    mass = avail * (np.ones(avail.shape[1]) if weights is None else weights)[None, :]
    cum = np.cumsum(mass, axis=1)
    k = cum[:, -1]
    model = np.minimum(np.argmax(cum > (rng.random(rows) * k)[:, None], axis=1),
                       avail.shape[1] - 1)
    k = k / mass[np.arange(rows), model]
    return pl.DataFrame({
        "request_id": [f"sim-{seed}-{i}" for i in range(rows)],
        "timestamp": pl.Series(times).dt.replace_time_zone("UTC"),
        "model": np.array(outcomes.models)[model],
        "reward": outcomes.reward[prompt, model],
        "cost": outcomes.cost[prompt, model],
        "propensity": 1.0 / k,
    })


def _check_model_columns(models: list[str], path: Path) -> None:
    """Refuse a score column whose name cannot be a model id (not empty, ``catalog.id_problem``,
    and the catalog's case rule: not differing from another only in case): the outcomes written
    would name a model no catalog can list."""
    folded: dict[str, str] = {}
    for model in models:
        other = folded.setdefault(model.lower(), model)
        if other != model:
            raise BadDataError(
                f"RouterBench file {path} has the models {quote(other, 60)} and {quote(model, 60)}, "
                "which differ only in case; a catalog matches ids exactly and cannot list both, "
                "so rename one pair of columns"
            )
        what = "is empty" if not model else id_problem(model)
        if what is not None:
            raise BadDataError(
                f"RouterBench file {path}, the model of the columns {quote(model, 60)} and "
                f"{quote(model + '|total_cost', 80)} {what}, so no catalog can list it; rename "
                "both columns to the model's id"
            )


def import_routerbench(path: str | Path) -> tuple[pl.DataFrame, dict[str, int]]:
    """Turn RouterBench's wide layout into the long outcomes format.

    The wide table has one row per prompt: ``sample_id``, ``eval_name``, a score column named
    after each model and a ``<model>|total_cost`` column per model (CSV, Parquet or the original
    pickle, which needs pandas). Prompts whose id repeats or whose scores are missing are dropped
    and counted; the rest must pass the value rules of ``load_outcomes`` (``first_bad_value``),
    so that what is written loads.

    Raises:
        BadDataError: an unreadable file, not the wide layout, or a value the outcomes loader
            refuses (named by its wide column and row).

    Returns:
        The long table (sample_id, eval_name, model, reward, cost) and counts of what was dropped.
    """
    path = require_file(path, "RouterBench file", "stageroute import routerbench")
    suffix = path.suffix.lower()
    problem = parquet_schema_problem(path, "RouterBench file") if suffix not in (
        ".csv", ".pkl", ".pickle") else csv_header_problem(path, "RouterBench file") if (
        suffix == ".csv") else None
    if problem is not None:
        raise problem
    try:
        if suffix in (".pkl", ".pickle"):
            try:
                import pandas as pd
            except ImportError:
                raise BadDataError(
                    f"reading the pickle {path} needs pandas, install it (pip install pandas) or "
                    "convert the file to CSV/Parquet"
                ) from None
            wide = pl.from_pandas(pd.read_pickle(path).reset_index(drop=True))
        elif suffix == ".csv":
            wide = pl.read_csv(path, infer_schema_length=None)
        else:
            wide = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first = first_line(exc)
        raise BadDataError(f"RouterBench file {path} cannot be read ({first})") from None
    models = sorted(c for c in wide.columns if f"{c}|total_cost" in wide.columns)
    if "sample_id" not in wide.columns or not models:
        raise BadDataError(
            f"RouterBench file {path} does not have the wide layout: it needs sample_id, and per "
            "model a score column '<model>' and a cost column '<model>|total_cost'"
        )
    _check_model_columns(models, path)
    if "eval_name" not in wide.columns:
        wide = wide.with_columns(pl.lit(None, pl.String).alias("eval_name"))
    # The loader's column types; text scores and costs are parsed (what does not parse counts as
    # missing), true/false scores are 1/0.
    kinds: list[tuple[str, str, tuple[type[pl.DataType], ...]]] = [
        ("sample_id", "sample_id", ()), ("eval_name", "model", ())]
    kinds += [(c, k, (pl.String, pl.Boolean) if k == "reward" else (pl.String,))
              for m in models for c, k in ((m, "reward"), (f"{m}|total_cost", "cost"))]
    for name, kind, also in kinds:
        expected, ok = _TYPES[kind]
        if not (ok(wide.schema[name]) or wide.schema[name] in also):
            raise BadDataError(
                f"RouterBench file {path}, column {quote(name)} has type {wide.schema[name]}, "
                f"expected {expected}; fix the writer of the table"
            )
    row = "_row"  # the 0-based row of the wide table, for messages; never written
    while row in wide.columns:
        row = f"_{row}"
    wide = wide.with_columns(pl.col("sample_id").cast(pl.String)).with_row_index(row)
    repeated = wide.filter(pl.col("sample_id").is_duplicated())
    wide = wide.filter(~pl.col("sample_id").is_duplicated())
    long = pl.concat([
        wide.select(
            "sample_id", pl.col("eval_name").cast(pl.String), pl.lit(m).alias("model"),
            pl.col(m).cast(pl.Float64, strict=False).alias("reward"),
            pl.col(f"{m}|total_cost").cast(pl.Float64, strict=False).alias("cost"), row,
        )
        for m in models
    ])
    incomplete = long.filter(pl.col("reward").is_null() | pl.col("cost").is_null() |
                             pl.col("reward").is_nan() | pl.col("cost").is_nan())[row].unique()
    # By row, not sample_id: a row whose sample_id is empty is kept, to be refused below.
    long = long.filter(~pl.col(row).is_in(incomplete.implode())).sort(row, "model")
    # What is written must load: the outcomes loader's value rules, here with the wide column.
    bad_value = first_bad_value(long)
    if bad_value is not None:
        column, what, fix, bad = bad_value
        source = {"reward": bad["model"], "cost": f"{bad['model']}|total_cost"}.get(column, column)
        value = "" if bad[column] is None else f": {quote(bad[column])}"
        ident = "" if bad["sample_id"] is None else f", sample_id {quote(bad['sample_id'])}"
        raise BadDataError(
            f"RouterBench file {path}, column {quote(source)} {what}{value} (0-based row "
            f"{bad[row]}{ident}), {fix}; nothing was written"
        )
    long = long.drop(row).sort("sample_id", "model")
    return long, {"models": len(models), "prompts": long["sample_id"].n_unique(),
                  "dropped_repeated_ids": repeated["sample_id"].n_unique(),
                  "dropped_incomplete": incomplete.len()}
