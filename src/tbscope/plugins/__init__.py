"""TensorBoard tabs: the front-end modules every tab shares, and the plugins beside the Profile tab.

Each plugin's entry imports nothing heavy. A tab's ``index.js`` imports the shared modules relative to
itself, so each plugin serves them under its own route prefix (``shared_routes``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorboard.backend import http_util
from werkzeug import wrappers

STATIC = Path(__file__).with_name("static")
# The ES modules the tabs import: dark mode (theme.js), the DOM helper, numbers and charts (charts.js).
SHARED_MODULES = ("theme.js", "charts.js")


def shared_routes() -> dict[str, Any]:
    """``{"/theme.js": app, ...}``: the shared modules, for a plugin's ``get_plugin_apps``."""

    def module(name: str) -> Any:
        def respond(request: wrappers.Request) -> wrappers.Response:
            return http_util.Respond(request, (STATIC / name).read_bytes(), "text/javascript")

        return wrappers.Request.application(respond)

    return {f"/{name}": module(name) for name in SHARED_MODULES}
