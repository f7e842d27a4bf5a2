"""summaries/embedding.py: tensors, metadata and sprites for TensorBoard's Projector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

from tbscope.summaries import embedding


def test_an_embedding_is_written_where_the_projector_config_says(tmp_path: Path) -> None:
    mat = np.arange(12, dtype=np.float32).reshape(4, 3)
    label_img = np.zeros((4, 3, 8, 8), dtype=np.float32)
    embedding.write_embedding(tmp_path, "00000/feat", "feat:00000", mat, ["a", "b", "c", "d"], None, label_img)
    config = text_format.Parse((tmp_path / embedding.CONFIG_NAME).read_text(), ProjectorConfig())
    (entry,) = config.embeddings
    assert entry.tensor_name == "feat:00000"
    rows = np.loadtxt(tmp_path / entry.tensor_path, delimiter="\t", ndmin=2)
    assert rows.shape == (4, 3) and (rows == mat).all()
    assert (tmp_path / entry.metadata_path).read_text().split() == ["a", "b", "c", "d"]
    assert list(entry.sprite.single_image_dim) == [8, 8] and (tmp_path / entry.sprite.image_path).is_file()
