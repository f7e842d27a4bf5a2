"""``tbscope ls``, ``compare``, ``export`` and ``du`` as a user runs them."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tbscope


def tbscope_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("tbscope")
    return subprocess.run(
        [str(command), *args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for i, (lr, optimizer) in enumerate([(0.1, "sgd"), (0.01, "adam"), (0.001, "adam")]):
        with tbscope.init("cnn", root=root, config={"lr": lr, "optimizer": optimizer, "epochs": 3}) as run:
            for step in range(20):
                run.writer.add_scalar("train/loss", 2.0 - step / 10 - i, step)
            run.writer.add_scalar("val/acc", 0.7 + i / 10, 20)
            run.writer.add_scalar("val/acc", 0.6 + i / 10, 21)
            run.writer.add_image("samples", np.random.default_rng(i).random((3, 64, 64)), 0)
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(root / "legacy" / "torch_run")
    for step in range(5):
        w.add_scalar("val/acc", 0.5, step)
    w.close()
    return root


def test_ls_shows_one_row_a_run_with_status_size_and_headline_metrics(root: Path) -> None:
    result = tbscope_cli("ls", str(root))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0].split()
    assert header[:4] == ["experiment", "run", "status", "started"] and "val/acc" in header
    cnn = [line for line in lines if line.startswith("cnn ")]
    assert len(cnn) == 3 and all(" finished " in line and " 21 " in line for line in cnn)
    assert any(line.startswith("legacy") and "torch_run" in line for line in lines)


def test_ls_json_for_scripts(root: Path) -> None:
    entries = json.loads(tbscope_cli("ls", str(root), "--json").stdout)
    cnn = [e for e in entries if e["experiment"] == "cnn"]
    assert len(cnn) == 3 and {e["hparams"]["lr"] for e in cnn} == {0.1, 0.01, 0.001}
    assert all(e["metrics"]["val/acc"]["count"] == 2 and e["last_step"] == 21 for e in cnn)
    assert all(e["bytes"] > 0 and e["status"] == "finished" for e in cnn)


def test_ls_reads_run_json_and_opens_no_event_file_of_a_tbscope_run(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for _ in range(30):
        with tbscope.init("cnn", root=root) as run:
            run.writer.add_scalar("val/acc", 0.5, 1)
    script = textwrap.dedent(
        f"""
        import sys
        opened = []
        sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
        from tbscope.cli import main
        assert main(["ls", {str(root)!r}]) == 0
        print("EVENT FILES OPENED:", sum("tfevents" in path for path in opened))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "EVENT FILES OPENED: 0" in result.stdout
    assert result.stdout.count("finished") == 30


def test_compare_shows_only_the_hyperparameters_that_differ_sorted_and_filtered(root: Path) -> None:
    result = tbscope_cli("compare", str(root / "cnn"), "--sort", "val/acc", "--desc")
    assert result.returncode == 0, result.stderr
    header, _, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["run", "lr", "optimizer"] and "epochs" not in header
    assert [row.split()[1] for row in rows] == ["0.001", "0.01", "0.1"]
    best = tbscope_cli("compare", str(root / "cnn"), "--agg", "max", "--json", "--all-params")
    table = json.loads(best.stdout)
    assert {row["epochs"] for row in table} == {3}
    assert sorted(row["val/acc (max)"] for row in table) == pytest.approx([0.7, 0.8, 0.9])
    filtered = tbscope_cli("compare", str(root), "--filter", 'lr < 0.05 and optimizer == "adam"', "--csv")
    frame = pd.read_csv(__import__("io").StringIO(filtered.stdout))
    assert sorted(frame["lr"]) == [0.001, 0.01]
    md = tbscope_cli("compare", str(root / "cnn"), "--markdown").stdout.splitlines()
    assert md[0].startswith("| run | lr | optimizer |") and md[1].startswith("|---|")


