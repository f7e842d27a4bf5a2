"""The ``tbscope`` command. Subcommands import what they need when they run, so ``--help`` is instant."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tbscope import __version__
from tbscope.cli import compare, du, export, ls, profile, prune, serve


def _demo(args: argparse.Namespace) -> int:
    from tbscope.demo.train import DemoConfig, run_demo, summary_line

    config = DemoConfig(epochs=args.epochs, max_seconds=args.max_seconds)
    print(
        f"tbscope demo: training a small CNN on generated shapes for up to {config.max_seconds:g}s",
        flush=True,
    )
    log_dir = run_demo(args.root, config)
    print(summary_line(log_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tbscope", description="TensorBoard as the best local training dashboard for PyTorch."
    )
    parser.add_argument("--version", action="version", version=f"tbscope {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="train a small CNN on generated shapes and log everything")
    demo.add_argument("--root", default="runs", help="where runs go (default: runs)")
    demo.add_argument("--epochs", type=int, default=14, help="epochs to train (default: 14)")
    demo.add_argument("--max-seconds", type=float, default=60.0, help="stop after the epoch that passes this")
    demo.set_defaults(handler=_demo)
    for command in (ls, compare, export, du, prune, serve, profile):
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tbscope`` command line; returns its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    return int(args.handler(args))
