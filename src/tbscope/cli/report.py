"""``tbscope report``: one self-contained HTML file of an experiment, to share without a server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tbscope.cli.arguments import config_keys, directory, parsed_by, pattern
from tbscope.cli.units import format_bytes, parse_bytes


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report",
        help="write one offline HTML file of the runs, to share",
        description="One HTML file holding the runs table, curves (per run and per group of seeds, with bands), "
        "the groups' final values and whether the lead is significant, the last pictures, PR curves and "
        "profiles. It opens in any browser without a network.",
    )
    parser.add_argument("root", type=directory, help="the runs root (or any logdir)")
    parser.add_argument("-o", "--output", type=Path, default=Path("report.html"), help="the file (report.html)")
    parser.add_argument("--experiment", metavar="NAME", help="only this experiment's runs")
    parser.add_argument("--runs", metavar="REGEX", type=pattern, help="only runs matching this regular expression")
    parser.add_argument(
        "--tags", metavar="REGEX", type=pattern, help="scalar tags to draw besides the headline metrics"
    )
    parser.add_argument("--group-by", metavar="KEYS", type=config_keys, help="group runs by these config keys")
    parser.add_argument(
        "--ignore", metavar="KEYS", type=config_keys, default=[], help="config keys left out when grouping"
    )
    parser.add_argument(
        "--max-size", type=parsed_by(parse_bytes), default="20MB", metavar="SIZE",
        help="size budget (default 20MB): pictures are downscaled, then left out, to stay within it",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tbscope.report import build

    try:
        made = build(args.root, args.output, runs=args.runs, tags=args.tags, experiment=args.experiment,
                     by=args.group_by, ignore=args.ignore, max_bytes=args.max_size)  # fmt: skip
    except ValueError as err:
        print(f"tbscope report: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"tbscope report: cannot write {args.output}: {err.strerror or err}", file=sys.stderr)
        return 1
    note = f"; left out or shrunk to fit: {len(made.left_out)} item(s), listed in the report" if made.left_out else ""
    print(f"Wrote {made.path} ({format_bytes(made.bytes)}, {made.runs} run(s), {made.seconds:.1f} s){note}. "
          f"It opens offline in any browser.")  # fmt: skip
    return 0
