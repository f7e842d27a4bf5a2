"""Scalars: a number at a step, as ``simple_value`` (what torch writes) or as a scalars-plugin tensor;
and back again, one value at a time or, for plain ``simple_value`` events, a whole file at once."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.plugins.scalar import metadata
from tensorboard.util import tensor_util

from tbscope.summaries import wire

_METADATA = metadata.create_summary_metadata(display_name="", description="")


def simple_value(tag: str, value: float) -> Summary.Value:
    """A float32 scalar in the classic ``simple_value`` field, the most compact encoding."""
    return Summary.Value(tag=tag, simple_value=value)


# The four bytes after a tag's ``simple_head``: ``simple_head(tag) + pack_simple(value)`` is the value's
# entry in a serialized Summary. Raises OverflowError for a value beyond float32 (see ``simple_value_field``).
pack_simple = struct.Struct("<f").pack


def simple_head(tag: str) -> bytes:
    """What every ``simple_value_field`` of ``tag`` starts with: computed once per tag by the caller."""
    encoded = tag.encode()
    tag_field = b"\x0a" + wire.varint(len(encoded)) + encoded
    return b"\x0a" + wire.varint(len(tag_field) + 5) + tag_field + b"\x15"


def simple_value_field(head: bytes, value: float) -> tuple[bytes, float]:
    """``simple_value(tag, value)`` as its entry in a serialized ``Summary`` (see ``wire``), from the
    tag's ``simple_head``; and the value as a reader will see it (float32: too large a value is Inf)."""
    try:
        return head + pack_simple(value), value
    except OverflowError:
        value = math.copysign(math.inf, value)
        return head + pack_simple(value), value


def tensor_value(tag: str, value: float, double_precision: bool = False) -> Summary.Value:
    """A scalar as a rank-0 tensor with scalars-plugin metadata (torch's ``new_style=True``).

    ``double_precision`` keeps all 64 bits of the value.
    """
    if double_precision:
        tensor = TensorProto(dtype=types_pb2.DT_DOUBLE, double_val=[value])
    else:
        tensor = TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value])
    return Summary.Value(tag=tag, tensor=tensor, metadata=_METADATA)


# -- reading ----------------------------------------------------------------------------------------


def value_of(value: Summary.Value, plugin: str | None) -> float | None:
    """The number a ``Summary.Value`` holds, if it is a scalar: a ``simple_value``, or a one-element
    tensor of a tag whose plugin (told by its first value's metadata) is "scalars"."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind == "tensor" and plugin == metadata.PLUGIN_NAME:
        array = tensor_util.make_ndarray(value.tensor)
        return float(array.reshape(-1)[0]) if array.size == 1 and array.dtype.kind in "biuf" else None
    return None


@dataclass
class SimpleRows:
    """Scalars decoded in bulk from events that hold only ``simple_value`` values."""

    decoded: np.ndarray  # bool per record: every value of that event was read here
    record: np.ndarray  # int64 per row: the record it came from
    tag: np.ndarray  # int32 per row: index into ``tags``
    tags: list[str]
    step: np.ndarray
    wall_time: np.ndarray
    value: np.ndarray


def _at(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The bytes at ``pos``; an offset past the end reads the last byte (a malformed record, which the
    structural checks then reject)."""
    return buf[np.minimum(pos, len(buf) - 1)]


