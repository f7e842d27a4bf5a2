"""The offline report: one HTML file that holds everything it shows (runs, curves, groups, pictures, PR curves,
profiles), made to be sent to a colleague and opened in any browser without a network.

The data is gathered here (the groups' statistics from ``groups``, one home), bounded by a byte budget, and
written into the page as JSON beside the page's own script and style, which are read from the package: no
request leaves the file. Curves are down-sampled per line keeping each bucket's lowest and highest point, so
spikes survive; the exact values are one ``tbscope export`` away. Pictures are the last logged image of each
run and tag, downscaled and re-encoded when the budget needs it; what was left out is listed in the report.

Example:
    >>> import tempfile, tbscope
    >>> from pathlib import Path
    >>> root = tempfile.mkdtemp()
    >>> with tbscope.init("demo", root=root, config={"lr": 0.1}) as run:
    ...     for step in range(3):
    ...         run.writer.add_scalar("val/acc", 0.5 + step / 10, step)
    >>> out = Path(root) / "report.html"
    >>> made = build(root, out, progress=False)
    >>> made.runs, out.read_text().count("<script")
    (1, 2)
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tbscope import catalog, groups, reader, rundir

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MAX_BYTES = 20_000_000
# Points a curve keeps at most in the file (down-sampled so that spikes survive).
CURVE_POINTS = 600
# Scalar tags drawn besides the headline metrics when none are asked for.
DEFAULT_EXTRA_TAGS = 8
# tbscope's own scalars (model watching, the profiler's): drawn only when --tags asks for them.
OWN_TAGS = ("watch/",)
# The longest side of a picture in the report before any budget applies.
IMAGE_MAX_SIDE = 1024
_STATIC = Path(__file__).with_name("static")
# The shared front-end modules the report's page imports, inlined in this order before the page itself.
_SHARED = tuple(
    Path(__file__).parent / "plugins" / "static" / name
    for name in ("charts.js", "tables.js", "theme.js", "categories.js")
)


@dataclass
class Made:
    """What ``build`` wrote: the file, its size, and what it left out to stay within the budget."""

    path: Path
    bytes: int
    runs: int
    seconds: float
    left_out: list[str] = field(default_factory=list)


class _Progress:
    """One line per stage on stderr, with the time so far: building a large report takes a while."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.start = enabled, time.perf_counter()

    def __call__(self, text: str) -> None:
        if self.enabled:
            print(f"tbscope report: {text} ({time.perf_counter() - self.start:.1f} s)", file=sys.stderr, flush=True)


def _joined(values: np.ndarray, integers: bool = False) -> str:
    """A column as compact text for the page (``"1,2.5,NaN"``): a third of JSON's size for long curves."""
    if integers:
        return ",".join(str(int(v)) for v in values)
    return ",".join("NaN" if not math.isfinite(v) else f"{v:.6g}" for v in values.tolist())


