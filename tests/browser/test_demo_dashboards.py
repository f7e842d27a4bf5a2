"""The demo, shortened, served by a real TensorBoard: Chromium finds content in every dashboard it feeds."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from conftest import frame_of, free_port, serve, stop
from tbscope.demo.train import DemoConfig, run_sweep

# Where the screenshots go, to be looked at: an ignored folder of the checkout, or $TBSCOPE_SCREENSHOTS.
SHOTS = Path(os.environ.get("TBSCOPE_SCREENSHOTS", Path(__file__).resolve().parents[2] / "screenshots"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("demo")
    run_sweep(root, DemoConfig(epochs=2, train_images=256, val_images=64, batch_size=32), lrs=(0.01, 0.03))
    served = serve(root, "--port", str(free_port()))
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield served
    stop(served)


def show(page: Any, served: Any, dashboard: str, text: str | re.Pattern[str]) -> None:
    """Open ``dashboard`` filtered down to the tag ``text``, as a user would: dashboards draw only the
    cards on screen (Time Series through its filter box, the others through their ``tagFilter``)."""
    tag = text if isinstance(text, str) else text.pattern
    if dashboard == "timeseries":
        page.goto(f"{served.url}/#{dashboard}", wait_until="domcontentloaded")
        tag_filter = page.locator("input[placeholder*='ilter tags']").first
        tag_filter.wait_for(state="attached", timeout=60_000)
        tag_filter.fill(tag)
    else:
        page.goto(f"{served.url}/#{dashboard}&tagFilter={quote(tag, safe='')}", wait_until="domcontentloaded")
    page.get_by_text(text).first.wait_for(state="visible", timeout=60_000)
    page.wait_for_timeout(1500)  # let the charts draw


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"demo-{name}.png"), full_page=True)


@pytest.mark.parametrize(
    ("dashboard", "text", "drawn"),
    [
        ("timeseries", "val/acc", "canvas, svg path"),
        ("images", "val/predictions", "img[src*='individualImage']"),
        ("histograms", re.compile("watch/weights"), "vz-histogram-timeseries path"),
        ("pr_curves", "val/pr/circle", "tf-pr-curve-card path"),
        ("text", "data/classes", "tf-text-loader"),
    ],
)
def test_each_dashboard_the_demo_feeds_shows_content(
    page: Any, served: Any, dashboard: str, text: Any, drawn: str
) -> None:
    show(page, served, dashboard, text)
    page.locator(drawn).first.wait_for(state="attached", timeout=60_000)
    shot(page, dashboard)
    assert page.locator(drawn).count() > 0


def test_the_graph_dashboard_draws_the_model(page: Any, served: Any) -> None:
    page.goto(f"{served.url}/#graphs", wait_until="domcontentloaded")
    page.locator("tf-graph g.node").first.wait_for(state="attached", timeout=60_000)
    page.wait_for_timeout(1500)
    shot(page, "graphs")
    assert page.locator("tf-graph g.node").count() > 0


def test_hparams_show_every_run_in_the_table_and_as_lines(page: Any, served: Any) -> None:
    show(page, served, "hparams", re.compile("lr-0.03"))
    shot(page, "hparams-table")
    assert page.get_by_text(re.compile("lr-0.01")).count() >= 1
    page.get_by_text(re.compile("parallel coordinates", re.I)).first.click()
    lines = page.locator("tf-hparams-parallel-coords-plot path.line, tf-hparams-parallel-coords-plot g.foreground path")
    lines.first.wait_for(state="attached", timeout=60_000)
    page.wait_for_timeout(1000)
    shot(page, "hparams-parallel")
    assert lines.count() >= 2


def test_the_projector_loads_the_embedding(page: Any, served: Any) -> None:
    page.goto(f"{served.url}/#projector", wait_until="domcontentloaded")
    frame = frame_of(page, "projector_binary")
    frame.get_by_text(re.compile(r"Points:\s*64")).first.wait_for(state="visible", timeout=60_000)
    shot(page, "projector")


def test_the_profile_tab_shows_the_profiled_run(page: Any, served: Any) -> None:
    page.goto(f"{served.url}/#tbscope_profile", wait_until="domcontentloaded")
    frame = frame_of(page, "plugin_entry")
    frame.locator("#step-chart rect.segment").first.wait_for(state="attached", timeout=60_000)
    shot(page, "profile")
    assert frame.get_by_text(re.compile(r"\d+ steps · average [\d.]+ ms")).count() >= 1
