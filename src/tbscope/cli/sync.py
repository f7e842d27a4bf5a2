"""``tbscope sync``: send the spools that runs writing to object storage left behind (a SIGKILL, a store
that was down when they ended) to their URLs."""

from __future__ import annotations

import argparse
import sys


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sync", help="upload what runs writing to s3:// (or another URL) left in their local spool"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tbscope import spool

    results = spool.sync(progress=lambda line: print(f"tbscope sync: {line}", file=sys.stderr, flush=True))
    if not results:
        print(f"nothing to send: no spool left behind in {spool.spools()}")
        return 0
    for url, error in results:
        print(f"{url}: " + ("sent" if error is None else f"not sent ({error}); kept for the next sync"))
    return 1 if any(error is not None for _, error in results) else 0
