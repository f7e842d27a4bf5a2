"""Command-line arguments that every command checks the same way, before it does any work."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def parsed_by(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse type: its ValueError message becomes the usage error the user sees."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = parse.__name__
    return convert


def _directory(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory")
    return path


directory = parsed_by(_directory)
"""An existing directory, or a usage error saying it is not one."""


def positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    """A number of ``kind`` above zero, or a usage error saying what was given."""

    def parse(text: str) -> T:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
        if not value > 0:  # type: ignore[operator]
            raise ValueError(f"must be above 0, got {text}")
        return value

    parse.__name__ = f"positive {getattr(kind, '__name__', 'number')}"
    return parsed_by(parse)
