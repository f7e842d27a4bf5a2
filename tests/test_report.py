"""``tbscope report``: one HTML file holding what it shows, read back as a reader's browser would get it
(the data embedded in the page); the page itself is driven in Chromium by tests/browser/test_report_page.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tbscope
from tbscope import report

TBSCOPE = str(Path(sys.executable).with_name("tbscope"))

APP = """
import os
import shutil
import hydra
import tbscope

@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg):
    with tbscope.init("sweep", root=os.environ["RUNS"], config=cfg) as run:
        for step in range(0, 100, 10):
            loss = 1 / (1 + step * cfg.lr) + cfg.seed / 1000
            run.writer.add_scalar("train/loss", loss, step)
        run.writer.add_scalar("val/acc", (0.9 if cfg.lr == 0.1 else 0.8) + cfg.seed / 1000, 100)

main()
"""


def embedded(page: str) -> dict[str, Any]:
    """The data a report carries, as its script reads it."""
    match = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, flags=re.DOTALL)
    assert match, "the report embeds no data"
    return json.loads(match.group(1).replace("<\\/", "</"))


def test_a_hydra_sweep_report_holds_both_groups_bands_and_the_significance_line(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("lr: 0.1\nseed: 0\n")
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    root = tmp_path / "runs"
    swept = subprocess.run(
        [sys.executable, "app.py", "-m", "lr=0.1,0.01", "seed=1,2,3", f"hydra.sweep.dir={tmp_path / 'multirun'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "RUNS": str(root)},
    )  # fmt: skip
    assert swept.returncode == 0, swept.stderr
    out = tmp_path / "report.html"
    made = subprocess.run([TBSCOPE, "report", str(root), "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert f"Wrote {out}" in made.stdout and "tbscope report: reading the scalars of 6 run(s)" in made.stderr
    page = out.read_text()
    assert not re.search(r"""(src|href)=["']https?:""", page) and "@import" not in page
    data = embedded(page)
    assert [(g["label"], g["n"]) for g in data["groups"]] == [("lr=0.1", 3), ("lr=0.01", 3)]
    bands = data["curves"]["groups"]["train/loss"]
    for label in ("lr=0.1", "lr=0.01"):
        low, high = (np.array(bands[label][k].split(","), dtype=float) for k in ("ci_low", "ci_high"))
        mean = np.array(bands[label]["mean"].split(","), dtype=float)
        assert len(mean) == 10 and np.all(low < mean) and np.all(mean < high)
        assert set(bands[label]["n"].split(",")) == {"3"}
    lead = data["finals"]["val/acc"]["lead"]
    assert lead["leader"] == "lr=0.1" and lead["comparisons"][0]["significant"]
    assert lead["sentence"].startswith("lr=0.1 leads val/acc (higher is better): 0.902 vs 0.802 for lr=0.01")
    assert data["made"]["command"].startswith("tbscope report ") and data["made"]["tbscope"]


def test_a_logdir_of_torchs_writer_shows_curves_and_images(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        with SummaryWriter(tmp_path / "logs" / name) as w:
            for step in range(20):
                w.add_scalar("val/acc", step / 20, step)
            w.add_image("val/predictions", rng.random((3, 24, 32)), 19)
            w.add_pr_curve("val/pr", rng.integers(0, 2, 50), rng.random(50), 19)
    made = report.build(tmp_path / "logs", tmp_path / "r.html", progress=False)
    data = embedded((tmp_path / "r.html").read_text())
    assert made.runs == 2 and sorted(data["curves"]["runs"]["val/acc"]) == ["a", "b"]
    (pictures,) = data["images"]
    assert pictures["tag"] == "val/predictions" and [i["run"] for i in pictures["items"]] == ["a", "b"]
    assert all(i["src"].startswith("data:image/png;base64,") and (i["width"], i["height"]) == (32, 24)
               for i in pictures["items"])  # fmt: skip
    (pr,) = data["pr_curves"]
    assert sorted(pr["runs"]) == ["a", "b"] and len(pr["runs"]["a"]["precision"].split(",")) == 127


def test_the_size_budget_shrinks_then_leaves_out_pictures_and_says_so(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with tbscope.Writer(tmp_path / "logs" / "noisy") as w:
        for i in range(6):
            w.add_image(f"noise/{i}", rng.random((3, 512, 512)), 0)  # incompressible: ~1 MB each as PNG
        w.add_scalar("val/acc", 0.5, 0)
    made = report.build(tmp_path / "logs", tmp_path / "r.html", max_bytes=1_500_000, progress=False)
    assert made.bytes <= 1_500_000
    data = embedded((tmp_path / "r.html").read_text())
    shown = [item for group in data["images"] for item in group["items"]]
    assert shown and all(max(i["width"], i["height"]) < 512 for i in shown)
    assert any("downscaled or re-encoded" in note for note in made.left_out) and data["left_out"] == made.left_out


H200 = Path(__file__).resolve().parents[2] / "shared" / "traces" / "gpu" / "h200_eager_cnn_steps2-4.pt.trace.json.gz"


@pytest.mark.skipif(not H200.exists(), reason=f"the shared traces are not at {H200.parent}")
def test_a_run_with_a_gpu_profile_shows_its_breakdown_kernels_advice_and_gpu(tmp_path: Path) -> None:
    with tbscope.init("cnn", root=tmp_path / "runs", config={"lr": 0.1}) as run:
        run.writer.add_scalar("val/acc", 0.5, 0)
    (run.dir / "profile").mkdir()
    shutil.copy(H200, run.dir / "profile" / H200.name)
    report.build(tmp_path / "runs", tmp_path / "r.html", progress=False)
    data = embedded((tmp_path / "r.html").read_text())
    assert data["header"]["gpus"] == ["NVIDIA H200"]
    (profile,) = data["profiles"]
    assert profile["run"] == f"cnn/{run.dir.name}" and profile["steps"] == 3
    assert profile["mean_step_ms"] == pytest.approx(16.8, abs=0.1)  # issue 21's first-step rule
    assert sum(profile["breakdown"].values()) == pytest.approx(1.0) and profile["gpu_utilization"] > 0.5
    assert len(profile["kernels"]) == 10 and profile["kernels"][0]["total_us"] > 0
    assert any("channels_last" in advice for advice in profile["advice"])
