"""Request/feedback logs: find the files, check the contract, summarise per model in one pass."""

from __future__ import annotations

import datetime as dt
import glob
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from stageroute.errors import BadDataError, InputMissingError
from stageroute.stats import STATS_SCHEMA, normalise_stats, stats_aggs

LOG_SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "timestamp": pl.Datetime("us", "UTC"),
    "model": pl.String(),
    "reward": pl.Float64(),
    "cost": pl.Float64(),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "segment": pl.String(),
    "propensity": pl.Float64(),
}
_TEXT = "text (string)"
_KIND: dict[str, tuple[str, Callable[[pl.DataType], bool]]] = {
    "request_id": (_TEXT, lambda t: t in (pl.String, pl.Categorical) or t.is_integer()),
    "timestamp": ("a datetime", lambda t: isinstance(t, pl.Datetime)),
    "model": (_TEXT, lambda t: t in (pl.String, pl.Categorical) or isinstance(t, pl.Enum)),
    "reward": ("a number in [0, 1]", lambda t: t.is_numeric() or t == pl.Null),
    "cost": ("a number >= 0", lambda t: t.is_numeric() or t == pl.Null),
    "input_tokens": ("an integer", lambda t: t.is_numeric() or t == pl.Null),
    "output_tokens": ("an integer", lambda t: t.is_numeric() or t == pl.Null),
    "segment": (_TEXT, lambda t: t in (pl.String, pl.Categorical, pl.Null) or t.is_integer()),
    "propensity": ("a number in (0, 1]", lambda t: t.is_numeric() or t == pl.Null),
}
_FILE = "__file__"
_ROW = "__row__"


@dataclass(frozen=True, slots=True)
class LogSource:
    """Where the logs are: a description for messages and what ``pl.scan_parquet`` takes."""

    label: str
    files: tuple[str, ...]
    hive: bool
    kind: str = "logs"  # "logs" or "feedback": the word messages start with

    def scan(self, with_file: bool = False, row_index: str | None = None) -> pl.LazyFrame:
        try:
            return pl.scan_parquet(
                list(self.files),
                glob=False,  # already expanded; a literal '[' in a file name must stay literal
                hive_partitioning=self.hive,
                include_file_paths=_FILE if with_file else None,
                row_index_name=row_index,
                missing_columns="insert",
                extra_columns="ignore",
            )
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise _unreadable(self, exc) from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _unreadable(source: LogSource, exc: Exception) -> BadDataError:
    """The error for a scan that failed; with several files, name the one to blame."""
    if len(source.files) > 1:
        culprit = _find_bad_file(source)
        if culprit is not None:
            return culprit
    return BadDataError(
        f"{source.kind} {source.label} cannot be read as Parquet ({_first_line(exc)}), check that "
        "the file is complete and really Parquet"
    )


def _find_bad_file(source: LogSource) -> BadDataError | None:
    """Read every footer (error path only): the first unreadable file or mistyped column."""
    seen: dict[str, tuple[pl.DataType, str]] = {}
    for file in source.files:
        try:
            schema = pl.read_parquet_schema(file)
        except (pl.exceptions.PolarsError, OSError) as exc:
            return BadDataError(
                f"{source.kind} {file} cannot be read as Parquet ({_first_line(exc)}), check that "
                f"the file is complete and really Parquet, or remove it from {source.label}"
            )
        for column, dtype in schema.items():
            first = seen.setdefault(column, (dtype, file))
            if first[0] != dtype:
                return BadDataError(
                    f"{source.kind} {file}, column '{column}' has type {dtype} but {first[1]} has "
                    f"{first[0]}, write every file of {source.label} with the same column types"
                )
    return None


