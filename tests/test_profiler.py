"""The profiler on real GPU traces, checked against numbers computed here from the raw JSON."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import tbscope
from conftest import accumulate
from tbscope.profiler.overview import CATEGORIES, analyze
from tbscope.profiler.trace import KIND, TraceError, load

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
ALL = sorted(TRACES.rglob("*.pt.trace.json.gz"))
pytestmark = pytest.mark.skipif(not ALL, reason=f"the shared traces are not at {TRACES}")


def union_length(intervals: list[tuple[float, float]]) -> float:
    """The length of a union of intervals, the plain way."""
    total, reach = 0.0, -float("inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def raw_events(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(gzip.decompress(path.read_bytes()))["traceEvents"])


@pytest.mark.parametrize("path", ALL, ids=[p.name.split(".")[0] for p in ALL])
def test_categories_sum_to_each_steps_time_and_steps_are_the_annotations(path: Path) -> None:
    overview = analyze(load(path))
    annotated = sorted(
        int(m.group(1))
        for e in raw_events(path)
        if e.get("cat") == "user_annotation" and (m := re.match(r"ProfilerStep#(\d+)$", str(e.get("name", ""))))
    )
    # Trailing steps the profiler cut short are dropped (the step rule); the others are the annotations.
    assert [s.step for s in overview.steps] == (annotated or [0])[: len(overview.steps)]
    for step in overview.steps:
        assert set(step.breakdown_us) == set(CATEGORIES)
        assert all(v >= -1e-6 for v in step.breakdown_us.values())
        assert sum(step.breakdown_us.values()) == pytest.approx(step.duration_us, rel=1e-3)


@pytest.mark.parametrize("path", ALL, ids=[p.name.split(".")[0] for p in ALL])
def test_steps_partition_time_and_cover_the_device_work_they_launched(path: Path) -> None:
    """Each step starts where the one before ended, or at its own host start where the host left a gap
    between two steps, so the steps' durations add up to the span they cover; no device work launched
    within a step's host window ends after that step."""
    events = raw_events(path)
    origin = min(float(e["ts"]) for e in events if e.get("ph") == "X" and "ts" in e and e.get("cat") != "Trace")
    steps = analyze(load(path)).steps
    device = ("kernel", "gpu_memcpy", "gpu_memset")
    device_end = {
        e["args"]["correlation"]: float(e["ts"]) - origin + float(e.get("dur", 0))
        for e in events
        if e.get("cat") in device and "correlation" in e.get("args", {})
    }
    hosts = {
        int(m.group(1)): (float(e["ts"]) - origin, float(e["ts"]) - origin + float(e["dur"]))
        for e in events
        if e.get("cat") == "user_annotation" and (m := re.match(r"ProfilerStep#(\d+)$", str(e.get("name", ""))))
    }
    gaps = 0.0
    for before, after in itertools.pairwise(steps):
        if after.start != before.end:  # only where the host itself paused between two steps
            assert after.start > before.end and after.start == pytest.approx(hosts[after.step][0])
            gaps += after.start - before.end
    span = steps[-1].end - steps[0].start
    assert sum(s.duration_us for s in steps) + gaps == pytest.approx(span)
    assert gaps <= 0.01 * span
    for step in steps:
        if step.step not in hosts:
            continue
        host_start, host_end = hosts[step.step]
        assert step.end >= host_end - 1e-3
        launched = [
            device_end[e["args"]["correlation"]]
            for e in events
            if e.get("cat") in ("cuda_runtime", "cuda_driver", "Runtime")
            and host_start <= float(e["ts"]) - origin < host_end
            and e.get("args", {}).get("correlation") in device_end
        ]
        assert step.end >= max(launched, default=host_end) - 1e-3


def test_a_gpu_bound_step_lasts_as_long_as_the_device_takes() -> None:
    """The H200 trace's host runs ahead of the device: steps last what the device took (16.8 ms a step,
    16.7 ms measured outside the profiler), not the host start to the end of the step's kernels."""
    (path,) = [p for p in ALL if p.name.startswith("h200_eager_cnn")]
    steps = {s.step: s for s in analyze(load(path)).steps}
    assert steps[3].duration_us == pytest.approx(16_800, rel=0.01)
    assert steps[4].duration_us == pytest.approx(16_800, rel=0.01)
    assert steps[3].breakdown_us["kernel"] <= steps[3].duration_us