def _run_curves(frame: pd.DataFrame, runs: set[str], tags: Sequence[str], points: int) -> dict[str, Any]:
    """Per tag and run, the run's own line, down-sampled to about ``points`` (spikes kept)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for (tag, run), (steps, values) in groups.run_lines(frame, runs, tags).items():
        kept = groups.downsample(steps.size, values, points)
        out.setdefault(tag, {})[run] = {"step": _joined(steps[kept], True), "value": _joined(values[kept])}
    return out


def _group_curves(table: pd.DataFrame) -> dict[str, dict[str, dict[str, str]]]:
    out: dict[str, dict[str, dict[str, str]]] = {}
    for (tag, label), rows in table.groupby(["tag", "group"], sort=False):
        line = {"step": _joined(rows["step"].to_numpy(), True)}
        line.update({name: _joined(rows[name].to_numpy(dtype=np.float64)) for name in groups.STATS})
        out.setdefault(str(tag), {})[str(label)] = line
    return out


def _tags(frame: pd.DataFrame) -> list[str]:
    """The scalar tags of ``frame``, in the order they were first written (``read_scalars`` makes the tag
    column categorical in that order: its categories, not five million strings)."""
    tags = frame["tag"]
    present = tags.cat.remove_unused_categories().cat.categories if hasattr(tags, "cat") else tags.unique()
    return [str(t) for t in present]


def _header(entries: Sequence[catalog.RunEntry], metas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    starts = [e.started for e in entries if e.started]
    ends = [e.started.timestamp() + e.duration for e in entries if e.started and e.duration is not None]
    statuses: dict[str, int] = {}
    for entry in entries:
        statuses[entry.status] = statuses.get(entry.status, 0) + 1
    versions = [m.get("versions", {}) for m in metas.values()]
    return {
        "experiments": sorted({e.experiment for e in entries}),
        "started": min(starts).isoformat() if starts else None,
        "ended": datetime.fromtimestamp(max(ends), timezone.utc).isoformat() if ends else None,
        "hosts": sorted({str(m["host"]) for m in metas.values() if m.get("host")}),
        "gpus": sorted({str(m["gpu"]) for m in metas.values() if m.get("gpu")}),
        "torch": sorted({str(v["torch"]) for v in versions if isinstance(v, dict) and v.get("torch")}),
        "runs": len(entries),
        "statuses": statuses,
    }


def _picture(encoded: bytes, share: int) -> tuple[str, int, int, bool] | None:
    """An image as a data URL within ``share`` bytes: as logged when it fits, else downscaled (and as JPEG
    when a PNG still does not fit); None when even a small copy would not fit."""
    from PIL import Image

    with Image.open(io.BytesIO(encoded)) as opened:
        picture = opened.convert("RGBA") if opened.mode not in ("RGB", "RGBA", "L") else opened.copy()
    kind = "png" if encoded[:8] == b"\x89PNG\r\n\x1a\n" else "gif" if encoded[:4] == b"GIF8" else None
    if kind and len(encoded) * 4 // 3 <= share and max(picture.size) <= IMAGE_MAX_SIDE:
        return f"data:image/{kind};base64,{base64.b64encode(encoded).decode()}", *picture.size, False
    side = min(IMAGE_MAX_SIDE, max(picture.size))
    while side >= 64:
        copy = picture.copy()
        copy.thumbnail((side, side), Image.Resampling.LANCZOS if side < max(picture.size) else Image.Resampling.NEAREST)
        for fmt in ("PNG", "JPEG"):
            buffer = io.BytesIO()
            (copy.convert("RGB") if fmt == "JPEG" else copy).save(
                buffer, fmt, **({"quality": 85} if fmt == "JPEG" else {})
            )
            data = buffer.getvalue()
            if len(data) * 4 // 3 <= share:
                return f"data:image/{fmt.lower()};base64,{base64.b64encode(data).decode()}", *copy.size, True
        side //= 2
    return None


def _images(frame: pd.DataFrame, budget: int, left_out: list[str]) -> list[dict[str, Any]]:
    """Per image tag, the last image of each run (of ``frame``, as ``read_events`` reads images), fitted
    into ``budget`` bytes."""
    if frame.empty:
        return []
    last = frame.sort_values("step", kind="stable").groupby(["tag", "run"], sort=False).tail(1)
    share = max(budget // max(len(last), 1), 0)
    out: dict[str, list[dict[str, Any]]] = {}
    downscaled = 0
    for row in last.sort_values(["tag", "run"]).itertuples():
        picture = _picture(row.encoded, share) if share else None
        if picture is None:
            left_out.append(f"the image {row.tag!r} of {row.run} (step {row.step}): over the size budget")
            continue
        src, width, height, smaller = picture
        downscaled += smaller
        out.setdefault(str(row.tag), []).append({
            "run": str(row.run), "step": int(row.step), "src": src, "width": width, "height": height,
            "logged_width": int(row.width or width), "logged_height": int(row.height or height),
        })  # fmt: skip
    if downscaled:
        left_out.append(f"{downscaled} image(s) downscaled or re-encoded to fit the size budget")
    return [{"tag": tag, "items": items} for tag, items in out.items()]


def _pr_curves(curves: pd.DataFrame, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per PR curve tag, each run's last curve (of ``curves``, as ``read_events`` reads them), and the
    per-class AP scalars ``add_pr_curves`` logs (in the scalars ``frame``)."""
    out: dict[str, dict[str, Any]] = {}
    if not curves.empty:
        last = curves.sort_values("step", kind="stable").groupby(["tag", "run"], sort=False).tail(1)
        for row in last.itertuples():
            entry = out.setdefault(str(row.tag), {"tag": str(row.tag), "runs": {}, "ap": {}})
            entry["runs"][str(row.run)] = {"step": int(row.step), "precision": _joined(np.asarray(row.precision)),
                                           "recall": _joined(np.asarray(row.recall))}  # fmt: skip
    ap_tags = [t for t in _tags(frame) if re.search("/AP/|/mAP$", t)]
    ap = frame[frame["tag"].isin(ap_tags)]
    for (tag, run), rows in ap.groupby(["tag", "run"], observed=True, sort=False):
        base, _, name = str(tag).rpartition("/AP/") if "/AP/" in str(tag) else (str(tag)[: -len("/mAP")], "", "mAP")
        entry = out.setdefault(base, {"tag": base, "runs": {}, "ap": {}})
        value = float(rows.sort_values("step", kind="stable")["value"].iloc[-1])
        entry["ap"].setdefault(str(run), {})[name] = value if math.isfinite(value) else None
    return list(out.values())