def find_logs(path: str | Path, kind: str = "logs") -> LogSource:
    """Resolve a file, a glob or a directory (hive-partitioned or not) to Parquet files.

    ``kind`` ("logs" or "feedback") names the input and its option in messages.

    Raises:
        InputMissingError: nothing exists there, or no Parquet file matches.
    """
    option = f"--{kind}"
    text = str(path)
    p = Path(text)
    if any(ch in text for ch in "*?[") and not p.exists():
        files = sorted(f for f in glob.glob(text, recursive=True) if Path(f).is_file())
        if not files:
            raise InputMissingError(
                f"{kind} glob '{text}' matches no file, check the pattern given to {option} "
                "(quote it so that the shell does not expand it)"
            )
        return LogSource(text, tuple(files), hive=False, kind=kind)
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*.parquet") if f.is_file())
        if not files:
            raise InputMissingError(
                f"{kind} directory {p} holds no .parquet file, point {option} at the directory, "
                "file or glob of the Parquet files"
            )
        hive = any("=" in part for f in files for part in Path(f).relative_to(p).parts[:-1])
        return LogSource(str(p), tuple(files), hive=hive, kind=kind)
    if not p.exists():
        raise InputMissingError(
            f"{kind} {p} does not exist, pass a file, a glob or a directory to {option}"
        )
    return LogSource(str(p), (str(p),), hive=False, kind=kind)


def _schema(source: LogSource, lf: pl.LazyFrame) -> dict[str, pl.DataType]:
    try:
        return dict(lf.collect_schema())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(source, exc) from None


def _to_utc(dtype: pl.DataType) -> pl.Expr:
    ts = pl.col("timestamp").cast(pl.Datetime("us", getattr(dtype, "time_zone", None)))
    if getattr(dtype, "time_zone", None) is None:
        return ts.dt.replace_time_zone("UTC")
    return ts.dt.convert_time_zone("UTC")


def _check_columns(label: str, schema: dict[str, pl.DataType], need_reward: bool,
                   need_cost: bool) -> None:
    required = ["request_id", "timestamp", "model"]
    required += ["reward"] if need_reward else []
    required += ["cost"] if need_cost else []
    for column in required:
        if column not in schema:
            hint = {
                "reward": "add it (null where there is no feedback) or pass --feedback",
                "cost": "add it, or give input_tokens/output_tokens and catalog prices",
            }.get(column, "add it")
            raise BadDataError(
                f"logs {label} have no column '{column}' (they have: {', '.join(schema)}), {hint}"
            )
    for column, dtype in schema.items():
        if column in _KIND and not _KIND[column][1](dtype):
            raise BadDataError(
                f"logs {label}, column '{column}' has type {dtype}, expected {_KIND[column][0]}; "
                "fix the writer of the logs"
            )


@dataclass(frozen=True, slots=True)
class LogSummary:
    """What ``plan`` needs from the logs, computed in one pass."""

    stats: pl.DataFrame  # STATS_SCHEMA + last_seen, for catalog models with rows before as_of
    rows: int  # rows read (all times)
    rows_used: int  # rows before as_of of catalog models
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    unknown: pl.DataFrame  # model, rows: models not in the catalog (ignored)
    cost_p999: float | None  # 99.9th percentile of per-request cost (max over models)
    mean_input_tokens: float | None
    mean_output_tokens: float | None
    cost_source: str  # "column" or "tokens"
    label: str


def _rules(has: set[str], catalog: pl.DataFrame) -> list[tuple[str, pl.Expr, str, str]]:
    """(column, violation predicate, what is wrong, how to fix)."""
    # Requests of models outside the catalog are ignored, so they cannot be unpriced.
    known = pl.col("model").is_in(catalog["model"].implode())
    rules = [
        ("request_id", pl.col("request_id").is_null(), "is empty", "give every request an id"),
        ("timestamp", pl.col("timestamp").is_null(), "is empty", "give every request its time"),
        ("model", pl.col("model").is_null(), "is empty", "give every request its model id"),
        ("reward", pl.col("reward").is_nan(), "is NaN",
         "use null for 'no feedback', never NaN"),
        ("reward", (pl.col("reward") < 0) | (pl.col("reward") > 1), "is outside [0, 1]",
         "rescale rewards to [0, 1]"),
        ("cost", pl.col("cost").is_null() & known, "is empty",
         "every request has a cost (or give tokens and catalog prices)"),
        ("cost", pl.col("cost").is_nan() | pl.col("cost").is_infinite(), "is not finite",
         "write real costs"),
        ("cost", pl.col("cost") < 0, "is negative", "costs are >= 0"),
    ]
    for tok in ("input_tokens", "output_tokens"):
        if tok in has:
            rules.append((tok, (pl.col(tok) < 0) | pl.col(tok).is_nan(), "is negative or NaN",
                          "token counts are integers >= 0"))
    if "propensity" in has:
        p = pl.col("propensity")
        rules.append(("propensity", p.is_nan() | (p <= 0) | (p > 1), "is outside (0, 1]",
                      "propensities are probabilities > 0"))
    return rules