def test_step_times_of_a_lagging_device_are_those_torch_tb_profiler_reported() -> None:
    """The V100 and A100 traces where the device lags: 95.4 to 95.7 ms and 114 to 117 ms a step."""
    (v100,) = [p for p in ALL if "v100_rank0" in p.name]
    (a100,) = [p for p in ALL if "a100_diff_test" in p.name]
    v100_ms = {s.step: s.duration_us / 1000 for s in analyze(load(v100)).steps}
    a100_ms = {s.step: s.duration_us / 1000 for s in analyze(load(a100)).steps}
    assert all(95.3 <= v100_ms[n] <= 95.8 for n in (102, 103, 104, 105))
    assert all(114 <= a100_ms[n] <= 118 for n in (1010, 1011, 1013, 1014))


# What a user can quote of each shared trace. Step durations (ms): torch-tb-profiler 0.4.3's
# RunProfileData.from_json(...).process() steps_costs, with two patches for categories it predates
# (cuda_runtime and cuda_driver read as runtime; gpu_user_annotation, the device's copies of ProfilerStep#,
# left out). GPU idle (%): Holistic Trace Analysis 0.5.0,
# TraceAnalysis(trace_dir=<a folder holding the one trace>).get_temporal_breakdown(visualize=False)["idle_time_pctg"];
# None where HTA has no device work to read. Advice: the first words of each recommendation.
QUOTED = {
    "cpu_only_rank34": ([210.109], None, ["Communication-bound"]),
    "a100_diff_control": ([75.656, 76.8, 76.234, 76.727, 78.473, 81.12], 16.2, []),
    "a100_diff_test": ([156.646, 117.128, 114.802, 123.104, 116.692, 116.143], 7.47, ["Copies", "Tensor cores idle"]),
    "a100_triton_kernel": ([13336.316], 0.0, ["Low GPU utilization"]),
    "h200_eager_cnn_steps2-4": ([16.817, 16.824, 16.81], 2.38, ["Layout transforms"]),
    "mi250_rocm_minitoy": ([9.288], 98.53, ["Low GPU utilization"]),
    "v100_memory_steps2-5": ([345.77, 365.256, 346.097, 344.269, 336.328], 46.08,
                             ["Tensor cores idle", "Communication-bound"]),
    "v100_rank0_steps101-104": ([101.151, 95.737, 95.57, 95.664, 95.395], 2.63, ["Tensor cores idle"]),
}  # fmt: skip
# Traces whose timestamps have sub-microsecond parts: HTA shrinks each event to the whole microseconds
# inside it (start rounded up, end down), which opens gaps between back-to-back kernels, so its idle share
# reads up to a percentage point above the exact one tbscope computes by the same rule (the documented
# difference; recomputed from the raw JSON with HTA's rounding, the rule gives HTA's 2.63% and 98.53% exactly,
# and 2.37% for its 2.38%).
SUB_MICROSECOND = {"h200_eager_cnn_steps2-4", "v100_rank0_steps101-104", "mi250_rocm_minitoy"}


@pytest.mark.parametrize("path", ALL, ids=[p.name.split(".")[0] for p in ALL])
def test_step_times_gpu_idle_and_advice_are_those_the_peers_report(path: Path) -> None:
    name = path.name.split(".")[0]
    steps_ms, idle_pct, advice = QUOTED[name]
    overview = analyze(load(path))
    assert [s.duration_us / 1000 for s in overview.steps] == pytest.approx(steps_ms, rel=0.01)
    if idle_pct is None:
        assert overview.gpu_idle_share is None
    elif name in SUB_MICROSECOND:
        assert overview.gpu_idle_share is not None
        assert idle_pct / 100 - 0.01 <= overview.gpu_idle_share <= idle_pct / 100 + 1e-4
    else:
        assert overview.gpu_idle_share == pytest.approx(idle_pct / 100, rel=0.01, abs=1e-4)
    assert [a["text"].split(":")[0] for a in overview.recommendations] == advice


def test_the_first_step_starts_after_work_queued_before_the_window_and_a_cut_short_last_step_is_dropped() -> None:
    """The H200's step 2 begins on the device only once the unprofiled step before it drains (7.3 ms of
    kernels no profiled step launched); the MI250's last ProfilerStep launched nothing: it is dropped."""
    (h200,) = [p for p in ALL if p.name.startswith("h200_eager_cnn")]
    (mi250,) = [p for p in ALL if p.name.startswith("mi250")]
    steps = analyze(load(h200)).steps
    assert [round(s.duration_us / 1000, 1) for s in steps] == [16.8, 16.8, 16.8]
    assert steps[0].start > steps[0].host_start + 7000
    (step,) = analyze(load(mi250)).steps
    assert step.step == 1 and step.duration_us == pytest.approx(9288, rel=0.01)
    source = str(Path(tbscope.__file__).parents[1])
    printed = subprocess.run([sys.executable, "-m", "tbscope", "profile", str(mi250)], capture_output=True,
                             text=True, check=True, env={**os.environ, "PYTHONPATH": source}).stdout  # fmt: skip
    rows = [line.split()[:2] for line in printed.splitlines() if re.match(r"\s+\d+\s+\d", line)]
    assert rows == [["1", "9.288"]]


