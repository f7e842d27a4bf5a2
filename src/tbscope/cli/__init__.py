"""The ``tbscope`` command. Subcommands import what they need when they run, so ``--help`` is instant.

What reaches the user is one line per thing: a warning (a damaged file skipped, say) is printed once,
on one line; output cut short by a closed pipe (``tbscope du --json | head``) ends quietly; and an
error nobody foresaw is told in one line too, its traceback only with ``TBSCOPE_TRACEBACK=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

from tbscope import __version__
from tbscope.cli import compare, du, export, ls, profile, prune, report, serve, sync
from tbscope.cli.arguments import positive

DEMO_EPOCHS = 6  # DemoConfig's, without importing torch for --help


def _demo(args: argparse.Namespace) -> int:
    # torch's C++ warnings (the profiler's "CPUAllocator.cpp ... Memory block of unknown size") are read once,
    # when torch loads: the demo's console shows its epoch lines and tables
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    from tbscope.demo.train import SEEDS, SWEEP, DemoConfig, run_sweep

    config = DemoConfig(epochs=args.epochs, max_seconds=args.max_seconds)
    print(
        f"tbscope demo: a small CNN on generated shapes, {len(SWEEP) * len(SEEDS)} runs: the peak learning rate "
        f"({', '.join(f'{lr:g}' for lr in SWEEP)}) with {len(SEEDS)} seeds each, {config.epochs} epochs a run, "
        "a few steps of each learning rate profiled",
        flush=True,
    )
    run_sweep(args.root, config)
    print(f"\n$ tbscope ls {args.root}", flush=True)
    main(["ls", args.root])
    print(f"\n$ tbscope compare {args.root} --sort val/acc --desc", flush=True)
    main(["compare", args.root, "--sort", "val/acc", "--desc"])
    print(f"\nShare it as one offline file:\n    tbscope report {args.root} -o report.html")
    print(f"\nOpen it in TensorBoard (Time Series, Images, Histograms, Graphs, HParams, Projector, PR Curves, Text, "
          f"Profile):\n    tbscope serve {args.root}")  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tbscope", description="TensorBoard as the best local training dashboard for PyTorch."
    )
    parser.add_argument("--version", action="version", version=f"tbscope {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="train a small CNN on generated shapes and log everything")
    demo.add_argument("--root", default="runs", help="where runs go (default: runs)")
    demo.add_argument(
        "--epochs", type=positive(int), default=DEMO_EPOCHS, help=f"epochs a run (default: {DEMO_EPOCHS})"
    )
    demo.add_argument(
        "--max-seconds", type=positive(float), default=60.0, help="a run stops after the epoch that passes this"
    )
    demo.set_defaults(handler=_demo)
    for command in (ls, compare, export, report, du, prune, serve, profile, sync):
        command.add_parser(commands)
    return parser


def _one_line_warnings() -> None:
    """Show each warning once, as one line on stderr, instead of Python's two lines with a source line."""
    shown: set[str] = set()

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:  # fmt: skip
        text = " ".join(str(message).split("\n"))
        if text in shown:
            return
        shown.add(text)
        if not text.startswith("tbscope"):
            text = f"tbscope: warning: {category.__name__}: {text}"
        print(text, file=sys.stderr, flush=True)

    warnings.showwarning = show


def _stdout_closed() -> None:
    """What Python's documentation recommends when a reader closed the pipe (``| head``): send what is
    left to /dev/null, so that the flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _negative_values_joined(argv: list[str]) -> list[str]:
    """``--older-than -5d`` as ``--older-than=-5d``: argparse takes a value that starts with "-" and is no
    plain number for an option, and would answer "expected one argument" instead of saying what is wrong
    with the value. No option of tbscope starts with a dash and a digit.

    Example:
        >>> _negative_values_joined(["prune", "runs", "--older-than", "-5d", "--dry-run"])
        ['prune', 'runs', '--older-than=-5d', '--dry-run']
    """
    out: list[str] = []
    for arg in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and arg[:1] == "-" and arg[1:2].isdigit():
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tbscope`` command line; returns its exit status."""
    parser = build_parser()
    args = parser.parse_args(_negative_values_joined(sys.argv[1:] if argv is None else list(argv)))
    handler: Any = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    with warnings.catch_warnings():
        _one_line_warnings()
        try:
            status = int(handler(args))
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_closed()
            return 1
        except KeyboardInterrupt:
            return 130
        except Exception as err:  # the last guard: a user sees one line, never a traceback
            if os.environ.get("TBSCOPE_TRACEBACK") == "1":
                raise
            print(
                f"tbscope {args.command}: internal error: {type(err).__name__}: {err} (please report it; "
                "TBSCOPE_TRACEBACK=1 shows where it happened)",
                file=sys.stderr,
            )
            return 1
    return status
