"""The Groups tab: a TensorBoard plugin (``tbscope_groups``) showing runs grouped by config, seeds together.

This entry module imports nothing heavy (an import error here would stop TensorBoard from starting):
``tbscope.groups`` and the reader are imported on the first request. Its routes are described in
ROUTES.md beside this file; every asset is served from here, so the tab works offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tbscope.plugins import STATIC, module, module_routes

PLUGIN_NAME = "tbscope_groups"
JSON = "application/json"


def _error(request: wrappers.Request, message: str, code: int) -> wrappers.Response:
    return http_util.Respond(request, {"error": message}, JSON, code=code)


def _keys(value: str | None) -> list[str] | None:
    return [k for k in value.split(",") if k] if value else None


class GroupsPlugin(base_plugin.TBPlugin):
    """Serves the page's ``index.js`` and ``/summary`` (``tbscope.groups.summary`` as JSON)."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._logdir = Path(context.logdir or ".")

    def get_plugin_apps(self) -> dict[str, Any]:
        return {
            "/index.js": module(STATIC / "groups.js"),
            "/summary": wrappers.Request.application(self._summary),
            **module_routes(),
        }

    def is_active(self) -> bool:
        # Shown always: on a logdir without runs the page says how to make some.
        return True

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Groups")

    def _summary(self, request: wrappers.Request) -> wrappers.Response:
        try:
            smoothing = float(request.args.get("smoothing", "0") or 0)
        except ValueError:
            return _error(request, "smoothing must be a number between 0 and 1", 400)
        if not 0.0 <= smoothing < 1.0:
            return _error(request, "smoothing must be a number between 0 and 1", 400)
        by = _keys(request.args.get("by"))
        ignore = _keys(request.args.get("ignore")) or []
        from tbscope import groups

        try:  # kept by groups.summary while no run changed: a refresh of a finished experiment costs a walk
            made = groups.summary(str(self._logdir), by=by, ignore=ignore, smoothing=smoothing, max_points=500)
        except (OSError, ValueError) as error:
            return _error(request, f"could not read the runs: {error}", 500)
        return http_util.Respond(request, made, JSON)
