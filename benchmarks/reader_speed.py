"""Reading a logdir: tbscope's reader against tbparse and TensorBoard's EventAccumulator, same data, same run.

The data (written once, then kept in the cache folder): 4 runs x 25 tags x 10,000 steps written by torch's
SummaryWriter, one million scalars. Each reader runs in a fresh child process that reports its wall time,
its peak memory above what it held before reading, and a checksum of what it read, so that all agree.
Then ``tbscope ls`` on 1,000 tbscope runs, counting the event files it opens (it should open none).

Usage: python benchmarks/reader_speed.py [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS, TAGS, STEPS = 4, 25, 10_000
DEFAULT_DATA = Path(tempfile.gettempdir()) / "tbscope-bench-reader"


def write_data(root: Path) -> Path:
    logdir = root / f"torch-{RUNS}x{TAGS}x{STEPS}"
    if (logdir / "complete").exists():
        return logdir
    shutil.rmtree(logdir, ignore_errors=True)
    from torch.utils.tensorboard import SummaryWriter

    print(f"writing {RUNS * TAGS * STEPS:,} scalars with torch's SummaryWriter (once) ...", file=sys.stderr)
    for run in range(RUNS):
        w = SummaryWriter(logdir / f"run{run}")
        for step in range(STEPS):
            for tag in range(TAGS):
                w.add_scalar(f"group{tag % 5}/metric{tag}", step * 0.001 + tag + run, step)
        w.close()
    (logdir / "complete").touch()
    return logdir


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(tool: str, logdir: str) -> None:
    import numpy as np

    if tool.startswith("tbscope"):
        import tbscope
    elif tool == "tbparse":
        from tbparse import SummaryReader
    else:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    before = current_rss_bytes()
    start = time.perf_counter()
    frame_bytes = 0
    if tool.startswith("tbscope"):
        df = tbscope.read_scalars(logdir)
        frame_bytes = int(df.memory_usage(deep=True).sum())
        values, steps = df["value"].to_numpy(), df["step"].to_numpy()
    elif tool == "tbparse":
        df = SummaryReader(logdir, pivot=False, extra_columns={"dir_name"}).scalars
        values, steps = df["value"].to_numpy(dtype=np.float64), df["step"].to_numpy()
    else:
        values_list, steps_list = [], []
        for run in sorted(os.listdir(logdir)):
            if not os.path.isdir(os.path.join(logdir, run)):
                continue
            acc = EventAccumulator(os.path.join(logdir, run), size_guidance={"scalars": 0}).Reload()
            for tag in acc.Tags()["scalars"]:
                for event in acc.Scalars(tag):
                    values_list.append(event.value)
                    steps_list.append(event.step)
        values, steps = np.array(values_list, dtype=np.float64), np.array(steps_list)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "seconds": seconds, "rows": len(values), "checksum": [float(np.sum(values)), int(np.sum(steps))],
        "peak_above_start": peak_rss_bytes() - before, "frame_bytes": frame_bytes,
    }))  # fmt: skip


def run_child(tool: str, logdir: Path, cache: Path) -> dict[str, float]:
    env = {**os.environ, "TBSCOPE_CACHE_DIR": str(cache), "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", tool, str(logdir)], capture_output=True, text=True, env=env, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def ls_on_many_runs(root: Path, count: int = 1000) -> tuple[float, int]:
    """Seconds ``tbscope ls`` takes on ``count`` tbscope runs, and how many event files it opened."""
    runs_root = root / f"tbscope-runs-{count}"
    if not (runs_root / "complete").exists():
        shutil.rmtree(runs_root, ignore_errors=True)
        import tbscope

        print(f"starting {count} tbscope runs (once) ...", file=sys.stderr)
        for i in range(count):
            with tbscope.init("sweep", root=runs_root, config={"lr": 10 ** -(i % 5), "seed": i}) as run:
                run.writer.add_scalar("val/acc", i / count, 1)
        (runs_root / "complete").touch()
    script = (
        "import sys, time\n"
        "opened = []\n"
        "sys.addaudithook(lambda e, a: opened.append(str(a[0])) if e == 'open' else None)\n"
        "from tbscope.cli import main\n"
        "import contextlib, io\n"
        "start = time.perf_counter()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['ls', {str(runs_root)!r}])\n"
        "print(time.perf_counter() - start, sum('tfevents' in p for p in opened))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    seconds, opened = out.stdout.split()
    return float(seconds), int(opened)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"where the data is kept ({DEFAULT_DATA})")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    logdir = write_data(args.data)
    cache = Path(tempfile.mkdtemp(prefix="tbscope-cache-"))
    results = {
        "tbscope (first read)": run_child("tbscope", logdir, cache),
        "tbscope (cached)": run_child("tbscope-cached", logdir, cache),
        "tbparse": run_child("tbparse", logdir, cache),
        "EventAccumulator": run_child("EventAccumulator", logdir, cache),
    }
    shutil.rmtree(cache, ignore_errors=True)
    checksums = {name: tuple(r["checksum"]) for name, r in results.items()}
    rows = {name: r["rows"] for name, r in results.items()}
    agree = len(set(rows.values())) == 1 and all(
        abs(c[0] - checksums["EventAccumulator"][0]) < 1e-6 * abs(checksums["EventAccumulator"][0])
        and c[1] == checksums["EventAccumulator"][1]
        for c in checksums.values()
    )
    print(f"{RUNS} runs x {TAGS} tags x {STEPS:,} steps = {RUNS * TAGS * STEPS:,} scalars written by torch")
    print(f"all readers agree (rows, sum of values, sum of steps): {agree}  rows={rows}")
    print(f"{'reader':24} {'seconds':>9} {'peak MB':>9} {'tbparse/x':>10} {'EA/x':>8}")
    for name, r in results.items():
        print(
            f"{name:24} {r['seconds']:9.3f} {r['peak_above_start'] / 1e6:9.1f} "
            f"{results['tbparse']['seconds'] / r['seconds']:9.1f}x "
            f"{results['EventAccumulator']['seconds'] / r['seconds']:7.1f}x"
        )
    first, cached = results["tbscope (first read)"], results["tbscope (cached)"]
    first_vs = min(results["tbparse"]["seconds"], results["EventAccumulator"]["seconds"]) / first["seconds"]
    cached_vs = results["tbparse"]["seconds"] / cached["seconds"]
    frame_mb = first["frame_bytes"] / 1e6
    budget_mb = 2 * frame_mb + 100
    print()
    print(f"target first read >= 10x faster than tbparse and EventAccumulator: {first_vs:.1f}x "
          f"{'MET' if first_vs >= 10 else 'MISSED'}")  # fmt: skip
    print(
        f"target cached re-read >= 100x faster than tbparse: {cached_vs:.1f}x {'MET' if cached_vs >= 100 else 'MISSED'}"
    )
    peak = first["peak_above_start"] / 1e6
    print(f"target peak memory <= 2 x DataFrame ({frame_mb:.1f} MB) + 100 MB = {budget_mb:.1f} MB: {peak:.1f} MB "
          f"{'MET' if peak <= budget_mb else 'MISSED'}")  # fmt: skip
    seconds, opened = ls_on_many_runs(args.data)
    print(f"target tbscope ls on 1,000 tbscope runs opens no event file: {opened} opened, {seconds:.2f}s "
          f"{'MET' if opened == 0 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
