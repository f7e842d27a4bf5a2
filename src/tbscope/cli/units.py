"""Sizes and durations as the command line takes and prints them: ``20GB``, ``30d``, ``1.2 MB``, ``1h02m``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}  # fmt: skip
_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_bytes(text: str) -> int:
    """``"20GB"`` -> 20_000_000_000; ``"1.5GiB"``, ``"500M"`` and plain numbers too."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 500MB, 20GB, 1.5GiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def parse_duration(text: str) -> timedelta:
    """``"30d"`` -> 30 days; s, m, h, d and w."""
    if text.strip().startswith("-"):
        raise ValueError(f"a duration is at least 0, got {text!r} (examples: 12h, 30d, 2w)")
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhdw])\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (examples: 12h, 30d, 2w)")
    return timedelta(seconds=float(match.group(1)) * _DURATIONS[match.group(2)])


def format_bytes(n: float) -> str:
    """``1234567`` -> ``"1.2 MB"``."""
    if abs(n) < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1000
        if abs(n) < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} TB"


def format_duration(seconds: float) -> str:
    """``3725`` -> ``"1h02m"``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
