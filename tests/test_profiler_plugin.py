"""The Profile tab's routes, through the plugin's real WSGI apps, on real traces."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import threading
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

    def counting_load(path: Path) -> Any:
        parsed.append(Path(path).name)
        return real_load(path)

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
