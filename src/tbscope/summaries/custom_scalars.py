"""Custom scalars: the layout of the Custom Scalars dashboard (charts that combine several tags)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.plugins.custom_scalar import layout_pb2, metadata

Layout = Mapping[str, Mapping[str, Sequence[Any]]]


def check_layout(layout: Layout) -> None:
    """Raise a ValueError unless ``layout`` is ``{category: {title: [kind, tags]}}`` as torch takes it.

    ``kind`` is "Multiline" with a list of tags (regular expressions), or "Margin" with the three
    tags ``[value, lower, upper]``.
    """
    for category, charts in layout.items():
        for title, chart in charts.items():
            kind, tags = (chart[0], chart[1]) if len(chart) == 2 else (None, None)
            if kind == "Multiline" or (kind == "Margin" and tags is not None and len(tags) == 3):
                continue
            raise ValueError(
                f"add_custom_scalars: chart {category!r}/{title!r} must be ['Multiline', [tags]] or "
                f"['Margin', [value, lower, upper]], got {chart!r}"
            )


def layout_value(layout: Layout) -> Summary.Value:
    """The dashboard layout as the custom scalars plugin's config summary."""
    categories = []
    for category, charts in layout.items():
        chart_protos = []
        for title, (kind, tags) in charts.items():
            if kind == "Multiline":
                chart = layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(tag=list(tags)))
            else:
                value, lower, upper = tags
                series = layout_pb2.MarginChartContent.Series(value=value, lower=lower, upper=upper)
                chart = layout_pb2.Chart(title=title, margin=layout_pb2.MarginChartContent(series=[series]))
            chart_protos.append(chart)
        categories.append(layout_pb2.Category(title=category, chart=chart_protos))
    tensor = TensorProto(
        dtype=types_pb2.DT_STRING,
        string_val=[layout_pb2.Layout(category=categories).SerializeToString()],
    )
    return Summary.Value(tag=metadata.CONFIG_SUMMARY_TAG, tensor=tensor, metadata=metadata.create_summary_metadata())
