"""Analyzing a trace: tbscope's profiler against Holistic Trace Analysis's temporal breakdown, same trace, same run.

The trace is the largest of ``../shared/traces``. Each tool runs in a fresh child process that reports its
wall time, its peak memory, and the trace's GPU-idle share as it computes it (both: idle time over the span
from the first to the last GPU event, leaving out the last profiler iteration; tbscope's is the Overview's
``gpu_idle_share``). tbscope's time includes its operator and kernel tables as well. HTA is not a
dependency of tbscope: it is installed, once, into a virtual environment of its own (``--hta-python``
names another one).

With ``--synthetic-gb N``, it also writes a synthetic trace of N GB of JSON text (steps of CPU operators,
runtime calls and kernels), and reports tbscope's time and peak memory analyzing it: a trace that large is
streamed, never held in memory as text, but its events are still Python objects.

Usage: python benchmarks/profile_analysis.py [--trace FILE] [--hta-python PYTHON] [--synthetic-gb N]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
HTA_VENV = Path(tempfile.gettempdir()) / "tbscope-bench-hta"
HTA_VERSION = "0.5.0"


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def tbscope_child(trace: str) -> None:
    from tbscope.profiler.overview import analyze
    from tbscope.profiler.tables import kernels, operators
    from tbscope.profiler.trace import load

    before = peak_rss()
    start = time.perf_counter()
    loaded = load(trace)
    overview = analyze(loaded)
    operators(loaded)
    kernels(loaded)
    idle = overview.gpu_idle_share
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_bytes": peak_rss() - before, "idle_share": idle,
                      "steps": len(overview.steps)}))  # fmt: skip


HTA_SCRIPT = """
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
from hta.trace_analysis import TraceAnalysis
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
analyzer = TraceAnalysis(trace_dir=sys.argv[1])
frame = analyzer.get_temporal_breakdown(visualize=False)
seconds = time.perf_counter() - start
row = frame.iloc[0]
print(json.dumps({"seconds": seconds, "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before,
                  "idle_share": float(row["idle_time_pctg"]) / 100}))
"""


def write_synthetic(path: Path, gigabytes: float) -> int:
    """A plausible trace of about ``gigabytes`` of JSON: steps of 100 operators, each launching a kernel."""
    target = int(gigabytes * 1e9)
    written = 0
    with open(path, "w") as f:
        f.write('{"schemaVersion": 1, "traceEvents": [\n')
        step, ts, first = 0, 0.0, True
        while written < target:
            events = [{"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{step}", "pid": 1, "tid": 1,
                       "ts": ts, "dur": 1000.0, "args": {}}]  # fmt: skip
            for i in range(100):
                start = ts + i * 10
                events.append(
                    {
                        "ph": "X",
                        "cat": "cpu_op",
                        "name": "aten::mm",
                        "pid": 1,
                        "tid": 1,
                        "ts": start,
                        "dur": 8.0,
                        "args": {"External id": step * 100 + i, "Input Dims": [[64, 64], [64, 64]]},
                    }
                )
                events.append(
                    {
                        "ph": "X",
                        "cat": "cuda_runtime",
                        "name": "cudaLaunchKernel",
                        "pid": 1,
                        "tid": 1,
                        "ts": start + 1,
                        "dur": 3.0,
                        "args": {"correlation": step * 100 + i},
                    }
                )
                kernel_args = {"correlation": step * 100 + i, "stream": 7, "External id": step * 100 + i,
                               "blocks per SM": 0.5, "est. achieved occupancy %": 25}  # fmt: skip
                events.append({"ph": "X", "cat": "kernel", "name": "volta_sgemm_64x64_nn", "pid": 0, "tid": 7,
                               "ts": start + 5, "dur": 6.0, "args": kernel_args})  # fmt: skip
            text = ",\n".join(json.dumps(e) for e in events)
            f.write(("" if first else ",\n") + text)
            written += len(text)
            first, step, ts = False, step + 1, ts + 1000
        f.write("\n]}\n")
    return path.stat().st_size


def synthetic_child(trace: str) -> None:
    from tbscope.profiler.overview import analyze
    from tbscope.profiler.trace import load

    before = peak_rss()
    start = time.perf_counter()
    overview = analyze(load(trace))
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_bytes": peak_rss() - before,
                      "steps": len(overview.steps)}))  # fmt: skip


def hta_python(given: str | None) -> str:
    if given:
        return given
    python = HTA_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing HolisticTraceAnalysis {HTA_VERSION} into {HTA_VENV} (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(HTA_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"HolisticTraceAnalysis=={HTA_VERSION}"], check=True)
    return str(python)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", type=Path, help="the trace (default: the largest shared one)")
    parser.add_argument("--hta-python", help="a Python with HolisticTraceAnalysis installed")
    parser.add_argument("--synthetic-gb", type=float, help="also analyze a synthetic trace of this many GB")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--synthetic-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tbscope_child(args.child)
        return
    if args.synthetic_child:
        synthetic_child(args.synthetic_child)
        return
    trace = args.trace or max(TRACES.rglob("*.pt.trace.json.gz"), key=lambda p: p.stat().st_size)
    ours = json.loads(subprocess.run([sys.executable, __file__, "--child", str(trace)], capture_output=True,
                                     text=True, check=True).stdout.strip().splitlines()[-1])  # fmt: skip
    folder = Path(tempfile.mkdtemp())
    shutil.copy(trace, folder / trace.name)  # HTA reads a folder of traces
    result = subprocess.run(
        [hta_python(args.hta_python), "-c", HTA_SCRIPT, str(folder)], capture_output=True, text=True
    )
    shutil.rmtree(folder, ignore_errors=True)
    if result.returncode != 0:
        raise SystemExit(f"HTA failed: {result.stderr[-2000:]}")
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"trace: {trace.name} ({trace.stat().st_size / 1e6:.1f} MB gzipped)")
    print(f"{'tool':10} {'seconds':>9} {'peak MB':>9} {'GPU idle':>9}")
    for name, r in (("tbscope", ours), ("HTA", theirs)):
        print(f"{name:10} {r['seconds']:9.2f} {r['peak_bytes'] / 1e6:9.1f} {r['idle_share']:9.2%}")
    speedup = theirs["seconds"] / ours["seconds"]
    gap = abs(ours["idle_share"] - theirs["idle_share"]) * 100
    print(f"\ntarget tbscope faster than HTA: {speedup:.1f}x {'MET' if speedup > 1 else 'MISSED'}")
    print(f"target GPU-idle share within 2 percentage points of HTA's: {gap:.2f} pp {'MET' if gap <= 2 else 'MISSED'}")
    if args.synthetic_gb:
        folder = Path(tempfile.mkdtemp())
        big = folder / "synthetic.pt.trace.json"
        size = write_synthetic(big, args.synthetic_gb)
        out = subprocess.run([sys.executable, __file__, "--synthetic-child", str(big)], capture_output=True,
                             text=True, check=True)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"\nsynthetic trace of {size / 1e9:.2f} GB of text: analyzed in {r['seconds']:.1f}s, {r['steps']} steps; "
              f"peak memory {r['peak_bytes'] / 1e9:.2f} GB ({r['peak_bytes'] / size:.1f}x the text, which is read a "
              "megabyte at a time: the rest is the events as Python objects)")  # fmt: skip


if __name__ == "__main__":
    main()
