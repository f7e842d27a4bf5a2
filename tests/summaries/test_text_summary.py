"""summaries/text.py: Markdown text for TensorBoard's Text dashboard."""

from __future__ import annotations

from pathlib import Path

from tensorboard.plugins.text import text_plugin
from tensorboard.util import tensor_util

from conftest import logged
from tbscope.summaries import text


def test_text_reads_back_for_the_text_plugin_and_renders_as_markdown(tmp_path: Path) -> None:
    acc = logged(tmp_path, text.text_value("notes", "**lr** 0.1 <script>x</script>"), step=3)
    (event,) = acc.Tensors("notes")
    assert acc.SummaryMetadata("notes").plugin_data.plugin_name == "text"
    raw = tensor_util.make_ndarray(event.tensor_proto).item().decode()
    assert raw == "**lr** 0.1 <script>x</script>" and event.step == 3
    html = text_plugin.text_array_to_html(tensor_util.make_ndarray(event.tensor_proto), enable_markdown=True)
    assert "<strong>lr</strong>" in html and "<script>" not in html
    assert text.text_of(text.text_value("a", "b"), "text") == "b"
