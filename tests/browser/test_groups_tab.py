"""The Groups tab in Chromium, under the plain `tensorboard --logdir` command (the tab found through the
package's entry point): one band per learning rate with the seeds together, the leader and its p-value in
the page, regrouping by another key, dark mode, and nothing asked of any other origin."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tbscope
from conftest import frame_of, free_port, wait_until

SHOTS = Path(__file__).resolve().parents[2] / "screenshots" / "issue23"
# The stock `tensorboard` command of this environment: it finds the Groups tab through the package's
# `tensorboard_plugins` entry point (pyproject.toml), as a user's plain `tensorboard --logdir` does.
TENSORBOARD = str(Path(sys.executable).with_name("tensorboard"))


def tensorboard(logdir: Path, port: int) -> subprocess.Popen[bytes]:
    from importlib import metadata

    declared = [e.name for e in metadata.entry_points(group="tensorboard_plugins")]
    assert "tbscope_groups" in declared, f"the installed tbscope predates the Groups tab: pip install -e . ({declared})"
    argv = [TENSORBOARD, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"]
    return subprocess.Popen(argv, stderr=subprocess.DEVNULL)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.loads(response.read())


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).read()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("runs")
    for lr in (0.01, 0.001):
        for seed in (0, 1, 2):
            with tbscope.init("sweep", root=root, config={"lr": lr, "seed": seed}) as run:
                for step in range(0, 300, 5):
                    # lr=0.01 learns faster; each seed shifts the curve a little, the same way every time.
                    rate = 0.02 if lr == 0.01 else 0.008
                    acc = 0.9 * (1 - math.exp(-rate * step)) + 0.01 * seed
                    run.writer.add_scalar("train/loss", 2.0 * math.exp(-rate * step) + 0.02 * seed, step)
                    run.writer.add_scalar("val/acc", acc, step)
    port = free_port()
    proc = tensorboard(root, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is None and _answers(f"{url}/data/runs"), what="tensorboard to start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_groups_entry_point_is_declared() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    target = pyproject["project"]["entry-points"]["tensorboard_plugins"]["tbscope_groups"]
    module, name = target.split(":")
    plugin = getattr(__import__(module, fromlist=[name]), name)
    assert plugin.plugin_name == "tbscope_groups"


def test_one_band_per_learning_rate_the_leader_named_and_regrouped_by_seed(sweep: str, page: Any) -> None:
    listing = get_json(f"{sweep}/data/plugins_listing")["tbscope_groups"]
    assert listing["enabled"] and listing["tab_name"] == "Groups"
    summary = get_json(f"{sweep}/data/plugin/tbscope_groups/summary")
    assert sorted(g["label"] for g in summary["groups"]) == ["lr=0.001", "lr=0.01"]
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{sweep}/#tbscope_groups", wait_until="domcontentloaded")
    frame = frame_of(page, "plugin_entry")
    card = frame.locator(".card[data-tag='val/acc']")
    card.wait_for(state="visible", timeout=60_000)
    bands = card.locator("polygon.band")
    assert sorted(bands.nth(i).get_attribute("data-group") for i in range(bands.count())) == ["lr=0.001", "lr=0.01"]
    lead = frame.locator(".lead").first.inner_text()
    assert lead.startswith("lr=0.01 leads val/acc") and "p=" in lead, lead
    assert lead == summary["finals"]["val/acc"]["lead"]["sentence"]
    rows = frame.locator("table.finals[data-tag='val/acc'] tr").all_inner_texts()
    assert any(r.startswith("lr=0.01\t3") for r in rows), rows
    card.locator("svg").hover(position={"x": 300, "y": 100})
    tip = card.locator(".tip")
    assert "lr=0.001:" in tip.inner_text() and "n=3" in tip.inner_text()
    page.screenshot(path=str(SHOTS / "groups-light.png"))

    frame.locator("#group-by").select_option("seed")
    frame.locator(".card[data-tag='val/acc'] polygon.band[data-group='seed=2']").wait_for(timeout=60_000)
    regrouped = frame.locator(".card[data-tag='val/acc'] polygon.band")
    assert regrouped.count() == 3

    page.evaluate("document.body.classList.add('dark-mode')")
    frame.wait_for_function("document.documentElement.classList.contains('dark')", timeout=10_000)
    background = frame.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(48, 48, 48)"
    page.screenshot(path=str(SHOTS / "groups-dark.png"))
    assert requests and all(url.startswith(sweep) for url in requests), [u for u in requests if not u.startswith(sweep)]
    assert not errors, errors


def test_a_logdir_without_runs_says_what_to_do(tmp_path: Path, page: Any) -> None:
    port = free_port()
    proc = tensorboard(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{url}/data/runs"), what="tensorboard to start")
        page.goto(f"{url}/#tbscope_groups", wait_until="domcontentloaded")
        empty = frame_of(page, "plugin_entry").locator(".empty")
        empty.wait_for(timeout=60_000)
        assert "tbscope.init" in empty.inner_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_against_many_groups_the_lead_is_one_line_that_unfolds_to_every_test(tmp_path: Path, page: Any) -> None:
    for lr in (0.1, 0.05, 0.02, 0.01, 0.005):
        for seed in (0, 1):
            with tbscope.init("sweep", root=tmp_path, config={"lr": lr, "seed": seed}) as run:
                for step in range(0, 50, 5):
                    run.writer.add_scalar("val/acc", 1 - math.exp(-lr * step) + 0.001 * seed, step)
    port = free_port()
    proc = tensorboard(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is None and _answers(f"{url}/data/runs"), what="tensorboard to start")
        lead = get_json(f"{url}/data/plugin/tbscope_groups/summary")["finals"]["val/acc"]["lead"]
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{url}/#tbscope_groups", wait_until="domcontentloaded")
        folded = frame_of(page, "plugin_entry").locator("details.lead")
        folded.wait_for(timeout=60_000)
        significant = sum(c["significant"] for c in lead["comparisons"])
        line = folded.locator("summary").inner_text()
        assert line == f"lr=0.1 leads val/acc: significantly (Welch's t-test) over {significant} of the 4 other groups"
        assert not folded.locator("div").is_visible()
        folded.locator("summary").click()
        assert folded.locator("div").inner_text() == lead["sentence"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
