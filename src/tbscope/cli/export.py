"""``tbscope export``: every scalar (nothing sampled away) to Parquet or CSV."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tbscope.cli.arguments import directory


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("export", help="write every scalar to a .parquet or .csv file")
    parser.add_argument("root", type=directory, help="the runs root (or any logdir)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="FILE.parquet or FILE.csv")
    parser.add_argument("--tags", metavar="REGEX", help="only tags matching this regular expression")
    parser.add_argument("--runs", metavar="REGEX", help="only runs matching this regular expression")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tbscope.reader import read_scalars

    suffix = args.output.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        print(f"tbscope export: the output must end in .parquet or .csv, got {args.output}", file=sys.stderr)
        return 2
    for name in ("tags", "runs"):
        try:
            re.compile(getattr(args, name) or "")
        except re.error as err:
            print(f"tbscope export: --{name} is not a regular expression: {err}", file=sys.stderr)
            return 2
    frame = read_scalars(args.root, runs=args.runs, tags=args.tags)
    try:
        if suffix == ".parquet":
            frame.to_parquet(args.output, index=False)
        else:
            frame.to_csv(args.output, index=False)
    except OSError as err:
        print(f"tbscope export: cannot write {args.output}: {err.strerror or err}", file=sys.stderr)
        return 1
    print(f"Wrote {len(frame):,} scalars of {frame['run'].nunique()} run(s), {frame['tag'].nunique()} tag(s) "
          f"to {args.output}")  # fmt: skip
    return 0
