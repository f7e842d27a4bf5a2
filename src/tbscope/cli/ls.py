"""``tbscope ls``: one row a run: experiment, run, status, started, duration, last step, size, heavy calls not
logged (when a run has any), headline metrics."""

from __future__ import annotations

import argparse

from tbscope.cli.arguments import directory
from tbscope.cli.table import as_json, render
from tbscope.cli.units import format_bytes, format_duration

# Headline metrics shown as columns; more are in --json.
MAX_METRIC_COLUMNS = 4


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ls", help="list runs: status, steps, duration, size, headline metrics")
    parser.add_argument("root", type=directory, help="the runs root (or any logdir)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tbscope.catalog import catalog, metric_value

    entries = catalog(args.root)
    if args.json:
        print(as_json([e.as_json() for e in entries]))
        return 0
    if not entries:
        print(f"No runs under {args.root}.")
        return 0
    metrics: list[str] = []
    for entry in entries:
        metrics += [t for t in entry.headline if t not in metrics]
    metrics = metrics[:MAX_METRIC_COLUMNS]
    skipped = any(e.skipped for e in entries)  # the column shows when a cadence or budget dropped something
    headers = ["experiment", "run", "status", "started", "duration", "last step", "size",
               *(["not logged"] if skipped else []), *metrics]  # fmt: skip
    rows = [
        [
            e.experiment, e.run, e.shown_status,
            e.started.strftime("%Y-%m-%d %H:%M") if e.started else None,
            format_duration(e.duration) if e.duration is not None else None,
            e.last_step, format_bytes(e.bytes),
            *([sum(e.skipped.values())] if skipped else []),
            *(metric_value(e, m, "last") for m in metrics),
        ]
        for e in entries
    ]  # fmt: skip
    print(render(headers, rows))
    if skipped:
        print("not logged: heavy calls (images, histograms, ...) the cadence or a budget dropped; tbscope du shows "
              "them by tag")  # fmt: skip
    return 0
