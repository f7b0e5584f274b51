"""Speed of the contextual replay: queries per second of stageroute-contextual (one joint table
per query, and 7 per stage) against StageRoute's own loop on the same stream, per shared table.

    python benchmarks/bench_contextual.py [--horizon 100000] [--repeat 3] [--tables routerbench mmlupro]

Target (issue 12): at least 200,000 queries/s. The time is one whole learning run: the stage
DeployOPTs (joint, by enumeration) and the compiled per-query loop; the first call compiles
(numba's cache) and is not timed.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from _common import best_of
from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.outcomes import load_outcomes, to_matrix
from stageroute.inputs.segmentation import segments_by_column
from stageroute.options import Policy
from stageroute.simulate.contextual import run_stageroute_contextual
from stageroute.simulate.replay import ReplayConfig, make_stream, prepare, run_policy

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGET = 200_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tables", nargs="*", default=["routerbench", "mmlupro"])
    args = parser.parse_args()
    print(f"T = {args.horizon:,}, relative budget 0.3, M_max 3, segments = eval_name; best of "
          f"{args.repeat}")
    print(f"{'table':12} {'refresh':8} {'contextual q/s':>15} {'stageroute q/s':>15} {'ratio':>6}")
    for table in args.tables:
        frame = load_outcomes(SHARED / table / "outcomes.parquet")
        matrix, catalog = to_matrix(frame), load_catalog(SHARED / table / "catalog.csv")
        seg = segments_by_column(frame, matrix, "eval_name")
        for refresh in (None, 7):
            cfg = ReplayConfig(budget=0.3, relative_budget=True, max_deployed=3,
                               horizon=args.horizon, contextual=True, refresh=refresh)
            setup = prepare(matrix, catalog, cfg)
            stream = make_stream(len(matrix.samples), args.horizon, 0)
            contextual = partial(run_stageroute_contextual, matrix, seg, setup.schedule, stream,
                                 setup.config, setup.alpha, setup.scale, setup.prices)
            plain = partial(run_policy, Policy.STAGEROUTE, matrix, setup.schedule, stream,
                            setup.config, setup.alpha, setup.scale, setup.prices)
            contextual()
            plain()  # compiled and cached before timing
            ctx = args.horizon / best_of(contextual, args.repeat)
            base = args.horizon / best_of(plain, args.repeat)
            flag = "" if ctx >= TARGET else f"  below the {TARGET:,} target"
            print(f"{table:12} {refresh or 'query'!s:8} {ctx:15,.0f} {base:15,.0f} "
                  f"{ctx / base:6.2f}{flag}")


if __name__ == "__main__":
    main()