def _overview(path: Path, inside: Path) -> dict[str, Any]:
    from tbscope.profiler.cache import loaded
    from tbscope.profiler.overview import analyze

    return analyze(loaded(path, inside)).as_json()


def _top_kernels(path: Path, inside: Path) -> list[dict[str, Any]]:
    from tbscope.profiler import tables
    from tbscope.profiler.cache import loaded

    return tables.kernels(loaded(path, inside))[:10]


def _profiles(root: Path, entries: Sequence[catalog.RunEntry], left_out: list[str]) -> list[dict[str, Any]]:
    """For each trace under the root: its step-time breakdown, GPU utilisation, top kernels and advice."""
    import functools

    from tbscope.profiler.cache import cached
    from tbscope.profiler.overview import CATEGORIES
    from tbscope.profiler.trace import TraceError, find_traces

    inside = root.resolve()
    out = []
    for path in find_traces(root):
        if reader.why_unreadable(path, inside) is not None:
            continue
        run = next((e.path for e in entries if path.is_relative_to(root / e.path) and e.path != "."), ".")
        try:
            # Both views from the one parse the profiler's cache keeps (``loaded``), when neither is stored yet.
            overview = cached(path, "overview", functools.partial(_overview, path, inside))
            kernels = cached(path, "report-kernels", functools.partial(_top_kernels, path, inside))
        except (TraceError, OSError, ValueError) as err:
            left_out.append(f"the profile {path.relative_to(root)}: {err}")
            continue
        steps = overview["steps"]
        total = sum(s["duration_us"] for s in steps)
        out.append({
            "run": run, "file": str(path.relative_to(root)), "worker": overview["worker"],
            "device": overview.get("device"), "steps": len(steps),
            "mean_step_ms": total / len(steps) / 1000 if steps else None,
            "breakdown": {c: sum(s["breakdown_us"][c] for s in steps) / total if total else 0.0 for c in CATEGORIES},
            "gpu_utilization": overview["gpu_utilization"],
            "kernels": [{"name": k.get("name"), "calls": k.get("calls"), "total_us": k.get("total_us")}
                        for k in kernels],
            "advice": [a["text"] for a in overview["recommendations"]],
        })  # fmt: skip
    return out


def gather(
    root: str | Path,
    runs: str | None = None,
    tags: str | None = None,
    experiment: str | None = None,
    by: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    command: str | None = None,
    progress: _Progress | None = None,
) -> dict[str, Any]:
    """Everything the report shows, as the page reads it (see ``build``)."""
    say = progress or _Progress(False)
    root_path = Path(root)
    say(f"listing the runs under {root_path}")
    entries = catalog.catalog(root_path)
    if experiment is not None:
        entries = [e for e in entries if e.experiment == experiment]
    if runs:
        pattern = re.compile(runs)
        entries = [e for e in entries if pattern.search(e.path)]
    if not entries:
        raise ValueError(f"no run under {root_path}" + (" matches the filters" if runs or experiment else ""))
    paths = {e.path for e in entries}
    metas = {e.path: meta for e in entries if (meta := rundir.read_meta(root_path / e.path)) is not None}
    metrics = groups.headline_tags(entries)
    say(f"reading the scalars of {len(entries)} run(s)")
    frame = reader.read_scalars(root_path, runs=paths)
    all_tags = _tags(frame)
    picked = (
        [t for t in all_tags if re.search(tags, t)]
        if tags
        else [t for t in all_tags if t not in metrics and not t.startswith(OWN_TAGS)][:DEFAULT_EXTRA_TAGS]
    )
    shown = [t for t in [*metrics, *picked] if t in all_tags]
    found = groups.group_runs(entries, by, ignore)
    say(f"aggregating {len(shown)} tag(s) over {len(found)} group(s)")
    table = groups.curves(frame, found, shown, max_points=CURVE_POINTS)
    finals = {}
    for tag in metrics:
        rows = groups.finals(entries, found, tag)
        lead = groups.lead(rows, tag)
        finals[tag] = {"direction": groups.direction(tag), "rows": [r.as_json() for r in rows],
                       "lead": lead.as_json() if lead and len(rows) > 1 else None}  # fmt: skip
    keys = groups.config_keys(entries)
    data: dict[str, Any] = {
        "made": {"tbscope": _version(), "command": command, "at": datetime.now(timezone.utc).isoformat()},
        "header": _header(entries, metas),
        "config_keys": keys, "metrics": metrics, "tags": shown,
        "runs": [{"path": e.path, "run": e.run, "experiment": e.experiment, "status": e.status,
                  "started": e.started.isoformat() if e.started else None, "duration_s": e.duration,
                  "last_step": e.last_step, "config": {k: e.hparams.get(k) for k in keys},
                  "metrics": {t: catalog.metric_value(e, t, "last") for t in metrics}} for e in entries],
        "groups": [g.as_json() for g in found], "finals": finals,
        "curves": {"runs": _run_curves(frame, paths, shown, CURVE_POINTS), "groups": _group_curves(table)},
        "left_out": [],
    }  # fmt: skip
    left_out: list[str] = data["left_out"]
    say("reading the pictures and PR curves")
    media = reader.read_kinds(root_path, ("images", "pr_curves"), runs=paths)
    data["pr_curves"] = _pr_curves(media["pr_curves"], frame)
    say("analysing the profiles")
    data["profiles"] = _profiles(root_path, entries, left_out)
    # The GPUs a run trained on, where a profile recorded them (run.json does not ask CUDA, which a
    # forked DataLoader worker would then inherit).
    data["header"]["gpus"] = sorted({*data["header"]["gpus"], *(p["device"] for p in data["profiles"] if p["device"])})
    used = len(json.dumps(data, default=str)) + _page_bytes()
    say("fitting the pictures into the budget")
    data["images"] = _images(media["images"], max(max_bytes - used, 0), left_out)
    return data


