"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import accumulate

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_examples() -> None:
    assert EXAMPLES


@pytest.mark.parametrize("code", EXAMPLES)
def test_readme_example_runs_and_logs(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    event_dirs = {p.parent for p in (tmp_path / "runs").rglob("events.out.tfevents.*")}
    assert event_dirs and all(accumulate(d).Tags()["scalars"] for d in event_dirs)
