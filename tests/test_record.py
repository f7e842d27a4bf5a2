"""TFRecord framing: what we write, TensorBoard's own reader reads; what we read survives damage."""

from __future__ import annotations

import re
import struct
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.summary.writer.record_writer import RecordWriter as TensorBoardRecordWriter

import tbscope
from tbscope.record import ReadReport, RecordFile, frame, iter_records, masked_crc32c


def test_framing_matches_tensorboards_own_record_writer(tmp_path: Path) -> None:
    ours = tmp_path / "ours"
    theirs = tmp_path / "theirs"
    payloads = [b"", b"x", b"hello world" * 100]
    ours.write_bytes(b"".join(frame(p) for p in payloads))
    with open(theirs, "wb") as f:
        writer = TensorBoardRecordWriter(f)
        for p in payloads:
            writer.write(p)
    assert ours.read_bytes() == theirs.read_bytes()


def test_records_read_back_with_their_offsets(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(frame(b"a") + frame(b"bc"))
    assert list(iter_records(path)) == [(0, b"a"), (17, b"bc")]


def test_truncated_last_record_ends_reading_without_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "f"
    whole = frame(b"first") + frame(b"second")
    for cut in range(len(frame(b"first")), len(whole)):
        path.write_bytes(whole[:cut])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert [d for _, d in iter_records(path)] == [b"first"]


def test_record_with_bad_data_checksum_is_skipped_and_reported_with_file_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "f"
    bad = bytearray(frame(b"second"))
    bad[14] ^= 0xFF
    first = frame(b"first")
    path.write_bytes(first + bytes(bad) + frame(b"third"))
    with pytest.warns(RuntimeWarning, match=rf"skipped 1 damaged record\(s\) in {path}.*byte {len(first)}"):
        assert [d for _, d in iter_records(path)] == [b"first", b"third"]


def test_damaged_length_header_is_skipped_by_finding_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "f"
    bad = bytearray(frame(b"second"))
    bad[0] ^= 0x55
    path.write_bytes(frame(b"first") + bytes(bad) + frame(b"third"))
    report = ReadReport(str(path))
    assert [d for _, d in iter_records(path, report=report)] == [b"first", b"third"]
    assert report.skipped >= 1 and report.first_bad_offset == len(frame(b"first"))


def test_reading_from_an_offset_reads_only_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(frame(b"old") + frame(b"new"))
    assert [d for _, d in iter_records(path, start=len(frame(b"old")))] == [b"new"]


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    data=st.lists(st.binary(max_size=64), min_size=1, max_size=6),
    flips=st.lists(st.integers(min_value=0, max_value=10_000), max_size=4),
    cut=st.integers(min_value=0, max_value=10_000),
    garbage=st.binary(max_size=64),
)
def test_damaged_files_never_raise_and_good_records_are_real(
    tmp_path: Path, data: list[bytes], flips: list[int], cut: int, garbage: bytes
) -> None:
    blob = bytearray(b"".join(frame(d) for d in data) + garbage)
    for flip in flips:
        if blob:
            blob[flip % len(blob)] ^= 0x41
    path = tmp_path / "fuzz"
    path.write_bytes(bytes(blob[: cut % (len(blob) + 1)]))
    report = ReadReport(str(path))
    read = [d for _, d in iter_records(path, report=report)]
    # Nothing raised, and every record returned passed its checksum: it is one that was written.
    assert all(d in data for d in read)
    assert len(read) <= len(data)


def test_record_file_appends_whole_records_that_tensorboard_reads(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing import event_file_loader

    path = tmp_path / "events.out.tfevents.1.test"
    out = RecordFile(path)
    for step in range(3):
        out.append(Event(step=step, wall_time=1.0).SerializeToString())
    out.write_out()
    out.close()
    steps = [e.step for e in event_file_loader.EventFileLoader(str(path)).Load()]
    assert steps == [0, 1, 2]


def test_a_length_that_passes_its_checksum_but_runs_past_the_file_is_warned_and_the_rest_read(tmp_path: Path) -> None:
    with tbscope.Writer(tmp_path) as w:
        for step in range(1001):
            w.add_scalar("loss", float(step), step)
    (path,) = tmp_path.glob("events.out.tfevents.*")
    offsets = [offset for offset, _ in iter_records(path)]
    data = bytearray(path.read_bytes())
    at = offsets[10]  # the file-version event, then steps 0..8: the record of step 9
    length = struct.pack("<Q", 1 << 30)  # a gigabyte: past the end of the file, with a length checksum that holds
    data[at : at + 12] = length + struct.pack("<I", masked_crc32c(length))
    path.write_bytes(bytes(data))
    with pytest.warns(
        RuntimeWarning, match=rf"skipped 1 damaged record\(s\) in {re.escape(str(path))} \(first at byte {at}\)"
    ):
        frame = tbscope.read_scalars(tmp_path, cache=False)
    assert frame["step"].tolist() == [*range(9), *range(10, 1001)]  # 1,000 of 1,001 rows, the lost one counted
    with pytest.warns(RuntimeWarning, match=r"skipped 1 damaged record"):
        assert len(list(iter_records(path))) == 1001
