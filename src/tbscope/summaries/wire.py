"""The few protobuf wire-format pieces the logging hot path writes as bytes rather than through a message
object: a summary value as its field in ``Summary``, and an ``Event`` around a step's summary bytes.

They produce exactly what ``SerializeToString`` of TensorBoard's own ``Event`` and ``Summary`` protos
produces (tests check it byte for byte); building them directly saves a message object, and its
copy into the event, for every scalar logged.
"""

from __future__ import annotations

import struct

from tensorboard.compat.proto.summary_pb2 import Summary

_DOUBLE = struct.Struct("<d")
# Field tags: (field number << 3) | wire type (1: 64-bit, 0: varint, 2: length-delimited).
_EVENT_WALL_TIME, _EVENT_STEP, _EVENT_SUMMARY = b"\x09", b"\x10", b"\x2a"
_SUMMARY_VALUE = b"\x0a"


def varint(n: int) -> bytes:
    """``n`` as a protobuf varint; a negative ``n`` as its 64-bit two's complement, as int64 fields are."""
    if 0 <= n < 0x80:
        return bytes((n,))
    n &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def value_field(serialized_value: bytes) -> bytes:
    """A serialized ``Summary.Value`` as one entry of ``Summary.value``; entries concatenate into a
    ``Summary``."""
    return _SUMMARY_VALUE + varint(len(serialized_value)) + serialized_value


def field_of(value: Summary.Value) -> bytes:
    """``value_field`` of a ``Summary.Value`` message."""
    return value_field(value.SerializeToString())


def event(wall_time: float, step: int, summary: bytes) -> bytes:
    """A serialized ``Event(wall_time=..., step=..., summary=...)`` around a serialized ``Summary``.
    Like protobuf, it leaves out a zero wall time and step."""
    out = _EVENT_WALL_TIME + _DOUBLE.pack(wall_time) if wall_time or _DOUBLE.pack(wall_time)[7] else b""
    if step:
        out += _EVENT_STEP + varint(step)
    return out + _EVENT_SUMMARY + varint(len(summary)) + summary
