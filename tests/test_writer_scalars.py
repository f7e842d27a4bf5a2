"""Scalars through the Writer, read back by TensorBoard's own loader."""

from __future__ import annotations

import math
import time
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.util import tensor_util

from conftest import accumulate
from tbscope import SummaryWriter, Writer


def events_in(log_dir: Path) -> list:
    (path,) = log_dir.glob("events.out.tfevents.*")
    return list(event_file_loader.EventFileLoader(str(path)).Load())


def test_scalars_read_back_float32_exact_with_their_steps(tmp_path: Path) -> None:
    values = np.random.default_rng(0).normal(size=200).astype(np.float32)
    with Writer(tmp_path) as w:
        for step, v in enumerate(values):
            w.add_scalar("train/loss", float(v), step)
    read = accumulate(tmp_path).Scalars("train/loss")
    assert [e.step for e in read] == list(range(200))
    assert np.array_equal(np.array([e.value for e in read], dtype=np.float32), values)


def test_every_kind_of_number_is_accepted(tmp_path: Path) -> None:
    with Writer(tmp_path) as w:
        w.add_scalar("n", 1, 0)
        w.add_scalar("n", 2.5, 1)
        w.add_scalar("n", True, 2)
        w.add_scalar("n", np.float16(3.5), 3)
        w.add_scalar("n", np.int64(4), 4)
        w.add_scalar("n", np.array([5.0]), 5)
        w.add_scalar("n", torch.tensor(6.0), 6)
        w.add_scalar("n", torch.tensor([7], dtype=torch.int32), 7)
        w.add_scalar("n", torch.tensor(8.0, requires_grad=True) * 1, 8)
        w.add_scalar("n", torch.tensor(9.0, dtype=torch.bfloat16), np.int32(9))
        w.add_scalar("n", 10.0, torch.tensor(10))
    assert [(e.step, e.value) for e in accumulate(tmp_path).Scalars("n")] == [
        (0, 1.0), (1, 2.5), (2, 1.0), (3, 3.5), (4, 4.0), (5, 5.0), (6, 6.0), (7, 7.0), (8, 8.0),
        (9, 9.0), (10, 10.0),
    ]  # fmt: skip


def test_new_style_writes_a_scalars_plugin_tensor(tmp_path: Path) -> None:
    with Writer(tmp_path) as w:
        w.add_scalar("acc", 0.75, 3, new_style=True)
    (t,) = accumulate(tmp_path).Tensors("acc")
    assert t.step == 3 and tensor_util.make_ndarray(t.tensor_proto) == np.float32(0.75)
    event = next(e for e in events_in(tmp_path) if e.summary.value)
    assert event.summary.value[0].metadata.plugin_data.plugin_name == "scalars"


def test_double_precision_keeps_all_64_bits(tmp_path: Path) -> None:
    value = 1.0 + 2**-40
    with Writer(tmp_path) as w:
        w.add_scalar("precise", value, 0, double_precision=True)
    (t,) = accumulate(tmp_path).Tensors("precise")
    assert tensor_util.make_ndarray(t.tensor_proto).item() == value


def test_scalars_of_one_step_share_one_event(tmp_path: Path) -> None:
    with Writer(tmp_path) as w:
        for step in range(10):
            for k in range(20):
                w.add_scalar(f"m/{k}", float(k), step)
    summaries = [e for e in events_in(tmp_path) if e.summary.value]
    assert len(summaries) < 200
    assert sum(len(e.summary.value) for e in summaries) == 200
    assert all(len({v.tag for v in e.summary.value}) == len(e.summary.value) for e in summaries)
    acc = accumulate(tmp_path)
    assert [e.value for e in acc.Scalars("m/7")] == [7.0] * 10