def _prepare(lf: pl.LazyFrame, schema: dict[str, pl.DataType], catalog: pl.DataFrame,
             feedback: pl.LazyFrame | None, cost_from_tokens: bool, ordered: bool = False) -> pl.LazyFrame:
    """Normalise types, join feedback, price requests from tokens when there is no cost column.

    ``ordered`` keeps the file order through the joins (to report the first bad row); the
    statistics do not need it.
    """
    order: Literal["left"] | None = "left" if ordered else None
    exprs = [
        pl.col("request_id").cast(pl.String),
        _to_utc(schema["timestamp"]).alias("timestamp"),
        pl.col("model").cast(pl.String),
    ]
    for column in ("reward", "cost", "propensity"):
        if column in schema:
            exprs.append(pl.col(column).cast(pl.Float64))
    for column in ("input_tokens", "output_tokens"):
        if column in schema:
            exprs.append(pl.col(column).cast(pl.Float64))
    if "segment" in schema:
        exprs.append(pl.col("segment").cast(pl.String))
    exprs += [pl.col(extra) for extra in (_FILE, _ROW) if extra in schema]
    out = lf.select(exprs)
    if feedback is not None:
        out = out.join(feedback, on="request_id", how="left", maintain_order=order)
        base = pl.col("reward") if "reward" in schema else pl.lit(None, pl.Float64)
        out = out.with_columns(pl.coalesce("__feedback__", base).alias("reward")).drop("__feedback__")
    if cost_from_tokens:
        prices = catalog.lazy().select("model", "usd_per_mtok_in", "usd_per_mtok_out")
        out = out.join(prices, on="model", how="left", maintain_order=order).with_columns(
            (
                pl.col("input_tokens") * pl.col("usd_per_mtok_in")
                + pl.col("output_tokens") * pl.col("usd_per_mtok_out")
            ).truediv(1e6).alias("cost")
        ).drop("usd_per_mtok_in", "usd_per_mtok_out")
    return out


def _load_feedback(path: str | Path) -> pl.LazyFrame:
    """Check a (request_id, reward) feedback source; its rewards are validated here, by file."""
    src = find_logs(path, kind="feedback")
    lf = src.scan(with_file=True)
    schema = _schema(src, lf)
    for column in ("request_id", "reward"):
        if column not in schema:
            raise BadDataError(
                f"feedback {src.label} has no column '{column}' (it has: "
                f"{', '.join(c for c in schema if c != _FILE)}), feedback needs request_id and reward"
            )
        if not _KIND[column][1](schema[column]):
            raise BadDataError(
                f"feedback {src.label}, column '{column}' has type {schema[column]}, "
                f"expected {_KIND[column][0]}; fix the writer of the feedback"
            )
    fb = lf.select(pl.col("request_id").cast(pl.String), pl.col("reward").cast(pl.Float64), _FILE)
    r = pl.col("reward")
    problem = (pl.when(pl.col("request_id").is_null()).then(pl.lit("id"))
               .when(r.is_nan()).then(pl.lit("nan"))
               .when((r < 0) | (r > 1)).then(pl.lit("range")))
    try:
        dup, bad = pl.collect_all([
            fb.group_by("request_id").len().filter(pl.col("len") > 1).head(1),
            fb.with_columns(problem.alias("__problem__")).filter(pl.col("__problem__").is_not_null()).head(1),
        ])
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(src, exc) from None
    if bad.height:
        row = bad.row(0, named=True)
        where, rid = f"feedback {row[_FILE]}", f"request_id {row['request_id']!r}"
        raise BadDataError({
            "id": f"{where}, column 'request_id' is empty (reward {row['reward']!r}), "
                  "give every reward its request id",
            "nan": f"{where}, column 'reward' is NaN ({rid}), drop the row or use null, never NaN",
            "range": f"{where}, column 'reward' is outside [0, 1]: {row['reward']!r} ({rid}), "
                     "rescale rewards to [0, 1]",
        }[row["__problem__"]])
    if dup.height:
        raise BadDataError(
            f"feedback {src.label}, column 'request_id' has '{dup['request_id'][0]}' "
            f"{dup['len'][0]} times, keep one reward per request"
        )
    return fb.drop(_FILE).rename({"reward": "__feedback__"})


