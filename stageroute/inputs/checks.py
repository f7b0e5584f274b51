"""The log contract: column types, the rules each value must follow, and the messages that name
the file, column, row and value of the first row that breaks one.

The statistics pass (``logs.py``) evaluates the rules as cheap per-model counts, skipping those
that the Parquet footers already vouch for; only when a count is non-zero does ``report_violations``
go back to the files to find the row to blame (the error path, never the success path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import polars as pl

from stageroute.errors import BadDataError
from stageroute.inputs.files import names, quote
from stageroute.inputs.footers import Footers
from stageroute.inputs.sources import LogSource, file_schema, fresh, unreadable

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
# Costs and token counts beyond this cannot be averaged safely: their squares (the variance)
# overflow. No real request costs 1e100 of any currency unit.
MAX_AMOUNT = 1e100
MIN_PROPENSITY = 1e-12  # 1 / propensity weighs a logged request in off-policy replay
FEEDBACK_REWARD = "__reward__"  # the reward column of a loaded feedback frame (request_id, this)
_TEXT = "text (string)"


def _number(t: pl.DataType) -> bool:
    return t.is_numeric() or t == pl.Null


KIND: dict[str, tuple[str, Callable[[pl.DataType], bool]]] = {
    "request_id": (_TEXT, lambda t: t in (pl.String, pl.Categorical) or t.is_integer()),
    "timestamp": ("a datetime", lambda t: isinstance(t, pl.Datetime)),
    "model": (_TEXT, lambda t: t in (pl.String, pl.Categorical) or isinstance(t, pl.Enum)),
    "reward": ("a number in [0, 1]", _number),
    "cost": ("a number >= 0", _number),
    "input_tokens": ("an integer", _number),
    "output_tokens": ("an integer", _number),
    "segment": (_TEXT, lambda t: t in (pl.String, pl.Categorical, pl.Null) or t.is_integer()),
    "propensity": ("a number in (0, 1]", _number),
}


def check_types(source: LogSource, schema: dict[str, pl.DataType], columns: tuple[str, ...]) -> None:
    """Raise for the first of ``columns`` whose type breaks the contract, naming its file."""
    for column in columns:
        dtype = schema.get(column)
        if dtype is not None and not KIND[column][1](dtype):
            raise BadDataError(
                f"{source.kind} {source.where(column)}, column '{column}' has type {dtype}, "
                f"expected {KIND[column][0]}; fix the writer of the {source.kind}"
            )


def check_columns(source: LogSource, schema: dict[str, pl.DataType], need_reward: bool,
                  cost_from_tokens: bool) -> None:
    """Raise for a missing required column or a column of the wrong type."""
    required = ["request_id", "timestamp", "model"]
    required += ["reward"] if need_reward else []
    required += ["input_tokens", "output_tokens"] if cost_from_tokens else []
    for column in required:
        if column not in schema:
            hint = {
                "reward": "add it (null where there is no feedback) or pass --feedback",
                "input_tokens": "add a cost column, or give input_tokens/output_tokens and "
                                "catalog prices",
                "output_tokens": "add a cost column, or give input_tokens/output_tokens and "
                                 "catalog prices",
            }.get(column, "add it")
            shown = "cost" if cost_from_tokens and column.endswith("tokens") else column
            raise BadDataError(
                f"logs {source.label} have no column '{shown}' (they have: {names(schema)}), "
                f"{hint}"
            )
    check_types(source, schema, tuple(c for c in KIND if c in schema))


@dataclass(frozen=True, slots=True)
class LogScan:
    """One read of the logs: the files, their columns, the catalog, the feedback to join."""

    source: LogSource
    schema: dict[str, pl.DataType]  # of the scan (partition keys included)
    catalog: pl.DataFrame
    feedback: pl.LazyFrame | None  # request_id, FEEDBACK_REWARD
    cost_from_tokens: bool
    footers: Footers | None

    @property
    def feedback_column(self) -> str:
        return fresh("__feedback__", self.schema)

    def prepare(self, lf: pl.LazyFrame, extras: tuple[str, ...] = (), ordered: bool = False,
                ) -> pl.LazyFrame:
        """Normalise types, join the feedback, price requests from tokens without a cost column.

        ``extras`` are carried through (file name, row index); ``ordered`` keeps the file order
        through the joins (to report the first bad row), which the statistics do not need.
        """
        schema = lf.collect_schema()
        order: Literal["left"] | None = "left" if ordered else None
        exprs = [pl.col("request_id").cast(pl.String), _to_utc(schema["timestamp"]),
                 pl.col("model").cast(pl.String)]
        exprs += [pl.col(c).cast(pl.Float64) for c in
                  ("reward", "cost", "propensity", "input_tokens", "output_tokens") if c in schema]
        exprs += [pl.col("segment").cast(pl.String)] if "segment" in schema else []
        out = lf.select(*exprs, *extras)
        if self.feedback is not None:
            fb = self.feedback_column
            out = out.join(self.feedback.rename({FEEDBACK_REWARD: fb}), on="request_id", how="left",
                           maintain_order=order)
            base = pl.col("reward") if "reward" in schema else pl.lit(None, pl.Float64)
            out = out.with_columns(pl.coalesce(fb, base).alias("reward")).drop(fb)
        if self.cost_from_tokens:
            prices = self.catalog.lazy().select("model", "usd_per_mtok_in", "usd_per_mtok_out")
            out = out.join(prices, on="model", how="left", maintain_order=order).with_columns(
                (pl.col("input_tokens") * pl.col("usd_per_mtok_in")
                 + pl.col("output_tokens") * pl.col("usd_per_mtok_out")).truediv(1e6).alias("cost")
            ).drop("usd_per_mtok_in", "usd_per_mtok_out")
        return out


def _to_utc(dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Datetime("us", "UTC"):
        # Already right: a bare column keeps filters on it pushed down to the Parquet statistics.
        return pl.col("timestamp")
    zone = getattr(dtype, "time_zone", None)
    ts = pl.col("timestamp").cast(pl.Datetime("us", zone))
    ts = ts.dt.replace_time_zone("UTC") if zone is None else ts.dt.convert_time_zone("UTC")
    return ts.alias("timestamp")


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the contract: the violating rows, what is wrong, how to fix it."""

    column: str
    violated: pl.Expr
    what: str
    fix: str