def test_value_is_the_one_at_call_time_even_if_the_tensor_changes_later(tmp_path: Path) -> None:
    loss = torch.tensor(1.0)
    arr = np.array([2.0])
    with Writer(tmp_path) as w:
        w.add_scalar("loss", loss, 0)
        w.add_scalar("arr", arr, 0)
        loss += 100
        arr += 100
    acc = accumulate(tmp_path)
    assert acc.Scalars("loss")[0].value == 1.0
    assert acc.Scalars("arr")[0].value == 2.0


def test_add_scalars_writes_one_sub_run_per_key_like_torch(tmp_path: Path) -> None:
    with Writer(tmp_path) as w:
        w.add_scalars("loss", {"train": 1.0, "val": torch.tensor(2.0)}, 5)
    assert accumulate(tmp_path / "loss_train").Scalars("loss")[0].value == 1.0
    assert accumulate(tmp_path / "loss_val").Scalars("loss")[0].value == 2.0


def test_nan_and_inf_are_logged_as_is_with_one_warning_per_tag(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match="'diverged' is nan") as record, Writer(tmp_path) as w:
        for step in range(5):
            w.add_scalar("diverged", float("nan"), step)
        w.add_scalar("exploded", float("inf"), 0)
    assert sum("diverged" in str(r.message) for r in record) == 1
    acc = accumulate(tmp_path)
    assert all(math.isnan(e.value) for e in acc.Scalars("diverged"))
    assert acc.Scalars("exploded")[0].value == math.inf