def test_compare_rejects_bad_filters_and_sorts(root: Path) -> None:
    typo = tbscope_cli("compare", str(root), "--filter", "lrr < 1")
    assert typo.returncode == 2 and "unknown name 'lrr'" in typo.stderr
    unsafe = tbscope_cli("compare", str(root), "--filter", "__import__('os').system('echo hi')")
    assert unsafe.returncode == 2 and "not allowed in a filter" in unsafe.stderr
    sort = tbscope_cli("compare", str(root), "--sort", "nope")
    assert sort.returncode == 2 and "no metric or hyperparameter" in sort.stderr


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_writes_every_scalar(root: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"scalars{suffix}"
    result = tbscope_cli("export", str(root), "-o", str(out), "--tags", "^val/", "--runs", "cnn")
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert list(frame.columns)[:5] == ["run", "tag", "step", "wall_time", "value"]
    assert all(c.startswith("config/") for c in list(frame.columns)[5:]) and "config/lr" in frame.columns
    assert len(frame) == 6 and set(frame["tag"]) == {"val/acc"}
    assert "Wrote 6 scalars of 3 run(s), 1 tag(s)" in result.stdout
    bad = tbscope_cli("export", str(root), "-o", str(tmp_path / "x.xlsx"))
    assert bad.returncode == 2 and "must end in .parquet, .csv or .json" in bad.stderr


def test_du_says_where_the_bytes_go_largest_first(root: Path) -> None:
    result = tbscope_cli("du", str(root), "--json")
    usage = json.loads(result.stdout)
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert usage["total"] == pytest.approx(total, abs=len(usage["by_tag"]))
    kinds = list(usage["by_kind"])
    assert kinds[0] == "images" and {"scalars", "run metadata"} <= set(kinds)
    sizes = [row["bytes"] for row in usage["by_tag"]]
    assert sizes == sorted(sizes, reverse=True)
    text = tbscope_cli("du", str(root)).stdout
    assert "images" in text and "samples" in text


def test_long_reads_show_progress_on_a_terminal_and_none_when_piped(root: Path) -> None:
    code = f"import tbscope.reader as r; r.PROGRESS_AFTER_SECONDS = 0; r.read_scalars({str(root)!r}, cache=False)"
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=follower, stdout=subprocess.DEVNULL)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    proc.wait(timeout=120)
    os.close(leader)
    assert b"tbscope: reading [" in output and b"files" in output


def test_export_to_a_folder_that_does_not_exist_says_so_in_one_line(root: Path, tmp_path: Path) -> None:
    for name in ("x.parquet", "x.csv"):
        out = tmp_path / "nonexistent" / "dir" / name
        result = tbscope_cli("export", str(root), "-o", str(out))
        assert result.returncode == 1 and not out.exists()
        assert result.stderr.startswith(f"tbscope export: cannot write {out}: ") and result.stderr.count("\n") == 1


@pytest.mark.parametrize("command", [["compare", "--csv"], ["du", "--json"], ["ls"]])
def test_output_into_a_closed_pipe_ends_quietly(root: Path, command: list[str]) -> None:
    executable = Path(sys.executable).with_name("tbscope")
    proc = subprocess.Popen([str(executable), command[0], str(root), *command[1:]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `| head` does once it has its lines
    stderr = proc.stderr.read()
    assert proc.wait(timeout=300) == 1 and stderr == b""


def test_json_output_holds_no_nan(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(tmp_path / "diverged")
    w.add_scalar("val/loss", 1.0, 0)
    w.add_scalar("val/loss", float("nan"), 1)
    w.close()
    for command in (["compare", "--json"], ["ls", "--json"]):
        result = tbscope_cli(command[0], str(tmp_path), *command[1:])
        assert result.returncode == 0 and "NaN" not in result.stdout
        json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    [row] = json.loads(tbscope_cli("compare", str(tmp_path), "--json").stdout)
    assert row["val/loss (last)"] is None


def test_a_filter_naming_an_unknown_name_is_refused_wherever_the_name_is(root: Path) -> None:
    for expression in ("lr < 0.001 and lrr > 1", "lrr > 1 and lr < 0.001", "lr > 1 and lrr > 1", "not lrr"):
        result = tbscope_cli("compare", str(root), "--filter", expression)
        assert result.returncode == 2 and result.stdout == ""
        assert "unknown name 'lrr'; the names are: epochs, lr, optimizer, train_loss, val_acc" in result.stderr


def test_prune_refuses_an_experiment_outside_the_root(tmp_path: Path) -> None:
    with tbscope.init("x", root=tmp_path) as old:
        pass
    with tbscope.init("x", root=tmp_path):
        pass
    runs_root = tmp_path / "runs"
    runs_root.mkdir()
    for name in ("../x", "x/..", "..", "/x"):
        result = tbscope_cli("prune", str(runs_root), "--keep-last", "1", "--experiment", name, "--yes")
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.startswith("tbscope prune: --experiment is the name of an experiment folder in ")
    assert old.dir.is_dir()


def test_ls_of_one_run_folder_shows_that_run_once_with_its_sub_runs_inside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tbscope.cli import main

    with tbscope.init("exp", root=tmp_path, name="only") as run:
        for step in range(3):
            run.writer.add_scalars("loss", {"a": step, "b": 2 * step}, step)  # a sub-run a key, as torch's
            run.writer.add_scalar("val/acc", step / 3, step)
    assert (run.dir / "loss_a").is_dir()  # a sub-run of the run
    capsys.readouterr()
    assert main(["ls", str(run.dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["experiment"], r["run"]) for r in rows] == [("exp", run.dir.name)]
