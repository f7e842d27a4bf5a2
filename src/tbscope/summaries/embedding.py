"""Embeddings: tensors, metadata and sprite files for the Projector, and its config merged on disk.

The Projector reads ``projector_config.pbtxt`` in the run directory. Every call, from this process
or another, adds its embedding to that file under a lock and replaces it atomically, so no call
ever overwrites another's entry.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import text_format
from PIL import Image
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

from tbscope import atomic
from tbscope.summaries.image import to_uint8

CONFIG_NAME = "projector_config.pbtxt"
# The Projector cannot load a sprite larger than this on either side.
MAX_SPRITE_SIDE = 8192

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent writers there may lose an entry
    fcntl = None  # type: ignore[assignment]


def check_inputs(
    mat_shape: tuple[int, ...],
    metadata: Sequence[Any] | None,
    metadata_header: Sequence[str] | None,
    label_img_shape: tuple[int, ...] | None,
) -> None:
    """Raise a ValueError naming the argument whose shape does not fit ``mat`` (N, D)."""
    if len(mat_shape) != 2 or 0 in mat_shape:
        raise ValueError(f"add_embedding: mat must have shape (N, D), got {mat_shape}")
    n = mat_shape[0]
    if metadata is not None and len(metadata) != n:
        raise ValueError(f"add_embedding: metadata has {len(metadata)} rows, mat has {n}")
    if metadata_header is not None and metadata is not None:
        bad = [i for i, row in enumerate(metadata) if len(row) != len(metadata_header)]
        if bad:
            raise ValueError(
                f"add_embedding: metadata row {bad[0]} has {len(metadata[bad[0]])} columns, "
                f"metadata_header has {len(metadata_header)}"
            )
    if label_img_shape is not None and (
        len(label_img_shape) != 4 or label_img_shape[0] != n or label_img_shape[1] not in (1, 3, 4)
    ):
        raise ValueError(f"add_embedding: label_img must have shape (N={n}, C in 1/3/4, H, W), got {label_img_shape}")


def sprite(label_img: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """A square sprite sheet of NCHW thumbnails and the size of one thumbnail (height, width).

    Thumbnails are shrunk, with a warning, when the sheet would exceed the Projector's limit.
    """
    n, _, h, w = label_img.shape
    per_row = math.ceil(math.sqrt(n))
    thumbs = to_uint8(label_img.transpose(0, 2, 3, 1))
    if thumbs.shape[3] == 1:
        thumbs = np.repeat(thumbs, 3, axis=3)
    scale = min(1.0, MAX_SPRITE_SIDE / (per_row * max(h, w)))
    if scale < 1.0:
        new_h, new_w = max(1, int(h * scale)), max(1, int(w * scale))
        warnings.warn(
            f"add_embedding: a sprite of {n} images of {h}x{w} would be {per_row * h}x{per_row * w}, "
            f"over the Projector's {MAX_SPRITE_SIDE}x{MAX_SPRITE_SIDE}; thumbnails shrunk to {new_h}x{new_w}",
            RuntimeWarning,
            stacklevel=2,
        )
        thumbs = np.stack([np.asarray(Image.fromarray(t).resize((new_w, new_h))) for t in thumbs])
        h, w = new_h, new_w
    sheet = np.zeros((per_row * h, per_row * w, thumbs.shape[3]), dtype=np.uint8)
    for i, thumb in enumerate(thumbs):
        row, col = divmod(i, per_row)
        sheet[row * h : (row + 1) * h, col * w : (col + 1) * w] = thumb
    return sheet, (h, w)


def _cell(value: Any) -> str:
    return str(value).replace("\t", " ").replace("\n", " ")


def write_embedding(
    log_dir: Path,
    subdir: str,
    tensor_name: str,
    mat: np.ndarray,
    metadata: Sequence[Any] | None,
    metadata_header: Sequence[str] | None,
    label_img: np.ndarray | None,
) -> None:
    """Write the files of one embedding under ``log_dir/subdir`` and add it to the Projector config."""
    folder = log_dir / subdir
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "tensors.tsv", np.asarray(mat, dtype=np.float64), fmt="%.9g", delimiter="\t")
    entry = ProjectorConfig().embeddings.add()
    entry.tensor_name = tensor_name
    entry.tensor_path = f"{subdir}/tensors.tsv"
    if metadata is not None:
        with open(folder / "metadata.tsv", "w", encoding="utf-8") as f:
            if metadata_header is not None:
                f.write("\t".join(_cell(c) for c in metadata_header) + "\n")
                f.writelines("\t".join(_cell(c) for c in row) + "\n" for row in metadata)
            else:
                f.writelines(_cell(v) + "\n" for v in metadata)
        entry.metadata_path = f"{subdir}/metadata.tsv"
    if label_img is not None:
        sheet, (h, w) = sprite(label_img)
        Image.fromarray(sheet).save(folder / "sprite.png")
        entry.sprite.image_path = f"{subdir}/sprite.png"
        entry.sprite.single_image_dim.extend([w, h])
    merge_config(log_dir, entry)


@contextlib.contextmanager
def _locked(log_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``log_dir`` itself (a lock on the folder, not a file left in it)."""
    if fcntl is None:
        yield
        return
    fd = os.open(log_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def merge_config(log_dir: Path, entry: Any) -> None:
    """Add ``entry`` to the run's Projector config, replacing an entry of the same tensor name."""
    path = log_dir / CONFIG_NAME
    with _locked(log_dir):
        config = ProjectorConfig()
        if path.exists():
            text_format.Parse(path.read_text(encoding="utf-8"), config)
        kept = [e for e in config.embeddings if e.tensor_name != entry.tensor_name]
        del config.embeddings[:]
        config.embeddings.extend([*kept, entry])
        atomic.write_text(path, text_format.MessageToString(config))
