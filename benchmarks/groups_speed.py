"""Grouping and aggregating runs: ``tbscope.groups`` against tensorboard-reducer, same runs, same run.

The data (written once, then kept): 100 tbscope runs (10 learning rates x 10 seeds) x 5 tags x 10,000 steps,
five million scalars. Each tool runs in a fresh child process:

- tbscope cold: an empty scalars cache; reads every run, groups them by config with the seed left out, and
  computes mean, std, sem, 95% CI, min, max and n per group, tag and step (``groups.summary``, what the
  Groups tab and the report call, with every point kept), imports done before the clock starts;
- tbscope warm: the same call again in that process with no run changed (a running TensorBoard's Groups
  tab refreshing: the summary is kept while no file changed), the Groups tab's own call (2,000 points a
  line) after a run changed in that process, and a new process with the cache the cold one left (a new
  ``tbscope compare``);
- tbscope read only: ``read_scalars`` with an empty cache, the floor a cold aggregation is measured against;
- tensorboard-reducer: ``load_tb_events`` + ``reduce_events(["mean", "std"])`` per group (it has no
  grouping of its own); it is not a dependency: pass where it is installed with ``--reducer DIR`` (for
  example ``pip install --no-deps --target /tmp/reducer tensorboard-reducer``).

The children's means and standard deviations are compared (they must agree to 1e-6), and the times printed
as ratios.

Usage: python benchmarks/groups_speed.py [--data DIR] [--reducer DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LRS, SEEDS, TAGS, STEPS = 10, 10, 5, 10_000
DEFAULT_DATA = Path(tempfile.gettempdir()) / "tbscope-bench-groups"


def write_data(root: Path) -> Path:
    logdir = root / f"runs-{LRS * SEEDS}x{TAGS}x{STEPS}"
    if (logdir / "complete").exists():
        return logdir
    shutil.rmtree(logdir, ignore_errors=True)
    import numpy as np

    import tbscope

    print(f"writing {LRS * SEEDS * TAGS * STEPS:,} scalars in {LRS * SEEDS} runs (once) ...", file=sys.stderr)
    for i in range(LRS):
        lr = 10 ** (-1 - i / 3)
        for seed in range(SEEDS):
            noise = np.random.default_rng(seed).normal(0, 0.01, (STEPS, TAGS))
            config = {"lr": round(lr, 6), "seed": seed, "model": {"width": 16}}
            with tbscope.init("sweep", root=logdir, config=config) as run:
                for step in range(STEPS):
                    for tag in range(TAGS):
                        name = f"val/acc{tag}" if tag < 2 else f"train/loss{tag}"
                        run.writer.add_scalar(name, 1 / (1 + step * lr) + float(noise[step, tag]), step)
    (logdir / "complete").touch()
    return logdir


def child(tool: str, logdir: str, reducer: str | None) -> None:

    tags = [f"val/acc{t}" if t < 2 else f"train/loss{t}" for t in range(TAGS)]
    start = time.perf_counter()
    if tool == "read":
        import tbscope

        frame = tbscope.read_scalars(logdir)
        elapsed = time.perf_counter() - start
        print(json.dumps({"seconds": elapsed, "rows": len(frame)}))
        return
    if tool == "reducer":
        sys.path.insert(0, reducer or "")
        from tensorboard_reducer import load_tb_events, reduce_events

        from tbscope import catalog, groups

        found = groups.group_runs(catalog.catalog(logdir))
        start = time.perf_counter()  # the grouping above is tbscope's; the reducer is timed on its own work
        out = {}
        for group in found:
            events = load_tb_events([os.path.join(logdir, run) for run in group.runs], verbose=False)
            reduced = reduce_events(events, ["mean", "std"])
            out[group.label] = {tag: [reduced["mean"][tag].to_numpy().tolist(), reduced["std"][tag].to_numpy().tolist()]
                                for tag in tags}  # fmt: skip
        elapsed = time.perf_counter() - start
    else:
        import pandas  # noqa: F401  (the imports are not what is measured)
        import scipy.special
        import scipy.stats  # noqa: F401

        from tbscope import catalog, groups, reader  # noqa: F401

        start = time.perf_counter()
        summary = groups.summary(logdir, tags=tags, max_points=None)
        elapsed = time.perf_counter() - start
        again = time.perf_counter()
        groups.summary(logdir, tags=tags, max_points=None)
        repeated = time.perf_counter() - again
        groups._kept.clear()  # as if a run had changed: the reader's cache is warm, the summary made again
        again = time.perf_counter()
        groups.summary(logdir, tags=tags)
        tab = time.perf_counter() - again
        out = {label: {tag: [summary["curves"][tag][label]["mean"], summary["curves"][tag][label]["std"]]
                       for tag in tags} for label in summary["curves"][tags[0]]}  # fmt: skip
        print(json.dumps({"seconds": elapsed, "again": repeated, "tab": tab, "curves": out}))
        return
    print(json.dumps({"seconds": elapsed, "curves": out}))


def run_child(tool: str, logdir: Path, cache: Path, reducer: str | None) -> dict:
    env = {**os.environ, "TBSCOPE_CACHE_DIR": str(cache)}
    result = subprocess.run(
        [sys.executable, __file__, "--child", tool, "--logdir", str(logdir), "--reducer", reducer or ""],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--reducer", help="a folder where tensorboard-reducer is installed")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--logdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.logdir, args.reducer)
        return
    import numpy as np

    logdir = write_data(args.data)
    cache = Path(tempfile.mkdtemp(prefix="tbscope-bench-cache-"))
    try:
        read = run_child("read", logdir, cache / "read", None)
        cold = run_child("tbscope", logdir, cache / "groups", None)
        warm = run_child("tbscope", logdir, cache / "groups", None)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    scalars = LRS * SEEDS * TAGS * STEPS
    print(f"{LRS * SEEDS} runs x {TAGS} tags x {STEPS:,} steps ({scalars:,} scalars), {LRS} groups of {SEEDS}")
    print(f"  read_scalars, empty cache       {read['seconds']:7.2f} s")
    ratio = cold["seconds"] / read["seconds"]
    print(f"  tbscope groups, cold            {cold['seconds']:7.2f} s  ({ratio:.2f}x reading once)")
    print(f"  tbscope groups, warm            {cold['again']:7.2f} s  (same process, no run changed; target: 0.5 s)")
    print(f"  Groups tab, a run changed       {cold['tab']:7.2f} s  (same process, 2,000 points a line)")
    print(f"  tbscope groups, warm cache      {warm['seconds']:7.2f} s  (a new process)")
    if args.reducer:
        reduced = run_child("reducer", logdir, cache / "reducer", args.reducer)
        worst = 0.0
        for label, per_tag in reduced["curves"].items():
            for tag, (mean, std) in per_tag.items():
                ours_mean, ours_std = cold["curves"][label][tag]
                worst = max(worst, float(np.max(np.abs(np.subtract(mean, ours_mean)))),
                            float(np.max(np.abs(np.subtract(std, ours_std)))))  # fmt: skip
        print(f"  tensorboard-reducer             {reduced['seconds']:7.2f} s  "
              f"(cold tbscope {reduced['seconds'] / cold['seconds']:.1f}x faster, "
              f"warm {reduced['seconds'] / cold['again']:.1f}x)")  # fmt: skip
        print(f"  largest difference in mean/std: {worst:.2e} (must be under 1e-6)")


if __name__ == "__main__":
    main()
