"""Every view of the Profile tab in Chromium, on a real TensorBoard, as a user sees it: on the shared GPU
traces, on a trace captured here with ``tbscope.profile`` on the CPU, and on a logdir written by torch's own
``tensorboard_trace_handler``. The Timeline zooms on the wheel and shows a kernel's details on a click, the
Memory view has axis ticks with units and a legend, the tab follows TensorBoard's dark mode, no request
leaves the origin and nothing is logged as an error."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tbscope
from conftest import frame_of, running_tensorboard

SHARED = Path(__file__).resolve().parents[3] / "shared" / "traces"
TRACES = {
    "v100": "gpu/v100_rank0_steps101-104.pt.trace.json.gz",
    "memory": "gpu/v100_memory_steps2-5.pt.trace.json.gz",
    "h200": "gpu/h200_eager_cnn_steps2-4.pt.trace.json.gz",
    "cpu": "cpu/cpu_only_rank34.pt.trace.json.gz",
    "diff": "gpu/a100_diff_control.pt.trace.json.gz",
}
# Where the screenshots go, to be looked at: an ignored folder of the checkout, or $TBSCOPE_SCREENSHOTS.
SHOTS = Path(os.environ.get("TBSCOPE_SCREENSHOTS", Path(__file__).resolve().parents[2] / "screenshots")) / "profile"
# What each view shows once drawn: a selector that only content matches.
CONTENT = {
    "Overview": "#step-chart rect.segment",
    "Operators": "#operators tbody tr, #operators-empty",
    "Kernels": "#kernels tbody tr, #kernels-empty",
    "Memory": "#allocators",
    "Timeline": "#timeline-lanes div",
    "Distributed": "#distributed tbody tr",
    "Modules": "#modules tbody tr, #modules-empty",
    "Diff": "#diff-category tbody tr, #diff-path",
}


def missing(what: str) -> None:
    """Skip for want of ``what``; under CI a skipped browser test is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"cannot be skipped under CI: {what}")
    pytest.skip(what)


def capture(directory: Path, handler: bool) -> None:
    """A few training steps of a small CNN on the CPU, profiled by ``tbscope.profile`` into the run at
    ``directory`` or, with ``handler``, by torch's ``tensorboard_trace_handler`` into ``directory``."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten())
            self.head = torch.nn.Linear(8 * 14 * 14, 4)

        def forward(self, x: Any) -> Any:
            return self.head(self.features(x))

    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def train(profiler: Any) -> None:
        for step in range(1000, 1004):
            loss = model(torch.randn(8, 3, 16, 16)).sum()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if handler:
                profiler.step()
            else:
                profiler.step(step)  # the training loop's own step number

    if handler:
        with torch.profiler.profile(
            schedule=torch.profiler.schedule(wait=0, warmup=1, active=2),
            on_trace_ready=torch.profiler.tensorboard_trace_handler(str(directory)),
            record_shapes=True,
            profile_memory=True,
        ) as profiler:
            train(profiler)
    else:
        with (
            tbscope.init("captured", root=directory) as run,
            tbscope.profile(run, wait=0, warmup=1, active=2, model=model) as profiler,
        ):
            train(profiler)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A TensorBoard over one run per shared trace (copied: never read in place) and one captured here."""
    if not SHARED.is_dir():
        missing(f"the shared traces are not at {SHARED}")
    root = tmp_path_factory.mktemp("logs")
    for run, name in TRACES.items():
        (root / run / "profile").mkdir(parents=True)
        shutil.copy(SHARED / name, root / run / "profile")
    shutil.copy(SHARED / "gpu/a100_diff_test.pt.trace.json.gz", root / "diff" / "profile")
    # Two ranks in one run (rank 0 and rank 1 of the shared V100 traces), as a distributed job writes them.
    (root / "ranks" / "profile").mkdir(parents=True)
    for name in (TRACES["v100"], TRACES["memory"]):
        shutil.copy(SHARED / name, root / "ranks" / "profile")
    capture(root, handler=False)
    with running_tensorboard(root) as url:
        yield url


@pytest.fixture
def watched(page: Any) -> Iterator[tuple[Any, list[str], list[str]]]:
    """The page, every URL it requested, and every error it logged."""
    requests: list[str] = []
    errors: list[str] = []
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page, requests, errors


