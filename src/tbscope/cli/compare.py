"""``tbscope compare``: hyperparameters and metrics side by side, filtered and sorted; runs that differ only
in their seed as groups, with mean, spread, 95% interval and whether the leader's lead is real."""

from __future__ import annotations

import argparse
import ast
import math
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tbscope.catalog import RunEntry
    from tbscope.groups import Final, Group

from tbscope.cli.arguments import config_keys, directory
from tbscope.cli.table import as_json, render

_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b, ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="hyperparameters and metrics of runs side by side",
        description="Hyperparameters (only those that differ, unless --all-params) and metrics of every run.",
    )
    parser.add_argument("root", type=directory, help="the runs root (or any logdir)")
    parser.add_argument("--sort", metavar="TAG", help="sort by this metric or hyperparameter")
    parser.add_argument("--desc", action="store_true", help="sort in descending order")
    parser.add_argument(
        "--agg", choices=("last", "min", "max", "best"), default="last",
        help="metric value to show; best is the minimum of a loss, error or time, the maximum of anything else",
    )  # fmt: skip
    parser.add_argument(
        "--filter", metavar="EXPR",
        help="keep runs where EXPR holds, e.g. 'lr < 0.01 and optimizer == \"adam\"'; names are hyperparameters "
        "and metrics, with characters other than letters, digits and _ written as _ (val/acc: val_acc)",
    )  # fmt: skip
    parser.add_argument("--all-params", action="store_true", help="show hyperparameters that are the same in all runs")
    grouping = parser.add_mutually_exclusive_group()
    grouping.add_argument(
        "--group-by", metavar="KEYS", type=config_keys,
        help="one row per group of runs with these config keys (comma-separated) in common; by default runs that "
        "differ only in a seed (a key named seed or ending in seed) are grouped",
    )  # fmt: skip
    grouping.add_argument("--no-groups", action="store_true", help="one row per run, even when seeds are present")
    parser.add_argument(
        "--ignore",
        metavar="KEYS",
        type=config_keys,
        default=[],
        help="config keys to leave out when grouping, besides seeds",
    )
    style = parser.add_mutually_exclusive_group()
    for name in ("csv", "json", "markdown"):
        style.add_argument(f"--{name}", dest="style", action="store_const", const=name, help=f"print {name}")
    parser.set_defaults(handler=run, style="text")


def identifier(name: str) -> str:
    """How a hyperparameter or metric is named in a --filter expression."""
    return re.sub(r"\W", "_", name)


_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.Invert,
            ast.Compare, ast.Constant, ast.Tuple, ast.List, ast.Name, ast.Load, *_COMPARE)  # fmt: skip


def parse_filter(expression: str, known: set[str]) -> ast.Expression:
    """A --filter expression, checked before any run is looked at: only comparisons, and/or/not,
    numbers, strings and names; and every name one that some run has (else a typo, most likely),
    whichever part of the expression a run would have reached.

    Example:
        >>> parse_filter("lrr < 1 or lr > 0.1", {"lr", "val_acc"})
        Traceback (most recent call last):
        ...
        ValueError: unknown name 'lrr'; the names are: lr, val_acc
    """
    tree = ast.parse(expression, mode="eval")
    for node in ast.walk(tree):
        unary = isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not | ast.USub)
        if unary or not isinstance(node, _ALLOWED):
            raise ValueError(f"not allowed in a filter: {ast.unparse(node)!r}")
    unknown = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in known})
    if unknown:
        names = ", ".join(sorted(known)) if known else "none (no run has hyperparameters or metrics)"
        listed = ", ".join(repr(n) for n in unknown)
        raise ValueError(f"unknown name{'s' if len(unknown) > 1 else ''} {listed}; the names are: {names}")
    return tree