def test_gloo_collectives_filed_as_user_annotations_are_communication() -> None:
    from tbscope.profiler.distributed import distributed

    (path,) = [p for p in ALL if p.name.startswith("cpu_only")]
    trace = load(path)
    overview = analyze(trace)
    assert overview.shares()["communication"] > 0.8
    names = {row["name"] for row in distributed([trace])["collectives"]}
    assert names and all(not n.startswith("ProfilerStep") for n in names)


def test_communication_advice_weighs_the_share_no_computation_overlaps() -> None:
    """The diff pair spends 34-35% of the step in collectives, but most of it overlaps compute: the
    exposed share is under the 20% the advice needs."""
    from tbscope.profiler.overview import exposed_communication_us

    for path in [p for p in ALL if "a100_diff" in p.name]:
        trace = load(path)
        overview = analyze(trace)
        total = sum(s.duration_us for s in overview.steps)
        collectives, exposed = exposed_communication_us(trace, overview.steps, overview.has_device)
        assert collectives / total > 0.3 and exposed / total < 0.2
        assert not any(a["text"].startswith("Communication-bound") for a in overview.recommendations)


@pytest.mark.parametrize("path", [p for p in ALL if "gpu" in p.parts], ids=lambda p: p.name.split(".")[0])
def test_kernel_busy_time_is_the_union_of_the_kernels_in_the_step(path: Path) -> None:
    events = raw_events(path)
    origin = min(float(e["ts"]) for e in events if e.get("ph") == "X" and "ts" in e and e.get("cat") != "Trace")
    kernels = [(float(e["ts"]) - origin, float(e["ts"]) - origin + float(e.get("dur", 0)))
               for e in events if e.get("cat") == "kernel"]  # fmt: skip
    overview = analyze(load(path))
    for step in overview.steps:
        clipped = [(max(a, step.start), min(b, step.end)) for a, b in kernels if b > step.start and a < step.end]
        busy = union_length(clipped)
        assert step.breakdown_us["kernel"] + step.breakdown_us["communication"] == pytest.approx(busy, abs=1e-3)
    assert overview.gpu_utilization is not None and 0 <= overview.gpu_utilization <= 1


def test_a_triton_kernel_launched_through_the_driver_is_counted() -> None:
    (path,) = [p for p in ALL if "triton" in p.name]
    overview = analyze(load(path))
    (step,) = overview.steps
    assert step.kernels == 1 and step.breakdown_us["kernel"] > 0 and step.breakdown_us["runtime"] > 0


def test_a_rocm_trace_without_occupancy_fields_analyzes() -> None:
    (path,) = [p for p in ALL if "rocm" in p.name]
    overview = analyze(load(path))
    assert overview.device is not None  # "AMD Radeon Graphics", as ROCm names an MI250
    assert [s.step for s in overview.steps] == [1]  # step 2 launched no device work: cut short
    assert overview.has_device and overview.steps[0].breakdown_us["kernel"] > 0


def test_a_cpu_only_trace_has_no_gpu_utilization() -> None:
    (path,) = [p for p in ALL if "cpu_only" in p.name]
    overview = analyze(load(path))
    assert overview.gpu_utilization is None and overview.worker == "rank34"
    assert overview.steps[0].breakdown_us["kernel"] == 0