def rules(scan: LogScan) -> list[Rule]:
    """The value rules of the contract, for the columns the logs have."""
    # Requests of models outside the catalog are ignored, so they cannot be unpriced.
    known = pl.col("model").is_in(scan.catalog["model"].implode())
    r, c = pl.col("reward"), pl.col("cost")
    tokens = []
    for tok in ("input_tokens", "output_tokens"):
        if tok in scan.schema:
            t = pl.col(tok)
            tokens.append(Rule(tok, (t < 0) | ~t.is_finite() | (t > MAX_AMOUNT),
                               f"is negative, not finite or above {MAX_AMOUNT:g}",
                               "token counts are integers >= 0"))
    # Costs priced from tokens break a cost rule when a token count breaks its own: blame that.
    out = tokens if scan.cost_from_tokens else []
    out += [
        Rule("request_id", pl.col("request_id").is_null(), "is empty", "give every request an id"),
        Rule("timestamp", pl.col("timestamp").is_null(), "is empty", "give every request its time"),
        Rule("model", pl.col("model").is_null(), "is empty", "give every request its model id"),
        Rule("reward", r.is_nan(), "is NaN", "use null for 'no feedback', never NaN"),
        Rule("reward", (r < 0) | (r > 1), "is outside [0, 1]", "rescale rewards to [0, 1]"),
        Rule("cost", c.is_null() & known, "is empty",
             "every request has a cost (or give tokens and catalog prices)"),
        Rule("cost", c.is_nan() | c.is_infinite(), "is not finite", "write real costs"),
        Rule("cost", c < 0, "is negative", "costs are >= 0"),
        Rule("cost", c > MAX_AMOUNT, f"is above {MAX_AMOUNT:g}",
             "write costs in a unit that keeps them below that"),
    ]
    out += [] if scan.cost_from_tokens else tokens
    if "propensity" in scan.schema:
        p = pl.col("propensity")
        out.append(Rule("propensity", p.is_nan() | (p <= 0) | (p > 1), "is outside (0, 1]",
                        "propensities are probabilities > 0"))
        out.append(Rule("propensity", p < MIN_PROPENSITY, f"is below {MIN_PROPENSITY:g}",
                        "the importance weights 1 / propensity would overflow the estimates; "
                        "check that the column holds probabilities"))
    return out


