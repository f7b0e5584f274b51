"""Generate a realistic, seeded request/feedback log and its model catalog.

Months of traffic with a weekly rhythm and a growing volume, ten models that arrive and retire,
a logging router that keeps four models deployed and re-plans weekly (propensities logged), and
feedback on about 70% of the requests.

    python sample_logs/generate.py                      # the committed sample (about 60k rows)
    python sample_logs/generate.py --rows 20000000 --out /tmp/big   # a benchmark-sized log
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

# model, provider, released, retired, quality (mean reward), $/Mtok in, $/Mtok out, max_share
MODELS = [
    ("atlas-lite-1", "atlas", "2026-01-10", "2026-09-30", 0.58, 0.15, 0.60, 1.0),
    ("atlas-pro-1", "atlas", "2026-01-10", "2026-10-31", 0.74, 2.50, 10.0, 1.0),
    ("boreal-8b", "boreal", "2026-02-20", None, 0.61, 0.10, 0.10, 1.0),
    ("boreal-70b", "boreal", "2026-03-15", None, 0.71, 0.60, 0.80, 0.6),
    ("cirrus-mini", "cirrus", "2026-04-01", None, 0.66, 0.25, 1.00, 1.0),
    ("cirrus-large", "cirrus", "2026-04-01", "2026-12-15", 0.80, 5.00, 15.0, 0.5),
    ("dune-coder", "dune", "2026-06-10", None, 0.69, 0.30, 1.20, 1.0),
    ("atlas-lite-2", "atlas", "2026-08-05", None, 0.67, 0.12, 0.50, 1.0),
    ("atlas-pro-2", "atlas", "2026-09-15", None, 0.83, 2.00, 8.00, 1.0),
    ("echo-reasoner", "echo", "2026-11-10", None, 0.86, 3.00, 12.0, 1.0),
]
START = dt.datetime(2026, 5, 4, tzinfo=dt.UTC)
END = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)  # a Monday: the demo plans the stage from here
DEPLOYED = 4  # how many models the logging router keeps live


def catalog() -> pl.DataFrame:
    return pl.DataFrame(
        [m[:4] + m[5:] for m in MODELS],
        schema=["model", "provider", "released", "retired",
                "usd_per_mtok_in", "usd_per_mtok_out", "max_share"],
        orient="row",
    )


def generate(rows: int, seed: int) -> pl.DataFrame:
    """``rows`` requests between START and END, served by a weekly re-planning router."""
    rng = np.random.default_rng(seed)
    names = [m[0] for m in MODELS]
    released = np.array([np.datetime64(m[2]) for m in MODELS], dtype="datetime64[s]")
    retired = np.array([np.datetime64(m[3] or "2100-01-01") for m in MODELS], dtype="datetime64[s]")
    quality = np.array([m[4] for m in MODELS])
    price_in = np.array([m[5] for m in MODELS])
    price_out = np.array([m[6] for m in MODELS])

    # Volume: grows 3x over the period, with a weekday/weekend rhythm and a daily cycle.
    span = (END - START).total_seconds()
    grid = np.linspace(0.0, span, 20_001)
    days = grid / 86_400.0
    weight = (1 + 2 * grid / span) * (1 + 0.35 * np.cos(2 * np.pi * days / 7)) \
        * (1 + 0.5 * np.sin(2 * np.pi * days))
    cdf = np.cumsum(weight)
    offsets = np.sort(np.interp(rng.random(rows) * cdf[-1], cdf, grid))
    ts = np.datetime64(START.replace(tzinfo=None), "s") + offsets.astype("timedelta64[s]")

    # Weekly plan of the logging router: the DEPLOYED available models with the best noisy score,
    # routed proportionally to a softmax of that score (so propensities vary).
    week = ((ts - ts[0]) // np.timedelta64(7, "D")).astype(np.int64)
    model = np.empty(rows, dtype=np.int64)
    propensity = np.empty(rows)
    for w in np.unique(week):
        idx = np.flatnonzero(week == w)
        now = ts[idx[0]]
        live = np.flatnonzero((released <= now) & (retired > now + np.timedelta64(7, "D")))
        score = quality[live] - 0.02 * np.log1p(price_out[live]) + rng.normal(0, 0.05, live.size)
        keep = live[np.argsort(-score)[:DEPLOYED]]
        probs = np.exp(8 * score[np.argsort(-score)[:DEPLOYED]])
        probs /= probs.sum()
        pick = rng.choice(keep.size, size=idx.size, p=probs)
        model[idx] = keep[pick]
        propensity[idx] = probs[pick]

    input_tokens = rng.lognormal(np.log(600), 0.6, rows).astype(np.int64) + 20
    output_tokens = rng.lognormal(np.log(250), 0.7, rows).astype(np.int64) + 5
    cost = (input_tokens * price_in[model] + output_tokens * price_out[model]) / 1e6
    # Judge scores on a 5-point scale, mapped to [0, 1]; about 30% of requests get none.
    reward = rng.binomial(4, quality[model]) / 4.0
    reward = np.where(rng.random(rows) < 0.7, reward, np.nan)
    segment = rng.choice(["chat", "code", "extraction", "summarise"], rows, p=[0.4, 0.25, 0.2, 0.15])
    return pl.DataFrame({
        "request_id": [f"req-{seed}-{i:09d}" for i in range(rows)],
        "timestamp": pl.Series(ts.astype("datetime64[us]")).dt.replace_time_zone("UTC"),
        "model": np.array(names)[model],
        "reward": reward,
        "cost": cost.round(8),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "segment": segment,
        "propensity": propensity.round(6),
    }).with_columns(pl.col("reward").fill_nan(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--chunk", type=int, default=2_000_000, help="rows per Parquet file")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    catalog().write_csv(args.out / "catalog.csv")
    if args.rows <= args.chunk:
        generate(args.rows, args.seed).write_parquet(args.out / "logs.parquet", compression="zstd")
    else:
        parts = args.out / "logs"
        parts.mkdir(exist_ok=True)
        for i, start in enumerate(range(0, args.rows, args.chunk)):
            n = min(args.chunk, args.rows - start)
            generate(n, args.seed + i).write_parquet(parts / f"part-{i:04d}.parquet")
    print(f"wrote {args.rows} rows and the catalog to {args.out}")


if __name__ == "__main__":
    main()
