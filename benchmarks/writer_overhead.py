"""What logging costs the training loop: tbscope's Writer against torch's SummaryWriter and tensorboardX.

Measured in the same run, each writer in a fresh child process:

- caller-side time per call: the time spent inside ``add_*`` calls of a loop that, between steps,
  sleeps as a training step would wait on the GPU (releasing the GIL, so background threads run
  then, as they do in training). Scalars: 20 tags a step; images 3x256x256 float; histograms of
  1M elements.
- back to back: 50,000 ``add_scalar`` calls (10 tags a step) as fast as Python can make them, the
  time per call inside the loop, while the writer's own threads compete for the interpreter.
- total process CPU time (user + system) and bytes on disk to log and flush 200,000 scalars
  (20 tags x 10,000 steps) in a tight loop, from creating the writer to closing it; and that CPU
  time per scalar (target: 1.5 us at most for tbscope). These and the back-to-back figure are the
  median of three measurements.

Usage: python benchmarks/writer_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOOLS = ("tbscope", "torch", "tensorboardX")
TARGETS = {  # the figure tbscope must reach against torch's SummaryWriter
    "add_scalar(float) us": 25.0,
    "add_scalar(CPU tensor) us": 25.0,
    "back-to-back add_scalar us": 25.0,
    "add_image(3x256x256) us": 20.0,
}
CPU_PER_SCALAR_US = 1.5  # tbscope's own bound: caller and background thread together
REPEATS = 3


def writer_class(tool: str) -> Any:
    if tool == "tbscope":
        from tbscope import SummaryWriter
    elif tool == "torch":
        from torch.utils.tensorboard import SummaryWriter
    else:
        from tensorboardX import SummaryWriter
    return SummaryWriter


def make_writer(tool: str, log_dir: str) -> Any:
    return writer_class(tool)(log_dir)


def per_call_us(call: Any, calls: int, pause: float) -> float:
    """Microseconds inside ``call(step)``, averaged over ``calls`` steps ``pause`` seconds apart."""
    spent = 0.0
    for step in range(calls):
        start = time.perf_counter()
        call(step)
        spent += time.perf_counter() - start
        time.sleep(pause)
    return spent / calls * 1e6


def caller_side(tool: str, quick: bool) -> dict[str, float]:
    """Microseconds a call, inside the calls only, with GIL-releasing 'compute' between steps."""
    import torch

    results: dict[str, float] = {}
    log_dir = tempfile.mkdtemp(prefix=f"bench-{tool}-")
    w = make_writer(tool, log_dir)
    steps = 200 if quick else 1500
    tags = [f"train/metric_{i}" for i in range(20)]
    for label, value in (("add_scalar(float) us", 0.5), ("add_scalar(CPU tensor) us", torch.tensor(0.5))):
        gc.collect()  # what earlier sections left for the collector is not this section's cost
        spent = 0.0
        for step in range(steps):
            start = time.perf_counter()
            for tag in tags:
                w.add_scalar(tag, value, step)
            spent += time.perf_counter() - start
            time.sleep(0.001)
        results[label] = spent / (steps * len(tags)) * 1e6
    image, values = torch.rand(3, 256, 256), torch.randn(1_000_000)
    results["add_image(3x256x256) us"] = per_call_us(
        lambda step: w.add_image("val/sample", image, step), 20 if quick else 60, pause=0.02
    )
    results["add_histogram(1M) us"] = per_call_us(
        lambda step: w.add_histogram("weights", values, step), 10 if quick else 30, pause=0.1
    )
    w.close()
    shutil.rmtree(log_dir, ignore_errors=True)
    return results


def back_to_back(tool: str, quick: bool) -> dict[str, float]:
    """Microseconds a call for add_scalar calls made back to back, 10 tags a step."""
    log_dir = tempfile.mkdtemp(prefix=f"bench-{tool}-b2b-")
    w = make_writer(tool, log_dir)
    tags = [f"train/metric_{i}" for i in range(10)]
    steps = 1000 if quick else 5000
    gc.collect()  # a collection that the imports left due is not logging's cost
    start = time.perf_counter()
    for step in range(steps):
        for tag in tags:
            w.add_scalar(tag, step * 0.5, step)
    spent = time.perf_counter() - start
    w.close()
    shutil.rmtree(log_dir, ignore_errors=True)
    return {"back-to-back add_scalar us": spent / (steps * len(tags)) * 1e6}


def bulk_scalars(tool: str, quick: bool) -> dict[str, float]:
    """CPU seconds and bytes on disk for 20 tags x 10,000 steps, tight loop, then close."""
    log_dir = tempfile.mkdtemp(prefix=f"bench-{tool}-bulk-")
    steps = 1000 if quick else 10_000
    tags = [f"train/metric_{i}" for i in range(20)]

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    gc.collect()
    start_cpu, start_wall = cpu(), time.perf_counter()
    w = make_writer(tool, log_dir)
    for step in range(steps):
        for i, tag in enumerate(tags):
            w.add_scalar(tag, step * 0.001 + i, step)
    w.close()
    spent = cpu() - start_cpu
    results = {"200k scalars: CPU s": spent, "200k scalars: wall s": time.perf_counter() - start_wall}
    results["CPU per scalar us"] = spent / (steps * len(tags)) * 1e6
    results["200k scalars: bytes"] = float(sum(p.stat().st_size for p in Path(log_dir).rglob("*") if p.is_file()))
    shutil.rmtree(log_dir, ignore_errors=True)
    return results


def child(tool: str, quick: bool) -> None:
    import torch  # import cost is not logging cost: pay it before measuring

    torch.set_num_threads(1)
    writer_class(tool)
    # Each figure is the median of REPEATS measurements: the machines are shared and noisy.
    trials = [{**bulk_scalars(tool, quick), **back_to_back(tool, quick)} for _ in range(1 if quick else REPEATS)]
    measured = {metric: statistics.median(t[metric] for t in trials) for metric in trials[0]}
    measured.update(caller_side(tool, quick))
    print(json.dumps(measured))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run, not a figure)")
    parser.add_argument("--child", choices=TOOLS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.quick)
        return
    results: dict[str, dict[str, float]] = {}
    for tool in TOOLS:
        print(f"measuring {tool} ...", file=sys.stderr, flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--child", tool, *(["--quick"] if args.quick else [])],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        results[tool] = json.loads(out.stdout.strip().splitlines()[-1])
    metrics = list(results["tbscope"])
    header = (
        f"{'metric':28} {'tbscope':>12} {'torch':>12} {'tensorboardX':>12} {'torch/tbscope':>14} {'tbX/tbscope':>12}"
    )
    print(header)
    print("-" * len(header))
    for metric in metrics:
        ours, torch_value, tbx = (results[t][metric] for t in TOOLS)
        print(
            f"{metric:28} {ours:12.4g} {torch_value:12.4g} {tbx:12.4g} {torch_value / ours:13.1f}x {tbx / ours:11.1f}x"
        )
    print()
    for metric, target in TARGETS.items():
        ratio = results["torch"][metric] / results["tbscope"][metric]
        print(
            f"target {metric}: >= {target:g}x faster than torch: {ratio:.1f}x {'MET' if ratio >= target else 'MISSED'}"
        )
    cpu_ratio = results["tbscope"]["200k scalars: CPU s"] / results["torch"]["200k scalars: CPU s"]
    bytes_ratio = results["tbscope"]["200k scalars: bytes"] / results["torch"]["200k scalars: bytes"]
    print(f"target total CPU <= 1/4 of torch's: {cpu_ratio:.3f} {'MET' if cpu_ratio <= 0.25 else 'MISSED'}")
    per_scalar = results["tbscope"]["CPU per scalar us"]
    met = "MET" if per_scalar <= CPU_PER_SCALAR_US else "MISSED"
    print(f"target process CPU per scalar <= {CPU_PER_SCALAR_US} us: {per_scalar:.2f} us {met}")
    print(f"target bytes on disk <= 0.6x torch's: {bytes_ratio:.3f} {'MET' if bytes_ratio <= 0.6 else 'MISSED'}")


if __name__ == "__main__":
    main()
