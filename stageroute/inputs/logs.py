"""Request/feedback logs: find the files, check the contract, summarise per model in one pass."""

from __future__ import annotations

import datetime as dt
import glob
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from stageroute.errors import BadDataError, InputMissingError
from stageroute.inputs.footers import Footers, read_footers
from stageroute.estimate.stats import STATS_SCHEMA, normalise_stats, stats_aggs

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
    if dtype == pl.Datetime("us", "UTC"):
        # Already right: a bare column keeps filters on it pushed down to the Parquet statistics.
        return pl.col("timestamp")
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
            rules.append((tok, (pl.col(tok) < 0) | ~pl.col(tok).is_finite(),
                          "is negative or not finite", "token counts are integers >= 0"))
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
                   feedback: str | Path | None = None, strict: bool = False,
                   recent: dt.timedelta = dt.timedelta(days=7), full_check: bool = False) -> LogSummary:
    """Validate the logs and compute per-model statistics of the rows before ``as_of``.

    One streaming pass reads only what the plan needs (model, reward, cost; timestamps only when
    ``as_of`` falls inside the logs; tokens only to price requests) and checks those values row by
    row. Footer statistics check the rest (null request ids and timestamps, propensity and token
    ranges) and tell whether every row precedes ``as_of``. Small extra queries read a sample for
    the cost scale and typical token counts, and the last ``recent`` of the log for who served
    traffic lately. ``full_check`` adds what the plan does not use: request-id uniqueness
    (always checked with a feedback join) and NaN propensities.

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
    has = set(schema)
    rules = _rules(has, catalog)
    optional = tuple(c for c in ("input_tokens", "output_tokens", "propensity") if c in has)
    footers = None if source.hive else read_footers(
        source.files, ("request_id", "model", "timestamp", "reward", "cost", *optional))
    data = _prepare(lf, schema, catalog, fb, cost_from_tokens)
    known_model = pl.col("model").is_in(catalog["model"].implode())

    all_before = footers is not None and footers.ts_max is not None and footers.ts_max < as_of
    # Null timestamps stay in so that their check (below) can see them.
    ts = pl.col("timestamp")
    used = data if all_before else data.filter((ts < as_of) | ts.is_null())
    r, c = pl.col("reward"), pl.col("cost")

    def within(column: str, lo: float, hi: float, open_lo: bool = False) -> bool:
        span = footers.ranges.get(column) if footers is not None else None
        return span is not None and (span[0] > lo if open_lo else span[0] >= lo) and span[1] <= hi

    # Each rule of the contract is checked from the footer statistics where they vouch for it
    # (free), otherwise row by row in the pass. NaN and infinity need no check of their own:
    # they surface in the means; empty costs surface in the counts.
    vouched = {
        "request_id": footers is not None and footers.nulls.get("request_id") == 0,
        "timestamp": footers is not None and footers.nulls.get("timestamp") == 0,
        "model": True,  # a null model is a null group
        "reward": "reward" not in has or within("reward", 0.0, 1.0),
        "cost": not cost_from_tokens and within("cost", 0.0, math.inf),
        "input_tokens": not cost_from_tokens and within("input_tokens", 0.0, math.inf),
        "output_tokens": not cost_from_tokens and within("output_tokens", 0.0, math.inf),
        "propensity": within("propensity", 0.0, 1.0, open_lo=True),
    }
    checks = [pred.sum().alias(f"bad_{i}") for i, (column, pred, _, _) in enumerate(rules)
              if not vouched.get(column, False)]
    # Footer ranges skip NaN, and these columns never reach a mean: a per-model sum (the
    # cheapest reduction) turns any NaN or infinity into a non-finite total.
    # Propensity is not used by the plan: its NaN check (a read of the column) is part of the
    # full check; the tokens price untried models, so theirs always runs.
    checks += [pl.col(col).sum().alias(f"sum_{col}") for col in optional
               if vouched[col] and not schema[col].is_integer()
               and (full_check or col != "propensity")]
    timed = not all_before or footers is None or footers.ts_max is None
    per_model = used.group_by("model").agg(
        pl.len().alias("rows_before"),
        *stats_aggs(r, c),
        *checks,
        *([pl.col("timestamp").min().alias("first_seen"),
           pl.col("timestamp").max().alias("last_seen")] if timed else []),
    )
    queries = [per_model]
    if full_check or fb is not None:
        # 64-bit hashes count the ids at a fraction of the cost of the strings; a hash collision
        # can only raise a false alarm, which the exact check below then clears.
        queries.append(data.select(pl.col("request_id").hash(seed=0).n_unique().alias("unique"),
                                   pl.len().alias("rows")))
    try:
        results = pl.collect_all(queries, engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(source, exc) from None
    agg = results[0]
    total = footers.rows if footers is not None else None
    if agg.height == 0 and total is None:
        total = int(lf.select(pl.len()).collect().item())
    if total == 0:
        raise BadDataError(f"logs {source.label} have no rows, point --logs at the request logs")
    if agg.height == 0:
        span = lf.select(pl.col("timestamp").min().alias("a"), pl.col("timestamp").max().alias("b"))
        first, last = span.collect().row(0)
        raise BadDataError(
            f"logs {source.label} have no row before --as-of {as_of:%Y-%m-%d %H:%M} UTC (they run "
            f"from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}), pass a later --as-of"
        )
    null_cost = known_model & (pl.col("n_cost") < pl.col("rows_before"))
    not_finite = ((pl.col("n_reward") > 0) & ~pl.col("mean_reward").is_finite()) | (
        (pl.col("n_cost") > 0) & ~(pl.col("mean_cost").is_finite() & pl.col("m2_cost").is_finite()))
    bad = [name for name in agg.columns if name.startswith("bad_") and agg[name].sum() > 0]
    bad += [name for name in agg.columns if name.startswith("sum_")
            and not agg[name].is_finite().all()]
    if bad or agg["model"].null_count() or agg.filter(null_cost | not_finite).height:
        for column, pred, what, fix in rules:
            error = _violation(source, schema, catalog, fb, cost_from_tokens, column, pred, what, fix)
            if error is not None:
                raise error
        raise BadDataError(f"logs {source.label}: a value breaks the data contract (checks: {bad})")
    dup = None
    if len(results) > 1 and results[1]["unique"][0] != results[1]["rows"][0]:
        dup = data.group_by("request_id").len().filter(pl.col("len") > 1).head(1).collect()
    if dup is not None and dup.height:
        raise BadDataError(
            f"logs {source.label}, column 'request_id' has '{dup['request_id'][0]}' "
            f"{dup['len'][0]} times, request ids must be unique"
        )
    agg = agg.with_columns(pl.col("rows_before").alias("rows"))
    known = agg.filter(known_model)
    unknown = agg.filter(~known_model).select("model", "rows").sort("model")
    if strict and unknown.height:
        row = unknown.row(0, named=True)
        raise BadDataError(
            f"logs {source.label}, column 'model' has '{row['model']}' ({row['rows']} row(s)), "
            "which is not in the catalog; add it to the catalog or drop --strict to ignore it"
        )
    if timed:
        last_seen = known.select("model", "last_seen")
        first = known["first_seen"].min()
        last = known["last_seen"].max()
    else:
        assert footers is not None and footers.ts_max is not None
        cutoff = footers.ts_max - recent
        last_seen = (used.filter((pl.col("timestamp") > cutoff) & known_model).group_by("model")
                     .agg(pl.col("timestamp").max().alias("last_seen")).collect())
        first, last = footers.ts_min, footers.ts_max
    scale, mean_in, mean_out = _sampled(source, schema, catalog, as_of, cost_from_tokens, footers)
    return LogSummary(
        stats=normalise_stats(known).join(last_seen, on="model", how="left"),
        rows=total if total is not None else int(agg["rows"].sum()),
        rows_used=int(known["rows"].sum()),
        first_seen=first if known.height else None,  # type: ignore[arg-type]
        last_seen=last if known.height else None,  # type: ignore[arg-type]
        unknown=unknown,
        cost_p999=scale,
        mean_input_tokens=mean_in,
        mean_output_tokens=mean_out,
        cost_source="tokens" if cost_from_tokens else "column",
        label=source.label,
    )


SAMPLE_ROWS = 200_000
SAMPLE_GROUPS = 8


def _sampled(source: LogSource, schema: dict[str, pl.DataType], catalog: pl.DataFrame,
             as_of: dt.datetime, cost_from_tokens: bool, footers: Footers | None,
             ) -> tuple[float | None, float | None, float | None]:
    """p99.9 of cost and mean token counts (of catalog models, before ``as_of``) from a sample.

    The sample is the first rows of Parquet row groups spread evenly over the files (at least
    SAMPLE_GROUPS groups, SAMPLE_ROWS rows in all), read with only the columns it needs:
    time-stratified when the files are time-ordered, exact on logs of up to SAMPLE_ROWS rows in
    few groups, and a small fraction of a pass on large ones. Without footers (hive layouts)
    every row is read.
    """
    needed = [c for c in ("timestamp", "model", "cost", "input_tokens", "output_tokens")
              if c in schema]
    if footers is None or not footers.groups:
        frame = source.scan().select(needed)
    else:
        import pyarrow.parquet as pq

        groups = footers.groups
        mean_rows = max(1, footers.rows // len(groups))
        want = min(len(groups), max(SAMPLE_GROUPS, -(-SAMPLE_ROWS // mean_rows)))
        picks = sorted({round(i * (len(groups) - 1) / max(want - 1, 1)) for i in range(want)})
        tables: list[pl.DataFrame] = []
        by_file: dict[str, list[int]] = {}
        for i in picks:
            by_file.setdefault(groups[i][0], []).append(groups[i][1])
        per_group = -(-SAMPLE_ROWS // len(picks))
        for file, indices in by_file.items():
            handle = pq.ParquetFile(file)
            for index in indices:  # the first rows of each picked group: only their pages are read
                batch = next(handle.iter_batches(batch_size=per_group, row_groups=[index],
                                                 columns=needed), None)
                if batch is not None:
                    tables.append(pl.DataFrame(pl.from_arrow(batch)))
        frame = (pl.concat(tables, how="diagonal_relaxed").lazy() if tables
                 else source.scan().select(needed))
    sub_schema: dict[str, pl.DataType] = {c: schema[c] for c in needed}
    prepared = _prepare(frame.with_columns(pl.lit(None, pl.String).alias("request_id")),
                        {**sub_schema, "request_id": pl.String()}, catalog, None, cost_from_tokens)
    used = prepared.filter((pl.col("timestamp") < as_of)
                           & pl.col("model").is_in(catalog["model"].implode()))
    exprs = [pl.col("cost").quantile(0.999, "nearest").alias("p999")]
    exprs += [pl.col(t).mean().alias(t) for t in ("input_tokens", "output_tokens") if t in schema]
    out = used.select(exprs).collect().row(0, named=True)
    return out["p999"], out.get("input_tokens"), out.get("output_tokens")


def _violation(source: LogSource, schema: dict[str, pl.DataType], catalog: pl.DataFrame,
               fb: pl.LazyFrame | None, cost_from_tokens: bool, column: str, pred: pl.Expr,
               what: str, fix: str) -> BadDataError | None:
    """Find the first offending row again, this time with its file and row number, for the message."""
    lf = source.scan(with_file=True, row_index=_ROW)
    data = _prepare(lf, {**schema, _FILE: pl.String(), _ROW: pl.Int64()}, catalog, fb, cost_from_tokens,
                    ordered=True)
    # The row index runs over all files; the row number within the file is what users can look up.
    data = data.with_columns(pl.col(_ROW).cast(pl.Int64) - pl.col(_ROW).min().over(_FILE).cast(pl.Int64))
    try:
        hits = data.filter(pred).head(1).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        return _unreadable(source, exc)
    if hits.height == 0:
        return None
    row = hits.row(0, named=True)
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
