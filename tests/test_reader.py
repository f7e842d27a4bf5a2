"""The reader against TensorBoard's own loader, on logdirs written by every writer people use."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.util import tensor_util

import tbscope
from conftest import accumulate
from tbscope import reader
from tbscope.record import frame


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TBSCOPE_CACHE_DIR", str(cache))
    return cache


def write_events(path: Path, events: list[Event]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        for event in events:
            f.write(frame(event.SerializeToString()))


def scalar_event(tag: str, step: int, value: float, wall: float = 1.0) -> Event:
    return Event(step=step, wall_time=wall, summary=Summary(value=[Summary.Value(tag=tag, simple_value=value)]))


def tensor_event(tag: str, step: int, tensor: TensorProto, with_metadata: bool) -> Event:
    value = Summary.Value(tag=tag, tensor=tensor)
    if with_metadata:
        value.metadata.CopyFrom(scalar_metadata.create_summary_metadata(display_name="", description=""))
    return Event(step=step, wall_time=2.0, summary=Summary(value=[value]))


def expected_rows(logdir: Path) -> pd.DataFrame:
    """What TensorBoard's EventAccumulator reads, nothing sampled, as read_scalars' rows."""
    rows = []
    for run in sorted(reader.find_event_files(logdir)):
        acc = accumulate(logdir / run)
        for tag in acc.Tags()["scalars"]:
            rows += [(run, tag, e.step, e.wall_time, e.value) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["tensors"]:
            plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
            if plugin == "scalars":
                rows += [(run, tag, e.step, e.wall_time, float(tensor_util.make_ndarray(e.tensor_proto)))
                         for e in acc.Tensors(tag)]  # fmt: skip
    frame = pd.DataFrame(rows, columns=reader.COLUMNS)
    return frame.sort_values(["run", "tag", "step", "wall_time"], kind="stable", ignore_index=True)


def assert_same_as_tensorboard(logdir: Path) -> pd.DataFrame:
    ours = tbscope.read_scalars(logdir)
    assert list(ours.columns) == reader.COLUMNS and ours["value"].dtype == np.float64
    mine = ours.astype({"run": str, "tag": str}).sort_values(
        ["run", "tag", "step", "wall_time"], kind="stable", ignore_index=True
    )
    theirs = expected_rows(logdir)
    assert len(mine) == len(theirs)
    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)
    return ours


def test_torch_summary_writer_every_scalar_style(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(tmp_path / "torch")
    for step in range(50):
        w.add_scalar("old", step * 0.5, step)
        w.add_scalar("new", step * 0.25, step, new_style=True)
        w.add_scalar("double", 1.0 + step * 2**-40, step, new_style=True, double_precision=True)
        w.add_scalars("group", {"a": step, "b": -step}, step)
    w.add_hparams({"lr": 0.1}, {"hp/acc": 0.5})
    w.close()
    ours = assert_same_as_tensorboard(tmp_path)
    double = ours[ours["tag"] == "double"]["value"].to_numpy()
    assert double[1] == 1.0 + 2**-40  # all 64 bits
    assert set(ours["run"]) >= {"torch", "torch/group_a", "torch/group_b"}


def test_tensorboardx_writer(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    w = SummaryWriter(str(tmp_path / "tbx"))
    for step in range(30):
        w.add_scalar("loss", 1 / (step + 1), step)
        w.add_scalar("acc", np.float64(step / 30), step, summary_description="accuracy")
    w.close()
    assert len(assert_same_as_tensorboard(tmp_path)) == 60


def test_lightning_logger_runs(tmp_path: Path) -> None:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import TensorBoardLogger

    class Tiny(pl.LightningModule):
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
            loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
            self.log("train/loss", loss)
            return loss

        def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
            self.log("val/loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    for lr in (0.1, 0.01):
        trainer = pl.Trainer(
            max_epochs=2, logger=TensorBoardLogger(tmp_path, name="lightning_logs"), log_every_n_steps=1,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        trainer.fit(Tiny(lr), loader, loader)
    ours = assert_same_as_tensorboard(tmp_path)
    assert set(ours["run"]) == {"lightning_logs/version_0", "lightning_logs/version_1"}
    from tbscope.catalog import catalog

    entries = {e.path: e for e in catalog(tmp_path)}
    assert entries["lightning_logs/version_1"].hparams == {"lr": 0.01}
    assert entries["lightning_logs/version_0"].experiment == "lightning_logs"
    assert "val/loss" in entries["lightning_logs/version_0"].headline


def test_tbscope_writer_batched_events(tmp_path: Path) -> None:
    with tbscope.Writer(tmp_path / "run") as w:
        for step in range(100):
            for k in range(7):
                w.add_scalar(f"m/{k}", step + k / 10, step)
            w.add_scalar("d", step / 3, step, double_precision=True)
            w.add_image("img", np.zeros((3, 4, 4)), step) if step % 50 == 0 else None
    assert len(assert_same_as_tensorboard(tmp_path)) == 800


def test_every_tensor_encoding_and_metadata_only_on_the_first_value_in_an_earlier_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    half = np.array(1.5, dtype=np.float16).view(np.uint16)
    first = [Event(wall_time=1.0, file_version="brain.Event:2"),
             tensor_event("t", 0, TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[0.5]), with_metadata=True),
             tensor_event("h", 0, TensorProto(dtype=types_pb2.DT_HALF, half_val=[int(half)]), with_metadata=True),
             tensor_event("c", 0, tensor_util.make_tensor_proto(np.float64(2.25)), with_metadata=True),
             tensor_event("img", 0, tensor_util.make_tensor_proto(np.ones(3, np.float32)), False)]  # fmt: skip
    content = TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=np.float32(7.0).tobytes())
    second = [Event(wall_time=3.0, file_version="brain.Event:2"),
              tensor_event("t", 1, TensorProto(dtype=types_pb2.DT_DOUBLE, double_val=[0.75]), with_metadata=False),
              tensor_event("t", 2, content, with_metadata=False)]  # fmt: skip
    write_events(run / "events.out.tfevents.1.a", first)
    write_events(run / "events.out.tfevents.2.a", second)
    ours = tbscope.read_scalars(tmp_path)
    got = {(t, s): v for t, s, v in zip(ours["tag"], ours["step"], ours["value"], strict=True)}
    assert got == {("t", 0): 0.5, ("t", 1): 0.75, ("t", 2): 7.0, ("h", 0): 1.5, ("c", 0): 2.25}


def test_restart_hides_later_points_as_tensorboard_does(tmp_path: Path) -> None:
    path = tmp_path / "run" / "events.out.tfevents.1.a"
    events = [Event(wall_time=0.0, file_version="brain.Event:2")]
    events += [scalar_event("loss", s, 1.0) for s in range(10)]
    events += [Event(step=4, wall_time=5.0, session_log=SessionLog(status=SessionLog.START))]
    events += [scalar_event("loss", s, 2.0) for s in range(4, 7)]
    write_events(path, events)
    ours = assert_same_as_tensorboard(tmp_path)
    assert ours["step"].tolist() == [0, 1, 2, 3, 4, 5, 6] and ours["value"].tolist()[-3:] == [2.0] * 3
    unpurged = tbscope.read_scalars(tmp_path, purge=False)
    assert len(unpurged) == 13


def test_a_step_going_back_in_a_file_without_version_hides_later_points_of_its_tags(tmp_path: Path) -> None:
    path = tmp_path / "run" / "events.out.tfevents.1.a"
    events = [scalar_event("a", s, 1.0) for s in range(5)] + [scalar_event("b", s, 1.0) for s in range(5)]
    events += [scalar_event("a", 2, 9.0)]
    write_events(path, events)
    ours = assert_same_as_tensorboard(tmp_path)
    a = ours[ours["tag"] == "a"]
    assert a["step"].tolist() == [0, 1, 2] and a["value"].tolist() == [1.0, 1.0, 9.0]


def test_selection_of_runs_and_tags(tmp_path: Path) -> None:
    for run in ("a", "b", "nested/c"):
        with tbscope.Writer(tmp_path / run) as w:
            w.add_scalar("train/loss", 1.0, 0)
            w.add_scalar("val/acc", 2.0, 0)
    everything = tbscope.read_scalars(tmp_path)
    assert sorted(set(everything["run"])) == ["a", "b", "nested/c"]
    assert set(tbscope.read_scalars(tmp_path, runs="^nested").run) == {"nested/c"}
    assert set(tbscope.read_scalars(tmp_path, tags=["val/acc"]).tag) == {"val/acc"}
    assert set(tbscope.read_scalars(tmp_path / "a").run) == {"."}
    assert tbscope.read_scalars(tmp_path / "nope").empty


def test_a_file_still_being_written_is_read_up_to_its_last_whole_record(tmp_path: Path) -> None:
    path = tmp_path / "run" / "events.out.tfevents.1.a"
    whole = b"".join(frame(scalar_event("x", s, float(s)).SerializeToString()) for s in range(10))
    path.parent.mkdir()
    path.write_bytes(whole[:-7])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tbscope.read_scalars(tmp_path)["step"].tolist() == list(range(9))
    path.write_bytes(whole)
    assert tbscope.read_scalars(tmp_path)["step"].tolist() == list(range(10))


def test_the_cache_parses_an_unchanged_file_never_again_and_a_grown_one_from_its_tail(
    tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run" / "events.out.tfevents.1.a"
    write_events(
        path, [Event(wall_time=0.0, file_version="brain.Event:2")] + [scalar_event("x", s, 1.0) for s in range(100)]
    )
    parses: list[int] = []
    real_parse = reader.parse_file

    def counting(p: Path, offset: int = 0, first_record: int = 0, file: Any = None) -> reader.FileScalars:
        parses.append(offset)
        return real_parse(p, offset, first_record, file)

    monkeypatch.setattr(reader, "parse_file", counting)
    assert len(tbscope.read_scalars(tmp_path)) == 100 and parses == [0]
    assert len(tbscope.read_scalars(tmp_path)) == 100 and parses == [0]  # unchanged: from the cache
    size = path.stat().st_size
    time.sleep(0.01)
    write_events(path, [scalar_event("x", s, 2.0) for s in range(100, 150)])
    again = tbscope.read_scalars(tmp_path)
    assert len(again) == 150 and again["value"].tolist()[-1] == 2.0
    assert parses == [0, size]  # only the new tail
    assert list((own_cache / "scalars").iterdir())
    for cached in (own_cache / "scalars").iterdir():
        cached.unlink()  # safe to delete
    assert len(tbscope.read_scalars(tmp_path)) == 150 and parses[-1] == 0


def test_the_cache_lives_in_the_users_cache_directory_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TBSCOPE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert reader.cache_dir() == tmp_path / "xdg" / "tbscope" / "scalars"


def test_damaged_records_are_skipped_and_told_once_per_file(tmp_path: Path) -> None:
    path = tmp_path / "run" / "events.out.tfevents.1.a"
    records = [frame(scalar_event("x", s, float(s)).SerializeToString()) for s in range(10)]
    bad = bytearray(records[4])
    bad[20] ^= 0xFF
    records[4] = bytes(bad)
    path.parent.mkdir()
    path.write_bytes(b"".join(records))
    with pytest.warns(RuntimeWarning, match=r"skipped 1 damaged record\(s\) in .*events.out.tfevents.1.a") as caught:
        steps = tbscope.read_scalars(tmp_path)["step"].tolist()
    assert steps == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert len([w for w in caught if "damaged" in str(w.message)]) == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cut=st.integers(min_value=0, max_value=4000),
    flips=st.lists(st.integers(min_value=0, max_value=4000), max_size=5),
    garbage=st.binary(max_size=200),
)
def test_truncated_bit_flipped_and_garbage_files_never_crash(
    tmp_path: Path, cut: int, flips: list[int], garbage: bytes
) -> None:
    blob = bytearray(b"".join(frame(scalar_event(f"t{s % 3}", s, float(s)).SerializeToString()) for s in range(60)))
    for flip in flips:
        blob[flip % len(blob)] ^= 0x10
    run = tmp_path / f"fuzz-{os.urandom(4).hex()}"
    run.mkdir()
    (run / "events.out.tfevents.1.a").write_bytes(bytes(blob[: cut % (len(blob) + 1)]) + garbage)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame_ = tbscope.read_scalars(run, cache=False)
    assert all(issubclass(w.category, RuntimeWarning) for w in caught)
    assert all(v == s for v, s in zip(frame_["value"], frame_["step"], strict=True))  # every row is a real one


def test_read_events_images_histograms_text_and_hparams(tmp_path: Path) -> None:
    with tbscope.Writer(tmp_path / "run") as w:
        w.add_image("img", np.zeros((3, 4, 5), dtype=np.uint8), 1)
        w.add_histogram("h", np.arange(10.0), 2, bins=5)
        w.add_text("note", "hello", 3)
        w.add_hparams({"lr": 0.1, "amp": True}, {"hp/x": 1.0})
    images = tbscope.read_events(tmp_path, "images")
    assert images[["run", "tag", "step", "width", "height"]].values.tolist() == [["run", "img", 1, 5, 4]]
    assert images["encoded"][0].startswith(b"\x89PNG")
    histograms = tbscope.read_events(tmp_path, "histograms")
    assert histograms["bucket"][0] == [2.0] * 5 and histograms["num"][0] == 10
    assert tbscope.read_events(tmp_path, "text")["text"].tolist() == ["hello"]
    (session,) = tbscope.read_events(tmp_path, "hparams").itertuples()
    assert session.hparams == {"lr": 0.1, "amp": True} and session.status == "finished"
    with pytest.raises(ValueError, match="kind must be one of images, histograms, text, hparams"):
        tbscope.read_events(tmp_path, "videos")


def test_run_json_summaries_equal_what_the_event_files_say(tmp_path: Path) -> None:
    from tbscope.tagstats import of_frame

    with tbscope.init("cnn", root=tmp_path) as run:
        for step in range(30):
            run.writer.add_scalar("loss", math.nan if step == 7 else 30 - step, step)
            run.writer.add_scalar("val/acc", step / 30, step)
    import json

    from_json = json.loads((run.dir / "run.json").read_text())["summary"]
    assert from_json == of_frame(tbscope.read_scalars(run.dir, runs=["."]))


def test_resumed_run_json_summary_covers_both_parts(tmp_path: Path) -> None:
    import json

    from tbscope.tagstats import of_frame

    with tbscope.init("cnn", root=tmp_path) as first:
        for step in range(10):
            first.writer.add_scalar("loss", float(step), step)
    time.sleep(1.1)
    with tbscope.init("cnn", root=tmp_path, resume=tbscope.Resume(first.dir, step=5)) as again:
        for step in range(5, 8):
            again.writer.add_scalar("loss", 100.0 + step, step)
    summary = json.loads((first.dir / "run.json").read_text())["summary"]
    assert summary == of_frame(tbscope.read_scalars(first.dir, runs=["."]))
    assert summary["loss"] == {"last": 107.0, "min": 0.0, "max": 107.0, "last_step": 7, "count": 8}


def test_a_tensor_of_unknown_dtype_is_skipped_as_damage_and_the_rest_is_read(tmp_path: Path) -> None:
    from tensorboard.plugins.histogram import metadata as histogram_metadata

    unknown = TensorProto(dtype=99, tensor_content=b"abcd")  # checksums fine, but no dtype TensorBoard knows
    histogram = Summary.Value(tag="h", tensor=unknown)
    histogram.metadata.CopyFrom(histogram_metadata.create_summary_metadata(display_name="", description=""))
    path = tmp_path / "run" / "events.out.tfevents.1.a"
    write_events(path, [scalar_event("x", 0, 1.0), tensor_event("t", 1, unknown, with_metadata=True),
                        Event(step=2, summary=Summary(value=[histogram])), scalar_event("x", 3, 3.0)])  # fmt: skip
    with pytest.warns(RuntimeWarning, match=r"skipped 1 damaged record\(s\) in .*events.out.tfevents.1.a"):
        scalars = tbscope.read_scalars(tmp_path)
    assert scalars[["tag", "step", "value"]].values.tolist() == [["x", 0, 1.0], ["x", 3, 3.0]]
    with pytest.warns(RuntimeWarning, match=r"skipped .*tfevents.1.a: 1 value\(s\) that could not be decoded .*'h'"):
        assert tbscope.read_events(tmp_path, "histograms").empty


@pytest.mark.parametrize("damage", ["truncated", "garbage", "meta of other types", "codes out of range", "fifo"])
def test_a_damaged_cache_entry_is_parsed_again(tmp_path: Path, own_cache: Path, damage: str) -> None:
    path = tmp_path / "run" / "events.out.tfevents.1.a"
    write_events(path, [scalar_event("x", s, float(s)) for s in range(20)])
    assert tbscope.read_scalars(tmp_path)["value"].tolist() == [float(s) for s in range(20)]
    [entry] = (own_cache / "scalars").glob("*.scalars")
    whole = entry.read_bytes()
    meta_line, arrays = whole.split(b"\n", 1)
    meta = json.loads(meta_line)
    entry.unlink()
    if damage == "truncated":
        entry.write_bytes(whole[: len(whole) // 2])
    elif damage == "garbage":
        entry.write_bytes(os.urandom(len(whole)))
    elif damage == "meta of other types":
        entry.write_bytes(json.dumps({**meta, "tags": 5, "restarts": "no", "records": -1}).encode() + b"\n" + arrays)
    elif damage == "codes out of range":
        entry.write_bytes(json.dumps({**meta, "tags": []}).encode() + b"\n" + arrays)
    else:
        os.mkfifo(entry)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tbscope.read_scalars(tmp_path)["value"].tolist() == [float(s) for s in range(20)]


def test_another_file_written_over_a_cached_one_is_read_anew(tmp_path: Path) -> None:
    path = tmp_path / "run" / "events.out.tfevents.1.a"
    write_events(path, [scalar_event("x", s, 1.0, wall=1.0) for s in range(50)])
    assert set(tbscope.read_scalars(tmp_path)["tag"]) == {"x"}
    time.sleep(0.01)
    path.unlink()
    write_events(path, [scalar_event("y", s, 2.0, wall=5.0) for s in range(80)])  # larger: no append, though
    again = tbscope.read_scalars(tmp_path)
    assert set(again["tag"]) == {"y"} and again["step"].tolist() == list(range(80))
    time.sleep(0.01)
    path.unlink()
    write_events(path, [scalar_event("z", s, 3.0, wall=5.0) for s in range(80)])  # the same size
    assert set(tbscope.read_scalars(tmp_path)["tag"]) == {"z"}


def test_the_cache_forgets_files_that_are_gone_and_keeps_under_its_size_the_entries_used_last(
    tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for run in ("a", "b", "c"):
        write_events(tmp_path / run / "events.out.tfevents.1.a", [scalar_event("x", s, 1.0) for s in range(30)])
    tbscope.read_scalars(tmp_path)
    entries = own_cache / "scalars"
    assert len(list(entries.glob("*.scalars"))) == 3
    shutil.rmtree(tmp_path / "a")
    tbscope.read_scalars(tmp_path)
    assert len(list(entries.glob("*.scalars"))) == 3  # pruned at most once an hour
    os.utime(entries / ".pruned", (0, 0))  # the last pruning was long ago
    tbscope.read_scalars(tmp_path)
    assert len(list(entries.glob("*.scalars"))) == 2  # a's entry went with a
    for entry in entries.glob("*.scalars"):
        os.utime(entry, (1, 1))
    tbscope.read_scalars(tmp_path, runs=["c"])  # c's entry is now the one used last
    one_entry = max(e.stat().st_size for e in entries.glob("*.scalars"))
    assert reader.prune_cache(max_bytes=one_entry) > 0
    parses: list[str] = []
    real_parse = reader.parse_file

    def counting(p: Path, offset: int = 0, first_record: int = 0, file: Any = None) -> reader.FileScalars:
        parses.append(p.parent.name)
        return real_parse(p, offset, first_record, file)

    monkeypatch.setattr(reader, "parse_file", counting)
    tbscope.read_scalars(tmp_path)
    assert parses == ["b"]  # c came from the cache


def test_images_text_and_pr_curves_read_the_same_through_the_scalars_cache(tmp_path: Path) -> None:
    """After read_scalars, read_events reads only the records the cache noted as holding more than scalars;
    what it returns is what a whole pass over the files returns."""
    from tbscope import reader

    rng = np.random.default_rng(0)
    with tbscope.Writer(tmp_path / "run") as w:
        for step in range(300):
            w.add_scalar("loss", 1 / (step + 1), step)
            if step % 100 == 0:
                w.add_image("pic", rng.random((3, 8, 8)), step)
                w.add_text("note", f"step {step}", step)
                w.add_pr_curve("pr", rng.integers(0, 2, 20), rng.random(20), step)
    kinds = ("images", "text", "pr_curves")
    whole = reader.read_kinds(tmp_path, kinds)  # nothing cached yet: every record is looked at
    (file,) = (tmp_path / "run").glob("events.out.tfevents.*")
    assert reader._cached_others(file) is None
    tbscope.read_scalars(tmp_path)
    assert len(reader._cached_others(file) or []) == 9  # an image, a text and a PR curve at steps 0, 100, 200
    cached = reader.read_kinds(tmp_path, kinds)
    for kind in kinds:
        pd.testing.assert_frame_equal(cached[kind], whole[kind])
    assert cached["images"]["step"].tolist() == [0, 100, 200]
