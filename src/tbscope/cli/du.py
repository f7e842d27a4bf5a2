"""``tbscope du``: bytes by run, by kind and by tag, largest first: why is this run 40 GB?"""

from __future__ import annotations

import argparse
from pathlib import Path

from tbscope.cli.arguments import directory
from tbscope.cli.table import as_json, render
from tbscope.cli.units import format_bytes


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("du", help="bytes by run, by kind (scalars, images, ...) and by tag")
    parser.add_argument("root", type=directory, help="the runs root (or any logdir, or one run)")
    parser.add_argument("--top", type=int, default=20, metavar="N", help="rows per table (default 20)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(handler=run)


def _skipped(root: Path) -> list[tuple[str, str, int]]:
    """(run, tag, calls) the cadence or a budget dropped, from the run.json of each tbscope run, most first."""
    from tbscope import rundir

    logdir = root.resolve()
    folders = [root] if (root / rundir.RUN_FILE).is_file() else rundir.run_folders(root)
    found = [
        (str(folder.relative_to(root)), tag, count)
        for folder in folders
        if (meta := rundir.run_meta(folder, logdir)) is not None
        for tag, count in meta.get("skipped", {}).items()
    ]
    return sorted(found, key=lambda row: -row[2])


def run(args: argparse.Namespace) -> int:
    from tbscope.reader import disk_usage

    usage = disk_usage(args.root)
    skipped = _skipped(args.root)
    by_run = usage.groupby("run")["bytes"].sum().sort_values(ascending=False)
    by_kind = usage.groupby("kind")["bytes"].sum().sort_values(ascending=False)
    by_tag = usage.groupby(["run", "kind", "tag"])["bytes"].sum().sort_values(ascending=False)
    if args.json:
        print(as_json({
            "total": int(usage["bytes"].sum()),
            "by_run": {k: int(v) for k, v in by_run.items()},
            "by_kind": {k: int(v) for k, v in by_kind.items()},
            "by_tag": [{"run": r, "kind": k, "tag": t, "bytes": int(v)} for (r, k, t), v in by_tag.items()],
            "not_logged": [{"run": r, "tag": t, "calls": n} for r, t, n in skipped],
        }))  # fmt: skip
        return 0
    total = int(usage["bytes"].sum())
    print(f"{format_bytes(total)} under {args.root}\n")

    def share(n: float) -> str:
        return f"{100 * n / total:.1f}%" if total else "-"

    print(render(["run", "size", "share"], [[r, format_bytes(v), share(v)] for r, v in by_run.head(args.top).items()]))
    print()
    print(render(["kind", "size", "share"], [[k, format_bytes(v), share(v)] for k, v in by_kind.items()]))
    print()
    rows = [[r, k, t, format_bytes(v), share(v)] for (r, k, t), v in by_tag.head(args.top).items()]
    print(render(["run", "kind", "tag", "size", "share"], rows))
    if skipped:
        print("\nNot logged: heavy calls the cadence or a budget dropped (pass a denser cadence to log more)")
        print(render(["run", "tag", "calls"], [list(row) for row in skipped[: args.top]]))
    return 0
