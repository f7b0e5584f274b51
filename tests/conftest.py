"""Shared fixtures: the repository, the sample data and a small valid log + catalog to mutate."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import schema_guard
from hypothesis import settings
from schema_guard import (  # noqa: F401  (hooks: a plan or replay document off the schema fails its test)
    pytest_runtest_call,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

# Every plan and replay document the tests make, in this process or printed/written by a child
# `stageroute plan|replay`, is validated against schemas/ (tests/schema_guard.py).
schema_guard.install()

# Three models, all released long before the logs; prices in USD per million tokens.
CATALOG_CSV = """model,released,retired,max_share,usd_per_mtok_in,usd_per_mtok_out
alpha,2026-01-01,,1.0,1.0,2.0
beta,2026-01-01,,0.5,0.5,1.0
gamma,2026-01-01,2027-01-01,1.0,3.0,6.0
"""
AS_OF = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)

WriteLogs = Callable[..., tuple[Path, Path]]


def small_logs(rows: int = 30) -> pl.DataFrame:
    """A valid log: ``rows`` hourly requests spread over alpha/beta/gamma from 2026-02-27."""
    start = dt.datetime(2026, 2, 27, tzinfo=dt.UTC)  # within a stage (7d) of AS_OF: not stale
    models = ["alpha", "beta", "gamma"]
    inp = [100 + 10 * i for i in range(rows)]
    out = [50 + 5 * i for i in range(rows)]
    return pl.DataFrame(
        {
            "request_id": [f"r{i:04d}" for i in range(rows)],
            "timestamp": [start + dt.timedelta(hours=i) for i in range(rows)],
            "model": [models[i % 3] for i in range(rows)],
            "reward": [None if i % 7 == 0 else (i % 5) / 4 for i in range(rows)],
            "cost": [0.001 * (1 + i % 3) for i in range(rows)],
            "input_tokens": inp,
            "output_tokens": out,
        },
        schema={
            "request_id": pl.String,
            "timestamp": pl.Datetime("us", "UTC"),
            "model": pl.String,
            "reward": pl.Float64,
            "cost": pl.Float64,
            "input_tokens": pl.Int64,
            "output_tokens": pl.Int64,
        },
    )


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def sample_logs(repo_root: Path) -> Path:
    return repo_root / "sample_logs" / "logs.parquet"


@pytest.fixture(scope="session")
def sample_catalog(repo_root: Path) -> Path:
    return repo_root / "sample_logs" / "catalog.csv"


@pytest.fixture
def write_logs(tmp_path: Path) -> WriteLogs:
    """``write_logs(mutate=None, name='logs.parquet')`` -> (logs_path, catalog_path).

    ``mutate`` takes the valid log DataFrame and returns the one to write; the catalog is the
    3-model CSV above, written beside it.
    """

    def write(mutate: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
              name: str = "logs.parquet") -> tuple[Path, Path]:
        frame = small_logs()
        if mutate is not None:
            frame = mutate(frame)
        logs = tmp_path / name
        logs.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(logs)
        catalog = tmp_path / "catalog.csv"
        catalog.write_text(CATALOG_CSV)
        return logs, catalog

    return write


ROUTERBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "routerbench"


@pytest.fixture(scope="session")
def routerbench() -> Path:
    """The shared RouterBench subset beside the checkout (never copied into the repository)."""
    if not (ROUTERBENCH / "outcomes.parquet").is_file():
        pytest.fail(f"RouterBench subset not found at {ROUTERBENCH}: clone the project next to the "
                    "shared/ directory that holds data/routerbench (CI provides it)", pytrace=False)
    return ROUTERBENCH


# Property tests draw the same examples on every run: CI is reproducible, and a case found once
# is kept as an @example rather than replayed from a local database.
# HYPOTHESIS_PROFILE=explore draws new examples (use it to hunt for cases, then pin them).
settings.register_profile("stageroute", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", database=None, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "stageroute"))
