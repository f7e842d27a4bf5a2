"""summaries/mesh.py: point clouds and meshes for TensorBoard's Mesh dashboard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tensorboard.plugins.mesh import metadata
from tensorboard.util import tensor_util

from conftest import logged
from tbscope.summaries import mesh


def test_vertices_colors_and_faces_read_back_under_the_mesh_plugins_tags(tmp_path: Path) -> None:
    vertices = np.random.rand(1, 4, 3).astype(np.float32)
    colors = np.full((1, 4, 3), 200, dtype=np.uint8)
    faces = np.array([[[0, 1, 2], [0, 2, 3]]], dtype=np.int32)
    acc = logged(tmp_path, mesh.mesh_values("cloud", vertices, colors, faces, {"camera": {"fov": 60}}))
    tags = set(acc.Tags()["tensors"])
    assert tags == {"cloud_VERTEX", "cloud_COLOR", "cloud_FACE"}
    back = tensor_util.make_ndarray(acc.Tensors("cloud_VERTEX")[0].tensor_proto)
    assert np.allclose(back, vertices)
    meta = metadata.parse_plugin_metadata(acc.SummaryMetadata("cloud_FACE").plugin_data.content)
    assert meta.name == "cloud" and list(meta.shape) == [1, 2, 3]
    assert '"fov": 60' in meta.json_config


def test_a_mesh_without_a_config_carries_the_empty_json_object_the_dashboard_parses(tmp_path: Path) -> None:
    acc = logged(tmp_path, mesh.mesh_values("cloud", np.random.rand(1, 4, 3), None, None, None))
    meta = metadata.parse_plugin_metadata(acc.SummaryMetadata("cloud_VERTEX").plugin_data.content)
    assert json.loads(meta.json_config) == {}  # torch writes "{}" too; "" is no JSON