def summarise_logs(path: str | Path, catalog: pl.DataFrame, as_of: dt.datetime,
                   feedback: str | Path | None = None, strict: bool = False) -> LogSummary:
    """Validate the logs and compute per-model statistics of the rows before ``as_of``.

    Raises:
        InputMissingError: no log file.
        BadDataError: unreadable file, missing/mistyped column, bad value, unknown model with
            ``strict``, unpriced model, duplicate request_id.
    """
    source = find_logs(path)
    lf = source.scan()
    schema = _schema(source, lf)
    fb = _load_feedback(feedback) if feedback is not None else None
    cost_from_tokens = "cost" not in schema
    if cost_from_tokens and not {"input_tokens", "output_tokens"} <= schema.keys():
        _check_columns(source.label, schema, fb is None, need_cost=True)
    _check_columns(source.label, schema, fb is None, need_cost=False)
    data = _prepare(lf, schema, catalog, fb, cost_from_tokens)
    has = set(schema)
    rules = _rules(has, catalog)
    before = pl.col("timestamp") < as_of
    used = before & pl.col("model").is_in(catalog["model"].implode())
    tok = {t: pl.col(t).filter(before) if t in has else pl.lit(None, pl.Float64)
           for t in ("input_tokens", "output_tokens")}
    per_model = data.group_by("model").agg(
        pl.len().alias("rows"),
        before.sum().alias("rows_before"),
        *stats_aggs(pl.col("reward").filter(before), pl.col("cost").filter(before)),
        pl.col("cost").filter(before).quantile(0.999, "nearest").alias("cost_p999"),
        pl.col("timestamp").filter(before).min().alias("first_seen"),
        pl.col("timestamp").filter(before).max().alias("last_seen"),
        tok["input_tokens"].sum().alias("in_sum"),
        tok["input_tokens"].count().alias("in_n"),
        tok["output_tokens"].sum().alias("out_sum"),
        tok["output_tokens"].count().alias("out_n"),
        used.sum().alias("rows_used"),
        *[pred.sum().alias(f"bad_{i}") for i, (_, pred, _, _) in enumerate(rules)],
    )
    unique = data.select(pl.col("request_id").n_unique().alias("unique"), pl.len().alias("rows"))
    try:
        agg, uniq = pl.collect_all([per_model, unique])
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(source, exc) from None
    if agg.height == 0 or agg["rows"].sum() == 0:
        raise BadDataError(f"logs {source.label} have no rows, point --logs at the request logs")
    for i, (column, pred, what, fix) in enumerate(rules):
        if agg[f"bad_{i}"].sum() > 0:
            raise _violation(source, schema, catalog, fb, cost_from_tokens, column, pred, what, fix)
    if uniq["unique"][0] != uniq["rows"][0]:
        dup = data.group_by("request_id").len().filter(pl.col("len") > 1).head(1).collect()
        raise BadDataError(
            f"logs {source.label}, column 'request_id' has '{dup['request_id'][0]}' "
            f"{dup['len'][0]} times, request ids must be unique"
        )
    known = agg.filter(pl.col("model").is_in(catalog["model"].implode()))
    unknown = (agg.filter(~pl.col("model").is_in(catalog["model"].implode()))
               .select("model", "rows").sort("model"))
    if strict and unknown.height:
        row = unknown.row(0, named=True)
        raise BadDataError(
            f"logs {source.label}, column 'model' has '{row['model']}' ({row['rows']} row(s)), "
            "which is not in the catalog; add it to the catalog or drop --strict to ignore it"
        )
    used_models = known.filter(pl.col("rows_before") > 0)

    def mean_tokens(s: str, n: str) -> float | None:
        count = int(known[n].sum())
        return float(known[s].sum()) / count if count else None

    p999 = used_models["cost_p999"].drop_nulls()
    return LogSummary(
        stats=normalise_stats(used_models).join(
            used_models.select("model", "last_seen"), on="model", how="left"
        ),
        rows=int(agg["rows"].sum()),
        rows_used=int(agg["rows_used"].sum()),
        first_seen=used_models["first_seen"].min() if used_models.height else None,  # type: ignore[arg-type]
        last_seen=used_models["last_seen"].max() if used_models.height else None,  # type: ignore[arg-type]
        unknown=unknown,
        cost_p999=float(p999.max()) if p999.len() else None,  # type: ignore[arg-type]
        mean_input_tokens=mean_tokens("in_sum", "in_n"),
        mean_output_tokens=mean_tokens("out_sum", "out_n"),
        cost_source="tokens" if cost_from_tokens else "column",
        label=source.label,
    )


