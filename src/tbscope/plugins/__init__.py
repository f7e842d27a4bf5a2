"""TensorBoard tabs: the front-end modules every tab shares, and the plugins beside the Profile tab.

Each plugin's entry imports nothing heavy. A tab's ``index.js`` imports its modules relative to itself
(TensorBoard loads it from ``/data/plugin/<name>/index.js``), so each plugin serves, under its own route
prefix, the shared modules of ``static/`` and those of its own folder (``module_routes``). The routes are
described in ROUTES.md beside this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorboard.backend import http_util
from werkzeug import wrappers

STATIC = Path(__file__).with_name("static")
# The ES modules the tabs share: dark mode (theme.js), the DOM helper, numbers, ticks, colours, bands and the
# line chart (charts.js, which the offline report inlines too), sortable tables and a search box (tables.js),
# requests to the plugin's own JSON routes (fetch.js), and a profiled step's categories and their colours
# (categories.js: the Profile tab's, inlined by the report too).
SHARED_MODULES = ("theme.js", "charts.js", "tables.js", "fetch.js", "categories.js")


def module(path: Path) -> Any:
    """The app that serves the ES module at ``path``."""

    def respond(request: wrappers.Request) -> wrappers.Response:
        return http_util.Respond(request, path.read_bytes(), "text/javascript")

    return wrappers.Request.application(respond)


def module_routes(own: Path | None = None) -> dict[str, Any]:
    """``{"/charts.js": app, "/views/timeline.js": app, ...}`` for a plugin's ``get_plugin_apps``: the shared
    modules, and every ``.js`` file under the plugin's own folder ``own`` by its path there. The files are
    listed here, once: a request names one of them or gets TensorBoard's 404, never a path of its own."""
    routes = {f"/{name}": module(STATIC / name) for name in SHARED_MODULES}
    if own is not None:
        routes.update({f"/{path.relative_to(own).as_posix()}": module(path) for path in sorted(own.rglob("*.js"))})
    return routes