class SlowData(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(0.015)  # a slow disk: 120 ms a batch, far more than the model takes
        return torch.randn(3, 16, 16), torch.tensor(index % 4)


def test_a_profile_captured_here_shows_a_dataloader_bound_cnn(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 14 * 14, 4))  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = torch.utils.data.DataLoader(SlowData(), batch_size=8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy machine, a thread pool's stragglers would outlast the data loading
    with tbscope.init("prof", root=tmp_path) as run, tbscope.profile(run, wait=1, warmup=1, active=3) as prof:
        for step, (x, y) in enumerate(loader, start=1000):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.writer.add_scalar("train/loss", loss, step)
            prof.step(step)
    torch.set_num_threads(threads)
    (trace,) = prof.traces
    assert trace.parent == run.dir / "profile" and trace.name.endswith(".pt.trace.json.gz")
    overview = analyze(load(trace))
    assert [s.step for s in overview.steps] == [2, 3, 4]
    assert [s.training_step for s in overview.steps] == [1002, 1003, 1004]
    assert overview.configuration["torch_version"] == torch.__version__
    assert all(s.breakdown_us["dataloader"] > 0.3 * s.duration_us for s in overview.steps)
    (advice,) = [r for r in overview.recommendations if r["text"].startswith("DataLoader-bound")]
    assert advice["figure"]["value"] == pytest.approx(
        sum(s.breakdown_us["dataloader"] for s in overview.steps) / sum(s.duration_us for s in overview.steps)
    )
    # The headline scalars sit at the training steps of the profiled steps (the 3rd to 5th: 1002 to 1004),
    # next to the loss; without a GPU, no utilization.
    logged = accumulate(run.dir)
    assert set(logged.Tags()["scalars"]) == {
        "train/loss",
        "watch/profile/step_time_ms",
        "watch/profile/share/dataloader",
    }
    for tag in ("watch/profile/step_time_ms", "watch/profile/share/dataloader"):
        assert [e.step for e in logged.Scalars(tag)] == [1002, 1003, 1004]
    assert [e.value for e in logged.Scalars("watch/profile/step_time_ms")] == pytest.approx(
        [s.duration_us / 1000 for s in overview.steps], rel=1e-6
    )
    # ... and stamped with the time the step ended, between its loss and the next step's (not the analysis's)
    loss_at = {e.step: e.wall_time for e in logged.Scalars("train/loss")}
    for e in logged.Scalars("watch/profile/step_time_ms"):
        assert loss_at[e.step] <= e.wall_time <= loss_at.get(e.step + 1, e.wall_time)
    # tbscope profile prints the same steps as the tab and the scalars: the training loop's.
    shown = subprocess.run([sys.executable, "-m", "tbscope", "profile", str(run.dir)], capture_output=True, text=True)
    table = shown.stdout.split("training step", 1)[1].splitlines()[2:5]
    assert [int(line.split()[0]) for line in table] == [1002, 1003, 1004]


def tbscope_profile(*args: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("tbscope")
    return subprocess.run([str(command), "profile", *args], capture_output=True, text=True, timeout=300)


def test_profile_command_prints_the_overview_and_json(tmp_path: Path) -> None:
    result = tbscope_profile(str(TRACES / "gpu"))
    assert result.returncode == 0, result.stderr
    assert "GPU utilization:" in result.stdout and "ProfilerStep" not in result.stdout
    data = json.loads(tbscope_profile(str(TRACES), "--json").stdout)
    by_worker = {Path(t["file"]).name: t for t in data["traces"]}
    assert len(by_worker) == len(ALL)
    v100 = by_worker["v100_rank0_steps101-104.pt.trace.json.gz"]
    assert v100["worker"] == "rank0" and [s["step"] for s in v100["steps"]] == [101, 102, 103, 104, 105]
    assert set(v100["steps"][0]["breakdown_us"]) == set(CATEGORIES) and v100["gpu_utilization"] > 0
    assert by_worker["cpu_only_rank34.pt.trace.json.gz"]["gpu_utilization"] is None


def test_bad_traces_get_a_clear_message_and_the_rest_is_still_shown(tmp_path: Path) -> None:
    (tmp_path / "notjson.pt.trace.json").write_text("{oops")
    good = (TRACES / "cpu" / "cpu_only_rank34.pt.trace.json.gz").read_bytes()
    (tmp_path / "truncated.pt.trace.json.gz").write_bytes(good[: len(good) // 2])
    (tmp_path / "empty.pt.trace.json").write_text(json.dumps({"traceEvents": []}))
    odd = {"traceEvents": [{"ph": "X", "cat": "mystery", "name": "x", "ts": 0, "dur": 5},
                           {"ph": "X", "cat": "cpu_op", "name": "aten::add", "ts": 1, "dur": 2}]}  # fmt: skip
    (tmp_path / "odd.pt.trace.json").write_text(json.dumps(odd))
    (tmp_path / "good.pt.trace.json.gz").write_bytes(good)
    result = tbscope_profile(str(tmp_path))
    assert result.returncode == 0
    assert "notjson.pt.trace.json: not a JSON trace" in result.stderr
    assert "truncated.pt.trace.json.gz: a damaged or truncated gzip file" in result.stderr
    assert "note: the trace holds no events" in result.stdout
    assert "note: 1 event(s) of unknown category 'mystery' left out" in result.stdout
    assert "good.pt.trace.json.gz" in result.stdout
    with pytest.raises(TraceError, match="not a JSON trace"):
        load(tmp_path / "notjson.pt.trace.json")
    assert tbscope_profile(str(tmp_path / "nothing")).returncode == 2


# -- the other views ------------------------------------------------------------------------------------


def test_memory_curve_peaks_and_top_allocators() -> None:
    from tbscope.profiler.memory import CURVE_POINTS, memory

    (path,) = [p for p in ALL if "memory" in p.name]
    raw = [e for e in raw_events(path) if e.get("name") == "[memory]"]
    cuda = [e["args"] for e in raw if e["args"].get("Device Type") == 1]
    data = memory(load(path))
    device = data["devices"][f"cuda:{cuda[0]['Device Id']}"]
    assert device["peak_allocated"] == max(a["Total Allocated"] for a in cuda)
    assert device["peak_reserved"] == max(a["Total Reserved"] for a in cuda)
    assert device["capacity"] and len(device["curve"]) <= CURVE_POINTS
    assert max(p[1] for p in device["curve"]) == device["peak_allocated"]  # the peak survives downsampling
    allocated = sum(a["Bytes"] for a in (e["args"] for e in raw) if a["Bytes"] > 0)
    top = data["top_operators"]
    assert top and sum(r["allocated_bytes"] for r in top) <= allocated
    assert top == sorted(top, key=lambda r: -r["allocated_bytes"])


def test_distributed_breakdown_per_rank_and_the_slowest_named() -> None:
    from tbscope.profiler.distributed import distributed

    traces = [load(p) for p in ALL if "diff" in p.name]
    data = distributed(traces)
    assert {w["worker"] for w in data["workers"]} == {"rank1", "rank3"}
    for w in data["workers"]:
        assert 0 <= w["overlap_us"] <= min(w["computation_us"], w["communication_us"]) + 1e-6
        assert 0 <= w["idle_us"] <= w["step_time_us"]
        assert w["computation_us"] + w["communication_us"] - w["overlap_us"] + w["idle_us"] <= w["step_time_us"] + 1e-6
    means = {t.worker: sum(s.duration_us for s in analyze(t).steps) / len(analyze(t).steps) for t in traces}
    assert data["slowest"] == max(means, key=lambda w: means[w])


def test_diff_of_two_runs_of_one_job() -> None:
    from tbscope.profiler.diff import diff

    control, test = (load(p) for p in sorted(p for p in ALL if "diff" in p.name))
    data = diff(control, test)
    mean = {name: sum(s.duration_us for s in analyze(t).steps) / len(analyze(t).steps)
            for name, t in (("base", control), ("other", test))}  # fmt: skip
    assert data["step_time_us"]["delta"] == pytest.approx(mean["other"] - mean["base"])
    assert sum(c["delta"] for c in data["categories_us"].values()) == pytest.approx(data["step_time_us"]["delta"])
    deltas = [abs(k["delta_us"]) for k in data["kernels"]]
    assert deltas == sorted(deltas, reverse=True) and deltas[0] > 0


def test_modules_view_nests_torchs_module_events_into_a_tree(tmp_path: Path) -> None:
    from tbscope.profiler.modules import modules

    calls = (("Net_0", 0, 100), ("Linear_0", 10, 20), ("ReLU_0", 40, 3), ("Linear_0", 50, 14), ("Net_0", 200, 60))
    events = [{"ph": "X", "cat": "python_function", "name": f"nn.Module: {name}", "ts": ts, "dur": dur,
               "pid": 1, "tid": 1} for name, ts, dur in calls]  # fmt: skip
    path = tmp_path / "modules.pt.trace.json"
    path.write_text(json.dumps({"traceEvents": events}))
    rows = {r["module"]: r for r in modules(load(path))}
    assert list(rows) == ["Net_0", "Net_0.Linear_0", "Net_0.ReLU_0"]
    assert (rows["Net_0"]["calls"], rows["Net_0"]["host_total_us"], rows["Net_0"]["depth"]) == (2, 160, 0)
    assert (rows["Net_0.Linear_0"]["calls"], rows["Net_0.Linear_0"]["host_total_us"]) == (2, 34)
    assert rows["Net_0.ReLU_0"]["parent"] == "Net_0" and rows["Net_0.ReLU_0"]["depth"] == 1


def test_overview_device_figures_where_the_trace_has_them() -> None:
    by_name = {p.name.split(".")[0]: analyze(load(p)) for p in ALL}
    v100 = by_name["v100_rank0_steps101-104"]
    assert 0 < v100.sm_efficiency <= 1 and 0 < v100.achieved_occupancy <= 100  # type: ignore[operator]
    assert by_name["mi250_rocm_minitoy"].achieved_occupancy is None  # ROCm has no occupancy fields
    memory = by_name["v100_memory_steps2-5"]
    assert memory.memory_peak_share is not None and 0 < memory.memory_peak_share < 1


@pytest.mark.parametrize("path", ALL, ids=[p.name.split(".")[0] for p in ALL])
def test_streaming_a_trace_reads_what_parsing_it_whole_reads(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tbscope.profiler import trace as trace_module

    whole = load(path)
    monkeypatch.setattr(trace_module, "WHOLE_DOCUMENT_BYTES", 0)
    monkeypatch.setattr(trace_module, "_CHUNK", 4096)  # values straddle many chunk boundaries
    streamed = load(path)
    assert streamed.header == whole.header

    def events(trace: Any) -> list[tuple[Any, ...]]:
        return list(zip(trace.kind.tolist(), [trace.strings[n] for n in trace.name], trace.start.tolist(),
                        trace.end.tolist(), strict=True))  # fmt: skip

    assert events(streamed) == events(whole)
    assert streamed.arg("correlation").tobytes() == whole.arg("correlation").tobytes()
    assert len(streamed.memory) == len(whole.memory)


DISTRIBUTED = """
import os, sys, torch, torch.distributed as dist, tbscope
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{sys.argv[2]}", rank=int(sys.argv[1]), world_size=2)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(16, 4))
with tbscope.profile(sys.argv[3], wait=0, warmup=1, active=2) as prof:
    for _ in range(4):
        model(torch.randn(8, 16)).sum().backward()
        prof.step()
dist.barrier()
dist.destroy_process_group()
os._exit(0)  # gloo's threads sometimes abort the interpreter's own teardown ("terminate called ...")
"""


def test_each_rank_of_a_distributed_job_writes_its_own_trace(tmp_path: Path) -> None:
    from conftest import free_port

    port = str(free_port())
    procs = [subprocess.Popen([sys.executable, "-c", DISTRIBUTED, str(rank), port, str(tmp_path)]) for rank in (0, 1)]
    assert [p.wait(timeout=180) for p in procs] == [0, 0]
    traces = sorted((tmp_path / "profile").glob("*.pt.trace.json.gz"))
    assert [t.name.split(".")[0] for t in traces] == ["rank0", "rank1"]
    from tbscope.profiler.distributed import distributed

    loaded = [load(t) for t in traces]
    data = distributed(loaded)
    assert [w["worker"] for w in data["workers"]] == ["rank0", "rank1"]
    for trace, worker in zip(loaded, data["workers"], strict=True):
        # The Distributed view and the Overview agree: the same mean step, the same communication (gloo's
        # collectives, on the host), and the step time is a step's, not the sum of the steps.
        steps = analyze(trace).steps
        assert worker["steps"] == len(steps) == 2
        assert worker["step_time_us"] == pytest.approx(sum(s.duration_us for s in steps) / len(steps))
        communication = sum(s.breakdown_us["communication"] for s in steps) / len(steps)
        assert worker["communication_us"] == pytest.approx(communication) and communication > 0
        assert worker["idle_us"] < worker["step_time_us"]
    assert data["slowest"] == max(data["workers"], key=lambda w: w["step_time_us"])["worker"]
    (allreduce,) = [c for c in data["collectives"] if c["name"] == "allreduce"]
    assert set(allreduce["per_rank"]) == {"rank0", "rank1"}
    assert allreduce["calls"] == sum(r["calls"] for r in allreduce["per_rank"].values()) >= 2


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        self.head = torch.nn.Linear(4 * 6 * 6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def test_the_modules_of_a_profiled_model_are_a_tree_of_their_qualified_names(tmp_path: Path) -> None:
    from tbscope.profiler.modules import modules

    model = Net()
    with tbscope.profile(tmp_path, wait=0, warmup=1, active=2, model=model, with_modules=True) as prof:
        for step in range(3):
            model(torch.randn(8, 3, 8, 8)).sum().backward()
            prof.step(step)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())  # hooks removed
    (path,) = prof.traces
    header = json.loads(gzip.decompress(path.read_bytes()))
    assert header["with_modules"] == 1  # torch's own option, passed through
    rows = {r["module"]: r for r in modules(load(path))}
    assert set(rows) == {"Net"} | {name for name, _ in model.named_modules() if name}
    assert {name: r["parent"] for name, r in rows.items()} == {
        "Net": None, "features": "Net", "features.0": "features", "features.1": "features", "head": "Net"
    }  # fmt: skip
    assert all(r["calls"] == 2 for r in rows.values())
    children = [r for r in rows.values() if r["parent"] == "Net"]
    assert sum(r["host_total_us"] for r in children) <= rows["Net"]["host_total_us"]
    assert (
        rows["features"]["host_total_us"] >= rows["features.0"]["host_total_us"] + rows["features.1"]["host_total_us"]
    )


@pytest.fixture(scope="module")
def with_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace of Net's two steps captured with ``with_stack=True`` alone."""
    model = Net()
    with tbscope.profile(tmp_path_factory.mktemp("stack"), wait=0, warmup=1, active=2, with_stack=True) as prof:
        for step in range(3):
            model(torch.randn(8, 3, 8, 8)).sum().backward()
            prof.step(step)
    (trace,) = prof.traces
    return trace


def test_with_stack_alone_gives_a_tree_of_torchs_module_events_by_class(with_stack: Path) -> None:
    from tbscope.profiler.modules import modules

    rows = {r["module"]: r for r in modules(load(with_stack))}
    assert set(rows) == {"Net_0", "Net_0.Sequential_0", "Net_0.Sequential_0.Conv2d_0", "Net_0.Sequential_0.ReLU_0",
                         "Net_0.Linear_0"}  # fmt: skip
    assert rows["Net_0.Linear_0"]["parent"] == "Net_0" and rows["Net_0.Linear_0"]["calls"] == 2


def test_python_frames_are_not_cpu_execution(with_stack: Path) -> None:
    """An outer Python frame spans the whole profiled run: counted as CPU execution it would leave no
    time to "other" (the host idle)."""
    trace = load(with_stack)
    assert (trace.kind == KIND["python"]).any()
    assert all(s.breakdown_us["other"] > 0 for s in analyze(trace).steps)


def test_operators_are_called_from_a_line_of_the_users_code(with_stack: Path) -> None:
    from tbscope.profiler.tables import operators

    rows = {r["name"]: r for r in operators(load(with_stack))}
    forward = f"test_profiler.py:{Net.forward.__code__.co_firstlineno} forward"  # torch records a function's line
    assert rows["aten::linear"]["called_from"].endswith(forward)
    assert rows["aten::conv2d"]["called_from"].endswith(forward)
    stack = rows["aten::linear"]["call_stack"]
    assert stack[0] != rows["aten::linear"]["called_from"]  # torch's own frames come first, innermost
    assert rows["aten::linear"]["called_from"] in stack
    assert not any("0x" in frame for r in rows.values() for frame in r["call_stack"])


def test_a_trace_without_module_events_says_how_to_record_them() -> None:
    from tbscope.profiler.modules import view

    (path,) = [p for p in ALL if "v100_rank0" in p.name]
    hint = view(load(path), 10)["hint"]
    assert "tbscope.profile(..., model=model)" in hint and "with_stack=True" in hint


def synthetic(tmp_path: Path, events: list[dict[str, Any]]) -> Path:
    path = tmp_path / "synthetic.pt.trace.json"
    path.write_text(json.dumps({"traceEvents": events}))
    return path


def test_operators_carry_the_python_call_stack_that_called_them(tmp_path: Path) -> None:
    from tbscope.profiler.tables import operators

    events = [
        {"ph": "X", "cat": "python_function", "name": "train.py(10): step", "ts": 0, "dur": 100, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "python_function", "name": "model.py(42): forward", "ts": 5, "dur": 50, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::linear", "ts": 10, "dur": 20, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::add", "ts": 70, "dur": 5, "pid": 1, "tid": 1},
    ]
    rows = {r["name"]: r for r in operators(load(synthetic(tmp_path, events)))}
    assert rows["aten::linear"]["call_stack"] == ["model.py:42 forward", "train.py:10 step"]
    assert rows["aten::linear"]["called_from"] == "model.py:42 forward"
    assert rows["aten::add"]["call_stack"] == ["train.py:10 step"]


def test_host_collectives_count_as_communication(tmp_path: Path) -> None:
    events = [
        {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#0", "ts": 0, "dur": 100, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 40, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "c10d::allreduce_", "ts": 50, "dur": 30, "pid": 1, "tid": 1},
    ]
    (step,) = analyze(load(synthetic(tmp_path, events))).steps
    assert step.breakdown_us["communication"] == 30 and step.breakdown_us["cpu_exec"] == 40
    assert step.breakdown_us["other"] == 30


def test_a_span_is_one_steps_window() -> None:
    from tbscope.profiler.overview import span
    from tbscope.profiler.tables import kernels

    (path,) = [p for p in ALL if "v100_rank0" in p.name]
    trace = load(path)
    one = span(trace, 103)
    (step,) = [s for s in analyze(trace).steps if s.step == 103]
    assert len(one) and all(one.end > step.start) and all(one.start < step.end)
    assert sum(k["calls"] for k in kernels(one)) < sum(k["calls"] for k in kernels(trace))
    with pytest.raises(ValueError, match="the trace has no step 7"):
        span(trace, 7)


def test_the_profile_command_caches_its_analysis_in_tbscopes_cache_not_beside_the_trace(tmp_path: Path) -> None:
    from tbscope.profiler import cache

    trace = tmp_path / "run" / "profile" / "cpu_only_rank34.pt.trace.json.gz"
    trace.parent.mkdir(parents=True)
    trace.write_bytes((TRACES / "cpu" / trace.name).read_bytes())
    first = json.loads(tbscope_profile(str(tmp_path), "--json").stdout)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "run",
        "run/profile",
        "run/profile/cpu_only_rank34.pt.trace.json.gz",
    ]
    assert json.loads(cache.entry(trace).read_text())["overview"] == first["traces"][0]
    assert json.loads(tbscope_profile(str(tmp_path), "--json").stdout) == first


def test_a_changed_or_moved_trace_is_analyzed_again(tmp_path: Path) -> None:
    from tbscope.profiler import cache

    trace = tmp_path / "a" / "w.pt.trace.json.gz"
    trace.parent.mkdir()
    trace.write_bytes((TRACES / "cpu" / "cpu_only_rank34.pt.trace.json.gz").read_bytes())
    computed: list[str] = []

    def analysis() -> str:
        computed.append("x")
        return f"analysis {len(computed)}"

    assert cache.cached(trace, "overview", analysis) == "analysis 1"
    assert cache.cached(trace, "overview", analysis) == "analysis 1"  # unchanged: from the cache
    trace.write_bytes(trace.read_bytes() + b"\n")  # changed: its size and time differ
    assert cache.cached(trace, "overview", analysis) == "analysis 2"
    moved = tmp_path / "b" / trace.name
    moved.parent.mkdir()
    trace.rename(moved)
    assert cache.cached(moved, "overview", analysis) == "analysis 3"


def test_the_profile_tab_serves_only_regular_trace_files_inside_the_logdir(tmp_path: Path) -> None:
    """A symlink named like a trace (to a file outside the logdir) or a FIFO is neither listed nor served."""
    from tensorboard.plugins import base_plugin
    from werkzeug.test import Client

    from tbscope.profiler.plugin import ProfilePlugin

    profile = tmp_path / "logs" / "run" / "profile"
    profile.mkdir(parents=True)
    real = profile / "cpu_only_rank34.pt.trace.json.gz"
    real.write_bytes((TRACES / "cpu" / real.name).read_bytes())
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the logdir")
    (profile / "evil.pt.trace.json").symlink_to(secret)
    os.mkfifo(profile / "fifo.pt.trace.json")
    apps = ProfilePlugin(base_plugin.TBContext(logdir=str(tmp_path / "logs"))).get_plugin_apps()

    def get(route: str, query: str) -> tuple[int, bytes]:
        response = Client(apps[route]).get(f"{route}?{query}")
        return response.status_code, response.get_data()

    status, body = get("/runs", "")
    assert status == 200 and json.loads(body) == [{"run": "run", "workers": [real.name]}]
    for worker in ("evil.pt.trace.json", "fifo.pt.trace.json"):
        status, body = get("/trace", f"run=run&worker={worker}")
        assert status == 404 and b"outside the logdir" not in body
    assert get("/trace", f"run=run&worker={real.name}") == (200, real.read_bytes())
    assert secret.read_text() == "outside the logdir"


def test_a_trace_with_fields_of_unexpected_types_still_analyzes(tmp_path: Path) -> None:
    """A header or event arguments of other types than torch writes: every view still answers."""
    from tbscope.profiler import memory, tables

    path = tmp_path / "odd.pt.trace.json"
    path.write_text(json.dumps({
        "deviceProperties": 7, "distributedInfo": "rank zero",
        "traceEvents": [
            {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "ts": 0, "dur": 100, "args": []},
            {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 10, "dur": 20, "args": "none"},
            {"ph": "X", "cat": "kernel", "name": "gemm", "ts": 40, "dur": 30, "args": {"device": [0]}},
            {"ph": "i", "name": "[memory]", "ts": 15, "args": 3},
        ],
    }))  # fmt: skip
    trace = load(path)
    overview = analyze(trace)
    assert [s.step for s in overview.steps] == [1] and overview.devices == []
    assert tables.operators(trace)[0]["name"] == "aten::mm"
    assert memory.memory(trace)["devices"] is not None


def test_without_a_step_the_profile_scalars_go_to_the_writers_latest_written_step(tmp_path: Path) -> None:
    model = torch.nn.Linear(8, 2)
    with tbscope.Writer(tmp_path) as w, tbscope.profile(w, wait=0, warmup=1, active=2) as prof:
        for step in range(500, 503):
            loss = model(torch.randn(16, 8)).square().mean()
            loss.backward()
            w.add_scalar("train/loss", loss.item(), step)
            w.flush()  # written: the writer's statistics know this step
            prof.step()
    assert [e.step for e in accumulate(tmp_path).Scalars("watch/profile/step_time_ms")] == [501, 502]
