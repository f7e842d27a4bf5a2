"""Meshes and point clouds: vertices, and optionally faces and colours, for the Mesh dashboard."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.mesh import metadata
from tensorboard.plugins.mesh.plugin_data_pb2 import MeshPluginData
from tensorboard.util import tensor_util


def check_shapes(**parts: tuple[int, ...] | None) -> None:
    """Raise a ValueError unless each given part (vertices, colors, faces) is shaped (B, N, 3)."""
    for name, shape in parts.items():
        if shape is not None and (len(shape) != 3 or shape[2] != 3):
            raise ValueError(f"add_mesh: {name} must have shape (B, N, 3), got {shape}")


def mesh_values(
    tag: str,
    vertices: np.ndarray,
    colors: np.ndarray | None,
    faces: np.ndarray | None,
    config: Mapping[str, Any] | None,
) -> list[Summary.Value]:
    """One summary value per part, tied together by the plugin's component bitmask."""
    parts = [
        (MeshPluginData.VERTEX, vertices.astype(np.float32)),
        (MeshPluginData.FACE, None if faces is None else faces.astype(np.int32)),
        (MeshPluginData.COLOR, None if colors is None else colors.astype(np.uint8)),
    ]
    present = [(kind, data) for kind, data in parts if data is not None]
    components = metadata.get_components_bitmask([kind for kind, _ in present])
    json_config = json.dumps(config or {}, sort_keys=True)  # the Mesh dashboard parses it: "{}" for none, as torch
    return [
        Summary.Value(
            tag=metadata.get_instance_name(tag, kind),
            tensor=tensor_util.make_tensor_proto(data),
            metadata=metadata.create_summary_metadata(
                tag, None, kind, components, list(data.shape), json_config=json_config
            ),
        )
        for kind, data in present
    ]
