"""Raw tensors: an array stored as a TensorProto with no plugin, as torch's ``add_tensor`` does."""

from __future__ import annotations

import numpy as np
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.util import tensor_util


def tensor_value(tag: str, array: np.ndarray) -> Summary.Value:
    """``array`` as a tensor summary; readers get it back with ``tensor_util.make_ndarray``."""
    return Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(array))