def _little_endian(buf: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """The ``width``-byte little-endian words at ``pos``, as uint64, a byte at a time (no index matrix)."""
    word = np.zeros(len(pos), dtype=np.uint64)
    for k in range(width):
        word |= _at(buf, pos + k).astype(np.uint64) << np.uint64(8 * k)
    return word


def _varint(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode the varint at each offset of ``pos``: (value, length in bytes; 0 where malformed)."""
    value = np.zeros(len(pos), dtype=np.uint64)
    length = np.zeros(len(pos), dtype=np.int64)
    todo = np.arange(len(pos))
    for k in range(10):  # a byte at a time, only for the varints that are not done yet
        byte = _at(buf, pos[todo] + k)
        value[todo] |= (byte & 0x7F).astype(np.uint64) << np.uint64(7 * k)
        done = byte < 0x80
        length[todo[done]] = k + 1
        todo = todo[~done]
        if not len(todo):
            break
    return value, length


def decode_simple_events(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> SimpleRows:
    """Read, without a protobuf object per event, every event laid out as TensorBoard's ``Event``
    proto serializes ``wall_time``, ``step`` and a summary of ``simple_value`` values with no metadata
    (what torch, tensorboardX, Lightning and tbscope write for scalars). ``buf`` is the file as uint8.
    Records of any other shape are left to the protobuf path:
    ``decoded`` is False for them, and a record is only decoded when every byte of it is accounted for.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = starts + np.asarray(lengths, dtype=np.int64)
    ok = (ends - starts >= 11) & (_at(buf, starts) == 0x09)  # field 1, wall_time, fixed64
    idx = np.flatnonzero(ok)
    s = starts[idx]
    wall = _little_endian(buf, s + 1, 8).view(np.float64)
    pos = s + 9
    has_step = _at(buf, pos) == 0x10  # field 2, step, varint (absent when 0)
    step, step_len = _varint(buf, pos + 1)
    step = np.where(has_step, step, 0)
    good = ~has_step | (step_len > 0)
    pos = np.where(has_step, pos + 1 + step_len.astype(np.int64), pos)
    good &= _at(buf, pos) == 0x2A  # field 5, summary
    summary_len, n = _varint(buf, pos + 1)
    good &= n > 0
    cursor = pos + 1 + n.astype(np.int64)
    good &= cursor + summary_len.astype(np.int64) == ends[idx]
    rows_event, rows_tag_pos, rows_tag_len, rows_value_pos = [], [], [], []
    active = good & (cursor < ends[idx])
    while active.any():
        a = np.flatnonzero(active)
        c = cursor[a]
        fine = _at(buf, c) == 0x0A  # Summary.value
        value_len, n1 = _varint(buf, c + 1)
        body = c + 1 + n1.astype(np.int64)
        fine &= (n1 > 0) & (_at(buf, body) == 0x0A)  # Value.tag
        tag_len, n2 = _varint(buf, body + 1)
        tag_pos = body + 1 + n2.astype(np.int64)
        after_tag = tag_pos + tag_len.astype(np.int64)
        value_end = body + value_len.astype(np.int64)
        fine &= (n2 > 0) & (after_tag + 5 == value_end) & (value_end <= ends[idx][a])
        fine &= _at(buf, after_tag) == 0x15  # Value.simple_value, fixed32
        good[a[~fine]] = False
        keep = a[fine]
        rows_event.append(keep)
        rows_tag_pos.append(tag_pos[fine])
        rows_tag_len.append(tag_len[fine].astype(np.int64))
        rows_value_pos.append(after_tag[fine] + 1)
        cursor[keep] = value_end[fine]
        active = np.zeros_like(active)
        active[keep] = cursor[keep] < ends[idx][keep]
    event = np.concatenate(rows_event) if rows_event else np.zeros(0, np.int64)
    tag_pos = np.concatenate(rows_tag_pos) if rows_tag_pos else np.zeros(0, np.int64)
    tag_len = np.concatenate(rows_tag_len) if rows_tag_len else np.zeros(0, np.int64)
    value_pos = np.concatenate(rows_value_pos) if rows_value_pos else np.zeros(0, np.int64)
    keep_rows = good[event]  # drop rows of events that turned out to hold something else
    event, tag_pos, tag_len, value_pos = event[keep_rows], tag_pos[keep_rows], tag_len[keep_rows], value_pos[keep_rows]
    order = np.argsort(event, kind="stable")  # rows in record order, values in event order
    event, tag_pos, tag_len, value_pos = event[order], tag_pos[order], tag_len[order], value_pos[order]
    tags, tag_codes = _tag_codes(buf, tag_pos, tag_len)
    decoded = np.zeros(len(starts), dtype=bool)
    decoded[idx[good]] = True
    return SimpleRows(
        decoded=decoded,
        record=idx[event],
        tag=tag_codes,
        tags=tags,
        step=step[event].astype(np.int64),
        wall_time=wall[event],
        value=_little_endian(buf, value_pos, 4).astype(np.uint32).view(np.float32).astype(np.float64),
    )


def _tag_codes(buf: np.ndarray, pos: np.ndarray, length: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Distinct tag strings and each row's index into them, grouping rows by tag length first and
    copying tag bytes a column at a time (no index matrix as large as the rows times the length)."""
    tags: list[str] = []
    codes = np.empty(len(pos), dtype=np.int32)
    for size in np.unique(length).tolist():
        rows = np.flatnonzero(length == size)
        raw = np.empty((len(rows), max(size, 1)), dtype=np.uint8)
        raw[:, 0] = 0
        for k in range(size):
            raw[:, k] = _at(buf, pos[rows] + k)
        unique, inverse = np.unique(raw.view(f"V{max(size, 1)}").reshape(-1), return_inverse=True)
        tags.extend(bytes(u)[:size].decode("utf-8", "replace") for u in unique)
        codes[rows] = len(tags) - len(unique) + inverse.reshape(-1)
    return tags, codes
