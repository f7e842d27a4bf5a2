"""Text: a Markdown string at a step, shown by TensorBoard's Text dashboard."""

from __future__ import annotations

from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.text import metadata

_METADATA = metadata.create_summary_metadata(display_name="", description="")


def text_value(tag: str, text: str) -> Summary.Value:
    """The string ``text`` (Markdown) as a rank-1 string tensor of one element."""
    tensor = TensorProto(
        dtype=types_pb2.DT_STRING,
        string_val=[text.encode("utf-8")],
        tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]),
    )
    return Summary.Value(tag=tag, tensor=tensor, metadata=_METADATA)


def text_of(value: Summary.Value, plugin: str | None) -> str | None:
    """The text a text-plugin value holds (several strings are joined by newlines)."""
    if value.HasField("tensor") and plugin == metadata.PLUGIN_NAME:
        return "\n".join(s.decode("utf-8", "replace") for s in value.tensor.string_val)
    return None
