"""Hydra: a run started inside a Hydra app is named after the command line's overrides and records Hydra's
output directory; the jobs of a multirun sweep are runs of one experiment, side by side in TensorBoard's
HParams dashboard and in ``tbscope compare``. Nothing here imports Hydra unless the app already has."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

# The characters a run's name may hold (see ``runs.check_name``); anything else becomes "-".
_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")
MAX_NAME = 80


def hydra_job() -> dict[str, Any] | None:
    """What Hydra says of the job this process runs (overrides, output directory, job number), or None
    outside a Hydra app."""
    if "hydra" not in sys.modules:
        return None
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return None
    config = HydraConfig.get()
    return {
        "overrides": [str(o) for o in config.overrides.task],
        "output_dir": str(config.runtime.output_dir),
        "job": None if OmegaConf.is_missing(config.job, "num") else config.job.num,  # MISSING outside a multirun
        "mode": str(config.mode.name) if config.mode is not None else None,
    }


def name_from_overrides(overrides: Sequence[str]) -> str | None:
    """A run name people can read, from Hydra's overrides; None without any.

    Example:
        >>> name_from_overrides(["lr=0.01", "model.width=16", "+tags=[a,b]"])
        'lr-0.01_model.width-16_tags-a-b'
    """
    parts = [_UNSAFE.sub("-", o.lstrip("+~")).strip("-") for o in overrides]
    name = "_".join(p for p in parts if p)[:MAX_NAME].strip("._-")
    return name or None
