"""summaries/graph.py: a traced model's graph for TensorBoard's Graphs dashboard."""

from __future__ import annotations

from pathlib import Path

import torch

from conftest import logged
from tbscope.summaries import graph


def test_a_traced_model_reads_back_as_a_graph_with_its_modules_scopes(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    model(torch.zeros(1, 3, 8, 8))
    traced, classes = graph.trace(model, torch.zeros(1, 3, 8, 8), strict=True)
    acc = logged(tmp_path, graph.graph_event(traced, classes))
    nodes = acc.Graph().node
    names = [n.name for n in nodes]
    assert any("Conv2d" in name for name in names) and any("Linear" in name for name in names)
    assert any(n.op == "aten::_convolution" or "conv" in n.op for n in nodes)
