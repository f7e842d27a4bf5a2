"""Command-line arguments that every command checks the same way, before it does any work."""

from __future__ import annotations

import argparse
import re
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


def _local_directory(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory")
    return path


def _directory(text: str) -> Path:
    from tbscope import remote

    return remote.mirror(text) if remote.is_url(text) else _local_directory(text)


def _source(text: str) -> tuple[Path, str | None]:
    from tbscope import remote

    return (remote.mirror(text), text) if remote.is_url(text) else (_local_directory(text), None)


local_directory = parsed_by(_local_directory)
"""An existing local directory, or a usage error saying it is not one."""

directory = parsed_by(_directory)
"""An existing directory, or an object-store URL (``s3://bucket/runs``) read through its local mirror
(tbscope.remote), or a usage error saying why it cannot be read."""

source = parsed_by(_source)
"""As ``directory``, with the URL kept beside the folder (None for a local one): for a command that syncs again."""


def _config_keys(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise ValueError(f"expected config keys separated by commas, got {text!r}")
    return keys


config_keys = parsed_by(_config_keys)
"""Config keys separated by commas (``lr,model.width``), or a usage error."""


def _pattern(text: str) -> str:
    try:
        re.compile(text)
    except re.error as err:
        raise ValueError(f"not a regular expression: {err}") from None
    return text


pattern = parsed_by(_pattern)
"""A regular expression, or a usage error saying what is wrong with it."""


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
