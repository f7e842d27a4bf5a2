"""Scalars: a number at a step, as ``simple_value`` (what torch writes) or as a scalars-plugin tensor."""

from __future__ import annotations

from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.plugins.scalar import metadata

_METADATA = metadata.create_summary_metadata(display_name="", description="")


def simple_value(tag: str, value: float) -> Summary.Value:
    """A float32 scalar in the classic ``simple_value`` field, the most compact encoding."""
    return Summary.Value(tag=tag, simple_value=value)


def tensor_value(tag: str, value: float, double_precision: bool = False) -> Summary.Value:
    """A scalar as a rank-0 tensor with scalars-plugin metadata (torch's ``new_style=True``).

    ``double_precision`` keeps all 64 bits of the value.
    """
    if double_precision:
        tensor = TensorProto(dtype=types_pb2.DT_DOUBLE, double_val=[value])
    else:
        tensor = TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value])
    return Summary.Value(tag=tag, tensor=tensor, metadata=_METADATA)