@pytest.mark.parametrize(
    ("tag", "value", "step", "error", "match"),
    [
        (5, 1.0, 0, TypeError, r"add_scalar: tag must be a str, got int 5"),
        ("", 1.0, 0, ValueError, r"add_scalar: tag must not be empty"),
        ("t", "abc", 0, TypeError, r"add_scalar: expected a number or a one-element tensor, got str 'abc'"),
        ("t", 10**400, 0, ValueError, r"add_scalar: 1000.* is too large for a float"),
        ("t", None, 0, TypeError, r"got NoneType"),
        ("t", torch.ones(3), 0, ValueError, r"expected a one-element tensor, got shape \(3,\); reduce it"),
        ("t", np.ones(2), 0, ValueError, r"expected a one-element array, got shape \(2,\)"),
        ("t", 1.0, 1.5, TypeError, r"global_step must be an int, got float 1.5"),
        ("t", 1.0, "3", TypeError, r"global_step must be an int, got str"),
        ("t", 1.0, 2**63, ValueError, r"add_scalar: global_step must fit in int64 \(an event file's step\)"),
        ("t", 1.0, 1e30, ValueError, r"add_scalar: global_step must fit in int64"),
        ("t", 1.0, np.uint64(2**64 - 1), ValueError, r"add_scalar: global_step must fit in int64"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, tag: object, value: object, step: object, error: type, match: str
) -> None:
    with Writer(tmp_path) as w:
        with pytest.raises(error, match=match):
            w.add_scalar(tag, value, step)  # type: ignore[arg-type]
        w.add_scalar("ok", 1.0, 0)
    assert accumulate(tmp_path).Tags()["scalars"] == ["ok"]


def test_summary_writer_is_a_drop_in_with_torchs_signatures() -> None:
    import inspect

    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    for name, theirs in inspect.getmembers(TorchWriter, inspect.isfunction):
        if name.startswith("_"):
            continue
        ours = getattr(SummaryWriter, name)
        their_params = list(inspect.signature(theirs).parameters)
        assert list(inspect.signature(ours).parameters)[: len(their_params)] == their_params, name


def test_writer_logs_without_warnings_in_the_common_case(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Writer(tmp_path) as w:
            w.add_scalar("x", 1.0, 0)


def test_every_value_reads_back_with_its_own_wall_time(tmp_path: Path) -> None:
    before = time.time()
    with Writer(tmp_path) as w:
        w.add_scalar("given", 1.0, 0, walltime=1000)
        w.add_scalar("called", 2.0, 0)
        w.add_text("note", "hello", 0, walltime=2000.5)
        w.add_scalar("after_text", 3.0, 0)
        w.add_scalars("pair", {"a": 1.0}, 0, walltime=3000)
        w.add_histogram("h", np.arange(5.0), 0, walltime=4000)
    after = time.time()
    acc = accumulate(tmp_path)
    assert acc.Scalars("given")[0].wall_time == 1000.0
    assert before <= acc.Scalars("called")[0].wall_time <= after
    assert before <= acc.Scalars("after_text")[0].wall_time <= after
    assert acc.Tensors("note")[0].wall_time == 2000.5
    assert acc.Histograms("h")[0].wall_time == 4000.0
    assert accumulate(tmp_path / "pair_a").Scalars("pair")[0].wall_time == 3000.0


@pytest.mark.parametrize("walltime", ["yesterday", datetime.now(), None], ids=["str", "datetime", "none"])
def test_a_walltime_that_is_no_number_is_refused_at_the_call(tmp_path: Path, walltime: object) -> None:
    with Writer(tmp_path) as w:
        if walltime is None:
            w.add_scalar("t", 1.0, 0, walltime=walltime)
        else:
            for call in (
                lambda: w.add_scalar("t", 1.0, 0, walltime=walltime),
                lambda: w.add_text("x", "y", 0, walltime=walltime),
            ):
                with pytest.raises(TypeError, match=r"walltime must be seconds since the epoch"):
                    call()
        w.add_scalar("ok", 1.0, 1)
    assert [e.step for e in accumulate(tmp_path).Scalars("ok")] == [1]


def test_a_value_beyond_float32_reads_back_as_inf_and_stays_out_of_min_and_max(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match="'big' is inf"), Writer(tmp_path) as w:
        w.add_scalar("big", 1.0, 0)
        w.add_scalar("big", 1e39, 1)
        w.add_scalar("big", -1e300, 2)
        w.add_scalar("big", 2.0, 3)
        summary = w.scalar_stats
    assert [e.value for e in accumulate(tmp_path).Scalars("big")] == [1.0, math.inf, -math.inf, 2.0]
    assert summary()["big"] == {"last": 2.0, "min": 1.0, "max": 2.0, "last_step": 3, "count": 4}


@pytest.mark.filterwarnings("ignore:tbscope. scalar")
def test_scalar_events_are_byte_for_byte_what_tensorboards_protos_serialize() -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary

    from tbscope.summaries import wire
    from tbscope.writer import ScalarEncoders

    tags = ["a", "train/loss", "x" * 130, "métrique/é"]
    values = [0.0, -0.0, 1.5, -2.25, 1e-45, 3.4e38, float("nan"), float("inf")]
    steps = [0, 1, 127, 128, 2**31, -1, -(2**63), 2**63 - 1]
    for wall_time in (0.0, 1.0, 1_800_000_000.123456):
        for step in steps:
            batch = [(tag, value, step, wall_time) for tag in tags for value in values]
            (got_step, got_time, summary), *rest = ScalarEncoders().events(batch)
            assert not rest and (got_step, got_time) == (step, wall_time)
            expected = Event(
                wall_time=wall_time,
                step=step,
                summary=Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value, _, _ in batch]),
            )
            assert wire.event(wall_time, step, summary) == expected.SerializeToString()


def test_a_steps_scalars_share_events_only_when_logged_together(tmp_path: Path) -> None:
    """Values of one step logged back to back share an event (one header for the step); a value of
    the same step logged later is an event of its own, with its own wall time."""
    with Writer(tmp_path) as w:
        for k in range(20):
            w.add_scalar(f"m/{k}", float(k), 7)
        time.sleep(0.01)
        w.add_scalar("m/late", 1.0, 7)
    events = [e for e in events_in(tmp_path) if e.summary.value]
    assert [len(e.summary.value) for e in events][-1] == 1
    assert sum(len(e.summary.value) for e in events) == 21 and len(events) <= 3
    assert events[-1].wall_time - events[0].wall_time >= 0.01