def evaluate(tree: ast.Expression, names: dict[str, Any]) -> bool:
    """Whether a run whose values are ``names`` passes a filter from ``parse_filter``. A name this run
    lacks is missing: any comparison with it is false."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.BoolOp):
            results = (value(v) for v in node.values)
            return all(results) if isinstance(node.op, ast.And) else any(results)
        if isinstance(node, ast.UnaryOp):
            return not value(node.operand) if isinstance(node.op, ast.Not) else -value(node.operand)
        if isinstance(node, ast.Compare):
            left = value(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = value(right_node)
                if left is None or right is None or not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Tuple | ast.List):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.Name):
            return names.get(node.id)
        raise ValueError(f"not allowed in a filter: {ast.unparse(node)!r}")

    return bool(value(tree))


def _known(entry: RunEntry, agg: str) -> dict[str, Any]:
    from tbscope.catalog import metric_value

    known: dict[str, Any] = {identifier(k): v for k, v in entry.hparams.items()}
    for tag in entry.summary:
        number = metric_value(entry, tag, agg)
        known[identifier(tag)] = None if math.isnan(number) else number
    return known


def run(args: argparse.Namespace) -> int:
    from tbscope.catalog import catalog, metric_value

    entries = catalog(args.root)
    if args.filter:
        names = {e.path: _known(e, args.agg) for e in entries}
        known = {name for per_run in names.values() for name in per_run}
        try:
            tree = parse_filter(args.filter, known)
            entries = [e for e in entries if evaluate(tree, names[e.path])]
        except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError) as err:
            print(f"tbscope compare: bad --filter {args.filter!r}: {err}", file=sys.stderr)
            return 2
    if args.sort and not any(args.sort in e.summary or args.sort in e.hparams for e in entries):
        print(f"tbscope compare: --sort {args.sort!r} is no metric or hyperparameter of these runs", file=sys.stderr)
        return 2
    if not args.no_groups:
        from tbscope.groups import group_runs, is_seed

        groups = group_runs(entries, args.group_by, args.ignore)
        seeded = any(is_seed(k) for e in entries for k in e.hparams)
        if args.group_by is not None or (seeded and len(groups) < len(entries)):
            return _grouped(entries, groups, args)
    params = sorted({k for e in entries for k in e.hparams})
    if not args.all_params:
        params = [p for p in params if len({repr(e.hparams.get(p)) for e in entries}) > 1]
    metrics: list[str] = []
    for entry in entries:
        metrics += [t for t in entry.headline if t not in metrics]
    if args.sort:
        if any(args.sort in e.summary for e in entries):
            if args.sort not in metrics:
                metrics.append(args.sort)
        elif args.sort not in params:
            params.append(args.sort)
        entries = _sorted(entries, args.sort, args.agg, args.desc)
    headers = ["run", *params, *(f"{m} ({args.agg})" for m in metrics)]
    rows = [[e.path, *(e.hparams.get(p) for p in params), *(metric_value(e, m, args.agg) for m in metrics)]
            for e in entries]  # fmt: skip
    print(render(headers, rows, args.style))
    return 0


def _sorted(entries: list[RunEntry], by: str, agg: str, descending: bool) -> list[RunEntry]:
    """Runs ordered by a metric (its ``agg``) or a hyperparameter; runs without it last. Values of mixed
    types (a number here, text there) are ordered as text."""
    from tbscope.catalog import metric_value

    def value(e: RunEntry) -> Any:
        number = metric_value(e, by, agg) if by in e.summary else e.hparams.get(by)
        return None if isinstance(number, float) and math.isnan(number) else number

    present = [e for e in entries if value(e) is not None]
    numeric = all(isinstance(value(e), int | float) for e in present)
    present.sort(key=lambda e: value(e) if numeric else str(value(e)), reverse=descending)
    return present + [e for e in entries if value(e) is None]


def _grouped(entries: list[RunEntry], groups: list[Group], args: argparse.Namespace) -> int:
    """One row per group: n, and each headline metric as mean +/- std [95% CI]; then, per metric, which
    group leads and whether the lead is significant."""
    from tbscope.groups import finals, headline_tags, lead

    metrics = headline_tags(entries)
    if args.sort and args.sort in {t for e in entries for t in e.summary} and args.sort not in metrics:
        metrics.append(args.sort)
    table: dict[str, dict[str, Final]] = {g.label: {} for g in groups}
    leads = {}
    for metric in metrics:
        rows = finals(entries, groups, metric, args.agg)
        for row in rows:
            table[row.label][metric] = row
        leads[metric] = lead(rows, metric)
    ordered = list(groups)
    if args.sort:
        ordered = _sorted_groups(groups, table, args.sort, args.desc)
    if args.style == "json":
        print(as_json({
            "by": args.group_by, "ignore": args.ignore, "agg": args.agg,
            "groups": [{**g.as_json(), "metrics": {m: f.as_json() for m, f in table[g.label].items()}}
                       for g in ordered],
            "leads": {m: found.as_json() if found else None for m, found in leads.items()},
        }))  # fmt: skip
        return 0
    headers = ["group", "n", "runs"]
    if args.style == "csv":
        headers += [f"{m} ({args.agg}) {s}" for m in metrics for s in ("mean", "std", "ci_low", "ci_high", "n")]
        cells = [[g.label, len(g.runs), " ".join(g.runs),
                  *(v for m in metrics for v in _final_cells(table[g.label].get(m)))] for g in ordered]  # fmt: skip
        print(render(headers, cells, "csv"))
        return 0
    headers = ["group", "n", *(f"{m} ({args.agg}) mean +/- std [95% CI]" for m in metrics)]
    texts = [[g.label, len(g.runs), *(f.text() if (f := table[g.label].get(m)) else None for m in metrics)]
             for g in ordered]  # fmt: skip
    print(render(headers, texts, args.style))
    for found in leads.values():
        if found is not None and len(groups) > 1:
            print(found.sentence())
    return 0


def _final_cells(final: Final | None) -> list[Any]:
    if final is None:
        return [None] * 5
    return [final.mean, final.std, final.ci_low, final.ci_high, final.n]


def _sorted_groups(groups: list[Group], table: dict[str, dict[str, Final]], by: str, descending: bool) -> list[Group]:
    """Groups ordered by a metric's mean, or by a config key they are grouped by; those without it last."""

    def value(g: Group) -> Any:
        final = table[g.label].get(by)
        return final.mean if final is not None else g.key.get(by)

    present = [g for g in groups if value(g) is not None]
    numeric = all(isinstance(value(g), int | float) for g in present)
    present.sort(key=lambda g: value(g) if numeric else str(value(g)), reverse=descending)
    return present + [g for g in groups if value(g) is None]
