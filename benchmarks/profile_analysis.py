"""Analyzing a trace: tbscope's profiler against Holistic Trace Analysis's temporal breakdown, same trace, same run.

The trace is the largest of ``../shared/traces``. Each tool runs in a fresh child process that reports its
wall time, its peak memory, and the trace's GPU-idle share as it computes it (both: idle time over the span
from the first to the last GPU event launched before the last profiler iteration began; tbscope's is the
Overview's ``gpu_idle_share``, which keeps events' sub-microsecond ends where HTA rounds them inward).
tbscope's time includes its operator and kernel tables as well. HTA is not a
dependency of tbscope: it is installed, once, into a virtual environment of its own (``--hta-python``
names another one).

Then the Profile tab as a user meets it, on a fresh server (a child process, an empty analysis cache):
the first view of a trace (``/overview``: the trace parsed into columns, then analyzed), and a second
view of the same trace (``/kernels``: the parsed trace is shared), for a trace of about 45 MB and one of
about ``--big-gb`` GB of JSON text. Both are made by repeating the events of a shared trace
(``v100_rank0``) step after step, under ``/tmp/tbscope-bench`` (kept for the next run, never committed).
Peak memory is the child's peak resident set size, everything included.

With ``--baseline REV``, the same views are measured with tbscope as it was at git revision ``REV`` (the
45 MB trace only, unless ``--baseline-big``), and the ratios printed.

Usage: python benchmarks/profile_analysis.py [--trace FILE] [--hta-python PYTHON | --skip-hta] [--big-gb N]
                                             [--baseline REV [--baseline-big]]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
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


BENCH_DIR = Path(tempfile.gettempdir()) / "tbscope-bench"


def write_repeated(source: Path, target: Path, text_bytes: int) -> None:
    """A trace of about ``text_bytes`` of JSON text: ``source``'s events again and again, each copy shifted
    past the one before in time, in step numbers and in correlation and External ids."""
    data = json.loads(gzip.decompress(source.read_bytes()))
    events = [e for e in data.pop("traceEvents") if isinstance(e, dict) and "ts" in e]
    origin = min(float(e["ts"]) for e in events)
    length = max(float(e["ts"]) + float(e.get("dur", 0)) for e in events) - origin
    steps = [int(e["name"].split("#")[1]) for e in events if str(e.get("name", "")).startswith("ProfilerStep#")]
    step_shift = max(steps) - min(steps) + 1 if steps else 0
    ids = [e["args"][k] for e in events for k in ("correlation", "External id")
           if isinstance(e.get("args"), dict) and isinstance(e["args"].get(k), int)]  # fmt: skip
    id_shift = max(ids, default=0) + 1
    partial = target.with_suffix(".partial")
    written = 0
    with open(partial, "w") as f:
        f.write(json.dumps(data)[:-1] + ', "traceEvents": [\n')
        copy = 0
        while written < text_bytes:
            lines = []
            for e in events:
                e = dict(e, ts=float(e["ts"]) + copy * length * 1.001)
                if copy and str(e.get("name", "")).startswith("ProfilerStep#"):
                    e["name"] = f"ProfilerStep#{int(e['name'].split('#')[1]) + copy * step_shift}"
                if copy and isinstance(e.get("args"), dict):
                    e["args"] = {k: v + copy * id_shift if k in ("correlation", "External id") and isinstance(v, int)
                                 else v for k, v in e["args"].items()}  # fmt: skip
                lines.append(json.dumps(e))
            text = ("" if copy == 0 else ",\n") + ",\n".join(lines)
            f.write(text)
            written += len(text)
            copy += 1
        f.write("\n]}\n")
    partial.rename(target)


def repeated(text_bytes: int) -> Path:
    """The benchmark's repeated trace of about ``text_bytes`` (written once, then reused)."""
    source = TRACES / "gpu" / "v100_rank0_steps101-104.pt.trace.json.gz"
    # Under profile/, where any version of tbscope's Profile tab finds it (a baseline's too).
    target = BENCH_DIR / f"v100_repeated_{text_bytes // 1_000_000}MB" / "run" / "profile" / "repeated.pt.trace.json"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"writing {target} ({text_bytes / 1e6:.0f} MB of JSON, once) ...", file=sys.stderr)
        write_repeated(source, target, text_bytes)
    return target


