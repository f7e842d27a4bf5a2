"""The Profile tab's routes, through the plugin's real WSGI apps, on real traces."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

from tbscope.profiler import cache
from tbscope.profiler.plugin import ProfilePlugin

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
V100 = TRACES / "gpu" / "v100_rank0_steps101-104.pt.trace.json.gz"
pytestmark = pytest.mark.skipif(not V100.exists(), reason=f"the shared traces are not at {TRACES}")


class Tab:
    """The plugin as TensorBoard mounts it on a logdir."""

    def __init__(self, logdir: Path) -> None:
        self.plugin = ProfilePlugin(base_plugin.TBContext(logdir=str(logdir)))
        self.apps = self.plugin.get_plugin_apps()

    def get(self, route: str, **query: str) -> tuple[int, Any]:
        response = Client(self.apps[route]).get(route, query_string=query)
        body = response.get_data()
        return response.status_code, json.loads(body) if response.mimetype == "application/json" else body


def test_the_tab_shows_traces_written_by_torchs_tensorboard_trace_handler(tmp_path: Path) -> None:
    """torch-tb-profiler's layout, ``logdir/<run>/<worker>.<time>.pt.trace.json``, written by torch itself."""
    import torch

    run = tmp_path / "logs" / "resnet"
    with torch.profiler.profile(
        schedule=torch.profiler.schedule(wait=0, warmup=1, active=2),
        on_trace_ready=torch.profiler.tensorboard_trace_handler(str(run)),
    ) as prof:
        for _ in range(3):
            torch.nn.functional.relu(torch.randn(64, 64) @ torch.randn(64, 64))
            prof.step()
    (written,) = run.iterdir()
    tab = Tab(tmp_path / "logs")
    assert tab.plugin.is_active()
    assert tab.get("/runs") == (200, [{"run": "resnet", "workers": [written.name]}])
    status, overview = tab.get("/overview", run="resnet", worker=written.name)
    assert status == 200 and [s["step"] for s in overview["steps"]] == [1, 2]
    status, operators = tab.get("/operators", run="resnet", worker=written.name)
    assert status == 200 and "aten::relu" in {r["name"] for r in operators}


