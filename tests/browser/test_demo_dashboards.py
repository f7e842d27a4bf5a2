"""The demo, shortened, and a run of another experiment with other config keys, served by a real TensorBoard:
the run selector lists exactly the runs started, every dashboard the demo feeds shows content on first open,
Time Series opens on the train/ and val/ cards, the HParams dashboard shows every run with only headline
metrics and a line per run, and Custom Scalars a chart per quantity of the watched model."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import tbscope
from conftest import frame_of, free_port, serve, stop
from tbscope.demo.train import DemoConfig, run_sweep

# Where the screenshots go, to be looked at: an ignored folder of the checkout, or $TBSCOPE_SCREENSHOTS.
SHOTS = Path(os.environ.get("TBSCOPE_SCREENSHOTS", Path(__file__).resolve().parents[2] / "screenshots")) / "demo"
# A run of another experiment: some of the demo's keys, keys of its own, the same headline metrics.
OTHER = {
    "max_lr": 0.02,
    "epochs": 2,
    "batch_size": 32,
    "momentum": 0.9,
    "width": 16,
    "optimizer": "adam",
    "augment": True,
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("demo")
    run_sweep(root, DemoConfig(epochs=2, train_images=256, val_images=64, batch_size=32), lrs=(0.1, 0.3), seeds=(0,))
    with tbscope.init("shapes-resnet", root=root, name="adam", config=OTHER, metrics=["val/acc", "val/loss"]) as run:
        for step in range(8):
            run.writer.add_scalar("train/loss", 1 / (step + 1), step)
        run.writer.add_scalar("val/acc", 0.7, 8)
        run.writer.add_scalar("val/loss", 0.8, 8)
    served = serve(root, "--port", str(free_port()))
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield served
    stop(served)


# The runs started: the demo's two, and the other experiment's. TensorBoard lists these and no other.
RUNS = ("shapes-cnn/0001-max_lr-0.1_seed-0", "shapes-cnn/0002-max_lr-0.3_seed-0", "shapes-resnet/0001-adam")


def test_the_run_selector_lists_exactly_the_runs_started(page: Any, served: Any) -> None:
    page.goto(f"{served.url}/#timeseries", wait_until="domcontentloaded")
    cells = page.locator("runs-selector tb-data-table-content-cell.table-column-run")
    page.get_by_text(RUNS[0], exact=True).first.wait_for(state="visible", timeout=60_000)
    page.wait_for_timeout(1000)
    shot(page, "run-selector")
    listed = ["".join(text.split()) for text in cells.all_inner_texts()]
    assert sorted(listed) == sorted(RUNS)


@pytest.mark.parametrize(
    ("dashboard", "drawn"),
    [
        ("scalars", "tf-scalar-card svg path, tf-scalar-card canvas"),
        ("images", "img[src*='individualImage']"),
        ("histograms", "vz-histogram-timeseries path"),
        ("distributions", "vz-line-chart2 svg path, tf-distribution-loader svg path, tf-distribution-loader canvas"),
        ("text", "tf-text-loader .text, tf-text-loader tf-markdown-view"),
        ("pr_curves", "tf-pr-curve-card svg path, tf-pr-curve-card canvas"),
    ],
)
def test_each_dashboard_shows_content_on_first_open_without_selecting_runs(
    page: Any, served: Any, dashboard: str, drawn: str
) -> None:
    page.goto(f"{served.url}/#{dashboard}", wait_until="domcontentloaded")
    page.locator(drawn).first.wait_for(state="attached", timeout=90_000)
    page.wait_for_timeout(1500)
    shot(page, f"first-open-{dashboard}")
    assert page.locator(drawn).count() > 0


def test_time_series_first_screen_shows_the_train_and_val_cards(page: Any, served: Any) -> None:
    page.set_viewport_size({"width": 1920, "height": 1080})  # a common desktop screen
    page.goto(f"{served.url}/#timeseries", wait_until="domcontentloaded")
    page.locator("scalar-card").first.wait_for(state="visible", timeout=60_000)
    page.wait_for_timeout(3000)
    page.screenshot(path=str(SHOTS / "demo-timeseries-first-screen.png"))  # the first screen, as it opens
    # TensorBoard sorts the groups by name and opens the first two: the user's, tbscope's own (watch/) after
    assert page.locator("span.group-title").all_inner_texts() == ["Pinned", "train", "val", "watch"]
    on_screen = set()
    for card in page.locator("card-view").all():
        box = card.bounding_box()
        if box is not None and box["height"] > 0 and box["y"] + 100 < 1080:  # its title and a chart's top shown
            on_screen.add("".join(card.inner_text().split("Alt + Scroll")[0].split()))
    assert {"train/loss", "train/acc", "train/lr", "val/acc"} <= on_screen, on_screen


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
        ("text", "val/classes", "tf-text-loader"),
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


def open_hparams(page: Any, served: Any, view: str) -> Any:
    """The HParams dashboard's ``view`` ("table", "parallel coordinates" or "scatter plot matrix")."""
    page.goto(f"{served.url}/#hparams", wait_until="domcontentloaded")
    page.get_by_text(re.compile("0001-adam")).first.wait_for(state="attached", timeout=60_000)
    if view != "table":
        page.get_by_text(re.compile(view, re.I)).first.click()
    page.wait_for_timeout(1500)
    return page


