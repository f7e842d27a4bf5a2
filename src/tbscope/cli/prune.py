"""``tbscope prune``: delete old ended runs, oldest first, with the same safety rules as ``Retention``."""

from __future__ import annotations

import argparse
import os
import sys

from tbscope.cli.arguments import parsed_by, source
from tbscope.cli.units import format_bytes, parse_bytes, parse_duration


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "prune",
        help="delete old ended runs (never a running one)",
        description="Delete old ended tbscope runs under ROOT, oldest first. A running run, a directory "
        "that is not a tbscope run, and anything behind a symbolic link are never touched.",
    )
    parser.add_argument(
        "root", type=source, help="the runs root, e.g. runs, or a URL (s3://bucket/runs: its objects are deleted)"
    )
    parser.add_argument("--keep-last", type=int, metavar="N", help="keep the newest N runs of each experiment")
    parser.add_argument(
        "--older-than", type=parsed_by(parse_duration), metavar="AGE", help="delete runs older than AGE (30d)"
    )
    parser.add_argument(
        "--max-size", type=parsed_by(parse_bytes), metavar="SIZE", help="delete oldest runs until under SIZE"
    )
    parser.add_argument("--experiment", metavar="NAME", help="only this experiment")
    parser.add_argument("--dry-run", action="store_true", help="show what would be deleted, delete nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask before deleting")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tbscope import remote
    from tbscope.retention import Retention, delete_run, delete_stored_run, plan_retention, refresh_columns
    from tbscope.rundir import RunDir, find_runs

    if args.keep_last is None and args.older_than is None and args.max_size is None:
        print("tbscope prune: say what to delete: --keep-last, --older-than and/or --max-size", file=sys.stderr)
        return 2
    root, url = args.root
    try:
        retention = Retention(keep_last=args.keep_last, max_age=args.older_than, max_total_bytes=args.max_size)
    except ValueError as err:
        print(f"tbscope prune: {err}", file=sys.stderr)
        return 2
    if args.experiment is not None:
        name = args.experiment
        if name in ("", ".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name):
            print(f"tbscope prune: --experiment is the name of an experiment folder in {root} (no '/' or '..'), "
                  f"got {name!r}", file=sys.stderr)  # fmt: skip
            return 2
        if not (root / name).is_dir():
            print(f"tbscope prune: no experiment {name!r} in {root}", file=sys.stderr)
            return 2
    doomed = plan_retention(find_runs(root, args.experiment), retention)
    if not doomed:
        print("Nothing to delete.")
        return 0

    def shown(run: RunDir) -> str:
        return str(run.path) if url is None else f"{url.rstrip('/')}/{run.path.relative_to(root).as_posix()}"

    for run in doomed:
        print(
            f"{'would delete' if args.dry_run else 'delete'}  {shown(run)}  {format_bytes(run.bytes)}  ({run.status})"
        )
    total = sum(run.bytes for run in doomed)
    if args.dry_run:
        print(f"{len(doomed)} run(s), {format_bytes(total)} would be freed (dry run: nothing deleted)")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("tbscope prune: not deleting without --yes when nobody can answer the question", file=sys.stderr)
            return 1
        answer = input(f"Delete {len(doomed)} run(s), {format_bytes(total)}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    failed = 0
    for run in doomed:
        try:
            if url is None:
                delete_run(root, run)
            elif not delete_stored_run(url, run.path.relative_to(root).as_posix(), run.meta.get("id")):
                raise ValueError("it is no longer an ended run")
        except (OSError, ValueError) as err:
            print(f"tbscope prune: could not delete {shown(run)}: {err}", file=sys.stderr)
            failed += 1
            total -= run.bytes
    print(f"Deleted {len(doomed) - failed} run(s), freed {format_bytes(total)}.")
    if url is not None:
        try:  # the mirror drops its copies; the store's HParams columns are its writers' to keep
            remote.mirror(url)
        except ValueError as err:
            print(f"tbscope prune: {err}", file=sys.stderr)
        return 1 if failed else 0
    refresh_columns(root)
    return 1 if failed else 0