def open_tab(page: Any, url: str, run: str) -> Any:
    """The tab's frame, showing the Overview of ``run`` (the run itself, or the first under it)."""
    page.goto(f"{url}/#tbscope_profile", wait_until="domcontentloaded")
    frame = frame_of(page, "plugin_entry")
    frame.locator("#step-chart").wait_for(state="visible", timeout=60_000)
    options = frame.locator("#run option").all_text_contents()
    chosen = next(o for o in options if o == run or o.startswith(f"{run}/"))
    if frame.locator("#run").input_value() != chosen:
        frame.locator("#run").select_option(chosen)
    drawn(frame, "Overview", chosen).locator("#step-chart").wait_for(state="visible", timeout=60_000)
    return frame


def drawn(frame: Any, name: str, run: str | None = None) -> Any:
    """The view ``name`` (of ``run``) once drawn: the page marks #view busy until a view has its content."""
    of_run = f"[data-run='{run}']" if run else ""
    return frame.locator(f"#view[aria-busy='false'][data-view='{name}']{of_run}")


def shoot(page: Any, frame: Any, path: Path) -> None:
    """A screenshot of the whole tab: TensorBoard scrolls a plugin inside its frame, so the page is made
    as tall as the frame's content first."""
    height = int(frame.evaluate("document.documentElement.scrollHeight"))
    page.set_viewport_size({"width": 1400, "height": min(max(height + 150, 1000), 6000)})
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})


def view(frame: Any, name: str) -> None:
    frame.get_by_role("button", name=name, exact=True).click()
    drawn(frame, name).locator(CONTENT[name]).first.wait_for(state="attached", timeout=60_000)


@pytest.mark.parametrize("run", [*TRACES, "captured"])
def test_every_view_shows_its_content_and_nothing_leaves_the_origin(served: str, watched: Any, run: str) -> None:
    page, requests, errors = watched
    frame = open_tab(page, served, run)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name in CONTENT:
        view(frame, name)
        assert "Could not analyze" not in frame.locator("#view").inner_text(), (run, name)
        if name == "Operators" or (name in ("Kernels", "Memory") and run in ("v100", "memory", "h200", "diff")):
            assert frame.locator(f"#view {CONTENT[name].split(',')[0]}").count() > 0, (run, name)
        if name == "Overview":
            ticks = frame.locator("#step-chart text.tick").all_text_contents()
            assert len(ticks) >= 3 and ticks[0] == "0", ticks
            assert "step time (" in frame.locator("#step-chart").text_content()
            if run == "captured":  # the training loop's step numbers, not the profiler's
                labels = frame.locator("#step-chart text.step-label").all_text_contents()
                assert labels and all(1000 <= int(label) <= 1003 for label in labels), labels
            summary = frame.locator("#summary").inner_text()
            if run == "v100":  # the machine's 8 GPUs: one ran the job, the other 7 say so in one line
                assert summary.count("SM efficiency") == 1 and "7 more GPUs" in summary, summary
            assert "worker" in summary and ("SM efficiency" in summary) == (run in ("v100", "memory", "h200", "diff"))
        shoot(page, frame, SHOTS / f"{run}-{name.lower()}-light.png")
    assert requests and all(url.startswith(served) for url in requests), [
        u for u in requests if not u.startswith(served)
    ]
    assert not errors, errors


def canvas_picture(frame: Any) -> str:
    return str(frame.evaluate("document.querySelector('#timeline').toDataURL()"))


