"""``tbscope export``: every scalar (nothing sampled away), with its run's config, to Parquet, CSV or JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from tbscope.cli.arguments import directory, pattern


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="write every scalar to a .parquet, .csv or .json file",
        description="Every scalar (run, tag, step, wall_time, value), nothing sampled away, with the run's config "
        "as config/<key> columns.",
    )
    parser.add_argument("root", type=directory, help="the runs root (or any logdir)")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="FILE.parquet, FILE.csv or FILE.json (a list of rows)"
    )
    parser.add_argument("--tags", metavar="REGEX", type=pattern, help="only tags matching this regular expression")
    parser.add_argument("--runs", metavar="REGEX", type=pattern, help="only runs matching this regular expression")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tbscope.reader import read_scalars

    suffix = args.output.suffix.lower()
    if suffix not in (".parquet", ".csv", ".json"):
        print(f"tbscope export: the output must end in .parquet, .csv or .json, got {args.output}", file=sys.stderr)
        return 2
    frame = read_scalars(args.root, runs=args.runs, tags=args.tags)
    if frame.empty:
        chosen = " and ".join(f"--{n} {getattr(args, n)!r}" for n in ("tags", "runs") if getattr(args, n))
        print(f"tbscope export: no scalar {'matched ' + chosen if chosen else 'found'} under {args.root}; "
              f"nothing written (tbscope ls {args.root} lists the runs and their tags)", file=sys.stderr)  # fmt: skip
        return 1
    frame = with_config(args.root, frame)
    try:
        if suffix == ".parquet":
            frame.to_parquet(args.output, index=False)
        elif suffix == ".csv":
            frame.to_csv(args.output, index=False)
        else:
            frame.to_json(args.output, orient="records")
    except OSError as err:
        print(f"tbscope export: cannot write {args.output}: {err.strerror or err}", file=sys.stderr)
        return 1
    print(f"Wrote {len(frame):,} scalars of {frame['run'].nunique()} run(s), {frame['tag'].nunique()} tag(s) "
          f"to {args.output}")  # fmt: skip
    return 0


def with_config(root: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each run's config as ``config/<key>`` columns (empty where a run lacks a key); the
    sub-runs of a tbscope run (``add_scalars`` keys) take its config."""
    import pandas as pd

    from tbscope.catalog import catalog

    entries = sorted(catalog(root), key=lambda e: len(e.path), reverse=True)
    keys = sorted({k for e in entries for k in e.hparams})
    if not keys:
        return frame

    def owner(run: str) -> dict[str, Any]:
        for entry in entries:
            if run == entry.path or entry.path == "." or run.startswith(entry.path + "/"):
                return entry.hparams
        return {}

    configs = {run: owner(str(run)) for run in frame["run"].cat.categories}
    columns = {f"config/{k}": frame["run"].map({run: c.get(k) for run, c in configs.items()}).astype(object)
               for k in keys}  # fmt: skip
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)
