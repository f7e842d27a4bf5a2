"""TFRecord framing of event files: frame records for appending, and read them back tolerantly.

A record is ``length (u64 LE) | masked crc32c(length) (u32) | data | masked crc32c(data) (u32)``.
Reading never raises on bad bytes: a truncated last record (a file still being written, or a process
that was killed) ends the iteration quietly, and a damaged record is skipped, counted, and reported
in one warning per file naming the file and the offset of the first damage; so is a record whose
length passes its checksum but runs past the end of the file while whole records follow it.
"""

from __future__ import annotations

import contextlib
import os
import struct
import warnings
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import google_crc32c
import numpy as np

from tbscope.logdir import open_inside

LENGTH = struct.Struct("<Q")  # a record's length header
_U32 = struct.Struct("<I")
HEADER_SIZE = 12
FOOTER_SIZE = 4
# A length beyond this cannot come from a TensorBoard writer; treat it as damage rather than
# trying to read gigabytes.
_MAX_RECORD_BYTES = 1 << 31


def masked_crc32c(data: bytes) -> int:
    """The CRC32C of ``data``, masked the way TFRecord files store it."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """Frame one record's ``data`` for appending to a TFRecord file."""
    header = LENGTH.pack(len(data))
    return header + _U32.pack(masked_crc32c(header)) + data + _U32.pack(masked_crc32c(data))


class WriteError(OSError):
    """Writing to an event file failed; the file was left whole, and ``lost`` records were dropped."""

    def __init__(self, path: str, lost: int, cause: OSError):
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.path = path
        self.lost = lost


