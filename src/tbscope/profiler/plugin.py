"""The Profile tab: a TensorBoard plugin (``tbscope_profile``) serving trace analyses and its own page.

This entry module imports nothing heavy (an import error here would stop TensorBoard from starting):
the analysis is imported on the first request. The tab shows whenever a run under the logdir has a
``profile/`` folder of traces, and costs one cached directory walk when none has. Every asset is
served from here: the tab works offline and asks nothing of any other origin.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tbscope.profiler.trace import find_traces

PLUGIN_NAME = "tbscope_profile"
# Rows a table sends at most: every view stays far below 10 MB, whatever the trace's size.
MAX_ROWS = 500
_STATIC = Path(__file__).with_name("static")
# How long a directory walk for traces is trusted before it is done again.
_WALK_SECONDS = 10.0


def _wsgi(handler: Callable[[wrappers.Request], wrappers.Response]) -> Any:
    """A WSGI app answering each request with ``handler``."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return handler(wrappers.Request(environ))(environ, start_response)

    return app


def _json(data: Any, status: int = 200) -> wrappers.Response:
    return wrappers.Response(json.dumps(data), status=status, content_type="application/json")


class ProfilePlugin(base_plugin.TBPlugin):
    """Serves ``/runs``, ``/overview``, ``/operators``, ``/kernels`` and the page's ``index.js``."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._logdir = Path(context.logdir or ".")
        self._traces: dict[str, list[Path]] = {}
        self._walked = 0.0
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], Any] = {}

    def get_plugin_apps(self) -> dict[str, Any]:
        return {
            "/index.js": _wsgi(self._index),
            "/runs": _wsgi(self._runs),
            "/overview": _wsgi(lambda request: self._view(request, "overview")),
            "/operators": _wsgi(self._operators),
            "/kernels": _wsgi(lambda request: self._view(request, "kernels")),
            "/memory": _wsgi(lambda request: self._view(request, "memory")),
            "/timeline": _wsgi(lambda request: self._view(request, "timeline")),
            "/modules": _wsgi(lambda request: self._view(request, "modules")),
            "/distributed": _wsgi(self._distributed),
            "/diff": _wsgi(self._diff),
            "/trace": _wsgi(self._raw_trace),
        }

    def is_active(self) -> bool:
        return bool(self._find())

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Profile")

    def _find(self) -> dict[str, list[Path]]:
        """``{run: [trace files]}`` for every ``profile/`` folder under the logdir (cached a few seconds)."""
        with self._lock:
            if time.monotonic() - self._walked < _WALK_SECONDS:
                return self._traces
            found: dict[str, list[Path]] = {}
            for path in find_traces(self._logdir):  # regular files inside the logdir, never through a link
                if path.parent.name == "profile":
                    found.setdefault(os.path.relpath(path.parent.parent, self._logdir), []).append(path)
            self._traces, self._walked = found, time.monotonic()
            return found

    def _trace_path(self, request: wrappers.Request) -> Path | None:
        run, worker = request.args.get("run", ""), request.args.get("worker", "")
        return next((p for p in self._find().get(run, []) if p.name == worker), None)

    def _analysis(self, path: Path, view: str, step: str) -> Any:
        """One view of one trace (of one step's span when ``step`` is given), kept in memory and, through
        ``cache.cached``, in tbscope's cache directory."""
        from tbscope.profiler import cache, overview, tables, trace, views

        key = (str(path), path.stat().st_mtime, view, step)
        if key not in self._cache:

            def compute() -> Any:
                loaded = trace.load(path)
                if step:
                    loaded = trace.span(loaded, int(step))
                return {
                    "overview": lambda: overview.analyze(loaded).as_json(),
                    "operators": lambda: tables.operators(loaded)[:MAX_ROWS],
                    "operators_by_shapes": lambda: tables.operators(loaded, "shapes")[:MAX_ROWS],
                    "kernels": lambda: tables.kernels(loaded)[:MAX_ROWS],
                    "memory": lambda: views.memory(loaded),
                    "timeline": lambda: views.timeline(loaded),
                    "modules": lambda: views.modules(loaded)[:MAX_ROWS],
                }[view]()

            self._cache[key] = cache.cached(path, f"{view}@{step}" if step else view, compute)
        return self._cache[key]

    def _index(self, request: wrappers.Request) -> wrappers.Response:
        return wrappers.Response((_STATIC / "index.js").read_bytes(), content_type="text/javascript")

    def _runs(self, request: wrappers.Request) -> wrappers.Response:
        return _json([{"run": run, "workers": [p.name for p in paths]} for run, paths in sorted(self._find().items())])

    def _view(self, request: wrappers.Request, view: str) -> wrappers.Response:
        path = self._trace_path(request)
        if path is None:
            return _json({"error": "no such run and worker"}, status=404)
        step = request.args.get("step", "") if view != "overview" else ""
        if step and not step.isdigit():
            return _json({"error": f"step must be a step number, got {step!r}"}, status=400)
        try:
            return _json(self._analysis(path, view, step))
        except ValueError as err:  # a trace that cannot be read: say why, the other views still work
            return _json({"error": str(err)}, status=422)

    def _many(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """An analysis of several traces, kept in memory by their paths and versions."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _distributed(self, request: wrappers.Request) -> wrappers.Response:
        from tbscope.profiler import trace, views

        paths = self._find().get(request.args.get("run", ""), [])
        if not paths:
            return _json({"error": "no such run"}, status=404)
        key = ("distributed", *((str(p), p.stat().st_mtime) for p in paths))
        try:
            return _json(self._many(key, lambda: views.distributed([trace.load(p) for p in paths])))
        except ValueError as err:
            return _json({"error": str(err)}, status=422)

    def _diff(self, request: wrappers.Request) -> wrappers.Response:
        from tbscope.profiler import trace, views

        base = self._trace_path(request)
        runs = self._find().get(request.args.get("run2", ""), [])
        other = next((p for p in runs if p.name == request.args.get("worker2", "")), None)
        if base is None or other is None:
            return _json({"error": "no such pair of traces"}, status=404)
        key = ("diff", str(base), base.stat().st_mtime, str(other), other.stat().st_mtime)
        try:
            return _json(self._many(key, lambda: views.diff(trace.load(base), trace.load(other))))
        except ValueError as err:
            return _json({"error": str(err)}, status=422)

    def _raw_trace(self, request: wrappers.Request) -> wrappers.Response:
        """The trace file itself, for "Open in Perfetto"."""
        path = self._trace_path(request)
        if path is None:
            return _json({"error": "no such run and worker"}, status=404)
        return wrappers.Response(path.read_bytes(), content_type="application/octet-stream")

    def _operators(self, request: wrappers.Request) -> wrappers.Response:
        shapes = request.args.get("group_by") == "shapes"
        return self._view(request, "operators_by_shapes" if shapes else "operators")
