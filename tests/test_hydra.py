"""A real Hydra app, run as a multirun sweep, logging with tbscope."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import hparams_table

APP = """
import os
import hydra
import tbscope

@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg):
    with tbscope.init("sweep", root=os.environ["RUNS"], config=cfg) as run:
        run.writer.add_scalar("val/acc", cfg.lr * cfg.model.width, 1)

main()
"""


def run_app(folder: Path, root: Path, *arguments: str) -> None:
    """Run the Hydra app in ``folder`` with ``arguments``, its runs going to ``root``."""
    result = subprocess.run(
        [sys.executable, "app.py", *arguments],
        cwd=folder,
        env={**os.environ, "RUNS": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def test_a_multirun_sweep_is_one_experiment_of_readable_runs_compared_side_by_side(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("lr: 0.1\nmodel:\n  width: 8\n  norm: batch\n")
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    root = tmp_path / "runs"
    run_app(tmp_path, root, "-m", "lr=0.1,0.01", "model.width=8,16", f"hydra.sweep.dir={tmp_path / 'multirun'}")
    runs = sorted((root / "sweep").iterdir())
    assert sorted(p.name.split("-", 1)[1] for p in runs) == [
        "lr-0.01_model.width-16", "lr-0.01_model.width-8", "lr-0.1_model.width-16", "lr-0.1_model.width-8",
    ]  # fmt: skip
    for run in runs:
        meta = json.loads((run / "run.json").read_text())
        assert meta["status"] == "finished"
        assert Path(meta["hydra"]["output_dir"]).is_dir() and meta["hydra"]["mode"] == "MULTIRUN"
        assert meta["config"]["model"]["norm"] == "batch"
    rows = sorted(
        (row["hparams"]["lr"], row["hparams"]["model/width"], row["metrics"]["val/acc"])
        for name, row in hparams_table(root).items()
        if name
    )
    assert [(lr, width) for lr, width, _ in rows] == [(0.01, 8.0), (0.01, 16.0), (0.1, 8.0), (0.1, 16.0)]
    assert [acc for _, _, acc in rows] == pytest.approx([0.08, 0.16, 0.8, 1.6])
    compare = subprocess.run(
        [str(Path(sys.executable).with_name("tbscope")), "compare", str(root), "--sort", "val/acc", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compare.returncode == 0, compare.stderr
    assert len(json.loads(compare.stdout)) == 4


def test_a_single_run_of_the_app_is_a_run_named_by_its_overrides(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("lr: 0.1\nmodel:\n  width: 8\n")
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    root = tmp_path / "runs"
    run_app(tmp_path, root, "lr=0.5", f"hydra.run.dir={tmp_path / 'outputs'}")
    (run,) = (root / "sweep").iterdir()
    meta = json.loads((run / "run.json").read_text())
    assert run.name.endswith("-lr-0.5") and meta["status"] == "finished"
    assert meta["hydra"]["mode"] == "RUN" and meta["hydra"]["job"] is None and meta["config"]["lr"] == 0.5