class RecordFile:
    """An append-only record file that only ever holds whole records.

    Records are framed into memory by ``append`` and written by ``write_out`` with plain
    ``os.write`` calls (no buffering layer that could split a record). A write that fails part way
    is cut back to the last whole record, so readers never meet a torn record in the middle of a
    file, even after a disk filled up and later had room again. A record appended as ``heavy`` (an
    image, a histogram) gives way to the light ones (scalars, an HParams session) when the disk is
    short of room: see ``write_out`` and ``shed_heavy``.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._pending = bytearray()
        self._pending_records = 0
        self._heavy: list[tuple[int, int]] = []  # (start, end) in ``_pending`` of each heavy record

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    @property
    def light_records(self) -> int:
        """Pending records that are not heavy."""
        return self._pending_records - len(self._heavy)

    @property
    def written(self) -> int:
        """Bytes of the file written whole (what is pending not included)."""
        return self._size

    @property
    def size(self) -> int:
        """Bytes of the file once what is pending is written."""
        return self._size + len(self._pending)

    def append(self, data: bytes, heavy: bool = False) -> None:
        """Frame ``data`` as a record, to be written by the next ``write_out``."""
        start = len(self._pending)
        self._pending += frame(data)
        self._pending_records += 1
        if heavy:
            self._heavy.append((start, len(self._pending)))

    def _write(self, data: bytes | bytearray) -> OSError | None:
        """Append ``data`` whole, or nothing of it (cut back); the error that refused it."""
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.write(self._fd, view[written:])
        except OSError as err:
            if written:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size)
            return err
        finally:
            view.release()
        self._size += written
        return None

    def write_out(self) -> None:
        """Write the framed records to the file. If the disk refuses them, the light records are
        written first, alone, then the heavy ones one by one while they fit: a backlog of images
        never keeps a scalar off a disk that has room for it. What is still refused stays pending for
        the next try (see ``shed_heavy`` and ``discard``), and WriteError is raised."""
        if not self._pending:
            return
        failure = self._write(self._pending)
        if failure is None:
            self.discard()
            return
        if self._heavy:
            light, heavy, start = bytearray(), [], 0
            for begin, end in self._heavy:
                light += self._pending[start:begin]
                heavy.append(self._pending[begin:end])
                start = end
            light += self._pending[start:]
            light_records = self._pending_records - len(heavy)
            if light and self._write(light) is None:
                light, light_records = bytearray(), 0
            while heavy and self._write(heavy[0]) is None:
                heavy.pop(0)
            self._pending = light
            self._heavy = []
            for record in heavy:
                self._heavy.append((len(self._pending), len(self._pending) + len(record)))
                self._pending += record
            self._pending_records = light_records + len(heavy)
            if not self._pending:
                return
        raise WriteError(self.path, 0, failure) from failure

    def shed_heavy(self) -> int:
        """Drop the pending heavy records, keeping the light ones; returns how many were dropped."""
        kept, start = bytearray(), 0
        for begin, end in self._heavy:
            kept += self._pending[start:begin]
            start = end
        kept += self._pending[start:]
        shed = len(self._heavy)
        self._pending, self._heavy = kept, []
        self._pending_records -= shed
        return shed

    def discard(self) -> int:
        """Drop the pending records; returns how many there were."""
        dropped = self._pending_records
        self._pending.clear()
        self._heavy.clear()
        self._pending_records = 0
        return dropped

    def close(self) -> int:
        """Write what is pending and close the file; returns the records that could not be written."""
        with contextlib.suppress(OSError):
            self.write_out()
        lost = self.discard()
        os.close(self._fd)
        return lost


@dataclass
class ReadReport:
    """What reading one file met besides good records: damaged records skipped, and where."""

    path: str
    skipped: int = 0
    first_bad_offset: int | None = None

    def skip(self, offset: int) -> None:
        self.skipped += 1
        if self.first_bad_offset is None:
            self.first_bad_offset = offset


def _header_is_valid(buf: bytes, pos: int) -> bool:
    (length,) = LENGTH.unpack_from(buf, pos)
    (crc,) = _U32.unpack_from(buf, pos + 8)
    return length < _MAX_RECORD_BYTES and masked_crc32c(buf[pos : pos + 8]) == crc


def _crc32c_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> np.uint32(1)) ^ np.uint32(0x82F63B78), table >> np.uint32(1))
    return table.astype(np.uint32)


_CRC32C_TABLE = _crc32c_table()
# Resynchronizing looks for the next valid header in windows that double in size: damage every few
# records costs little, and a long stretch of garbage is crossed in a few NumPy passes.
_FIRST_WINDOW = 1 << 12
_MAX_WINDOW = 1 << 22


def _next_header(buf: bytes, pos: int) -> int:
    """The first offset at or after ``pos`` where a valid record header starts, else the first offset
    where no header fits any more. Each candidate offset is checked at once with NumPy: its length
    below ``_MAX_RECORD_BYTES``, then the CRC32C of its eight length bytes (computed for all the
    candidates together) against the four bytes after them."""
    data = np.frombuffer(buf, dtype=np.uint8)
    last = len(buf) - HEADER_SIZE  # the last offset where a header fits
    window = _FIRST_WINDOW
    while pos <= last:
        stop = min(last + 1, pos + window)
        count = stop - pos
        seg = data[pos : stop + HEADER_SIZE - 1]
        plausible = (seg[3:count + 3] < 0x80) & (seg[4:count + 4] == 0) & (seg[5:count + 5] == 0)  # fmt: skip
        plausible &= (seg[6:count + 6] == 0) & (seg[7:count + 7] == 0)  # fmt: skip
        # Twelve zero bytes (a file's preallocated, never written tail) are no header: skip them unchecked.
        plausible &= ((seg[0:count] | seg[1:count + 1] | seg[2:count + 2] | seg[8:count + 8] | seg[9:count + 9]
                       | seg[10:count + 10] | seg[11:count + 11]) != 0)  # fmt: skip
        candidates = np.flatnonzero(plausible)
        if len(candidates):
            crc = np.full(len(candidates), 0xFFFFFFFF, dtype=np.uint32)
            for k in range(8):
                crc = _CRC32C_TABLE[(crc ^ seg[candidates + k]) & np.uint32(0xFF)] ^ (crc >> np.uint32(8))
            crc ^= np.uint32(0xFFFFFFFF)
            masked = ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(0xA282EAD8)
            stored = np.zeros(len(candidates), dtype=np.uint32)
            for k in range(4):
                stored |= seg[candidates + 8 + k].astype(np.uint32) << np.uint32(8 * k)
            found = np.flatnonzero(masked == stored)
            if len(found):
                return pos + int(candidates[found[0]])
        pos = stop
        window = min(window * 2, _MAX_WINDOW)
    return max(pos, last + 1)


def scan(buf: bytes, base: int = 0, report: ReadReport | None = None) -> tuple[array, array, int]:
    """Find the good records in ``buf``: returns their data offsets, their lengths, and the offset
    after the last whole record (where an appending writer's next record will start).

    The data checksum is checked first: a record that passes it is good. One that fails is told
    apart by its header: a damaged length means scanning forward for the next valid header, a good
    header means skipping the record. Damage is counted in ``report`` at offsets ``base + pos``; a
    partial record at the end is not damage: reading stops before it, for the next read to finish.
    """
    rep = report if report is not None else ReadReport("<buffer>")
    starts = array("q")  # compact: a million records take 8 MB, not the 60 MB of a list of ints
    lengths = array("q")
    unpack_length, unpack_crc, crc32c = LENGTH.unpack_from, _U32.unpack_from, google_crc32c.value
    pos, end = 0, len(buf)
    while pos + HEADER_SIZE <= end:
        (length,) = unpack_length(buf, pos)
        data_start = pos + HEADER_SIZE
        data_end = data_start + length
        if data_end + FOOTER_SIZE <= end:
            crc = crc32c(buf[data_start:data_end])
            if (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF == unpack_crc(buf, data_end)[0]:
                starts.append(data_start)
                lengths.append(length)
                pos = data_end + FOOTER_SIZE
                continue
        if not _header_is_valid(buf, pos):
            rep.skip(base + pos)
            pos = _next_header(buf, pos + 1)
            continue
        if data_end + FOOTER_SIZE > end:
            after = _next_whole_record(buf, pos + 1)
            if after is None:
                break  # a partial last record: a writer may still be appending it
            rep.skip(base + pos)  # a length that passes its checksum yet runs past records that follow it
            pos = after
            continue
        rep.skip(base + pos)
        pos = data_end + FOOTER_SIZE
    return starts, lengths, min(pos, end)


def _next_whole_record(buf: bytes, pos: int) -> int | None:
    """The offset of the first whole, good record at or after ``pos``, else None. A record in the
    middle of being appended has none after it; a damaged length that claims more bytes than the file
    holds does, and reading goes on there."""
    end = len(buf)
    while True:
        pos = _next_header(buf, pos)
        if pos + HEADER_SIZE > end:
            return None
        (length,) = LENGTH.unpack_from(buf, pos)
        data_end = pos + HEADER_SIZE + length
        if (
            data_end + FOOTER_SIZE <= end
            and masked_crc32c(buf[pos + HEADER_SIZE : data_end]) == _U32.unpack_from(buf, data_end)[0]
        ):
            return pos
        pos += 1


def read_file(path: str | os.PathLike[str], start: int = 0) -> bytes:
    """The bytes of the regular file at ``path`` from offset ``start`` (see ``logdir.open_inside``)."""
    with open_inside(path, None) as f:
        f.seek(start)
        return f.read()


def iter_records(
    path: str | os.PathLike[str], start: int = 0, report: ReadReport | None = None
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, data)`` for each good record of the file at ``path``, from byte ``start``.

    A record whose length header is damaged is skipped by scanning forward to the next valid
    header; one whose data fails its checksum is skipped whole. Either is counted in ``report``
    and, when no report is passed, told in one warning at the end. A partial record at the end of
    the file stops the iteration without a warning: a writer may still be appending it.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "f.tfrecord"
        >>> _ = p.write_bytes(frame(b"hello") + frame(b"world") + frame(b"cut")[:7])
        >>> [data for _, data in iter_records(p)]
        [b'hello', b'world']
    """
    rep = report if report is not None else ReadReport(os.fspath(path))
    buf = read_file(path, start)
    starts, lengths, _ = scan(buf, start, rep)
    for data_start, length in zip(starts, lengths, strict=True):
        yield start + data_start - HEADER_SIZE, buf[data_start : data_start + length]
    if report is None and rep.skipped:
        warn_skipped(rep)


def read_at(file: BinaryIO, offset: int) -> bytes | None:
    """The data of the record at byte ``offset`` of ``file``, or None where no good record starts there.

    Example:
        >>> import io
        >>> read_at(io.BytesIO(frame(b"hello") + frame(b"world")), len(frame(b"hello")))
        b'world'
    """
    file.seek(offset)
    head = file.read(HEADER_SIZE)
    if len(head) < HEADER_SIZE:
        return None
    (length,) = LENGTH.unpack_from(head)
    buf = head + file.read(length + 4)
    starts, lengths, _ = scan(buf)
    return buf[starts[0] : starts[0] + lengths[0]] if starts and starts[0] == HEADER_SIZE else None


def warn_skipped(report: ReadReport) -> None:
    """One warning for a file whose damaged records were skipped."""
    warnings.warn(
        f"tbscope: skipped {report.skipped} damaged record(s) in {report.path} "
        f"(first at byte {report.first_bad_offset}); the rest of the file was read",
        RuntimeWarning,
        stacklevel=3,
    )
