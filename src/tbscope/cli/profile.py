"""``tbscope profile``: the Overview of torch.profiler traces, in the terminal or as JSON."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Any

from tbscope.cli.table import as_json, render


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "profile", help="where each profiled step's time went", description="The Overview of torch.profiler traces."
    )
    parser.add_argument("path", type=Path, help="a trace file, a run, or a logdir")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(handler=run)


def show(overview: dict[str, Any]) -> str:
    """An Overview (as ``Overview.as_json`` gives it) for a terminal."""
    from tbscope.profiler.overview import CATEGORIES

    lines = [f"{overview['file']}  (worker {overview['worker']})"]
    for d in overview["devices"]:
        details = [f"{d['memory_gib']} GiB" if d.get("memory_gib") else "", f"{d['sms']} SMs" if d.get("sms") else "",
                   f"compute {d['compute_capability']}" if d.get("compute_capability") else ""]  # fmt: skip
        lines.append(f"device {d.get('id')}: {d.get('name')}  {', '.join(x for x in details if x)}")
    training = any(s.get("training_step") is not None for s in overview["steps"])
    headers = ["training step" if training else "step", "time ms", *CATEGORIES]
    rows = [
        [s["training_step"] if training else s["step"], s["duration_us"] / 1000,
         *(f"{100 * s['breakdown_us'][c] / s['duration_us']:.1f}%" if s["duration_us"] else "-" for c in CATEGORIES)]
        for s in overview["steps"]
    ]  # fmt: skip
    lines.append(render(headers, rows))
    figures = [("GPU utilization", overview["gpu_utilization"]), ("SM efficiency", overview["sm_efficiency"]),
               ("GPU idle (HTA's temporal breakdown)", overview.get("gpu_idle_share"))]  # fmt: skip
    lines.append("  ".join(f"{name}: {'-' if v is None else f'{v:.1%}'}" for name, v in figures))
    lines += [f"! {advice['text']}" for advice in overview["recommendations"]]
    lines += [f"note: {note}" for note in overview["notes"]]
    return "\n".join(lines)


def overview_of(path: Path, inside: Path | None) -> dict[str, Any]:
    from tbscope.profiler.overview import analyze
    from tbscope.profiler.trace import load

    return analyze(load(path, inside)).as_json()


def readable(root: Path, paths: list[Path]) -> list[Path]:
    """The traces among ``paths`` (what ``find_traces`` found under ``root``) that are regular files inside
    ``root``. Each other file named like a trace is told on stderr, once: a dangling symlink, a link to
    outside ``root``, a FIFO."""
    from tbscope.profiler.trace import is_trace_file
    from tbscope.reader import why_unreadable

    if root.is_file():
        return [root]
    inside = root.resolve()
    kept = [path for path in paths if why_unreadable(path, inside) is None]
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if is_trace_file(name) and path not in kept:
                why = why_unreadable(path, inside) or "not read"
                print(f"tbscope profile: skipped {path}: {why}", file=sys.stderr)
    return kept


def run(args: argparse.Namespace) -> int:
    from tbscope.logdir import TooLarge
    from tbscope.profiler.cache import cached
    from tbscope.profiler.trace import TraceError, find_traces

    if not args.path.exists():
        print(f"tbscope profile: {args.path} does not exist", file=sys.stderr)
        return 2
    paths = readable(args.path, find_traces(args.path))
    if not paths:
        print(f"tbscope profile: no *.pt.trace.json(.gz) under {args.path}", file=sys.stderr)
        return 2
    overviews, failed = [], 0
    for path in paths:
        try:
            inside = args.path if args.path.is_dir() else None  # a trace named itself may be a link
            overviews.append(cached(path, "overview", functools.partial(overview_of, path, inside)))
        except (TraceError, TooLarge, OSError) as err:
            print(f"tbscope profile: {err}", file=sys.stderr)
            failed += 1
        except Exception as err:  # a trace that parses but holds what no profiler writes: the others still show
            print(f"tbscope profile: {path}: skipped, it could not be analyzed ({type(err).__name__}: {err})",
                  file=sys.stderr)  # fmt: skip
            failed += 1
    if args.json:
        print(as_json({"traces": overviews}))
    elif overviews:
        print("\n\n".join(show(o) for o in overviews))
    return 1 if failed and not overviews else 0
