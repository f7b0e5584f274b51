"""``stageroute init``, ``import routerbench``, ``export`` and ``diff``: the example config,
RouterBench's table, a plan in a gateway's format, and what changed between two plans."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import typer

from stageroute.errors import BadDataError, one_line
from stageroute.options import (
    choice,
)
from stageroute_cli import common, process
from stageroute_cli import options as opt

from .common import app, import_app


@app.command(epilog="""Examples:

\b
  stageroute init
  stageroute plan --config stageroute.toml
""")
def init(
    path: Annotated[Path, typer.Option("--path", help="Where to write the example.")] = Path(
        "stageroute.toml"),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write a commented example stageroute.toml that plans on sample_logs/."""
    with process.command({}, {}, solves=False) as session:  # no lock file beside the example
        from stageroute.errors import CannotWriteError
        from stageroute.render.output import write_atomic
        from stageroute_cli.config import EXAMPLE

        if path.exists() and not force:
            raise CannotWriteError(f"{path} exists, it was left as it is; pass --force to replace "
                                   "it with the example")
        write_atomic(path, EXAMPLE, lock=False, guard=session.committing(path))
        process.stderr(f"stageroute: wrote {path}; try: stageroute plan --config {path}\n")


@import_app.command("routerbench")
def import_routerbench_cmd(
    source: Annotated[Path, typer.Argument(help="RouterBench's wide table: CSV, Parquet or the "
                                           "original .pkl (needs pandas; only open pickles you "
                                           "trust).")],
    output: Annotated[Path, typer.Option(help="Where to write the long outcomes table (Parquet). "
                                         "E.g. --output outcomes.parquet")],
) -> None:
    """Turn RouterBench's wide layout (score and '<model>|total_cost' per model) into outcomes."""
    with process.command({"--output": output}, {"SOURCE": source}, solves=False) as session:
        from stageroute.inputs.outcomes import import_routerbench
        from stageroute.render.output import write_atomic

        long, counts = import_routerbench(source)
        if long.height == 0:  # never replace a good outcomes file with an empty one
            raise BadDataError(
                f"RouterBench file {source} gives 0 rows: every prompt was dropped "
                f"({counts['dropped_repeated_ids']} with a repeated sample_id, "
                f"{counts['dropped_incomplete']} with a missing score or cost), {output} was not "
                "written; check the file's score and '<model>|total_cost' columns"
            )
        buffer = io.BytesIO()
        long.write_parquet(buffer)
        write_atomic(output, buffer.getvalue(), lock=False, guard=session.committing(output))
        process.stderr(one_line(
            f"stageroute: wrote {long.height:,} rows ({counts['prompts']:,} prompts x "
            f"{counts['models']} models) to {output}; dropped {counts['dropped_repeated_ids']} "
            f"repeated and {counts['dropped_incomplete']} incomplete prompts") + "\n")


EXPORT_EXAMPLES = """Examples:

\b
  stageroute export --plan out/plan.json --format litellm --output litellm.yaml
  stageroute export --plan out/plan.json --format envoy --catalog models.csv --model-name chat
  stageroute export --plan out/plan.json --format portkey --output portkey.json -q
"""


@app.command(epilog=EXPORT_EXAMPLES)
def export(
    plan_file: Annotated[Path, typer.Option("--plan", help="A plan JSON (plan --output or --json). "
                                            "E.g. --plan out/plan.json")],
    fmt: Annotated[str, typer.Option("--format", help="litellm (proxy config YAML), envoy "
                                     "(AIGatewayRoute YAML) or portkey (config JSON).")],
    output: opt.Output = None,
    model_name: Annotated[str, typer.Option(help="The model name clients send, one group of "
                                            "the routed models.")] = "stageroute",
    catalog: Annotated[Path | None, typer.Option(help="Catalog with the optional litellm_model, "
                                                 "rpm and tpm columns (and provider, for "
                                                 "Portkey).")] = None,
    quiet: opt.Quiet = False,
) -> None:
    """Turn a plan's routing table into a gateway config with integer weights."""
    inputs = {"--plan": plan_file, "--catalog": catalog}
    with process.command({"--output": output}, inputs, solves=False) as session:
        from stageroute.export import ExportFormat, export_plan
        from stageroute.render.output import write_atomic

        result = export_plan(plan_file, choice(ExportFormat, fmt, "--format"), model_name, catalog)
        say = process.progress(quiet)
        for note in result.notes:
            say(f"note: {note}")
        if output is None:
            process.print_out(result.text)
        else:
            write_atomic(output, result.text, lock=False, guard=session.committing(output))
            say(f"wrote {output}")


@app.command(epilog="""Examples:

\b
  stageroute diff plans/last-week.json plans/this-week.json
  stageroute diff --history plans/ --json
""")
def diff(
    plans: Annotated[list[Path] | None, typer.Argument(help="Two plan JSON files: before, after.",
                                                       show_default=False)] = None,
    history: Annotated[Path | None, typer.Option(help="Compare the last two plans of this plan "
                                                 "--history directory (by window start).")] = None,
    json_out: opt.Json = False,
) -> None:
    """Show the models added, evicted and kept, and the routing shares that moved."""
    with process.command({}, {"--history": history}, solves=False):
        from stageroute.diff import diff_document, diff_plans, latest_two
        from stageroute.errors import UsageError

        given = list(plans or [])
        if not ((history is None and len(given) == 2) or (history is not None and not given)):
            raise UsageError("diff takes two plan files (stageroute diff A.json B.json) or "
                             "--history DIR alone")
        before, after = latest_two(history) if history is not None else (given[0], given[1])
        result = diff_plans(before, after)
        if json_out:
            from stageroute.render.output import to_json

            process.print_out(to_json(diff_document(result)))
        else:
            common.render("render_diff", result)
