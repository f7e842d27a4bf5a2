"""The Profile tab in Chromium, on a real TensorBoard: the step chart and the operator table show the
numbers of the plugin's JSON API, and the page asks nothing of any other origin."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import tbscope
from conftest import frame_of, free_port, serve, stop, wait_until
from tbscope.profiler import cache

TRACE = Path(__file__).resolve().parents[3] / "shared" / "traces" / "gpu" / "v100_rank0_steps101-104.pt.trace.json.gz"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if not TRACE.exists():
        pytest.skip(f"the shared traces are not at {TRACE.parent}")
    root = tmp_path_factory.mktemp("runs")
    with tbscope.init("resnet", root=root) as run:
        run.writer.add_scalar("train/loss", 1.0, 0)
    (run.dir / "profile").mkdir()
    shutil.copy(TRACE, run.dir / "profile" / TRACE.name)
    served = serve(root, "--port", str(free_port()))
    served.run = f"resnet/{run.dir.name}"
    served.root = root
    yield served
    stop(served)


def test_the_tab_is_listed_when_a_run_has_traces_and_not_otherwise(served: Any, tmp_path: Path) -> None:
    listing = get_json(f"{served.url}/data/plugins_listing")
    assert listing["tbscope_profile"]["enabled"] is True and listing["tbscope_profile"]["tab_name"] == "Profile"
    with tbscope.Writer(tmp_path / "plain") as w:
        w.add_scalar("x", 1.0, 0)
    empty = serve(tmp_path, "--port", str(free_port()))
    try:
        wait_until(lambda: get_json(f"{empty.url}/data/runs"), what="the other server to load")
        assert get_json(f"{empty.url}/data/plugins_listing")["tbscope_profile"]["enabled"] is False
    finally:
        stop(empty)


def test_step_chart_and_operator_table_equal_the_json_api_and_nothing_leaves_the_origin(
    served: Any, page: Any, tmp_path: Path
) -> None:
    api = f"{served.url}/data/plugin/tbscope_profile"
    (entry,) = get_json(f"{api}/runs")
    assert entry["run"] == served.run and entry["workers"] == [TRACE.name]
    query = f"run={served.run}&worker={TRACE.name}"
    overview = get_json(f"{api}/overview?{query}")
    operators = get_json(f"{api}/operators?{query}")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{served.url}/#tbscope_profile", wait_until="domcontentloaded")
    frame = frame_of(page, "plugin_entry")
    frame.locator("#step-chart").wait_for(state="visible", timeout=60_000)
    segments = frame.locator("#step-chart rect.segment")
    assert segments.count() == 8 * len(overview["steps"])
    first = overview["steps"][0]
    kernel = frame.locator(f"#step-chart rect[data-step='{first['step']}'][data-category='kernel']")
    assert float(kernel.get_attribute("data-us")) == pytest.approx(first["breakdown_us"]["kernel"])
    # GPU idle as HTA counts it, with where tbscope reads the trace otherwise in its tooltip.
    idle = frame.locator("#gpu-idle")
    assert idle.inner_text() == f"{100 * overview['gpu_idle_share']:.1f}%"
    rule = idle.get_attribute("title") or ""
    assert "Holistic Trace Analysis" in rule and "stream field" in rule and "whole microseconds" in rule
    page.screenshot(path=str(tmp_path / "overview.png"))
    frame.get_by_role("button", name="Operators").click()
    frame.locator("#operators tbody tr").first.wait_for(state="visible", timeout=60_000)
    cells = frame.locator("#operators tbody tr").first.locator("td").all_inner_texts()
    assert cells[0] == operators[0]["name"] and int(cells[1]) == operators[0]["calls"]
    assert float(cells[2]) == pytest.approx(operators[0]["device_self_us"] / 1000, rel=1e-3)
    frame.get_by_role("button", name="Kernels").click()
    frame.locator("#kernels tbody tr").first.wait_for(state="visible", timeout=60_000)
    page.screenshot(path=str(tmp_path / "kernels.png"))
    assert requests and all(url.startswith(served.url) for url in requests), [
        url for url in requests if not url.startswith(served.url)
    ]


def test_every_view_answers_small_and_is_cached_beside_the_trace(served: Any) -> None:
    api = f"{served.url}/data/plugin/tbscope_profile"
    query = f"run={served.run}&worker={TRACE.name}"
    for view in ("overview", "operators", "operators?group_by=shapes", "kernels", "memory", "timeline", "modules"):
        url = f"{api}/{view}{'&' if '?' in view else '?'}{query}"
        with urllib.request.urlopen(url, timeout=120) as response:
            assert response.status == 200 and len(response.read()) < 10_000_000, view
    assert get_json(f"{api}/distributed?run={served.run}")["workers"][0]["worker"] == "rank0"
    one_step = get_json(f"{api}/kernels?{query}&step=103")
    assert sum(k["calls"] for k in one_step) < sum(k["calls"] for k in get_json(f"{api}/kernels?{query}"))
    (trace,) = (served.root / served.run / "profile").iterdir()  # nothing written beside the trace
    assert json.loads(cache.entry(trace).read_text())["overview"] == get_json(f"{api}/overview?{query}")
    with pytest.raises(urllib.error.HTTPError) as missing:
        get_json(f"{api}/overview?run=nope&worker=x")
    assert missing.value.code == 404 and json.loads(missing.value.read()) == {"error": "no such run and worker"}


def test_memory_timeline_distributed_and_diff_tabs_draw(served: Any, page: Any) -> None:
    page.goto(f"{served.url}/#tbscope_profile", wait_until="domcontentloaded")
    frame = frame_of(page, "plugin_entry")
    frame.locator("#step-chart").wait_for(state="visible", timeout=60_000)
    for tab, selector in (("Timeline", "#timeline-lanes div"), ("Distributed", "#distributed tbody tr"),
                          ("Memory", "#allocators"), ("Kernels", "#kernels tbody tr")):  # fmt: skip
        frame.get_by_role("button", name=tab).click()
        frame.locator(selector).first.wait_for(state="attached", timeout=60_000)
    assert frame.locator("#perfetto").count() == 0  # only on the Timeline
    frame.get_by_role("button", name="Timeline").click()
    frame.locator("#perfetto").wait_for(state="visible", timeout=60_000)
