"""What starting tbscope costs: ``import tbscope`` loads nothing heavy until a name is used."""

from __future__ import annotations

import json
import subprocess
import sys

import tbscope

HEAVY = ("torch", "pandas", "PIL", "tbscope.writer", "tbscope.pipeline")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    modules = set(json.loads(out.stdout.splitlines()[-1]))
    return [name for name in HEAVY if name in modules]


def test_import_tbscope_loads_neither_torch_pandas_pil_nor_the_writer() -> None:
    assert loaded_after("import tbscope") == []


def test_every_public_name_is_there_when_used() -> None:
    for name in tbscope.__all__:
        assert getattr(tbscope, name) is not None, name
    assert tbscope.SummaryWriter is tbscope.Writer
    assert set(tbscope.__all__) <= set(dir(tbscope))


def test_the_command_line_help_loads_neither_torch_pandas_pil_nor_the_writer() -> None:
    code = "from tbscope.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert loaded_after(code) == []
    assert loaded_after(code.replace("'--help'", "'ls', '--help'")) == []


def test_the_profile_tabs_entry_loads_neither_torch_pandas_pil_nor_the_writer() -> None:
    from importlib import metadata

    (entry,) = [e for e in metadata.entry_points(group="tensorboard_plugins") if e.name == "tbscope_profile"]
    assert loaded_after(f"import {entry.module}") == []
