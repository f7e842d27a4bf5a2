"""summaries/wire.py: events encoded as bytes are the bytes TensorBoard's own protos encode."""

from __future__ import annotations

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary

from tbscope.summaries import wire


def test_an_event_of_summary_bytes_equals_the_proto_encoding_for_any_step() -> None:
    values = [Summary.Value(tag="a", simple_value=1.5), Summary.Value(tag="b/c", simple_value=-2.0)]
    summary = b"".join(wire.field_of(v) for v in values)
    for step in (0, 1, 300, -5, 2**62):
        expected = Event(wall_time=1234.5, step=step, summary=Summary(value=values)).SerializeToString()
        assert wire.event(1234.5, step, summary) == expected
        assert Event.FromString(wire.event(1234.5, step, summary)).summary.value[1].tag == "b/c"
    assert [wire.varint(n) for n in (0, 127, 128, 300)] == [b"\x00", b"\x7f", b"\x80\x01", b"\xac\x02"]