def _within(footers: Footers | None, column: str, lo: float, hi: float) -> bool:
    span = footers.ranges.get(column) if footers is not None else None
    return span is not None and span[0] >= lo and span[1] <= hi


def vouched(scan: LogScan) -> dict[str, bool]:
    """Per column: whether the footer statistics prove every value follows its rules (free)."""
    f, tokens = scan.footers, not scan.cost_from_tokens
    return {
        "request_id": f is not None and f.nulls.get("request_id") == 0,
        "timestamp": f is not None and f.nulls.get("timestamp") == 0,
        "model": True,  # a null model is a null group
        "reward": "reward" not in scan.schema or _within(f, "reward", 0.0, 1.0),
        "cost": tokens and _within(f, "cost", 0.0, MAX_AMOUNT),
        "input_tokens": tokens and _within(f, "input_tokens", 0.0, MAX_AMOUNT),
        "output_tokens": tokens and _within(f, "output_tokens", 0.0, MAX_AMOUNT),
        "propensity": _within(f, "propensity", MIN_PROPENSITY, 1.0),
    }


def pass_checks(scan: LogScan, contract: list[Rule], full_check: bool) -> list[pl.Expr]:
    """Per-model aggregations of the statistics pass that count what the footers cannot vouch for."""
    proof = vouched(scan)
    checks = [rule.violated.sum().alias(f"bad_{i}") for i, rule in enumerate(contract)
              if not proof.get(rule.column, False)]
    # Footer ranges skip NaN, and these columns never reach a mean: a per-model sum (the
    # cheapest reduction) turns any NaN or infinity into a non-finite total. Propensity is not
    # used by the plan: its NaN check is part of the full check; the tokens price untried
    # models, so theirs always runs.
    checks += [pl.col(col).sum().alias(f"sum_{col}")
               for col in ("input_tokens", "output_tokens", "propensity")
               if col in scan.schema and proof[col] and not scan.schema[col].is_integer()
               and (full_check or col != "propensity")]
    return checks


def report_violations(scan: LogScan, agg: pl.DataFrame, contract: list[Rule]) -> None:
    """Raise the error for the first broken rule if the pass counted any violation."""
    known = pl.col("model").is_in(scan.catalog["model"].implode())
    null_cost = known & (pl.col("n_cost") < pl.col("rows_before"))
    not_finite = ((pl.col("n_reward") > 0) & ~pl.col("mean_reward").is_finite()) | (
        (pl.col("n_cost") > 0) & ~(pl.col("mean_cost").is_finite() & pl.col("m2_cost").is_finite()))
    bad = [n for n in agg.columns if n.startswith("bad_") and agg[n].sum() > 0]
    bad += [n for n in agg.columns if n.startswith("sum_") and not agg[n].is_finite().all()]
    suspect = agg.filter(null_cost | not_finite)
    if not bad and not agg["model"].null_count() and not suspect.height:
        return
    for rule in contract:
        error = _violation(scan, rule)
        if error is not None:
            raise error
    row = suspect.row(0, named=True) if suspect.height else {"model": None}
    raise BadDataError(
        f"logs {scan.source.label}: the mean or variance of model {quote(row['model'])} is not a "
        "finite number (columns reward, cost), although each value passes its check; "
        f"look for extreme values there and write them in a smaller unit"
    )


