"""summaries/custom_scalars.py: the Custom Scalars dashboard's layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.plugins.custom_scalar import layout_pb2

from conftest import logged
from tbscope.summaries import custom_scalars


def test_a_layout_reads_back_as_the_plugins_layout_proto(tmp_path: Path) -> None:
    layout = {
        "loss": {"train vs val": ["Multiline", ["train/loss", "val/loss"]]},
        "acc": {"band": ["Margin", ["a", "lo", "hi"]]},
    }
    acc = logged(tmp_path, custom_scalars.layout_value(layout))
    (event,) = acc.Tensors("custom_scalars__config__")
    parsed = layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
    titles = {c.title: [ch.title for ch in c.chart] for c in parsed.category}
    assert titles == {"loss": ["train vs val"], "acc": ["band"]}
    chart = parsed.category[0].chart[0]
    assert list(chart.multiline.tag) == ["train/loss", "val/loss"]
    with pytest.raises(ValueError, match="Margin"):
        custom_scalars.check_layout({"acc": {"band": ["Margin", ["only-two", "tags"]]}})
