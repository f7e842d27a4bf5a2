"""The README's Python examples run as written, in order, in one directory, as a reader follows them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import accumulate

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_examples_run_and_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(EXAMPLES) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for code in EXAMPLES:
        exec(compile(code, str(README), "exec"), namespace)
    event_dirs = {p.parent for p in (tmp_path / "runs").rglob("events.out.tfevents.*")}
    tags = [accumulate(d).Tags() for d in event_dirs]
    assert len(event_dirs) >= 3 and all(t["scalars"] or t["images"] for t in tags)
    assert sum(len(t["images"]) for t in tags) >= 5  # the CV helpers' pictures
    assert len(namespace["df"]) > 0 and len(namespace["images"]) > 0  # type: ignore[arg-type]