def test_timeline_zooms_on_the_wheel_and_shows_a_kernels_details_on_click(served: str, watched: Any) -> None:
    page, _, errors = watched
    frame = open_tab(page, served, "v100")
    view(frame, "Timeline")
    lane = frame.locator("#timeline-lanes div[data-lane='GPU 0 stream 7']")
    lane.wait_for(state="attached", timeout=60_000)
    before, shown = canvas_picture(frame), frame.locator("#timeline-window").inner_text()
    box = frame.locator("#timeline").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 60)
    for _ in range(6):
        page.mouse.wheel(0, -400)
    frame.wait_for_function(f"document.querySelector('#timeline-window').textContent !== {shown!r}", timeout=30_000)
    assert canvas_picture(frame) != before
    assert float(frame.locator("#timeline-window").inner_text().split()[1]) < float(shown.split()[1])
    # A kernel, as the user finds one: a run of the kernel colour in the stream's lane, once the zoomed
    # window's events came back and were drawn (the page fetches them a moment after the wheel stops).
    lane_top = float(lane.evaluate("node => node.offsetTop"))
    found = frame.wait_for_function(
        """(y) => {
            const canvas = document.querySelector('#timeline');
            const ratio = canvas.width / canvas.clientWidth;
            const row = canvas.getContext('2d').getImageData(0, Math.round((y + 8) * ratio), canvas.width, 1).data;
            let run = 0;
            for (let x = 0; x < canvas.width; x++) {
                const [r, g, b] = row.slice(4 * x, 4 * x + 3);
                run = r === 0x8f && g === 0xb8 && b === 0xde ? run + 1 : 0;
                if (run >= 4) return (x - 2) / ratio;
            }
            return null;
        }""",
        arg=lane_top,
        timeout=30_000,
    ).json_value()  # times out, failing the test, when no kernel is drawn in the stream's lane
    page.mouse.click(box["x"] + found, box["y"] + lane_top + 8)
    details = frame.locator("#event-details")
    details.locator("#event-args").wait_for(timeout=30_000)
    text = details.inner_text()
    assert "kernel" in text and "launched by" in text and "duration" in text, text
    api = f"{served}/data/plugin/tbscope_profile/kernels?run=v100&worker={Path(TRACES['v100']).name}"
    with urllib.request.urlopen(api, timeout=60) as response:
        names = {row["name"] for row in json.loads(response.read())}
    assert details.locator(".title").inner_text() in names
    # The keys of chrome://tracing zoom too: S zooms out.
    zoomed = frame.locator("#timeline-window").inner_text()
    frame.locator("#timeline").press("s")
    frame.wait_for_function(f"document.querySelector('#timeline-window').textContent !== {zoomed!r}", timeout=10_000)
    assert not errors, errors


def test_picking_a_step_opens_the_timeline_on_that_step(served: str, watched: Any) -> None:
    page, _, errors = watched
    frame = open_tab(page, served, "v100")
    view(frame, "Timeline")
    whole = frame.locator("#timeline-window").inner_text()
    frame.locator("#span").select_option("103")
    frame.locator("#view #timeline-lanes div").first.wait_for(timeout=60_000)
    frame.wait_for_function(f"document.querySelector('#timeline-window').textContent !== {whole!r}", timeout=30_000)
    shown = frame.locator("#timeline-window").inner_text()  # "showing 107 ms from 212 ms"
    assert float(shown.split()[1]) < float(whole.split()[1]) and shown.split()[2] == "ms", (whole, shown)
    assert not errors, errors


def test_memory_marks_each_step_where_the_host_ran_it_when_the_host_runs_ahead(served: str, watched: Any) -> None:
    """On the H200 trace the device finishes step 2's work long after the host began step 4: the host's
    memory curve is marked with the steps the host was in, all three of them."""
    page, _, errors = watched
    frame = open_tab(page, served, "h200")
    view(frame, "Memory")
    chart = frame.locator("#view svg[id^='memory-']").first
    chart.wait_for(timeout=60_000)
    markers = chart.locator("text.step-marker").all_text_contents()
    assert markers == ["step 2", "step 3", "step 4"], markers
    assert not errors, errors


def test_memory_view_shows_ticks_with_units_a_legend_and_what_the_table_sums(served: str, watched: Any) -> None:
    page, _, errors = watched
    frame = open_tab(page, served, "memory")
    view(frame, "Memory")
    chart = frame.locator("#view svg[id^='memory-cuda']").first
    chart.wait_for(timeout=60_000)
    y_ticks = chart.locator("text.tick.y").all_text_contents()
    x_ticks = chart.locator("text.tick.x").all_text_contents()
    assert len(y_ticks) >= 3 and all(t.split()[-1] in ("B", "KB", "MB", "GB") for t in y_ticks), y_ticks
    assert len(x_ticks) >= 3, x_ticks
    assert "time (" in chart.text_content()
    legend = frame.locator("#memory-legend").inner_text()
    assert "allocated" in legend and "reserved" in legend
    assert {"allocated", "reserved"} <= set(
        chart.locator("path[data-series]").evaluate_all("ps => ps.map(p => p.dataset.series)")
    )
    assert "summed over" in frame.locator("#allocations-span").inner_text()
    markers = chart.locator("text.step-marker").all_text_contents()  # a marker where each step starts
    numbers = [int(m.removeprefix("step ")) for m in markers]
    assert len(numbers) >= 3 and numbers == list(range(numbers[0], numbers[0] + len(numbers))), markers
    box = chart.bounding_box()
    page.mouse.move(box["x"] + 300, box["y"] + 100)  # hovering reads both curves there
    readout = chart.locator("text.readout").text_content()
    assert "allocated" in readout and "reserved" in readout and readout.split()[-1] in ("KB", "MB", "GB"), readout
    # Dragging across the chart zooms in: the time axis then covers less.
    first = chart.locator("text.tick.x").last.text_content()
    page.mouse.move(box["x"] + 200, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + 400, box["y"] + 100, steps=5)
    page.mouse.up()
    zoomed = frame.locator("#view svg[id^='memory-cuda']").first.locator("text.tick.x").last.text_content()
    assert zoomed != first
    assert not errors, errors


