"""The README's "Contextual routing" results: contextual StageRoute against StageRoute, PORT and
both oracles, on both shared tables, per query and with fixed tables, at two budgets.

    python benchmarks/contextual_results.py                      # T=100,000, 10 seeds
    python benchmarks/contextual_results.py --seeds 3 --horizon 30000 --tables routerbench

Reads ../shared/data/routerbench and ../shared/data/mmlupro (outside the repository): outcomes,
catalog and prompts (PORT's neighbours and --segments auto). Cells: mean reward per query
[95% interval over seeds] (realised cost / budget); the oracles are exact expected values.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.outcomes import load_outcomes, to_matrix
from stageroute.inputs.segmentation import prompt_features, segmentation
from stageroute.options import Policy
from stageroute.simulate.replay import PolicySummary, ReplayConfig, replay

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
POLICIES = (Policy.CONTEXTUAL, Policy.STAGEROUTE, Policy.PORT, Policy.ORACLE,
            Policy.ORACLE_CONTEXTUAL)


def cell(p: PolicySummary) -> str:
    ci = p.ci95.get("mean_reward")
    interval = f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci is not None and p.runs else ""
    return f"{p.mean_reward:.4f}{interval} ({p.cost_over_budget:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=100_000)
    parser.add_argument("--tables", nargs="*", default=["routerbench", "mmlupro"])
    parser.add_argument("--segments", nargs="*", default=["eval_name", "auto"])
    parser.add_argument("--clusters", type=int, default=None)
    parser.add_argument("--budgets", nargs="*", type=float, default=[0.3, 0.7])
    parser.add_argument("--refresh", nargs="*", default=["query", "7"])
    args = parser.parse_args()
    names = [str(p) for p in POLICIES]
    print(f"T = {args.horizon:,}, {args.seeds} seeds, M_max 3; cells: mean reward [95% interval] "
          "(cost / budget)\n")
    print("| table | segments | budget | refresh | " + " | ".join(names) + " |")
    print("|---" * (4 + len(names)) + "|")
    for table in args.tables:
        root = SHARED / table
        frame = load_outcomes(root / "outcomes.parquet")
        matrix, catalog = to_matrix(frame), load_catalog(root / "catalog.csv")
        features = prompt_features(root / "prompts.parquet", matrix)
        for source in args.segments:
            for rel in args.budgets:
                for refresh in args.refresh:
                    cfg = ReplayConfig(
                        budget=rel, relative_budget=True, max_deployed=3, horizon=args.horizon,
                        seeds=args.seeds, policies=POLICIES, contextual=True, segments=source,
                        prompts=root / "prompts.parquet",
                        clusters=args.clusters if source == "auto" else None,
                        refresh=None if refresh == "query" else int(refresh))
                    seg = segmentation(frame, matrix, cfg, features)
                    start = time.perf_counter()
                    result = replay(matrix, catalog, cfg, segments=seg, features=features)
                    by = {p.policy: p for p in result.policies}
                    label = source if source != "auto" else f"auto ({len(seg.names)})"
                    print(f"| {table} | {label} | {rel} | {refresh} | "
                          + " | ".join(cell(by[p]) for p in POLICIES)
                          + f" |  <!-- {time.perf_counter() - start:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
