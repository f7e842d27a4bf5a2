"""Chromium opens ``tbscope serve``'s URL and sees the runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tbscope
from conftest import free_port, serve, stop


def test_the_served_page_lists_every_run(tmp_path: Path, page: Any) -> None:
    names = []
    for i in range(2):
        with tbscope.init("cnn", root=tmp_path, name=f"lr{i}", config={"lr": 10.0**-i}) as run:
            run.writer.add_scalar("train/loss", 1.0, 0)
        names.append(run.dir.name)
    served = serve(tmp_path, "--port", str(free_port()))
    try:
        page.goto(served.url, wait_until="domcontentloaded")
        for name in names:
            page.get_by_text(name).first.wait_for(state="visible", timeout=60_000)
        page.screenshot(path=str(tmp_path / "serve.png"))
        assert all(page.get_by_text(name).count() >= 1 for name in names)
    finally:
        stop(served)
