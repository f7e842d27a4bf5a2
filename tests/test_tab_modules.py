"""The tabs' pages are ES modules that import each other relative to the page's URL: each plugin serves every
module its page reaches, as JavaScript, and nothing else by path."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from tensorboard.plugins import base_plugin
from werkzeug.test import Client

import tbscope
from tbscope import report
from tbscope.plugins import STATIC
from tbscope.plugins.groups import GroupsPlugin
from tbscope.profiler import plugin as profile_plugin

REPORT_JS_FOLDER = Path(report.__file__).with_name("static")
IMPORT = re.compile(r'^import [^;]*? from "([^"]+)";$', re.MULTILINE)


def reached(plugin: base_plugin.TBPlugin) -> dict[str, str]:
    """``{route: source}`` of every module the plugin's page imports, directly or not, fetched as the browser
    does: each import resolved against the importing module's URL."""
    apps = plugin.get_plugin_apps()
    found: dict[str, str] = {}
    todo = ["/index.js"]
    while todo:
        route = todo.pop()
        if route in found:
            continue
        assert route in apps, f"{route} is imported but not served"
        response = Client(apps[route]).get(route)
        assert response.status_code == 200 and response.mimetype == "text/javascript", route
        found[route] = response.get_data(as_text=True)
        folder = posixpath.dirname(route)
        todo += [posixpath.normpath(posixpath.join(folder, spec)) for spec in IMPORT.findall(found[route])]
    return found


def test_the_profile_tab_serves_each_module_its_page_imports_and_every_one_is_imported(tmp_path: Path) -> None:
    plugin = profile_plugin.ProfilePlugin(base_plugin.TBContext(logdir=str(tmp_path)))
    modules = reached(plugin)
    own = Path(profile_plugin.__file__).with_name("static")
    assert {f"/{p.relative_to(own).as_posix()}" for p in own.rglob("*.js")} <= set(modules)  # no module left unused
    assert {"/views/timeline.js", "/timeline/state.js", "/timeline/draw.js", "/charts.js", "/tables.js"} <= set(modules)
    assert modules["/charts.js"] == (STATIC / "charts.js").read_text()
    # Only the files listed at start are routes: no path of a request reaches anything else.
    assert not [r for r in plugin.get_plugin_apps() if ".." in r or r.endswith(".py")]


def test_the_groups_tab_shares_charts_tables_fetch_and_theme_with_the_profile_tab(tmp_path: Path) -> None:
    modules = reached(GroupsPlugin(base_plugin.TBContext(logdir=str(tmp_path))))
    assert set(modules) == {"/index.js", "/charts.js", "/tables.js", "/fetch.js", "/theme.js"}
    assert modules["/index.js"] == (STATIC / "groups.js").read_text()


def test_the_report_holds_every_module_its_page_imports_in_its_one_script(tmp_path: Path) -> None:
    with tbscope.init("demo", root=tmp_path, config={"lr": 0.1}) as run:
        run.writer.add_scalar("val/acc", 0.5, 0)
    report.build(tmp_path, tmp_path / "report.html", progress=False)
    page = (tmp_path / "report.html").read_text()
    scripts = re.findall(r"<script(?: [^>]*)?>(.*?)</script>", page, re.DOTALL)
    script = next(s for s in scripts if "lineChart" in s)
    assert not re.search(r"^\s*(import|export) ", script, re.MULTILINE)  # one classic script: no module syntax
    imported = re.findall(r"^import \{ ([^}]+) \} from", (REPORT_JS_FOLDER / "report.js").read_text(), re.MULTILINE)
    names = [name.strip() for names in imported for name in names.split(",")]
    assert {"el", "lineChart", "sortableTable", "followTheme"} <= set(names)
    for name in names:
        assert re.search(rf"^(async )?(function|const) {name}\b", script, re.MULTILINE), f"{name} is not in the report"
