"""The demo's report in Chromium with every network request blocked: no console error, every chart drawn,
hover shows values, pictures enlarge, light and dark; screenshots in screenshots/issue24 to be looked at."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tbscope import report
from tbscope.demo.train import DemoConfig, run_sweep

SHOTS = Path(os.environ.get("TBSCOPE_SCREENSHOTS", Path(__file__).resolve().parents[2] / "screenshots")) / "issue24"


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    run_sweep(root, DemoConfig(epochs=2, train_images=256, val_images=64, batch_size=32), lrs=(0.1, 0.3), seeds=(0, 1))
    out = root / "report.html"
    report.build(root, out, progress=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return out


def opened(browser: Any, path: Path, scheme: str) -> tuple[Any, list[str], list[str]]:
    """The report in a fresh page: every request but the file itself refused, console errors kept."""
    context = browser.new_context(viewport={"width": 1300, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    errors: list[str] = []
    refused: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))

    def route(request_route: Any) -> None:
        if request_route.request.url == path.as_uri():
            request_route.continue_()
        else:
            refused.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready=true]")
    return page, errors, refused


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_demo_report_works_offline_in_chromium(browser: Any, demo_report: Path, scheme: str) -> None:
    page, errors, refused = opened(browser, demo_report, scheme)
    assert page.evaluate("document.documentElement.classList.contains('dark')") == (scheme == "dark")
    charts = page.locator("#curves .chart")
    assert charts.count() >= 3
    for i in range(charts.count()):
        drawn = charts.nth(i).locator("polyline.line, circle.line").count()
        assert drawn > 0, f"curve chart {charts.nth(i).get_attribute('data-tag')} draws nothing"
    assert page.locator("#curves polygon.band").count() > 0  # the groups' bands: a learning rate's two seeds
    chart = page.locator("#curves .chart svg").first
    box = chart.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    tip = page.locator("#curves .tip").first
    tip.wait_for(state="visible")
    assert "@" in tip.inner_text() and any(ch.isdigit() for ch in tip.inner_text())
    page.screenshot(path=str(SHOTS / f"report-{scheme}.png"), full_page=True)
    thumbnail = page.locator("#pictures figure img").first
    small = thumbnail.bounding_box()
    thumbnail.click()
    enlarged = page.locator(".overlay img")
    enlarged.wait_for(state="visible")
    big = enlarged.bounding_box()
    assert big["width"] > small["width"] and page.evaluate("document.querySelector('.overlay img').naturalWidth") > 0
    page.screenshot(path=str(SHOTS / f"report-{scheme}-enlarged.png"))
    page.locator(".overlay").click()
    assert page.locator("#profiles h3").count() >= 1 and page.locator("#profiles .bar span").count() >= 1
    assert page.locator("#pr .chart").count() >= 1
    assert errors == [] and refused == []
    page.context.close()
