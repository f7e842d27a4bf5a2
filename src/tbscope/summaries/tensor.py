"""Raw tensors: an array stored as a TensorProto under the plugin name "tensor", as torch's ``add_tensor`` does."""

from __future__ import annotations

import numpy as np
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.util import tensor_util


def tensor_value(tag: str, array: np.ndarray) -> Summary.Value:
    """``array`` as a tensor summary; readers get it back with ``tensor_util.make_ndarray``."""
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="tensor"))  # torch's, for tools
    return Summary.Value(tag=tag, metadata=metadata, tensor=tensor_util.make_tensor_proto(array))