def _violation(source: LogSource, schema: dict[str, pl.DataType], catalog: pl.DataFrame,
               fb: pl.LazyFrame | None, cost_from_tokens: bool, column: str, pred: pl.Expr,
               what: str, fix: str) -> BadDataError:
    """Find the first offending row again, this time with its file and row number, for the message."""
    lf = source.scan(with_file=True, row_index=_ROW)
    data = _prepare(lf, {**schema, _FILE: pl.String(), _ROW: pl.Int64()}, catalog, fb, cost_from_tokens,
                    ordered=True)
    # The row index runs over all files; the row number within the file is what users can look up.
    data = data.with_columns(pl.col(_ROW).cast(pl.Int64) - pl.col(_ROW).min().over(_FILE).cast(pl.Int64))
    try:
        row = data.filter(pred).head(1).collect().row(0, named=True)
    except (pl.exceptions.PolarsError, OSError) as exc:
        return _unreadable(source, exc)
    where = row[_FILE]
    at = f"0-based row {row[_ROW]}"
    if cost_from_tokens and column == "cost" and row.get("cost") is None:
        priced = catalog.filter(
            (pl.col("model") == row["model"])
            & pl.col("usd_per_mtok_in").is_not_null() & pl.col("usd_per_mtok_out").is_not_null()
        ).height
        if priced:
            return BadDataError(
                f"logs {where}, column 'input_tokens'/'output_tokens' is empty ({at}, request_id "
                f"{row['request_id']!r}), so the request cannot be priced; give its token counts "
                "or add a cost column"
            )
        return BadDataError(
            f"logs {where} have no column 'cost' and model '{row['model']}' ({at}) has no "
            "usd_per_mtok_in/usd_per_mtok_out in the catalog, so its requests cannot be priced from "
            "tokens; add its prices to the catalog or a cost column to the logs"
        )
    value = row.get(column)
    if value is None and column in ("request_id", "timestamp", "model", "cost"):
        try:
            missing = column not in pl.read_parquet_schema(where)
        except (pl.exceptions.PolarsError, OSError):
            missing = False
        if missing:
            return BadDataError(
                f"logs {where} have no column '{column}' although other files of {source.label} "
                "have it, add it to every file"
            )
    shown = "" if value is None else f": {value!r}"
    ident = "" if column == "request_id" else f", request_id {row.get('request_id')!r}"
    return BadDataError(f"logs {where}, column '{column}' {what}{shown} ({at}{ident}), {fix}")


__all__ = ["LOG_SCHEMA", "STATS_SCHEMA", "LogSource", "LogSummary", "find_logs", "summarise_logs"]
