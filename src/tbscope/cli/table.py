"""Tables as the commands print them: aligned text for people, Markdown, CSV or JSON for tools."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any


def cell(value: Any) -> str:
    """A value as a table shows it: floats to 4 significant digits, NaN and None as "-"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN and infinity made None: JSON has no NaN (``json.dumps`` would write one
    anyway, and no other JSON reader would take it).

    Example:
        >>> json_safe({"acc": float("nan"), "steps": [1, float("inf")]})
        {'acc': None, 'steps': [1, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def as_json(value: Any) -> str:
    """``value`` as JSON for scripts: indented, NaN as null (see ``json_safe``)."""
    return json.dumps(json_safe(value), indent=1, allow_nan=False, default=str)


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]], style: str = "text") -> str:
    """``rows`` under ``headers`` as "text" (aligned columns), "markdown", "csv" or "json"."""
    if style == "json":
        return as_json([dict(zip(headers, row, strict=True)) for row in rows])
    if style == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
        return out.getvalue().rstrip("\n")
    cells = [[cell(v) for v in row] for row in rows]
    if style == "markdown":
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(lines)
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    numeric = [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in cells)]).rstrip()


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) or value is None