def _located(scan: LogScan) -> tuple[pl.LazyFrame, str, str]:
    """The prepared logs in file order with each row's file and 0-based row in that file."""
    source = scan.source
    file_col, row_col = source.file_column, source.row_column
    lf = source.scan(with_file=True, with_row=True)
    data = scan.prepare(lf, extras=(file_col, row_col), ordered=True)
    # The row index runs over all files; the row number within the file is what users look up.
    first = pl.col(row_col).min().over(file_col).cast(pl.Int64)
    return data.with_columns(pl.col(row_col).cast(pl.Int64) - first), file_col, row_col


def _violation(scan: LogScan, rule: Rule) -> BadDataError | None:
    """Find the first row that breaks ``rule`` again, with its file and row, for the message."""
    data, file_col, row_col = _located(scan)
    try:
        hits = data.filter(rule.violated).head(1).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        return unreadable(scan.source, exc)
    if hits.height == 0:
        return None
    row = hits.row(0, named=True)
    where, at = row[file_col], f"0-based row {row[row_col]}"
    if scan.cost_from_tokens and rule.column == "cost":
        return _unpriced(scan, row, where, at, rule.what)
    value = row.get(rule.column)
    if value is None and rule.column in ("request_id", "timestamp", "model", "cost"):
        try:
            missing = rule.column not in file_schema(where)
        except (pl.exceptions.PolarsError, OSError):
            missing = False
        if missing:
            return BadDataError(
                f"logs {where} have no column '{rule.column}' although other files of "
                f"{scan.source.label} have it, add it to every file"
            )
    shown = "" if value is None else f": {quote(value)}"
    ident = "" if rule.column == "request_id" else f", request_id {quote(row.get('request_id'))}"
    return BadDataError(f"logs {where}, column '{rule.column}' {rule.what}{shown} ({at}{ident}), "
                        f"{rule.fix}")


def _unpriced(scan: LogScan, row: dict[str, object], where: str, at: str, what: str,
              ) -> BadDataError:
    """The error for a request whose cost, priced from tokens and catalog prices, breaks a rule."""
    model, rid = quote(row["model"]), quote(row["request_id"])
    prices = scan.catalog.filter(pl.col("model") == row["model"]).select(
        "usd_per_mtok_in", "usd_per_mtok_out").rows()
    p_in, p_out = prices[0] if prices else (None, None)
    if p_in is None or p_out is None:
        return BadDataError(
            f"logs {where} have no column 'cost' and model {model} ({at}) has no "
            "usd_per_mtok_in/usd_per_mtok_out in the catalog, so its requests cannot be priced "
            "from tokens; add its prices to the catalog or a cost column to the logs"
        )
    if row.get("cost") is None:
        return BadDataError(
            f"logs {where}, column 'input_tokens'/'output_tokens' is empty ({at}, request_id "
            f"{rid}), so the request cannot be priced; give its token counts or add a cost column"
        )
    return BadDataError(
        f"logs {where}: request {rid} ({at}) of model {model}, priced from its tokens "
        f"(input_tokens {quote(row.get('input_tokens'))} x usd_per_mtok_in {quote(p_in)} + "
        f"output_tokens {quote(row.get('output_tokens'))} x usd_per_mtok_out {quote(p_out)}, "
        f"per million), costs {quote(row['cost'])}, which {what}; check the token counts and "
        "the catalog prices of that model"
    )


def check_unique(scan: LogScan, data: pl.LazyFrame, counts: pl.DataFrame | None) -> None:
    """Raise for a request id listed twice (``counts``: hashed unique ids and rows, or None)."""
    if counts is None or counts["unique"][0] == counts["rows"][0]:
        return
    dup = data.group_by("request_id").len().filter(pl.col("len") > 1).head(1).collect()
    if dup.height:  # a 64-bit hash collision alone leaves no duplicate here
        raise BadDataError(
            f"logs {scan.source.label}, column 'request_id' has {quote(dup['request_id'][0])} "
            f"{dup['len'][0]} times, request ids must be unique"
        )
