"""The package's import graph: no module imports one that imports it back, at module level or
inside a function, and the read side (``ls``, ``--help``, the Profile tab's entry) stays light."""

from __future__ import annotations

import ast
from pathlib import Path

import tbscope

PACKAGE = Path(tbscope.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, this: str, is_package: bool, modules: set[str]) -> set[str]:
    """The tbscope modules that ``source`` (module ``this``) imports, wherever the import stands,
    except under ``if TYPE_CHECKING:``, which never runs. Importing a submodule loads its packages
    too, but a package is counted only where it is named: that is Python's own rule for the circles
    that fail."""
    package = this if is_package else this.rpartition(".")[0]
    tree = ast.parse(source)
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for inner in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return {name for name in found if name in modules and name != this}


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p.read_text(), module_name(p), p.name == "__init__.py", modules) for p in paths}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_walk_sees_imports_inside_functions_relative_ones_and_not_type_checking_ones() -> None:
    modules = {"tbscope", "tbscope.a", "tbscope.b", "tbscope.c", "tbscope.sub", "tbscope.sub.d"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from tbscope import c\n"
        "def f():\n    from tbscope import b\n    from .sub import d\n"
    )
    assert imports_of(source, "tbscope.a", False, modules) == {"tbscope.b", "tbscope.sub.d"}
    assert imports_of("from .. import a", "tbscope.sub.d", False, modules) == {"tbscope.a"}
    edges = {"tbscope.a": {"tbscope.b", "tbscope.c"}, "tbscope.b": {"tbscope.c"}, "tbscope.c": {"tbscope.a"}}
    assert circles(edges) == [["tbscope.a", "tbscope.b", "tbscope.c"]]
    assert circles({"tbscope.a": {"tbscope.b"}, "tbscope.b": set()}) == []


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert circles(graph()) == []