def test_nested_and_profile_folder_traces_are_runs_of_their_own(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for folder in ("exp/a/profile", "exp/b", "exp/b/deeper"):
        (logs / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(V100, logs / folder / V100.name)
    assert Tab(logs).get("/runs") == (200, [
        {"run": "exp/a", "workers": [V100.name]},
        {"run": "exp/b", "workers": [V100.name]},
        {"run": "exp/b/deeper", "workers": [V100.name]},
    ])  # fmt: skip


def test_a_logdir_without_traces_leaves_the_tab_inactive(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "events.out.tfevents.1.host").write_bytes(b"")
    (tmp_path / "run" / "notes.json").write_text("{}")
    assert not Tab(tmp_path).plugin.is_active()


def test_each_trace_is_parsed_once_for_all_views_and_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(V100, tmp_path / V100.name)
    parsed: list[str] = []
    real_load = cache.load

    def counting_load(path: Path, inside: Path | None = None) -> Any:
        parsed.append(Path(path).name)
        return real_load(path, inside)

    monkeypatch.setattr(cache, "load", counting_load)
    monkeypatch.setenv("TBSCOPE_CACHE_DIR", str(tmp_path / "fresh-cache"))  # no analysis cached from before
    tabs = [Tab(tmp_path), Tab(tmp_path)]  # two servers in one process share the parsed trace
    answers: list[int] = []

    def look(tab: Tab, route: str) -> None:
        answers.append(tab.get(route, run=".", worker=V100.name)[0])

    threads = [threading.Thread(target=look, args=(tab, route)) for tab in tabs
               for route in ("/overview", "/operators", "/kernels", "/memory", "/modules")]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * len(threads)
    assert parsed == [V100.name]


def test_a_damaged_trace_gets_a_message_and_the_others_still_answer(tmp_path: Path) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    shutil.copy(V100, tmp_path / "good" / V100.name)
    data = V100.read_bytes()
    (tmp_path / "bad" / "cut.pt.trace.json.gz").write_bytes(data[: len(data) // 3])
    (tmp_path / "bad" / "garbled.pt.trace.json").write_text('{"traceEvents": [{"ph": "X", "ts": ')
    tab = Tab(tmp_path)
    expected = {"cut.pt.trace.json.gz": "damaged or truncated gzip", "garbled.pt.trace.json": "not a JSON trace"}
    for worker, message in expected.items():
        for route in ("/overview", "/kernels", "/memory"):
            status, body = tab.get(route, run="bad", worker=worker)
            assert status == 422 and message in body["error"], (route, body)
    assert tab.get("/overview", run="good", worker=V100.name)[0] == 200


def test_a_trace_rewritten_while_served_is_read_again_and_one_deleted_is_told(tmp_path: Path) -> None:
    other = TRACES / "cpu" / "cpu_only_rank34.pt.trace.json.gz"
    target = tmp_path / "run" / "w.pt.trace.json.gz"
    target.parent.mkdir()
    shutil.copy(V100, target)
    tab = Tab(tmp_path)
    assert [s["step"] for s in tab.get("/overview", run="run", worker=target.name)[1]["steps"]] == [
        101, 102, 103, 104, 105
    ]  # fmt: skip
    shutil.copy(other, target)
    os.utime(target, ns=(1, 1))  # a different time as well as size: another version of the file
    steps = [int(e["name"].split("#")[1]) for e in json.loads(gzip.decompress(other.read_bytes()))["traceEvents"]
             if e.get("ph") == "X" and str(e.get("name", "")).startswith("ProfilerStep#")]  # fmt: skip
    assert [s["step"] for s in tab.get("/overview", run="run", worker=target.name)[1]["steps"]] == (steps or [0])
    target.unlink()
    status, body = tab.get("/kernels", run="run", worker=target.name)
    assert status == 404 and "gone" in body["error"]


# -- what each view says, against the raw JSON ----------------------------------------------------------


def raw(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(gzip.decompress(path.read_bytes()))["traceEvents"])


def shared_tab(tmp_path: Path, *names: str) -> Tab:
    for name in names:
        shutil.copy(TRACES / "gpu" / name, tmp_path / name)
    return Tab(tmp_path)


H200 = "h200_eager_cnn_steps2-4.pt.trace.json.gz"


def test_an_fp32_cnn_on_tf32_tensor_cores_is_told_to_use_channels_last_not_mixed_precision(tmp_path: Path) -> None:
    """The H200 CNN's convolutions run on TF32 tensor cores; cuDNN's batch norm and its NCHW/NHWC
    conversions are no GEMM or convolution, and the conversions take a notable share of kernel time."""
    events = raw(TRACES / "gpu" / H200)
    kernels = [e for e in events if e.get("cat") == "kernel"]
    layout = [e for e in kernels if "nchwToNhwc" in e["name"] or "nhwcToNchw" in e["name"]]
    share = sum(e["dur"] for e in layout) / sum(e["dur"] for e in kernels)
    status, overview = shared_tab(tmp_path, H200).get("/overview", run=".", worker=H200)
    assert status == 200
    texts = [r["text"] for r in overview["recommendations"]]
    assert not any(t.startswith("Tensor cores idle") for t in texts)
    (advice,) = [r for r in overview["recommendations"] if "channels_last" in r["text"]]
    assert advice["figure"]["value"] == pytest.approx(share, rel=1e-6) and share > 0.05
    assert advice["events"] and {e["view"] for e in advice["events"]} == {"kernels"}
    assert {e["name"] for e in advice["events"]} <= {e["name"] for e in layout}
    assert overview["tensor_core_share"] > 0.9


def test_syncs_after_pageable_copies_are_blamed_on_them(tmp_path: Path) -> None:
    """A step that copies a batch from pageable memory: the copy's launch, then the sync it forces."""
    events = [
        {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#7", "ts": 0, "dur": 1000, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::copy_", "ts": 10, "dur": 300, "pid": 1, "tid": 1,
         "args": {"External id": 5}},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaMemcpyAsync", "ts": 20, "dur": 20, "pid": 1, "tid": 1,
         "args": {"correlation": 9, "External id": 5}},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaStreamSynchronize", "ts": 45, "dur": 250, "pid": 1,
         "tid": 1, "args": {"correlation": 10, "External id": 5}},
        {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD (Pageable -> Device)", "ts": 60, "dur": 230,
         "pid": 0, "tid": 7, "args": {"correlation": 9, "External id": 5, "bytes": 6_291_456}},
        {"ph": "X", "cat": "kernel", "name": "sgemm", "ts": 400, "dur": 500, "pid": 0, "tid": 7,
         "args": {"correlation": 11, "External id": 6}},
    ]  # fmt: skip
    (tmp_path / "w.pt.trace.json").write_text(json.dumps({"traceEvents": events}))
    status, overview = Tab(tmp_path).get("/overview", run=".", worker="w.pt.trace.json")
    assert status == 200
    by_start = {r["text"].split(":")[0]: r for r in overview["recommendations"]}
    # Weighed by time: the device idles from the sync's return (295 us) to the next kernel (400 us).
    assert by_start["Syncs after pageable copies"]["figure"]["value"] == pytest.approx(105 / 1000)
    assert "1 a step, 6.3 MB each" in by_start["Syncs after pageable copies"]["text"]
    assert "pin_memory=True" in by_start["Syncs after pageable copies"]["text"]
    assert by_start["Syncs after pageable copies"]["events"] == [{"view": "operators", "name": "aten::copy_"}]
    assert "Host-device syncs" not in by_start  # nothing else synced
    assert by_start["Copies"]["figure"]["value"] == pytest.approx(230 / 1000)


def test_syncs_after_scalar_copies_that_cost_the_step_nothing_get_no_advice(tmp_path: Path) -> None:
    """Nine 149-byte pageable copies a step, each synced, but the device has the next kernel queued at
    once: a count-based rule would advise pin_memory; weighed by the time lost it says nothing."""
    events = [{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "ts": 0, "dur": 10_000, "pid": 1,
               "tid": 1}]  # fmt: skip
    for k in range(9):
        at, copy, sync, kernel = 1000 * k + 10, 3 * k + 1, 3 * k + 2, 3 * k + 3
        events += [
            {"ph": "X", "cat": "cuda_runtime", "name": "cudaMemcpyAsync", "ts": at, "dur": 5, "pid": 1, "tid": 1,
             "args": {"correlation": copy}},
            {"ph": "X", "cat": "cuda_runtime", "name": "cudaStreamSynchronize", "ts": at + 6, "dur": 4, "pid": 1,
             "tid": 1, "args": {"correlation": sync}},
            {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD (Pageable -> Device)", "ts": at + 7, "dur": 2,
             "pid": 0, "tid": 7, "args": {"correlation": copy, "bytes": 149}},
            {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": at + 11, "dur": 3, "pid": 1,
             "tid": 1, "args": {"correlation": kernel}},
            {"ph": "X", "cat": "kernel", "name": "sgemm", "ts": at + 11, "dur": 990, "pid": 0, "tid": 7,
             "args": {"correlation": kernel}},
        ]  # fmt: skip
    (tmp_path / "w.pt.trace.json").write_text(json.dumps({"traceEvents": events}))
    status, overview = Tab(tmp_path).get("/overview", run=".", worker="w.pt.trace.json")
    assert status == 200
    texts = [r["text"] for r in overview["recommendations"]]
    assert not any(t.startswith(("Syncs after pageable copies", "Host-device syncs")) for t in texts)


def test_kernels_grouped_by_the_operator_that_launched_them(tmp_path: Path) -> None:
    events = raw(V100)
    op_of = {e["args"]["External id"]: e["name"] for e in events if e.get("cat") == "cpu_op" and "External id" in
             e.get("args", {})}  # fmt: skip
    expected: dict[tuple[Any, str], float] = {}
    for e in events:
        if e.get("cat") == "kernel":
            key = (op_of.get(e["args"].get("External id")), e["name"])
            expected[key] = expected.get(key, 0.0) + e["dur"]
    status, rows = shared_tab(tmp_path, V100.name).get("/kernels", run=".", worker=V100.name, group_by="operator")
    assert status == 200
    got = {(r["operator"], r["name"]): r["total_us"] for r in rows}
    top = sorted(expected, key=lambda k: -expected[k])[:50]
    assert all(got[key] == pytest.approx(expected[key]) for key in top)
    assert [r["total_us"] for r in rows] == sorted((r["total_us"] for r in rows), reverse=True)


def test_allocations_never_freed_in_the_window_largest_first(tmp_path: Path) -> None:
    """The V100 memory trace frees everything it allocates; with the frees of its three largest
    allocations taken out, those three are the leak's suspects, largest first."""
    data = json.loads(gzip.decompress((TRACES / "gpu" / "v100_memory_steps2-5.pt.trace.json.gz").read_bytes()))
    memory = [e for e in data["traceEvents"] if e.get("name") == "[memory]"]
    where = lambda e: (e["args"]["Device Type"], e["args"]["Device Id"], e["args"]["Addr"])  # noqa: E731
    largest = sorted((e for e in memory if e["args"]["Bytes"] > 0), key=lambda e: -e["args"]["Bytes"])[:3]
    dropped = set()
    for allocation in largest:  # the first free of that address after the allocation
        free = next(f for f in memory if f["args"]["Bytes"] < 0 and where(f) == where(allocation)
                    and f["ts"] >= allocation["ts"] and id(f) not in dropped)  # fmt: skip
        dropped.add(id(free))
    data["traceEvents"] = [e for e in data["traceEvents"] if id(e) not in dropped]
    (tmp_path / "leaky.pt.trace.json").write_text(json.dumps(data))
    status, view = Tab(tmp_path).get("/memory", run=".", worker="leaky.pt.trace.json")
    assert status == 200
    assert [r["bytes"] for r in view["never_freed"]] == [e["args"]["Bytes"] for e in largest]
    times = [r["time_us"] for r in view["never_freed"]]
    assert [t - times[0] for t in times] == [e["ts"] - largest[0]["ts"] for e in largest]
    assert all(r["operator"] and r["device"] == f"cuda:{e['args']['Device Id']}"
               for r, e in zip(view["never_freed"], largest, strict=True))  # fmt: skip
    times = [e["ts"] for e in memory]
    assert view["window_us"][1] - view["window_us"][0] == pytest.approx(max(times) - min(times))


def test_the_overview_summarizes_each_gpu_and_the_runs_configuration(tmp_path: Path) -> None:
    name = "v100_memory_steps2-5.pt.trace.json.gz"
    data = json.loads(gzip.decompress((TRACES / "gpu" / name).read_bytes()))
    cuda = [e["args"] for e in data["traceEvents"] if e.get("name") == "[memory]" and e["args"]["Device Type"] == 1]
    status, overview = shared_tab(tmp_path, name).get("/overview", run=".", worker=name)
    assert status == 200
    assert [d["id"] for d in overview["devices"]] == [d["id"] for d in data["deviceProperties"]]
    (gpu,) = [d for d in overview["devices"] if d["id"] == cuda[0]["Device Id"]]  # the one this rank used
    assert gpu["name"] == data["deviceProperties"][cuda[0]["Device Id"]]["name"]
    assert gpu["peak_reserved_bytes"] == max(a["Total Reserved"] for a in cuda)
    assert gpu["peak_allocated_bytes"] == max(a["Total Allocated"] for a in cuda)
    assert gpu["sm_efficiency"] == pytest.approx(overview["sm_efficiency"]) and 0 < gpu["achieved_occupancy"] <= 100
    assert all(d["sm_efficiency"] is None for d in overview["devices"] if d is not gpu)  # no kernel ran there
    steps = sorted(int(e["name"].split("#")[1]) for e in data["traceEvents"]
                   if str(e.get("name", "")).startswith("ProfilerStep#"))  # fmt: skip
    assert overview["configuration"]["steps"] == steps and overview["configuration"]["worker"] == overview["worker"]


def test_diff_of_one_step_on_each_side_drills_down_to_kernels(tmp_path: Path) -> None:
    control, test = "a100_diff_control.pt.trace.json.gz", "a100_diff_test.pt.trace.json.gz"
    tab = shared_tab(tmp_path, control, test)
    steps = {w: {s["step"]: s for s in tab.get("/overview", run=".", worker=w)[1]["steps"]} for w in (control, test)}
    status, diff = tab.get("/diff", run=".", worker=control, run2=".", worker2=test, step="1010", step2="1013")
    assert status == 200
    assert diff["step_time_us"]["base"] == pytest.approx(steps[control][1010]["duration_us"])
    assert diff["step_time_us"]["other"] == pytest.approx(steps[test][1013]["duration_us"])
    assert diff["categories_us"]["kernel"]["base"] == pytest.approx(steps[control][1010]["breakdown_us"]["kernel"])
    launching = [op for op in diff["operators"] if op["kernels"]]
    assert launching
    for op in launching:  # an operator's kernels are part of its device time, on each side
        assert sum(k["base_us"] for k in op["kernels"]) <= op["base_us"] + 1e-6
        assert sum(k["other_us"] for k in op["kernels"]) <= op["other_us"] + 1e-6
    assert tab.get("/diff", run=".", worker=control, run2=".", worker2=test, step="x")[0] == 400
    assert "no step 7" in tab.get("/diff", run=".", worker=control, run2=".", worker2=test, step="7")[1]["error"]


# -- the plugin's shape ----------------------------------------------------------------------------------


def test_the_plugins_entry_loads_nothing_heavy() -> None:
    """TensorBoard imports the entry to register the tab: an import error or a slow import there hurts
    every TensorBoard start, so it loads neither numpy nor pandas, torch, PIL nor the writer."""
    import subprocess
    import sys

    probe = (
        "import sys, json\n"
        "from tensorboard.plugins import base_plugin\n"
        "from tbscope.profiler.plugin import ProfilePlugin\n"
        "ProfilePlugin(base_plugin.TBContext(logdir='.')).get_plugin_apps()\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert loaded.isdisjoint({"numpy", "pandas", "torch", "PIL", "tbscope.writer", "tbscope.pipeline"})
    assert "tbscope.profiler.plugin" in loaded


def test_the_profiler_modules_import_no_circle() -> None:
    """No module of the profiler imports one that imports it back, at its top or inside a function."""
    import ast

    folder = Path(__file__).resolve().parents[1] / "src" / "tbscope" / "profiler"
    imports: dict[str, set[str]] = {}
    for source in folder.glob("*.py"):
        name = f"tbscope.profiler.{source.stem}"
        found = set()
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        imports[name] = {m for m in found if m.startswith("tbscope.profiler.") and m != name}
    assert len(imports) >= 10

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(m == target or (m not in seen and reaches(m, target, seen | {m})) for m in imports.get(start, ()))

    circles = sorted(name for name in imports if reaches(name, name, {name}))
    assert circles == []


def test_a_symlinked_folder_inside_the_logdir_is_not_walked(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(V100, outside / V100.name)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "linked").symlink_to(outside, target_is_directory=True)
    tab = Tab(logs)
    assert not tab.plugin.is_active() and tab.get("/runs") == (200, [])


def test_operators_grouped_by_input_shapes(tmp_path: Path) -> None:
    from collections import Counter

    name = "a100_diff_control.pt.trace.json.gz"  # recorded with shapes
    calls = Counter((e["name"], str(e["args"]["Input Dims"])) for e in raw(TRACES / "gpu" / name)
                    if e.get("cat") == "cpu_op" and "Input Dims" in e.get("args", {}))  # fmt: skip
    status, rows = shared_tab(tmp_path, name).get("/operators", run=".", worker=name, group_by="shapes")
    assert status == 200 and rows
    shown = [r for r in rows if r["input_shapes"] is not None]
    assert shown and all(r["calls"] == calls[r["name"], r["input_shapes"]] for r in shown)
    by_name = Counter(r["name"] for r in shown)
    assert any(count > 1 for count in by_name.values())  # one operator, several shapes: several rows


def test_distributed_names_each_collective_per_rank_and_the_slowest_rank(tmp_path: Path) -> None:
    """The A100 pair are two ranks of one job (rank 1 and rank 3): NCCL kernels, counted per rank within
    the steps the Overview found, as the raw JSON has them."""
    control, test = "a100_diff_control.pt.trace.json.gz", "a100_diff_test.pt.trace.json.gz"
    tab = shared_tab(tmp_path, control, test)
    status, data = tab.get("/distributed", run=".")
    assert status == 200
    rows = {c["name"]: c for c in data["collectives"]}
    for worker in (control, test):
        overview = tab.get("/overview", run=".", worker=worker)[1]
        steps = [(s["start_us"], s["end_us"]) for s in overview["steps"]]
        events = raw(TRACES / "gpu" / worker)
        origin = min(float(e["ts"]) for e in events if e.get("ph") == "X" and e.get("cat") not in ("Trace", None))
        within = [e for e in events if any(float(e["ts"]) - origin < b and float(e["ts"]) + e.get("dur", 0) - origin > a
                                           for a, b in steps)]  # fmt: skip
        nccl = [e for e in within if e.get("cat") == "kernel" and "nccl" in e["name"].lower()]
        rank = overview["worker"]
        for name, marker in (("allreduce", "AllReduce"), ("sendrecv", "SendRecv")):
            mine = [e for e in nccl if marker in e["name"]]
            assert rows[name]["per_rank"][rank]["calls"] == len(mine) > 0
            assert rows[name]["per_rank"][rank]["total_us"] == pytest.approx(sum(e["dur"] for e in mine))
        (row,) = [w for w in data["workers"] if w["worker"] == rank]
        assert row["step_time_us"] == pytest.approx(sum(b - a for a, b in steps) / len(steps))
        assert row["communication_us"] == pytest.approx(
            sum(s["breakdown_us"]["communication"] for s in overview["steps"]) / len(steps)
        )
        assert 0 <= row["overlap_us"] <= min(row["computation_us"], row["communication_us"])
    slowest = max(data["workers"], key=lambda w: w["step_time_us"])
    assert data["slowest"] == slowest["worker"] == "rank1"


def test_a_view_of_one_step_counts_the_kernels_of_that_steps_window(tmp_path: Path) -> None:
    tab = shared_tab(tmp_path, V100.name)
    (step,) = [s for s in tab.get("/overview", run=".", worker=V100.name)[1]["steps"] if s["step"] == 103]
    events = raw(V100)
    origin = min(float(e["ts"]) for e in events if e.get("ph") == "X" and e.get("cat") not in ("Trace", None))
    kernels = [e for e in events if e.get("cat") == "kernel" and float(e["ts"]) - origin < step["end_us"]
               and float(e["ts"]) + e["dur"] - origin > step["start_us"]]  # fmt: skip
    status, rows = tab.get("/kernels", run=".", worker=V100.name, step="103")
    assert status == 200 and sum(r["calls"] for r in rows) == len(kernels) > 0
    status, body = tab.get("/kernels", run=".", worker=V100.name, step="7")
    assert status == 422 and body["error"] == "the trace has no step 7"


def test_parsed_traces_kept_in_memory_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = []
    for name in ("v100_rank0_steps101-104.pt.trace.json.gz", "h200_eager_cnn_steps2-4.pt.trace.json.gz"):
        shutil.copy(TRACES / "gpu" / name, tmp_path / name)
        paths.append(tmp_path / name)
    parsed: list[str] = []
    real_load = cache.load
    monkeypatch.setattr(cache, "load", lambda path, inside: parsed.append(Path(path).name) or real_load(path, inside))
    first = cache.loaded(paths[0])
    monkeypatch.setattr(cache, "KEPT_BYTES", first.nbytes)  # room for one of them
    assert cache.loaded(paths[0]) is first
    cache.loaded(paths[1])  # the newest is always kept: the older one goes
    cache.loaded(paths[0])
    assert parsed == [paths[0].name, paths[1].name, paths[0].name]


def test_tensor_core_advice_on_a_volta_offers_float16_not_tf32(tmp_path: Path) -> None:
    """The V100 trace's fp32 GEMMs run without tensor cores; a Volta (compute capability 7.0) has no TF32."""
    data = json.loads(gzip.decompress(V100.read_bytes()))
    assert {(d["computeMajor"], d["computeMinor"]) for d in data["deviceProperties"]} == {(7, 0)}
    status, overview = shared_tab(tmp_path, V100.name).get("/overview", run=".", worker=V100.name)
    assert status == 200
    (advice,) = [r for r in overview["recommendations"] if r["text"].startswith("Tensor cores idle")]
    assert "float16" in advice["text"] and "TF32" not in advice["text"].replace("no TF32", "")
    assert advice["figure"]["value"] == pytest.approx(1 - overview["tensor_core_share"])
    kernels = {e["name"] for e in data["traceEvents"] if e.get("cat") == "kernel"}
    assert advice["events"] and all(e["name"] in kernels and e["view"] == "kernels" for e in advice["events"])


def test_the_walk_for_traces_stops_after_its_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tbscope.profiler import trace

    for run in range(6):
        (tmp_path / f"run{run}").mkdir()
        (tmp_path / f"run{run}" / "w.pt.trace.json").write_text('{"traceEvents": []}')
    assert len(trace.find_traces(tmp_path)) == 6
    monkeypatch.setattr(trace, "WALK_LIMIT", 7)  # the top folder's 6 entries and run0's reach it: run1 is the last
    assert [p.parent.name for p in trace.find_traces(tmp_path)] == ["run0", "run1"]


def test_a_trace_swapped_for_a_link_after_the_walk_is_refused(tmp_path: Path) -> None:
    logs, outside = tmp_path / "logs", tmp_path / "outside"
    (logs / "run").mkdir(parents=True)
    outside.mkdir()
    trace = logs / "run" / V100.name
    shutil.copy(V100, trace)
    secret = outside / "secret.pt.trace.json"
    secret.write_text(json.dumps({"traceEvents": [
        {"ph": "X", "cat": "kernel", "name": "secret_outside_the_logdir", "ts": 0, "dur": 5},
    ]}))  # fmt: skip
    tab = Tab(logs)
    assert tab.get("/runs")[1] == [{"run": "run", "workers": [V100.name]}]  # the walk saw a regular file
    trace.unlink()
    trace.symlink_to(secret)  # swapped after the walk, which the tab trusts for a few seconds
    for route in ("/trace", "/overview", "/kernels", "/timeline"):
        status, body = tab.get(route, run="run", worker=V100.name)
        assert status in (404, 422) and "symbolic link" in json.dumps(body), (route, body)
        assert "secret_outside_the_logdir" not in json.dumps(body) if isinstance(body, dict) else True
    folder_swapped = logs / "run2"
    (logs / "run2").mkdir()
    shutil.copy(V100, folder_swapped / V100.name)
    tab = Tab(logs)
    assert {"run": "run2", "workers": [V100.name]} in tab.get("/runs")[1]
    shutil.rmtree(folder_swapped)
    shutil.copy(secret, outside / V100.name)
    folder_swapped.symlink_to(outside, target_is_directory=True)  # a folder on the way, swapped for a link
    status, body = tab.get("/trace", run="run2", worker=V100.name)
    assert status == 404 and "outside the logdir" in body["error"]


def multi_member_gzip_bomb(path: Path, expanded: int) -> None:
    """A trace whose gzip members expand ``expanded`` bytes from about a thousandth of that: its last
    member's trailer, which readers used to take for the size, says 16 MiB."""
    member = gzip.compress(b" " * (16 << 20))
    with open(path, "wb") as f:
        f.write(gzip.compress(b'{"traceEvents": ['))
        for _ in range(expanded // (16 << 20)):
            f.write(member)


def test_a_gzip_bomb_is_refused_with_a_message_that_names_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = tmp_path / "bomb.pt.trace.json.gz"
    multi_member_gzip_bomb(bomb, 1 << 30)
    monkeypatch.setenv("TBSCOPE_READ_CAP_BYTES", str(64 << 20))
    status, body = Tab(tmp_path).get("/overview", run=".", worker=bomb.name)
    assert status == 422 and "refused as a likely compression bomb" in body["error"]
    assert "TBSCOPE_READ_CAP_BYTES" in body["error"]


def test_a_gzip_bomb_takes_no_memory_while_another_request_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import free_port, serve, stop

    cap = 128 << 20
    (tmp_path / "bombed").mkdir()
    (tmp_path / "good").mkdir()
    multi_member_gzip_bomb(tmp_path / "bombed" / "w.pt.trace.json.gz", 1 << 30)  # 1 GiB from about 1 MB
    shutil.copy(V100, tmp_path / "good" / V100.name)
    monkeypatch.setenv("TBSCOPE_READ_CAP_BYTES", str(cap))
    served = serve(tmp_path, "--port", str(free_port()))
    route = f"{served.url}/data/plugin/tbscope_profile"

    def get(query: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"{route}/{query}", timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def memory(field: str) -> int:
        status = Path(f"/proc/{served.proc.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith(f"{field}:")).split()[1]) << 10

    try:
        assert get(f"overview?run=good&worker={V100.name}")[0] == 200  # warm: the analysis modules are imported
        Path(f"/proc/{served.proc.pid}/clear_refs").write_text("5")  # the peak starts again from what is held now
        before = memory("VmRSS")
        bombed: list[tuple[int, Any]] = []
        thread = threading.Thread(target=lambda: bombed.append(get("overview?run=bombed&worker=w.pt.trace.json.gz")))
        thread.start()
        status, kernels = get(f"kernels?run=good&worker={V100.name}")  # answered meanwhile
        thread.join()
        assert status == 200 and kernels
        assert bombed[0][0] == 422 and "compression bomb" in bombed[0][1]["error"]
        grown = memory("VmHWM") - before
        print(f"the bomb's peak memory: {grown / 2**20:.0f} MiB over the server's own")
        assert grown < cap
    finally:
        stop(served)
