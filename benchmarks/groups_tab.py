"""The Groups tab with 200 runs: how long its ``/summary`` route takes to answer, and Chromium to draw the tab.

The data (written once, then kept): 200 tbscope runs (50 configs x 4 seeds) x 4 tags (two headline
metrics, ``val/acc`` and ``val/loss``, and two others) x 2,000 steps, 1.6 million scalars. The stock
``tensorboard --logdir`` command serves them (the tab found through tbscope's entry point), with an empty
tbscope cache:

- ``/summary`` cold: the first request of a fresh TensorBoard with an empty cache (every event file read,
  grouped, aggregated); warm: the same request again (kept while no run changed, what the open tab's
  refresh costs); and the first request of a second fresh TensorBoard that finds the cache the first left
  (a restarted server);
- Chromium: from ``page.goto`` of ``/#tbscope_groups`` to the tab drawn (a band per group in each metric's
  chart and the finals tables), on a fresh TensorBoard with an empty cache (cold) and on the warm one.

Usage: python benchmarks/groups_tab.py [--data DIR]   (needs Chromium at /usr/bin/chromium and Playwright)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONFIGS, SEEDS, STEPS = 50, 4, 2_000
TAGS = ("val/acc", "val/loss", "train/loss", "train/lr")
DEFAULT_DATA = Path(tempfile.gettempdir()) / "tbscope-bench-groups-tab"
TENSORBOARD = str(Path(sys.executable).with_name("tensorboard"))


def write_data(root: Path) -> Path:
    logdir = root / f"runs-{CONFIGS}x{SEEDS}x{len(TAGS)}x{STEPS}"
    if (logdir / "complete").exists():
        return logdir
    shutil.rmtree(logdir, ignore_errors=True)
    import numpy as np

    import tbscope

    runs = CONFIGS * SEEDS
    print(f"writing {runs * len(TAGS) * STEPS:,} scalars in {runs} runs (once) ...", file=sys.stderr)
    for c in range(CONFIGS):
        lr, width = round(10 ** (-1 - (c % 10) / 4), 6), 16 * (1 + c // 10)
        for seed in range(SEEDS):
            noise = np.random.default_rng(seed).normal(0, 0.01, (STEPS, 2))
            with tbscope.init("sweep", root=logdir, config={"lr": lr, "width": width, "seed": seed}) as run:
                for step in range(STEPS):
                    acc = 1 - math.exp(-lr * step / 10) * (1 - width / 200) + float(noise[step, 0])
                    loss = math.exp(-lr * step / 10) + float(noise[step, 1])
                    for tag, value in zip(TAGS, (acc, loss, loss * 1.1, lr), strict=True):
                        run.writer.add_scalar(tag, value, step)
    (logdir / "complete").touch()
    return logdir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def tensorboard(logdir: Path, cache: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "TBSCOPE_CACHE_DIR": str(cache)}
    argv = [TENSORBOARD, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/data/plugins_listing", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def summary_seconds(url: str) -> tuple[float, dict]:
    start = time.perf_counter()
    with urllib.request.urlopen(f"{url}/data/plugin/tbscope_groups/summary", timeout=600) as response:
        data = json.loads(response.read())
    return time.perf_counter() - start, data


def drawn_seconds(browser, url: str, groups: int, metrics: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """From navigation to the tab drawn (each headline metric's chart with a band per group, and the tables),
    and of that, the seconds since the tab's own frame began loading."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        start = time.perf_counter()
        page.goto(f"{url}/#tbscope_groups", wait_until="commit")
        frame = None
        while frame is None:
            frame = next((f for f in page.frames if "plugin_entry" in f.url), None)
            if frame is None:
                page.wait_for_timeout(20)
        frame.wait_for_function(
            f"document.querySelectorAll('polygon.band').length >= {groups * metrics}"
            f" && document.querySelectorAll('table.finals').length >= {metrics}",
            timeout=600_000,
            polling=20,
        )
        return time.perf_counter() - start, frame.evaluate("performance.now()") / 1000
    finally:
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    logdir = write_data(args.data)
    from playwright.sync_api import sync_playwright

    caches = Path(tempfile.mkdtemp(prefix="tbscope-bench-tab-cache-"))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
            with tensorboard(logdir, caches / "a") as url:
                cold, data = summary_seconds(url)
                size = len(json.dumps(data)) / 1e6
                warm, _ = summary_seconds(url)
                groups, metrics = len(data["groups"]), len(data["metrics"])
                tab_warm = drawn_seconds(browser, url, groups, metrics)
            with tensorboard(logdir, caches / "a") as url:
                restarted, _ = summary_seconds(url)
            with tensorboard(logdir, caches / "b") as url:
                tab_cold = drawn_seconds(browser, url, groups, metrics)
            browser.close()
    finally:
        shutil.rmtree(caches, ignore_errors=True)
    runs = CONFIGS * SEEDS
    print(f"{runs} runs x {len(TAGS)} tags x {STEPS:,} steps, {groups} groups of {SEEDS}, {metrics} headline metrics")
    print(f"  /summary, fresh server, empty cache   {cold:7.2f} s  ({size:.1f} MB of JSON)")
    print(f"  /summary, again (kept)                {warm:7.3f} s  (the open tab's refresh; target: 0.5 s)")
    print(f"  /summary, restarted server, cache     {restarted:7.2f} s")
    print(f"  Chromium, load to tab drawn, cold     {tab_cold[0]:7.2f} s  (fresh server, empty cache; "
          f"{tab_cold[1]:.2f} s of it in the tab's frame)")  # fmt: skip
    print(f"  Chromium, load to tab drawn, warm     {tab_warm[0]:7.2f} s  (summary kept; "
          f"{tab_warm[1]:.2f} s of it in the tab's frame)")  # fmt: skip


if __name__ == "__main__":
    main()
