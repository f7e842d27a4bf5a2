"""The README's Python examples run as written, in order, in one directory, as a reader follows them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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
        exec(compile(code, str(README), "exec", dont_inherit=True), namespace)  # as a script runs it
    event_dirs = {p.parent for p in (tmp_path / "runs").rglob("events.out.tfevents.*") if ".tbscope" not in p.parts}
    tags = [accumulate(d).Tags() for d in event_dirs]
    assert len(event_dirs) >= 3 and all(t["scalars"] or t["images"] for t in tags)
    assert sum(len(t["images"]) for t in tags) >= 5  # the CV helpers' pictures
    assert len(namespace["df"]) > 0 and len(namespace["images"]) > 0  # type: ignore[arg-type]


def example(marker: str) -> str:
    (code,) = [code for code in EXAMPLES if marker in code]
    return code


def test_the_readme_hydra_app_sweeps_into_one_experiment_of_named_runs(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(example("@hydra.main"))
    result = subprocess.run(
        [sys.executable, "train.py", "-m", "lr=0.1,0.01", "width=8,16", f"hydra.sweep.dir={tmp_path / 'multirun'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = sorted(p.name.split("-", 1)[1] for p in (tmp_path / "runs" / "hydra-sweep").iterdir())
    assert names == ["lr-0.01_width-16", "lr-0.01_width-8", "lr-0.1_width-16", "lr-0.1_width-8"]


def test_the_readme_torchrun_script_logs_once_for_both_ranks(tmp_path: Path) -> None:
    from conftest import free_port

    (tmp_path / "train_ddp.py").write_text(example("dist.init_process_group"))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(free_port())]  # fmt: skip
    result = subprocess.run(
        [*launcher, "train_ddp.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs" / "ddp").iterdir()
    assert [e.step for e in accumulate(run_dir).Scalars("train/loss")] == list(range(10))