def test_hparams_table_shows_every_run_and_only_headline_metrics(page: Any, served: Any) -> None:
    open_hparams(page, served, "table")
    shot(page, "hparams-table")
    pane = page.locator("tf-hparams-query-pane")
    for key in ("optimizer", "augment", "max_seconds", "max_lr"):  # the union of the runs' keys
        assert pane.get_by_text(key, exact=True).count() >= 1
    for metric in ("val/acc", "val/loss"):
        assert pane.get_by_text(metric, exact=True).count() >= 1
    assert pane.get_by_text(re.compile(r"^(train|watch|profile)/")).count() == 0  # no other scalar is a column
    for run in RUNS:
        assert page.get_by_text(run, exact=True).count() >= 1  # each run, by its name


def test_hparams_parallel_coordinates_draw_a_line_per_run(page: Any, served: Any) -> None:
    open_hparams(page, served, "parallel coordinates")
    lines = page.locator("tf-hparams-parallel-coords-plot g.foreground path")
    lines.first.wait_for(state="attached", timeout=60_000)
    page.wait_for_timeout(1000)
    shot(page, "hparams-parallel")
    assert lines.count() == 3


def test_hparams_scatter_matrix_plots_every_run(page: Any, served: Any) -> None:
    open_hparams(page, served, "scatter plot matrix")
    points = page.locator("tf-hparams-scatter-plot-matrix-plot circle")
    points.first.wait_for(state="attached", timeout=60_000)
    page.wait_for_timeout(1000)
    shot(page, "hparams-scatter")
    cells = page.locator("tf-hparams-scatter-plot-matrix-plot g.cell").count()
    assert cells > 0 and points.count() == 3 * cells  # a point a run in every cell


def test_custom_scalars_draw_a_chart_per_quantity_of_the_watched_model_with_a_line_per_layer(
    page: Any, served: Any
) -> None:
    page.goto(f"{served.url}/#custom_scalars", wait_until="domcontentloaded")
    page.get_by_text("grad_norm", exact=True).first.wait_for(state="visible", timeout=60_000)
    page.wait_for_timeout(2000)
    shot(page, "custom-scalars-watch")
    for quantity in ("weight_norm", "grad_norm", "update_ratio"):
        assert page.get_by_text(quantity, exact=True).count() == 1  # a chart a quantity, not one a layer
    # a line a layer of each demo run: 14 parameters (3 blocks of conv and batch norm, the head), 2 runs
    assert page.get_by_text("Matches (28)", exact=True).count() == 3


def test_the_detection_and_mask_pictures_show(page: Any, served: Any) -> None:
    for tag in ("val/detection", "val/masks", "val/mistakes", "val/confusion"):
        show(page, served, "images", tag)
        image = page.locator("img[src*='individualImage']").first
        image.wait_for(state="visible", timeout=60_000)
        assert image.evaluate("i => i.complete && i.naturalWidth") >= 256  # a small image, enlarged
        shot(page, f"images-{tag.replace('/', '-')}")


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
