"""The command line and the demo, run the way a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import accumulate
from tbscope.demo.data import CLASS_NAMES, make_shapes
from tbscope.demo.train import DemoConfig, run_demo


def tbscope(*args: str) -> subprocess.CompletedProcess[str]:
    # The console script that pip installed beside this interpreter, as a user runs it.
    command = Path(sys.executable).with_name("tbscope")
    return subprocess.run([str(command), *args], capture_output=True, text=True, timeout=600)


def test_help_and_version() -> None:
    result = tbscope("--help")
    assert result.returncode == 0 and "demo" in result.stdout
    version = tbscope("--version")
    assert version.returncode == 0 and version.stdout.startswith("tbscope ")


def test_the_light_modules_never_import_torch() -> None:
    # `tbscope --help`, the event-file layer and the summaries must start without paying for torch.
    code = (
        "import sys, tbscope, tbscope.cli, tbscope.record, tbscope.pipeline, tbscope.snapshot\n"
        "import tbscope.summaries.image, tbscope.summaries.graph, tbscope.summaries.figure\n"
        "tbscope.cli.build_parser()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_shapes_have_boxes_that_bound_their_masks() -> None:
    data = make_shapes(12, size=32, seed=3)
    assert set(data.labels.tolist()) <= set(range(len(CLASS_NAMES)))
    for box, mask in zip(data.boxes, data.masks, strict=True):
        ys, xs = mask.nonzero()
        assert tuple(box) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)  # edges around the pixels
    assert data.images.min() >= 0 and data.images.max() <= 1


def test_demo_logs_every_dashboard_kind(tmp_path: Path) -> None:
    config = DemoConfig(epochs=2, train_images=256, val_images=64, batch_size=32)
    log_dir = run_demo(tmp_path, config)
    assert log_dir.parent == tmp_path / "shapes-cnn"
    acc = accumulate(log_dir)
    tags = acc.Tags()
    assert {"train/loss", "train/acc", "train/lr", "val/loss", "val/acc"} <= set(tags["scalars"])
    assert len(acc.Scalars("train/loss")) == 2 * 256 // 32
    assert {"val/predictions", "val/detection", "val/confusion", "val/masks", "val/mistakes"} <= set(tags["images"])
    assert any(t.startswith("watch/weights/") for t in tags["histograms"])
    assert acc.Scalars("watch/grad_norm/features.block1.conv.weight")  # in the run: a tag a quantity and layer
    assert not (log_dir / "watch").exists()
    assert tags["graph"]
    assert "_hparams_/session_start_info" in tags["tensors"] and "val/pr/circle" in tags["tensors"]
    assert (log_dir / "projector_config.pbtxt").exists()
    assert "val/classes" in tags["tensors"]  # text


def test_demo_command_sweeps_shows_progress_the_runs_and_how_to_open_tensorboard(tmp_path: Path) -> None:
    result = tbscope("demo", "--root", str(tmp_path), "--epochs", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum("epoch 2/2" in line for line in lines) == 6  # progress of each run: 3 learning rates x 2 seeds
    assert f"$ tbscope ls {tmp_path}" in lines and f"$ tbscope compare {tmp_path} --sort val/acc --desc" in lines
    assert f"    tbscope serve {tmp_path}" in lines
    runs = sorted((tmp_path / "shapes-cnn").iterdir())
    assert [run.name for run in runs] == [  # in start order
        "0001-max_lr-0.03_seed-0", "0002-max_lr-0.03_seed-1", "0003-max_lr-0.1_seed-0", "0004-max_lr-0.1_seed-1",
        "0005-max_lr-0.3_seed-0", "0006-max_lr-0.3_seed-1",
    ]  # fmt: skip
    assert all(len(accumulate(run).Scalars("val/acc")) == 2 for run in runs)  # every epoch validated
    profiled = [run.name for run in runs if list((run / "profile").glob("*.pt.trace.json.gz"))]
    assert profiled == [runs[0].name, runs[2].name, runs[4].name]  # each learning rate's first seed
    groups = [line for line in lines if line.startswith("max_lr=") and " leads " not in line]
    assert len(groups) == 3 and all(line.split()[1] == "2" for line in groups)  # compare: a group of 2 per rate
    assert any(" leads val/acc (higher is better): " in line for line in lines)
    assert f"    tbscope report {tmp_path} -o report.html" in lines
    assert all(run.name in result.stdout for run in runs)  # listed by ls and compare
    for noise in ("USDT", "profiler_start", "CPUAllocator", "Warning"):  # the epoch lines and tables, nothing else
        assert noise not in result.stdout and noise not in result.stderr, noise
    assert_the_runs_started_are_all_there_is(tmp_path, [f"shapes-cnn/{run.name}" for run in runs])


def assert_the_runs_started_are_all_there_is(root: Path, runs: list[str]) -> None:
    """The demo's runs are all there is, wherever runs are counted: TensorBoard, ls, du, export, read_scalars."""
    import json

    import pandas as pd
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    from tbscope import read_scalars

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(root))
    assert sorted(multiplexer.Runs()) == runs  # TensorBoard's run selector
    listed = json.loads(tbscope("ls", str(root), "--json").stdout)
    assert sorted(row["path"] for row in listed) == runs
    assert sorted(json.loads(tbscope("du", str(root), "--json").stdout)["by_run"]) == runs
    assert tbscope("export", str(root), "-o", str(root.parent / "scalars.csv")).returncode == 0
    assert sorted(pd.read_csv(root.parent / "scalars.csv")["run"].unique()) == runs
    assert sorted(read_scalars(root)["run"].unique()) == runs