def test_the_tab_follows_tensorboards_dark_mode(served: str, watched: Any) -> None:
    page, _, errors = watched
    frame = open_tab(page, served, "h200")
    background = "getComputedStyle(document.body).backgroundColor"
    light = frame.evaluate(background)
    page.evaluate("document.body.classList.add('dark-mode')")  # what TensorBoard's own toggle does
    frame.wait_for_function(f"{background} !== {light!r}", timeout=10_000)
    dark = frame.evaluate(background)
    channels = [int(c) for c in dark[dark.index("(") + 1 : dark.index(")")].split(",")[:3]]
    assert max(channels) < 100, dark
    page.evaluate("document.body.classList.remove('dark-mode')")
    frame.wait_for_function(f"{background} === {light!r}", timeout=10_000)
    # The Timeline's canvas is drawn again in the other theme.
    view(frame, "Timeline")
    before = canvas_picture(frame)
    page.evaluate("document.body.classList.add('dark-mode')")
    frame.wait_for_function(f"{background} !== {light!r}", timeout=10_000)
    assert canvas_picture(frame) != before
    assert not errors, errors


@pytest.mark.parametrize("name", list(CONTENT))
def test_each_view_draws_dark_when_the_browser_prefers_dark(served: str, browser: Any, name: str) -> None:
    """Each view, on the H200 trace, dark as TensorBoard is when the browser prefers dark; saved to be looked at."""
    context = browser.new_context(color_scheme="dark", viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        frame = open_tab(page, served, "h200" if name != "Memory" else "memory")
        assert frame.evaluate("document.documentElement.classList.contains('dark')")
        view(frame, name)
        SHOTS.mkdir(parents=True, exist_ok=True)
        shoot(page, frame, SHOTS / f"{name.lower()}-dark.png")
    finally:
        context.close()


def test_the_tab_appears_for_a_logdir_written_by_torchs_trace_handler(tmp_path: Path, watched: Any) -> None:
    page, requests, errors = watched
    capture(tmp_path / "handler_run", handler=True)
    assert list((tmp_path / "handler_run").glob("*.pt.trace.json*")), "torch wrote no trace"
    with running_tensorboard(tmp_path) as url:
        frame = open_tab(page, url, "handler_run")
        assert frame.locator("#step-chart rect.segment").count() > 0
        view(frame, "Timeline")
        assert frame.locator("#timeline-lanes div").count() >= 1
        assert all(u.startswith(url) for u in requests)
    assert not errors, errors


def test_the_server_downsamples_the_timeline_to_the_window_shown(served: str) -> None:
    api = f"{served}/data/plugin/tbscope_profile"
    query = f"run=memory&worker={Path(TRACES['memory']).name}"

    def timeline(extra: str) -> Any:
        with urllib.request.urlopen(f"{api}/timeline?{query}{extra}", timeout=120) as response:
            return json.loads(response.read())

    whole = timeline("&px=200")
    drawn = sum(len(lane["events"]) for lane in whole["lanes"])
    merged = sum(e[5] for lane in whole["lanes"] for e in lane["events"])
    assert merged > 10 * drawn  # 120,000 events drawn as a few thousand
    assert all(sum(1 for e in lane["events"] if e[2] == 0) <= 2 * 200 for lane in whole["lanes"])
    start, end = whole["span_us"]
    a, b = start + (end - start) * 0.5, start + (end - start) * 0.5 + 2000
    narrow = timeline(f"&start_us={a}&end_us={b}&px=1000")
    events = [e for lane in narrow["lanes"] for e in lane["events"]]
    assert events and all(e[1] > a and e[0] < b for e in events)
    assert any(e[5] == 1 for e in events) and narrow["window_us"] == [a, b]
    with pytest.raises(urllib.error.HTTPError) as bad:
        timeline("&start_us=soon")
    assert bad.value.code == 400


def test_the_modules_view_is_a_tree_of_qualified_names(served: str, watched: Any) -> None:
    page, _, errors = watched
    frame = open_tab(page, served, "captured")
    view(frame, "Modules")
    table = frame.locator("#modules")
    table.wait_for(timeout=60_000)
    assert {"Net", "features", "head"} <= {t.strip("▸▾ ") for t in table.locator("td.name").all_inner_texts()}
    folded = table.locator("tbody tr").count()
    table.locator("tr", has_text="features").locator(".toggle").click()
    assert table.locator("tbody tr").count() > folded  # its children, features.0 to features.2, unfold
    assert table.locator("td.name[title='features.0']").count() == 1
    assert not errors, errors


def test_the_diff_compares_two_traces_and_drills_down_to_kernels(served: str, watched: Any) -> None:
    page, _, errors = watched
    frame = open_tab(page, served, "diff")
    view(frame, "Diff")
    # Never a trace against itself: the other side is the run's other trace.
    assert frame.locator("#diff-base").input_value().endswith("a100_diff_control.pt.trace.json.gz")
    assert frame.locator("#diff-other").input_value().endswith("a100_diff_test.pt.trace.json.gz")
    frame.locator("#diff-category tbody tr", has_text="kernel").first.click()
    operators = frame.locator("#diff-operator tbody tr")
    operators.first.wait_for(timeout=30_000)
    name = operators.first.locator("td").first.inner_text()
    operators.first.click()
    frame.locator("#diff-kernel tbody tr").first.wait_for(timeout=30_000)
    assert frame.locator("#diff-path button").last.inner_text() == name
    frame.locator("#diff-path button", has_text="all categories").click()
    frame.locator("#diff-category").wait_for(timeout=30_000)
    # A step on each side.
    frame.locator("#diff-other-step").select_option(index=1)
    frame.locator("#diff-category").wait_for(timeout=30_000)
    assert "step time" in frame.locator("#view h3").first.inner_text()
    assert not errors, errors


def test_operators_and_kernels_search_group_chart_and_recommendations_link_to_them(served: str, watched: Any) -> None:
    page, _, errors = watched
    frame = open_tab(page, served, "h200")
    # A recommendation names the kernels it rests on; its link opens them in the Kernels view.
    link = frame.locator(".advice button.link").first
    link.wait_for(timeout=30_000)
    link.click()
    frame.locator("#kernels tbody tr").first.wait_for(timeout=60_000)
    search = frame.locator("#kernel-search").input_value()
    assert search and all(search.lower() in n.lower() for n in frame.locator("#kernels td.name").all_inner_texts())
    assert frame.locator("#kernel-bars rect").count() >= 1
    frame.locator("#kernel-search").fill("")
    frame.locator("#by-operator").check()
    frame.locator("#kernels th[data-key='operator']").wait_for(timeout=60_000)
    assert any(t.startswith("aten::") for t in frame.locator("#kernels tbody td.text").all_inner_texts())
    view(frame, "Operators")
    every = frame.locator("#operators tbody tr").count()
    assert frame.locator("#operator-bars rect").count() >= 3
    frame.locator("#operator-search").fill("conv")
    names = frame.locator("#operators td.name").all_inner_texts()
    assert 0 < len(names) < every and all("conv" in n.lower() for n in names)
    frame.locator("#by-shapes").check()
    frame.locator("#operators th[data-key='input_shapes']").wait_for(timeout=60_000)
    assert not errors, errors


def test_distributed_compares_ranks_and_collectives_and_names_the_slowest(served: str, watched: Any) -> None:
    page, _, errors = watched
    frame = open_tab(page, served, "ranks")
    view(frame, "Distributed")
    rows = frame.locator("#distributed tbody tr")
    assert sorted(r.split("\t")[0] for r in rows.all_inner_texts()) == ["rank0", "rank1"]
    assert "slowest: rank" in frame.locator("#distributed-headline").inner_text()
    assert frame.locator("#rank-bars rect").count() >= 2 and frame.locator("#rank-bars text.tick").count() >= 3
    headers = frame.locator("#collectives th").all_inner_texts()
    assert {"collective", "calls", "rank0 total ms", "rank1 total ms"} <= set(headers), headers
    assert frame.locator("#collectives tbody tr").count() >= 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    shoot(page, frame, SHOTS / "ranks-distributed-light.png")
    assert not errors, errors