def _version() -> str:
    from tbscope import __version__

    return __version__


def _page_bytes() -> int:
    return sum(p.stat().st_size for p in (*_SHARED, _STATIC / "report.js", _STATIC / "report.css"))


def _script() -> str:
    """The page's script, one module holding the shared modules and ``report.js``: their imports dropped
    (everything is in scope) and their exports made plain declarations."""
    parts = [path.read_text(encoding="utf-8") for path in (*_SHARED, _STATIC / "report.js")]
    lines = [line for part in parts for line in part.splitlines() if not line.startswith("import ")]
    return "\n".join(line.removeprefix("export ") for line in lines)


def render(data: dict[str, Any], title: str) -> str:
    """The page: its style, its script and the data, all inline."""
    script = _script()
    style = (_STATIC / "report.css").read_text(encoding="utf-8")
    payload = json.dumps(data, default=str, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # Nothing may be fetched: the page holds everything it shows.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
        f"<title>{html.escape(title)}</title>\n<style>\n{style}\n</style>\n</head>\n<body>\n"
        f'<script id="data" type="application/json">{payload}</script>\n'
        f'<script type="module">\n{script}\n</script>\n</body>\n</html>\n'
    )


def build(
    root: str | Path,
    output: str | Path = "report.html",
    runs: str | None = None,
    tags: str | None = None,
    experiment: str | None = None,
    by: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: bool = True,
    command: Sequence[str] | None = None,
) -> Made:
    """Write the report of the runs under ``root`` to ``output``, one self-contained HTML file.

    Args:
        root: a runs root or any logdir.
        output: the HTML file to write.
        runs: only runs whose path matches this regular expression.
        tags: the scalar tags drawn besides the headline metrics (a regular expression; default: a few).
        experiment: only this experiment's runs.
        by: group runs by these config keys (default: every key but the seeds).
        ignore: config keys left out when grouping, besides the seeds.
        max_bytes: the file's size budget; pictures are downscaled, then left out, to stay within it.
        progress: print a line per stage on stderr.
        command: the command line that made it, shown in the report (default: this process's).
    """
    say = _Progress(progress)
    started = time.perf_counter()
    line = shlex.join(command if command is not None else ["tbscope", *sys.argv[1:]])
    from tbscope.cli.table import json_safe

    data = json_safe(gather(root, runs, tags, experiment, by, ignore, max_bytes, line, say))
    experiments = data["header"]["experiments"]
    title = f"{', '.join(experiments) if experiments else Path(root).name}: tbscope report"
    page = render(data, title)
    out = Path(output)
    out.write_text(page, encoding="utf-8")
    size = len(page.encode("utf-8"))
    say(f"wrote {out} ({size / 1e6:.1f} MB)")
    return Made(out, size, len(data["runs"]), time.perf_counter() - started, data["left_out"])
