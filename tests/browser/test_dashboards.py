"""Chromium on a real TensorBoard finds the media helpers' output in the Images, Histograms, PR Curves and
Projector dashboards, drawn, not blank."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tbscope
from conftest import frame_of, free_port, serve, stop
from tbscope.demo.data import CLASS_NAMES, make_shapes


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("runs")
    data = make_shapes(64, size=32)
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(len(CLASS_NAMES)), 64)
    with tbscope.init("media", root=root) as run:
        w = run.writer
        w.add_image_grid("val/grid", data.images, 0, captions=[CLASS_NAMES[c] for c in data.labels])
        w.add_histogram("weights/fc", torch.randn(10_000), 0)
        w.add_histogram("weights/fc", torch.randn(10_000) + 1, 100)
        w.add_pr_curves("val/pr", data.labels, probabilities, 0, class_names=list(CLASS_NAMES))
        w.add_embedding(torch.from_numpy(probabilities), metadata=[CLASS_NAMES[c] for c in data.labels],
                        label_img=torch.from_numpy(data.images), tag="val/probabilities")  # fmt: skip
    served = serve(root, "--port", str(free_port()))
    yield served
    stop(served)


def open_dashboard(page: Any, served: Any, name: str, text: str | re.Pattern[str], tmp_path: Path) -> None:
    page.goto(f"{served.url}/#{name}", wait_until="domcontentloaded")
    page.get_by_text(text).first.wait_for(state="visible", timeout=60_000)
    page.wait_for_timeout(1500)  # let the charts draw
    page.screenshot(path=str(tmp_path / f"{name}.png"))


def test_images_dashboard_shows_the_grid(page: Any, served: Any, tmp_path: Path) -> None:
    open_dashboard(page, served, "images", "val/grid", tmp_path)
    image = page.locator("img[src*='individualImage']").first
    image.wait_for(state="visible", timeout=60_000)
    assert image.evaluate("i => i.complete && i.naturalWidth") > 100  # the grid, decoded by the browser


def test_histograms_dashboard_draws_the_distribution(page: Any, served: Any, tmp_path: Path) -> None:
    open_dashboard(page, served, "histograms", "weights/fc", tmp_path)
    assert page.locator("vz-histogram-timeseries path").count() > 0


def test_pr_curves_dashboard_draws_a_curve_per_class(page: Any, served: Any, tmp_path: Path) -> None:
    open_dashboard(page, served, "pr_curves", "val/pr/circle", tmp_path)
    assert page.get_by_text("val/pr/diamond").count() >= 1
    assert page.locator("tf-pr-curve-card path").count() >= len(CLASS_NAMES)


def test_projector_loads_the_embedding_with_its_points(page: Any, served: Any, tmp_path: Path) -> None:
    page.goto(f"{served.url}/#projector", wait_until="domcontentloaded")
    # The Projector lives in nested frames: plugin_entry.html, then projector_binary.html.
    frame = frame_of(page, "projector_binary")
    frame.get_by_text(re.compile(r"Points:\s*64")).first.wait_for(state="visible", timeout=60_000)
    page.screenshot(path=str(tmp_path / "projector.png"))
    assert frame.get_by_text("val/probabilities").count() >= 1
    assert frame.locator("vz-projector canvas").count() > 0
