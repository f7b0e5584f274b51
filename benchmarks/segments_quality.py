"""Segments by prompt text (``--segments auto``, SPEC 12): how fast, and do they find the tasks?

    python benchmarks/segments_quality.py              # both shared tables, every prompt
    python benchmarks/segments_quality.py --rows 400   # 400 random prompts of each (a smoke run)

For RouterBench and MMLU-Pro: the time to fit the local embedding (hashed words and word pairs,
TF-IDF, truncated SVD to 64 dimensions) and embed every prompt, then for k = the number of tasks
(``eval_name``), 4, 8 and 16 the k-means time and the adjusted Rand index between the clusters
and ``eval_name`` (1: the tasks exactly; 0: no better than chance).

Reads ../shared/data/routerbench and ../shared/data/mmlupro (outside the repository).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl
from sklearn.metrics import adjusted_rand_score

from stageroute.embed import cluster, embed_prompts
from stageroute.inputs.prompts import load_prompts

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TABLES = ("routerbench", "mmlupro")
KS = (4, 8, 16)


def quality(path: Path, rows: int | None, dim: int, seed: int) -> None:
    """Print one table's rows: embedding time, then per k the clustering time and the ARI."""
    prompts = load_prompts(path)
    tasks = pl.read_parquet(path).select("sample_id", "eval_name")
    frame = prompts.join(tasks, on="sample_id", how="left", maintain_order="left")
    if rows is not None:
        frame = frame.sample(min(rows, frame.height), seed=seed)
    texts = frame["prompt"].to_list()
    labels = frame["eval_name"].to_list()
    start = time.perf_counter()
    features = embed_prompts(texts, dim=dim, seed=seed)
    embed = time.perf_counter() - start
    n_tasks = frame["eval_name"].n_unique()
    for k in (n_tasks, *KS):
        start = time.perf_counter()
        found = cluster(features, k, seed=seed)
        took = time.perf_counter() - start
        ari = adjusted_rand_score(labels, found)
        kind = " (tasks)" if k == n_tasks else ""
        print(f"| {path.parent.name} | {len(texts):,} | {n_tasks} | {embed:.2f} | {k}{kind} | "
              f"{took:.2f} | {ari:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="N random prompts of each table")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # the first call imports scikit-learn: not part of the embedding's time
    embed_prompts(["warm up", "the imports"], dim=2)
    print("| table | prompts | tasks | embed (s) | k | k-means (s) | ARI vs eval_name |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for table in TABLES:
        quality(SHARED / table / "prompts.parquet", args.rows, args.dim, args.seed)


if __name__ == "__main__":
    main()
