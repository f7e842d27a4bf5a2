"""summaries/scalar.py: simple values and scalars-plugin tensors, as TensorBoard's loader reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tensorboard.util import tensor_util

from conftest import logged
from tbscope.summaries import scalar, wire


def test_a_simple_value_reads_back_as_a_float32_scalar(tmp_path: Path) -> None:
    acc = logged(tmp_path, scalar.simple_value("train/loss", 0.1), step=7)
    (event,) = acc.Scalars("train/loss")
    assert (event.step, event.value) == (7, float(np.float32(0.1)))


def test_the_bulk_field_encoder_writes_what_the_proto_encoder_writes(tmp_path: Path) -> None:
    field, stored = scalar.simple_value_field(scalar.simple_head("val/acc"), 0.875)
    assert field == wire.field_of(scalar.simple_value("val/acc", 0.875)) and stored == 0.875
    assert logged(tmp_path, field).Scalars("val/acc")[0].value == 0.875


def test_a_double_precision_tensor_keeps_64_bits_for_the_scalars_plugin(tmp_path: Path) -> None:
    value = 1.0 + 2**-40  # no float32 holds it
    acc = logged(tmp_path, scalar.tensor_value("lr", value, double_precision=True))
    (event,) = acc.Tensors("lr")
    assert tensor_util.make_ndarray(event.tensor_proto).item() == value
    assert acc.SummaryMetadata("lr").plugin_data.plugin_name == "scalars"
    assert scalar.value_of(scalar.tensor_value("lr", value, True), "scalars") == value
