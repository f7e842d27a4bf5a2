"""The Profile tab: a TensorBoard plugin (``tbscope_profile``) serving trace analyses and its own page.

This entry module imports nothing heavy (an import error here would stop TensorBoard from starting):
the analysis is imported on the first request. The tab shows whenever the logdir holds a trace, wherever
``tbscope.profile`` or torch's ``tensorboard_trace_handler`` put it, and costs one cached, bounded
directory walk when none has. Every asset is
served from here: the tab works offline and asks nothing of any other origin.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tbscope.plugins import module_routes
from tbscope.profiler.trace import find_traces

PLUGIN_NAME = "tbscope_profile"
# Rows a table sends at most: every view stays far below 10 MB, whatever the trace's size.
MAX_ROWS = 500
_STATIC = Path(__file__).with_name("static")
# How long a directory walk for traces is trusted before it is done again.
_WALK_SECONDS = 10.0
JSON = "application/json"
# Analyses (a view of a trace, of a step, a diff) kept in memory at most: each is small.
KEPT_ANALYSES = 256
# Traces laid out for the Timeline, kept at most.
_TIMELINES = 2


def _error(request: wrappers.Request, message: str, code: int) -> wrappers.Response:
    return http_util.Respond(request, {"error": message}, JSON, code=code)


class ProfilePlugin(base_plugin.TBPlugin):
    """Serves the page (``index.js`` and its modules) and its JSON routes (``/runs``, ``/overview``, ...; see
    ``get_plugin_apps`` and ROUTES.md in ``tbscope.plugins``)."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._logdir = Path(context.logdir or ".")
        self._traces: dict[str, list[Path]] = {}
        self._walked = 0.0
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._timelines: dict[tuple[str, int, int, int], Any] = {}

    def get_plugin_apps(self) -> dict[str, Any]:
        return {
            **module_routes(_STATIC),  # the page: index.js and its modules (views/, timeline/), and the shared ones
            "/runs": wrappers.Request.application(self._runs),
            "/overview": wrappers.Request.application(functools.partial(self._view, view="overview")),
            "/operators": wrappers.Request.application(self._operators),
            "/kernels": wrappers.Request.application(self._kernels),
            "/memory": wrappers.Request.application(functools.partial(self._view, view="memory")),
            "/timeline": wrappers.Request.application(self._timeline),
            "/event": wrappers.Request.application(self._event),
            "/modules": wrappers.Request.application(functools.partial(self._view, view="modules")),
            "/distributed": wrappers.Request.application(self._distributed),
            "/diff": wrappers.Request.application(self._diff),
            "/trace": wrappers.Request.application(self._raw_trace),
        }

    def is_active(self) -> bool:
        return bool(self._find())

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Profile")

    def _find(self) -> dict[str, list[Path]]:
        """``{run: [trace files]}`` for every trace under the logdir (cached a few seconds). A trace's run is
        the folder that holds it, or the folder above for ``tbscope.profile``'s ``<run>/profile/``."""
        with self._lock:
            if time.monotonic() - self._walked < _WALK_SECONDS:
                return self._traces
            found: dict[str, list[Path]] = {}
            for path in find_traces(self._logdir):  # regular files inside the logdir, never through a link
                folder = path.parent.parent if path.parent.name == "profile" else path.parent
                found.setdefault(Path(os.path.relpath(folder, self._logdir)).as_posix(), []).append(path)
            self._traces, self._walked = found, time.monotonic()
            return found

    def _trace_path(self, request: wrappers.Request) -> Path | None:
        run, worker = request.args.get("run", ""), request.args.get("worker", "")
        return next((p for p in self._find().get(run, []) if p.name == worker), None)

    def _analysis(self, path: Path, view: str, step: str) -> Any:
        """One view of one trace (of one step's span when ``step`` is given), kept in memory and, through
        ``cache.cached``, in tbscope's cache directory; the trace itself is parsed once for all views."""
        from tbscope.profiler import cache, memory, modules, overview, tables

        def compute() -> Any:
            trace = cache.loaded(path, self._logdir)
            if step:  # the steps' windows from the Overview, kept: not analyzed again
                steps = self._analysis(path, "overview", "")["steps"]
                trace = overview.span(trace, int(step), {s["step"]: (s["start_us"], s["end_us"]) for s in steps})
            return {
                "overview": lambda: overview.analyze(trace).as_json(),
                "operators": lambda: tables.operators(trace)[:MAX_ROWS],
                "operators_by_shapes": lambda: tables.operators(trace, "shapes")[:MAX_ROWS],
                "kernels": lambda: tables.kernels(trace)[:MAX_ROWS],
                "kernels_by_operator": lambda: tables.kernels(trace, "operator")[:MAX_ROWS],
                "memory": lambda: memory.memory(trace),
                "modules": lambda: modules.view(trace, MAX_ROWS),
            }[view]()

        cached = f"{view}@{step}" if step else view
        return self._kept((cache.version(path), view, step), lambda: cache.cached(path, cached, compute))

    @staticmethod
    def _answer(request: wrappers.Request, compute: Callable[[], Any]) -> wrappers.Response:
        """``compute()`` as JSON; a trace that cannot be read or analyzed gets a message, never a traceback
        (the other traces and views still work)."""
        try:
            return http_util.Respond(request, compute(), JSON)
        except FileNotFoundError as err:
            return _error(request, f"{err.filename}: the trace is gone (moved or deleted); reload the page", 404)
        except (ValueError, OSError) as err:  # TraceError is a ValueError: the file is not a readable trace
            return _error(request, str(err), 422)
        except Exception as err:  # a trace that parses but holds what no profiler writes
            return _error(request, f"the trace could not be analyzed ({type(err).__name__}: {err})", 422)

    def _runs(self, request: wrappers.Request) -> wrappers.Response:
        runs = [{"run": run, "workers": [p.name for p in paths]} for run, paths in sorted(self._find().items())]
        return http_util.Respond(request, runs, JSON)

    def _view(self, request: wrappers.Request, view: str) -> wrappers.Response:
        path = self._trace_path(request)
        if path is None:
            return _error(request, "no such run and worker", 404)
        step = request.args.get("step", "") if view != "overview" else ""
        if step and not step.isdigit():
            return _error(request, f"step must be a step number, got {step!r}", 400)
        return self._answer(request, lambda: self._analysis(path, view, step))

    def _kept(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """An analysis, kept in memory by the versions of the traces it read (the last ``KEPT_ANALYSES``)."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = compute()
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > KEPT_ANALYSES:
                self._cache.popitem(last=False)
        return value

    def _distributed(self, request: wrappers.Request) -> wrappers.Response:
        from tbscope.profiler import cache, distributed

        paths = self._find().get(request.args.get("run", ""), [])
        if not paths:
            return _error(request, "no such run", 404)
        return self._answer(request, lambda: self._kept(
            ("distributed", *(cache.version(p) for p in paths)),
            lambda: distributed.distributed([cache.loaded(p, self._logdir) for p in paths]),
        ))  # fmt: skip

    def _diff(self, request: wrappers.Request) -> wrappers.Response:
        """``run``/``worker`` against ``run2``/``worker2``, each over its one step ``step``/``step2`` when given."""
        from tbscope.profiler import cache, diff

        base = self._trace_path(request)
        runs = self._find().get(request.args.get("run2", ""), [])
        other = next((p for p in runs if p.name == request.args.get("worker2", "")), None)
        if base is None or other is None:
            return _error(request, "no such pair of traces", 404)
        steps = [request.args.get(k, "") for k in ("step", "step2")]
        if any(s and not s.isdigit() for s in steps):
            return _error(request, f"step and step2 must be step numbers, got {steps[0]!r} and {steps[1]!r}", 400)
        base_step, other_step = (int(s) if s else None for s in steps)
        return self._answer(request, lambda: self._kept(
            ("diff", cache.version(base), cache.version(other), base_step, other_step),
            lambda: diff.diff(
                cache.loaded(base, self._logdir), cache.loaded(other, self._logdir), base_step, other_step
            ),
        ))  # fmt: skip

    def _timeline_of(self, path: Path) -> Any:
        """The trace laid out for the Timeline (``views.Timeline``), kept for the last few traces shown."""
        from tbscope.profiler import cache, views

        key = cache.version(path)
        with self._lock:
            laid_out = self._timelines.pop(key, None)
        if laid_out is None:
            # The steps as the Overview found them (cached): not analyzed again for the Timeline.
            steps = self._analysis(path, "overview", "")["steps"]
            windows = None
            if all("start_us" in s for s in steps):
                windows = [(s["step"], s["start_us"], s["end_us"], s["step"] if s.get("training_step") is None
                            else s["training_step"]) for s in steps]  # fmt: skip
            laid_out = views.Timeline(cache.loaded(path, self._logdir), windows)
        with self._lock:
            self._timelines[key] = laid_out  # the most recent last
            while len(self._timelines) > _TIMELINES:
                self._timelines.pop(next(iter(self._timelines)))
        return laid_out

    def _timeline(self, request: wrappers.Request) -> wrappers.Response:
        """What the Timeline draws of a window: ``start_us``, ``end_us`` (the whole trace by default), ``px``."""
        path = self._trace_path(request)
        if path is None:
            return _error(request, "no such run and worker", 404)
        try:
            start, end = (float(request.args[k]) if request.args.get(k) else None for k in ("start_us", "end_us"))
            px = int(request.args.get("px") or 1500)
        except ValueError:
            return _error(request, "start_us and end_us must be numbers, px a whole number", 400)
        return self._answer(request, lambda: self._timeline_of(path).window(start, end, px))

    def _event(self, request: wrappers.Request) -> wrappers.Response:
        """One event's details, for the Timeline's selection."""
        path = self._trace_path(request)
        if path is None:
            return _error(request, "no such run and worker", 404)
        if not request.args.get("id", "").isdigit():
            return _error(request, f"id must be an event number, got {request.args.get('id')!r}", 400)
        return self._answer(request, lambda: self._timeline_of(path).event(int(request.args["id"])))

    def _raw_trace(self, request: wrappers.Request) -> wrappers.Response:
        """The trace file itself, for "Open in Perfetto": read from the descriptor checked to lie in the logdir."""
        from tbscope import logdir

        path = self._trace_path(request)
        if path is None:
            return _error(request, "no such run and worker", 404)
        try:
            return http_util.Respond(request, logdir.read_inside(path, self._logdir), "application/octet-stream")
        except OSError as err:
            return _error(request, f"{path.name}: the trace cannot be read ({err.strerror}); reload the page", 404)

    def _kernels(self, request: wrappers.Request) -> wrappers.Response:
        by_operator = request.args.get("group_by") == "operator"
        return self._view(request, "kernels_by_operator" if by_operator else "kernels")

    def _operators(self, request: wrappers.Request) -> wrappers.Response:
        shapes = request.args.get("group_by") == "shapes"
        return self._view(request, "operators_by_shapes" if shapes else "operators")