def views_child(logdir: str) -> None:
    """The Profile tab's first and second view of the one trace under ``logdir``, through its WSGI app."""
    from tensorboard.plugins import base_plugin
    from werkzeug.test import Client

    from tbscope.profiler.plugin import ProfilePlugin

    apps = ProfilePlugin(base_plugin.TBContext(logdir=logdir)).get_plugin_apps()
    (run,) = json.loads(Client(apps["/runs"]).get("/runs").get_data())
    query = {"run": run["run"], "worker": run["workers"][0]}
    timings = {}
    for view in ("overview", "kernels"):
        start = time.perf_counter()
        response = Client(apps[f"/{view}"]).get(f"/{view}", query_string=query)
        assert response.status_code == 200, response.get_data()[:500]
        timings[view] = time.perf_counter() - start
    steps = len(json.loads(Client(apps["/overview"]).get("/overview", query_string=query).get_data())["steps"])
    print(json.dumps({"first_s": timings["overview"], "second_s": timings["kernels"], "peak_bytes": peak_rss(),
                      "steps": steps}))  # fmt: skip


def first_and_second_view(trace: Path, source: Path | None = None) -> dict[str, float]:
    """The views child's figures for ``trace``, with tbscope from ``source`` (a ``src`` folder) if given."""
    cache = Path(tempfile.mkdtemp())
    env = dict(os.environ, TBSCOPE_CACHE_DIR=str(cache))  # nothing analyzed before: a fresh server
    if source is not None:
        env["PYTHONPATH"] = str(source)
    out = subprocess.run([sys.executable, __file__, "--views-child", str(trace.parents[2])], capture_output=True,
                         text=True, env=env)  # fmt: skip
    shutil.rmtree(cache, ignore_errors=True)
    if out.returncode != 0:
        raise SystemExit(f"the views child failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def checkout(revision: str) -> Path:
    """The ``src`` folder of tbscope at ``revision`` of this repository, extracted under a temporary folder."""
    folder = Path(tempfile.mkdtemp())
    archive = subprocess.run(["git", "archive", revision, "src"], cwd=Path(__file__).resolve().parents[1],
                             capture_output=True, check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


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
    parser.add_argument("--trace", type=Path, help="the trace for HTA (default: the largest shared one)")
    parser.add_argument("--hta-python", help="a Python with HolisticTraceAnalysis installed")
    parser.add_argument("--skip-hta", action="store_true", help="leave out the comparison with HTA")
    parser.add_argument("--big-gb", type=float, default=1.0, help="the large trace's size in GB of JSON (default 1)")
    parser.add_argument("--baseline", help="also measure tbscope at this git revision (e.g. the one before a change)")
    parser.add_argument("--baseline-big", action="store_true", help="the baseline on the large trace too (slow)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--views-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tbscope_child(args.child)
        return
    if args.views_child:
        views_child(args.views_child)
        return
    if not args.skip_hta:
        compare_with_hta(args)
    baseline = checkout(args.baseline) if args.baseline else None
    print("\nThe Profile tab on a fresh server (a trace of v100_rank0's events, repeated):")
    print(
        f"{'tbscope':>10} {'trace (JSON)':>13} {'steps':>6} {'first view s':>13} {'peak MB':>9} {'second view s':>14}"
    )
    for size in (45_000_000, int(args.big_gb * 1e9)):
        trace = repeated(size)
        megabytes = trace.stat().st_size / 1e6
        runs = [("this", first_and_second_view(trace))]
        if baseline is not None and (size < 1e9 or args.baseline_big):
            runs.append((args.baseline[:10], first_and_second_view(trace, baseline)))
        for name, r in runs:
            print(f"{name:>10} {megabytes:10.0f} MB {r['steps']:6d} {r['first_s']:13.2f} {r['peak_bytes'] / 1e6:9.0f} "
                  f"{r['second_s']:14.3f}")  # fmt: skip
        if len(runs) == 2:
            ours, theirs = runs[0][1], runs[1][1]
            print(f"{'':>10} first view {theirs['first_s'] / ours['first_s']:.1f}x, second view "
                  f"{theirs['second_s'] / ours['second_s']:.0f}x faster than {args.baseline}; peak memory "
                  f"{ours['peak_bytes'] / theirs['peak_bytes']:.2f}x its")  # fmt: skip
        r = runs[0][1]
        if size >= 1e9:
            print(f"target peak memory of a 1 GB trace at most 1.5 GB: {r['peak_bytes'] / 1e9:.2f} GB "
                  f"{'MET' if r['peak_bytes'] <= 1.5e9 else 'MISSED'}")  # fmt: skip


def compare_with_hta(args: argparse.Namespace) -> None:
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


if __name__ == "__main__":
    main()
