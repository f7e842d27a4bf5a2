"""The Diff view: what changed from one trace (or one step of it) to another, from the step time down
through the categories to the operators and the kernels each launched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tbscope.profiler.overview import CATEGORIES, analyze, span
from tbscope.profiler.tables import kernels, operators
from tbscope.profiler.trace import Trace

# Operators, and kernels under each, at most.
TOP = 20


@dataclass
class _Side:
    trace: Trace
    steps: int
    step_us: float
    categories: dict[str, float]


def diff(base: Trace, other: Trace, base_step: int | None = None, other_step: int | None = None) -> dict[str, Any]:
    """What changed from ``base`` to ``other`` (each its one step ``*_step`` when given, else the mean of
    its steps): the step time, each category, and the operators whose device and host time changed most,
    each with the kernels it launched (``kernels``), and the kernels overall. Times are per step, in us.

    Raises ValueError for a step a trace lacks.
    """
    sides = []
    for trace, step in ((base, base_step), (other, other_step)):
        steps = analyze(trace).steps
        part = span(trace, step, {s.step: (s.start, s.end) for s in steps}) if step is not None else trace
        chosen = [s for s in steps if s.step == step] if step is not None else steps
        n = max(len(chosen), 1)
        categories = {c: sum(s.breakdown_us[c] for s in chosen) / n for c in CATEGORIES}
        sides.append(_Side(part, n, sum(s.duration_us for s in chosen) / n, categories))
    a, b = sides

    def changes(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], key: str, time: str) -> list[Any]:
        before = {r[key]: r[time] / a.steps for r in rows_a}
        after = {r[key]: r[time] / b.steps for r in rows_b}
        deltas = [{"name": name, "base_us": before.get(name, 0.0), "other_us": after.get(name, 0.0),
                   "delta_us": after.get(name, 0.0) - before.get(name, 0.0)}
                  for name in before.keys() | after.keys()]  # fmt: skip
        return sorted(deltas, key=lambda d: (-abs(d["delta_us"]), d["name"]))

    by_operator = [kernels(side.trace, "operator") for side in sides]
    ops = changes(operators(a.trace), operators(b.trace), "name", "device_self_us")[:TOP]
    for row in ops:
        launched = [[r for r in side if r["operator"] == row["name"]] for side in by_operator]
        row["kernels"] = changes(launched[0], launched[1], "name", "total_us")[:TOP]
    host = changes(operators(a.trace), operators(b.trace), "name", "host_self_us")[:TOP]
    return {
        "steps": {"base": base_step, "other": other_step},
        "step_time_us": {"base": a.step_us, "other": b.step_us, "delta": b.step_us - a.step_us},
        "categories_us": {
            c: {
                "base": a.categories[c],
                "other": b.categories[c],
                "delta": b.categories[c] - a.categories[c],
            }
            for c in CATEGORIES
        },
        "operators": ops,
        "operators_host": host,
        "kernels": changes(kernels(a.trace), kernels(b.trace), "name", "total_us")[:TOP],
    }
