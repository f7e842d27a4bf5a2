"""Nothing skipped in silence: under ``tbscope.init``'s defaults a short run keeps the pictures it logs, a
tag's first call is always logged, and every call the cadence drops is counted (run.json, ls, du) and
warned about once per tag, saying how to log more."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import tbscope
from tbscope.cli import main

GRID = np.random.default_rng(0).random((8, 3, 16, 16)).astype(np.float32)


def test_an_image_grid_every_2_epochs_of_a_200_step_run_is_kept_under_the_defaults(tmp_path: Path) -> None:
    steps_per_epoch = 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no call is dropped, so no warning
        with tbscope.init("short", root=tmp_path) as run:
            for step in range(200):
                run.writer.add_scalar("train/loss", 1 / (step + 1), step)
                epoch, last_of_epoch = divmod(step + 1, steps_per_epoch)
                if last_of_epoch == 0 and epoch % 2 == 0:
                    run.writer.add_image_grid("val/samples", GRID, step)
    images = EventAccumulator(str(run.dir), size_guidance={"images": 0}).Reload().Images("val/samples")
    assert [image.step for image in images] == [39, 79, 119, 159, 199]
    assert all(image.encoded_image_string.startswith(b"\x89PNG") for image in images)
    assert "skipped" not in json.loads((run.dir / "run.json").read_text())


def test_calls_the_cadence_drops_are_counted_in_run_json_ls_and_du_with_one_warning_a_tag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.warns(RuntimeWarning) as warned, tbscope.init("dense", root=tmp_path) as run:
        for step in range(3, 400):  # every step, from step 3: more than the default keeps
            run.writer.add_image_grid("train/batch", GRID, step)
            run.writer.add_histogram("train/weights", GRID, step)
    logged = EventAccumulator(str(run.dir), size_guidance={"images": 0, "histograms": 0}).Reload()
    kept = {
        "train/batch": [e.step for e in logged.Images("train/batch")],
        "train/weights": [e.step for e in logged.Histograms("train/weights")],
    }
    assert kept["train/batch"][0] == 3 and kept["train/batch"] == kept["train/weights"]  # the first call is logged
    assert 50 < len(kept["train/batch"]) < 397
    skipped = json.loads((run.dir / "run.json").read_text())["skipped"]
    assert skipped == {"train/batch": 397 - len(kept["train/batch"]), "train/weights": 397 - len(kept["train/weights"])}
    messages = [str(w.message) for w in warned if "is not logged" in str(w.message)]
    assert len(messages) == 2  # one a tag
    assert any("'train/batch'" in m and "Spaced(fraction=0)" in m for m in messages)
    assert all(w.filename == __file__ for w in warned if "is not logged" in str(w.message))  # at the user's call

    assert main(["ls", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert "not logged" in listed and str(sum(skipped.values())) in listed
    assert main(["du", str(tmp_path)]) == 0
    usage = capsys.readouterr().out
    assert "Not logged" in usage
    assert any("train/batch" in line and str(skipped["train/batch"]) in line for line in usage.splitlines())


def test_a_tags_first_call_is_logged_whatever_the_cadence(tmp_path: Path) -> None:
    cadence = tbscope.Cadence(every=1000, dense_until=0)
    with pytest.warns(RuntimeWarning, match="is not logged"), tbscope.Writer(tmp_path, cadence=cadence) as w:
        for step in (4, 12, 1000, 1004):
            w.add_image_grid("val/samples", GRID, step)
    images = EventAccumulator(str(tmp_path), size_guidance={"images": 0}).Reload().Images("val/samples")
    assert [image.step for image in images] == [4, 1000]
    assert w.gate.skipped == {"val/samples": 2}


def test_a_resumed_run_adds_its_skipped_calls_to_those_of_its_earlier_attempts(tmp_path: Path) -> None:
    cadence = tbscope.Cadence(every=10, dense_until=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tbscope.init("cnn", root=tmp_path, cadence=cadence) as first:
            for step in range(10):  # 0 kept, 1 to 9 not
                first.writer.add_histogram("w", GRID, step)
        with tbscope.init("cnn", root=tmp_path, cadence=cadence, resume=tbscope.Resume(first.id, step=10)) as again:
            for step in range(10, 15):  # 10 kept, 11 to 14 not
                again.writer.add_histogram("w", GRID, step)
                again.writer.add_image_grid("g", GRID, step)  # 10 kept (its first), 11 to 14 not
    assert json.loads((first.dir / "run.json").read_text())["skipped"] == {"w": 9 + 4, "g": 4}
