"""What code written for torch's SummaryWriter touches around the add_* methods, with tbscope's writer."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary

from conftest import accumulate, hparams_table, wait_until
from tbscope import SummaryWriter


def test_the_writers_attributes_are_torchs(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "run", purge_step=3, max_queue=7, flush_secs=30, filename_suffix=".x") as w:
        assert w.log_dir == str(tmp_path / "run") and isinstance(w.log_dir, str)
        assert w.get_logdir() == w.log_dir == w.file_writer.get_logdir()
        assert (w.purge_step, w.max_queue, w.flush_secs, w.filename_suffix) == (3, 7, 30, ".x")
        assert w._get_file_writer() is w.file_writer
    assert all(p.name.endswith(".x") for p in (tmp_path / "run").iterdir())


def test_protos_written_through_the_file_writer_read_back(tmp_path: Path) -> None:
    """Lightning's loggers write their HParams protos with ``_get_file_writer().add_summary``."""
    with SummaryWriter(tmp_path) as w:
        w._get_file_writer().add_summary(Summary(value=[Summary.Value(tag="via/summary", simple_value=2.5)]), 4)
        event = Event(step=9, summary=Summary(value=[Summary.Value(tag="via/event", simple_value=1.5)]))
        w.file_writer.add_event(event, walltime=1234.5)
        with pytest.raises(TypeError, match="add_summary: expected a tensorboard Summary, got dict"):
            w.file_writer.add_summary({"x": 1})  # type: ignore[arg-type]
    acc = accumulate(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("via/summary")] == [(4, 2.5)]
    assert [(e.step, e.value, e.wall_time) for e in acc.Scalars("via/event")] == [(9, 1.5, 1234.5)]


def test_a_string_holding_a_number_is_a_scalar_as_in_torch(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path) as w:
        w.add_scalar("s", "1.5", 0)
        w.add_scalar("s", " 2 ", 1)
    assert [e.value for e in accumulate(tmp_path).Scalars("s")] == [1.5, 2.0]


def test_values_reach_the_file_within_a_second_whatever_flush_secs_says(tmp_path: Path) -> None:
    """torch's default flush_secs=120, passed by many scripts and by Lightning, must not hide a run
    from TensorBoard for two minutes."""
    w = SummaryWriter(tmp_path, flush_secs=120)
    try:
        w.add_scalar("loss", 0.5, 0)
        # Without flush() or close(): long before flush_secs, TensorBoard's loader sees the value.
        wait_until(lambda: accumulate(tmp_path).Tags()["scalars"] == ["loss"], "the value on disk", timeout=30)
    finally:
        w.close()


def test_the_file_writer_is_gone_after_close_and_back_on_the_next_value(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path) as w:
        assert w.file_writer is not None
    assert w.file_writer is None
    w._get_file_writer().add_summary(Summary(value=[Summary.Value(tag="again", simple_value=1.0)]), 1)
    w.close()
    assert [e.step for e in accumulate(tmp_path).Scalars("again")] == [1]


def test_tensorboardx_names_the_hparams_sub_run_name(tmp_path: Path) -> None:
    with SummaryWriter(tmp_path / "run") as w:
        w.add_hparams({"lr": 0.1}, {"hparam/accuracy": 0.5}, name="trial-a")
    table = hparams_table(tmp_path)
    assert table["run/trial-a"]["metrics"] == {"hparam/accuracy": 0.5}
