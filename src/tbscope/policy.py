"""Policies: small frozen values that decide, before any work is done, whether a call is logged."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """How much a run may write before heavy data (images, histograms, embeddings, audio, video,
    meshes) stops being logged. Scalars and text always go on.

    ``max_run_bytes`` is the size of the run's directory past which heavy data stops, with one
    warning and a text note in the run (tag ``tbscope/budget``) saying when and why. The default,
    1 GiB, keeps a run small enough for a laptop to hold hundreds of them; ``None`` means no limit.

    Example:
        >>> Budget(max_run_bytes=200 * 2**20).max_run_bytes
        209715200
    """

    max_run_bytes: int | None = 1 << 30

    def __post_init__(self) -> None:
        if self.max_run_bytes is not None and self.max_run_bytes <= 0:
            raise ValueError(f"Budget: max_run_bytes must be positive or None, got {self.max_run_bytes}")
