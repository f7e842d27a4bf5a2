"""summaries/tensor.py: a raw tensor, read back as the same array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tensorboard.util import tensor_util

from conftest import logged
from tbscope.summaries import tensor


def test_a_raw_tensor_reads_back_with_its_shape_dtype_and_values(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    (event,) = logged(tmp_path, tensor.tensor_value("raw", array)).Tensors("raw")
    back = tensor_util.make_ndarray(event.tensor_proto)
    assert back.dtype == np.int32 and back.shape == (3, 4) and (back == array).all()
