"""Runs: layout, run.json, statuses, resume, config, budgets and retention."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from tensorboard.plugins.hparams import api_pb2

import tbscope
from conftest import accumulate, hparams_table, session_infos, wait_until
from tbscope.retention import apply_retention, delete_run, plan_retention
from tbscope.rundir import STALE_AFTER, effective_status, find_runs, process_identity, read_meta


def meta_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def spawn(body: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(body), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_init_lays_out_the_run_and_describes_it_in_run_json(tmp_path: Path) -> None:
    with tbscope.init("cnn", root=tmp_path, name="baseline", config={"lr": 0.1, "opt": {"name": "sgd"}}) as run:
        for step in range(20):
            run.writer.add_scalar("train/loss", 10.0 - step, step)
        run.writer.add_scalar("val/acc", 0.9, 19)
    assert run.dir.parent == tmp_path / "cnn"
    assert run.dir.name == "0001-baseline"  # the name, where TensorBoard shows it
    meta = meta_of(run.dir)
    run_id = meta["id"]
    assert meta["schema"] == 1 and meta["id"] == run_id == run.id and meta["experiment"] == "cnn"
    assert meta["status"] == "finished" and meta["ended"] >= meta["created"]
    assert meta["host"] == socket.gethostname() and meta["pid"] == os.getpid()
    assert meta["command"] == sys.argv and meta["versions"]["tbscope"] == tbscope.__version__
    assert meta["versions"]["torch"] and meta["versions"]["python"].startswith("3.")
    assert meta["config"] == {"lr": 0.1, "opt": {"name": "sgd"}}
    assert meta["config_flat"] == {"lr": 0.1, "opt/name": "sgd"}
    assert meta["summary"]["train/loss"] == {"last": -9.0, "min": -9.0, "max": 10.0, "last_step": 19, "count": 20}
    assert meta["bytes"] > 0
    assert "git" in meta


def test_run_json_summary_is_kept_current_while_the_run_goes_on(tmp_path: Path) -> None:
    run = tbscope.init("cnn", root=tmp_path)
    run.writer.add_scalar("train/loss", 3.0, 7)
    run.writer.flush()
    meta = meta_of(run.dir)
    assert meta["status"] == "running" and meta["summary"]["train/loss"]["last_step"] == 7
    assert effective_status(meta) == "running"
    run.finish()


def test_run_directory_is_inside_git_state_when_in_a_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    (repo / "train.py").write_text("print(2)\n")
    monkeypatch.chdir(repo)
    with tbscope.init("cnn", root=tmp_path / "runs") as run:
        pass
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert meta_of(run.dir)["git"] == {"commit": commit, "dirty": True}


def test_forty_concurrent_inits_from_two_processes_get_forty_distinct_runs(tmp_path: Path) -> None:
    body = """
        import sys, threading, tbscope
        barrier = threading.Barrier(20)
        def start():
            barrier.wait()
            tbscope.init("sweep", root=sys.argv[1]).finish()
        threads = [threading.Thread(target=start) for _ in range(20)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    """
    procs = [spawn(body, str(tmp_path)) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    runs = find_runs(tmp_path, "sweep")
    assert len(runs) == 40
    assert len({r.meta["id"] for r in runs}) == 40 and all(r.status == "finished" for r in runs)
    assert sorted(r.path.name.split("-")[0] for r in runs) == [f"{n:04d}" for n in range(1, 41)]  # each its own


@pytest.mark.parametrize(
    ("error", "status", "hparams_status"),
    [
        (RuntimeError("diverged"), "failed", api_pb2.STATUS_FAILURE),
        (KeyboardInterrupt(), "interrupted", api_pb2.STATUS_FAILURE),
        (None, "finished", api_pb2.STATUS_SUCCESS),
    ],
)
def test_leaving_the_with_block_records_the_status(
    tmp_path: Path, error: BaseException | None, status: str, hparams_status: int
) -> None:
    with pytest.raises(type(error)) if error else _nothing(), tbscope.init("cnn", root=tmp_path) as run:
        run.writer.add_scalar("x", 1.0, 0)
        if error:
            raise error
    assert meta_of(run.dir)["status"] == status == run.status
    assert session_infos(run.dir)[1].status == hparams_status  # type: ignore[union-attr]


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_finish_with_an_explicit_status_and_bad_statuses(tmp_path: Path) -> None:
    run = tbscope.init("cnn", root=tmp_path)
    with pytest.raises(ValueError, match="finish: status must be one of finished, failed, interrupted, got 'done'"):
        run.finish("done")
    run.finish("failed")
    run.finish("finished")  # a second finish changes nothing
    assert meta_of(run.dir)["status"] == "failed"


@pytest.mark.parametrize(
    ("ending", "status"),
    [
        ("raise ValueError('oops')", "failed"),
        ("raise KeyboardInterrupt", "interrupted"),
        ("pass", "finished"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)", "interrupted"),
        ("sys.exit(3)", "failed"),
        ("sys.exit(0)", "finished"),
    ],
)
def test_a_process_that_ends_without_finishing_records_how_it_ended(tmp_path: Path, ending: str, status: str) -> None:
    proc = spawn(
        f"""
        import sys, time, tbscope
        run = tbscope.init("cnn", root=sys.argv[1])
        run.writer.add_scalar("x", 1.0, 0)
        {ending}
        """,
        str(tmp_path),
    )
    proc.communicate(timeout=60)
    (run,) = find_runs(tmp_path)
    assert run.status == status
    assert accumulate(run.path).Scalars("x")[0].value == 1.0


def test_a_script_whose_own_sigterm_handler_exits_is_recorded_interrupted(tmp_path: Path) -> None:
    proc = spawn(
        """
        import os, signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the script's own graceful stop
        import tbscope
        run = tbscope.init("cnn", root=sys.argv[1])
        run.writer.add_scalar("x", 1.0, 0)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        """,
        str(tmp_path),
    )
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    (run,) = find_runs(tmp_path)
    assert run.status == "interrupted"
    assert accumulate(run.path).Scalars("x")[0].value == 1.0


def test_sigkill_leaves_a_run_that_readers_call_crashed(tmp_path: Path) -> None:
    proc = spawn(
        """
        import sys, time, tbscope
        run = tbscope.init("cnn", root=sys.argv[1])
        run.writer.add_scalar("x", 1.0, 0)
        run.writer.flush()
        print("ready", flush=True)
        time.sleep(60)
        """,
        str(tmp_path),
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    (run,) = find_runs(tmp_path)
    assert run.status == "running"
    proc.kill()
    proc.wait(timeout=30)
    (run,) = find_runs(tmp_path)
    assert run.meta["status"] == "running" and run.status == "crashed"


def test_a_stale_heartbeat_where_the_process_cannot_be_checked_is_stale_never_crashed() -> None:
    now = datetime.now(timezone.utc)
    fresh = (now - timedelta(seconds=30)).isoformat()
    stale = (now - STALE_AFTER - timedelta(seconds=1)).isoformat()
    elsewhere = {"status": "running", "host": "elsewhere", "pid": 1}
    container = {**process_identity(), "status": "running", "pid": 2**22 + 12345, "pid_namespace": "pid:[1]"}
    for meta in (elsewhere, container):  # another host; this host's name in another PID namespace
        assert effective_status({**meta, "heartbeat": fresh}) == "running"
        assert effective_status({**meta, "heartbeat": stale}) == "stale"
        assert effective_status({**meta, "status": "finished", "heartbeat": stale}) == "finished"


def training(root: Path) -> subprocess.Popen[str]:
    """A process that has started a run under ``root`` and trains on (sleeps) for a minute."""
    proc = spawn(
        """
        import sys, time, tbscope
        run = tbscope.init("cnn", root=sys.argv[1])
        print("ready", flush=True)
        time.sleep(60)
        """,
        str(root),
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_stopped_process_with_an_old_heartbeat_is_running(tmp_path: Path) -> None:
    """Ctrl-Z, or a scheduler's suspend, for longer than STALE_AFTER: the process is there."""
    proc = training(tmp_path)
    try:
        proc.send_signal(signal.SIGSTOP)
        (run,) = find_runs(tmp_path)
        old = (datetime.now(timezone.utc) - 3 * STALE_AFTER).isoformat()
        (run.path / "run.json").write_text(json.dumps({**run.meta, "heartbeat": old}))
        assert find_runs(tmp_path)[0].status == "running"
        result = prune(str(tmp_path), "--older-than", "0s", "--yes")
        assert result.returncode == 0 and run.path.exists()
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_a_killed_process_not_yet_reaped_is_crashed(tmp_path: Path) -> None:
    proc = training(tmp_path)
    proc.kill()
    wait_until(lambda: Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", "a zombie")
    try:
        assert find_runs(tmp_path)[0].status == "crashed"  # a zombie: killed, its parent has not reaped it
    finally:
        proc.wait(timeout=30)


def test_a_run_resumed_after_prune_planned_its_deletion_is_kept(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    ended = fake_run(tmp_path, "cnn", now - timedelta(days=9), "finished")
    (planned,) = plan_retention(find_runs(tmp_path), tbscope.Retention(max_age=timedelta(days=1)))
    resumed = tbscope.init("cnn", root=tmp_path, resume=planned.meta["id"])  # while prune asks [y/N]
    try:
        assert delete_run(tmp_path, planned) is False and ended.exists()
    finally:
        resumed.finish()


def test_keep_last_counts_runs_by_their_folder_whatever_run_json_says(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    runs = [fake_run(tmp_path, "cnn", now - timedelta(days=d), "finished") for d in (3, 2, 1)]
    meta = meta_of(runs[0])
    (runs[0] / "run.json").write_text(json.dumps({**meta, "experiment": "something-else"}))
    apply_retention(tmp_path, tbscope.Retention(keep_last=2), None)
    assert [p.exists() for p in runs] == [False, True, True]


def test_a_sweep_starting_with_retention_starts_every_run(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    for d in range(6):
        fake_run(tmp_path, "sweep", now - timedelta(days=10 + d), "finished")
    procs = [
        spawn(
            """
            import sys, tbscope
            with tbscope.init("sweep", root=sys.argv[1], retention=tbscope.Retention(keep_last=3)) as run:
                run.writer.add_scalar("x", 1.0, 0)
            print("started", run.id)
            """,
            str(tmp_path),
        )
        for _ in range(8)
    ]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 8, [err for _, err in results]
    assert all("started" in out for out, _ in results)


def test_run_json_is_whole_after_a_kill_in_the_middle_of_writing_it(tmp_path: Path) -> None:
    proc = spawn(
        """
        import sys, tbscope
        run = tbscope.init("cnn", root=sys.argv[1], config={f"k{i}": "x" * 200 for i in range(500)})
        for step in range(200):
            run.writer.add_scalar(f"tag/{step}", float(step), step)
        run.writer.flush()
        print("ready", flush=True)
        while True:
            run._save()  # what every flush does, as fast as it can
        """,
        str(tmp_path),
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for _ in range(5):
        time.sleep(0.05)
        meta = read_meta(find_runs(tmp_path)[0].path)
        assert meta is not None and len(meta["config"]) == 500
    proc.kill()
    proc.wait(timeout=30)
    run_dir = next((tmp_path / "cnn").iterdir())
    assert len(json.loads((run_dir / "run.json").read_text())["summary"]) == 200


def test_resume_continues_the_run_in_its_directory_and_hides_the_steps_after_the_checkpoint(tmp_path: Path) -> None:
    with tbscope.init("cnn", root=tmp_path, config={"lr": 0.1, "opt": {"name": "sgd"}}) as first:
        for step in range(10):
            first.writer.add_scalar("loss", 1.0, step)
    time.sleep(1.1)  # a new event file name
    with tbscope.init("cnn", root=tmp_path, resume=tbscope.Resume(first.id, step=5)) as resumed:
        for step in range(5, 8):
            resumed.writer.add_scalar("loss", 2.0, step)
    assert resumed.dir == first.dir and resumed.id == first.id
    points = [(e.step, e.value) for e in accumulate(first.dir).Scalars("loss")]
    assert points == [(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 2.0), (6, 2.0), (7, 2.0)]
    meta = meta_of(first.dir)
    assert meta["status"] == "finished" and meta["resumed"][0]["step"] == 5
    assert meta["config_flat"] == {"lr": 0.1, "opt/name": "sgd"}  # resumed without config: the run keeps its own
    with pytest.raises(FileNotFoundError, match="resume='nope' is neither a run directory nor a run id"):
        tbscope.init("cnn", root=tmp_path, resume="nope")


@dataclasses.dataclass
class TrainConfig:
    lr: float = 0.1
    layers: tuple[int, ...] = (64, 64)
    data: dict = dataclasses.field(default_factory=lambda: {"root": Path("/data"), "augment": True})


def test_config_may_be_a_dataclass_a_namespace_or_an_omegaconf_config(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    configs = {
        "dataclass": TrainConfig(),
        "namespace": argparse.Namespace(lr=0.1, layers=[64, 64], data={"root": "/data", "augment": True}),
        "omegaconf": OmegaConf.create(
            {"base": 0.05, "lr": "${base}", "layers": [64, 64], "data": {"root": "/data", "augment": True}}
        ),
    }
    flats = {}
    for kind, config in configs.items():
        with tbscope.init(kind, root=tmp_path, config=config) as run:
            pass
        flats[kind] = meta_of(run.dir)["config_flat"]
    assert flats["dataclass"] == {"lr": 0.1, "layers": "[64, 64]", "data/root": "/data", "data/augment": True}
    assert flats["namespace"] == flats["dataclass"]
    assert flats["omegaconf"]["lr"] == 0.05  # interpolation resolved


class Opaque:
    def __str__(self) -> str:
        return "opaque"


def test_any_config_is_stored_as_lightnings_loggers_store_it_with_one_warning_for_text(tmp_path: Path) -> None:
    import torch

    config = {
        "args": argparse.Namespace(lr=0.1, opt=argparse.Namespace(name="sgd")),
        "scale": torch.tensor([0.5]), "weights": np.array([1.0, 2.0]), "big": torch.zeros(20, 20), "n": np.int64(3),
        "act": torch.nn.ReLU, "fn": print, "a": {"b": Opaque(), "c": Opaque()},
    }  # fmt: skip
    with pytest.warns(RuntimeWarning, match=r"stored as text.*config\['a'\]\['b'\] \(Opaque\)") as caught:
        run = tbscope.init("cnn", root=tmp_path, config=config)
    run.add_config({"later": Opaque(), "odd": [1, 2]})  # in the middle of training: never raises
    run.add_config([1, 2])
    run.finish()
    assert len([w for w in caught if "stored as text" in str(w.message)]) == 1
    meta = meta_of(run.dir)
    assert meta["config_flat"] == {
        "args/lr": 0.1, "args/opt/name": "sgd", "scale": 0.5, "weights": "[1.0, 2.0]",
        "big": "Tensor of shape (20, 20)", "n": 3, "act": "torch.nn.modules.activation.ReLU", "fn": "builtins.print",
        "a/b": "opaque", "a/c": "opaque", "later": "opaque", "odd": "[1, 2]",
    }  # fmt: skip
    table = hparams_table(tmp_path)
    (row,) = [row for name, row in table.items() if name]
    assert row["hparams"]["args/opt/name"] == "sgd" and row["hparams"]["act"] == "torch.nn.modules.activation.ReLU"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"config": [1, 2]}, TypeError, r"config must be a dict, a dataclass, an argparse.Namespace or an OmegaConf"),
        ({"experiment": "a/b"}, ValueError, r"experiment must be a plain name .* got 'a/b'"),
        ({"experiment": ".."}, ValueError, r"got '\.\.'"),
        ({"experiment": "../escape"}, ValueError, r"got '\.\./escape'"),
        ({"name": "x/y"}, ValueError, r"name must be a plain name"),
        ({"metrics": "val/acc"}, TypeError, r"metrics must be a list of scalar tags"),
    ],
)
def test_bad_input_is_a_clear_error_and_nothing_is_written(
    tmp_path: Path, kwargs: dict, error: type, match: str
) -> None:
    root = tmp_path / "runs"
    with pytest.raises(error, match=match):
        tbscope.init(**{"experiment": "cnn", "root": root, **kwargs})
    assert not root.exists()


def test_a_root_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.write_text("oops")
    with pytest.raises(NotADirectoryError, match=r"root .* exists and is not a directory"):
        tbscope.init("cnn", root=root)
    assert root.read_text() == "oops"


def test_budget_stops_heavy_data_once_with_a_note_and_scalars_go_on(tmp_path: Path) -> None:
    image = np.random.default_rng(0).random((3, 64, 64))
    budget = tbscope.Budget(max_run_bytes=100_000)
    with (
        pytest.warns(RuntimeWarning, match=r"over its budget of 100,000 \(Budget.max_run_bytes\)") as caught,
        tbscope.init("cnn", root=tmp_path, budget=budget, cadence=tbscope.Cadence(every=1)) as run,
    ):
        for step in range(100):
            run.writer.add_image("img", image, step)
            run.writer.add_histogram("h", image, step)
            run.writer.add_scalar("loss", float(step), step)
            run.writer.flush()
    assert sum("over its budget" in str(w.message) for w in caught) == 1
    acc = accumulate(run.dir)
    assert 0 < len(acc.Images("img")) < 100
    assert len(acc.Scalars("loss")) == 100
    (note,) = acc.Tensors("tbscope/budget")
    assert b"no longer logged" in note.tensor_proto.string_val[0]
    assert meta_of(run.dir)["bytes"] < 200_000


def test_the_default_budget_is_a_gibibyte(tmp_path: Path) -> None:
    with tbscope.init("cnn", root=tmp_path) as run:
        assert run.writer.budget == tbscope.Budget() and tbscope.Budget().max_run_bytes == 2**30


def fake_run(root: Path, experiment: str, created: datetime, status: str, size: int = 1000, pid: int = 0) -> Path:
    """A run directory as tbscope leaves it, without the cost of running one."""
    run_id = os.urandom(4).hex()
    path = root / experiment / f"{created:%Y%m%dT%H%M%SZ}-{run_id}"
    path.mkdir(parents=True)
    (path / "events.out.tfevents.1.x").write_bytes(b"\0" * size)
    meta = {
        "schema": 1, "id": run_id, "experiment": experiment, "name": None, "status": status,
        "created": created.isoformat(), **process_identity(), "heartbeat": datetime.now(timezone.utc).isoformat(),
    }  # fmt: skip
    if pid:
        meta.update(pid=pid, pid_start=None)
    (path / "run.json").write_text(json.dumps(meta))
    return path


def test_retention_at_init_deletes_the_oldest_ended_runs_and_never_a_running_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(timezone.utc)
    running = fake_run(tmp_path, "cnn", now - timedelta(days=9), "running")
    old = [fake_run(tmp_path, "cnn", now - timedelta(days=d), "finished") for d in (8, 7, 6)]
    other = fake_run(tmp_path, "other", now - timedelta(days=9), "finished")
    with tbscope.init("cnn", root=tmp_path, retention=tbscope.Retention(keep_last=2)) as run:
        pass
    assert running.exists() and other.exists() and run.dir.exists()
    assert not old[0].exists() and not old[1].exists() and old[2].exists()
    assert "retention deleted 2 old run(s)" in capsys.readouterr().err


def prune(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("tbscope")
    return subprocess.run([str(command), "prune", *args], capture_output=True, text=True, input=stdin, timeout=60)


def test_prune_leaves_running_runs_symlinks_and_non_run_directories_alone(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    now = datetime.now(timezone.utc)
    running = fake_run(root, "cnn", now - timedelta(days=40), "running")
    ended = [fake_run(root, "cnn", now - timedelta(days=d), "finished", size=2_000_000) for d in (50, 45, 1)]
    crashed = fake_run(root, "cnn", now - timedelta(days=60), "running", pid=2**22 + 12345)  # a dead pid
    outside = fake_run(tmp_path / "elsewhere", "cnn", now - timedelta(days=90), "finished")
    (root / "cnn" / f"{(now - timedelta(days=99)):%Y%m%dT%H%M%SZ}-{outside.name.split('-')[1]}").symlink_to(outside)
    not_a_run = root / "cnn" / "notes"
    not_a_run.mkdir()
    (not_a_run / "keep.txt").write_text("mine")
    torch_run = root / "Nov26_06-00-00_host"
    torch_run.mkdir()
    (torch_run / "events.out.tfevents.1.host").write_bytes(b"")

    dry = prune(str(root), "--older-than", "30d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete" in dry.stdout and "nothing deleted" in dry.stdout
    assert all(p.exists() for p in (*ended, crashed))

    refused = prune(str(root), "--older-than", "30d")
    assert refused.returncode == 1 and "without --yes" in refused.stderr and ended[0].exists()

    done = prune(str(root), "--older-than", "30d", "--yes")
    assert done.returncode == 0, done.stderr
    assert f"{ended[0]}  2.0 MB" in done.stdout and "Deleted 3 run(s), freed 4.0 MB" in done.stdout
    assert not ended[0].exists() and not ended[1].exists() and not crashed.exists()
    assert ended[2].exists() and running.exists() and outside.exists() and (not_a_run / "keep.txt").exists()
    assert torch_run.exists()


def test_prune_by_size_and_count_and_its_errors(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    now = datetime.now(timezone.utc)
    runs = [fake_run(root, "cnn", now - timedelta(hours=h), "finished", size=1_000_000) for h in (5, 4, 3, 2, 1)]
    result = prune(str(root), "--max-size", "3.5MB", "--experiment", "cnn", "--yes")
    assert result.returncode == 0, result.stderr
    assert [p.exists() for p in runs] == [False, False, True, True, True]
    result = prune(str(root), "--keep-last", "1", "--yes")
    assert [p.exists() for p in runs] == [False, False, False, False, True]
    assert prune(str(root)).returncode == 2
    bad = prune(str(root), "--max-size", "lots")
    assert bad.returncode == 2 and "not a size: 'lots'" in bad.stderr
    assert prune(str(root), "--keep-last", "2", "--experiment", "nope").returncode == 2


def test_runs_list_in_start_order_on_disk_and_in_ls_old_folders_included(tmp_path: Path) -> None:
    from tbscope.catalog import catalog

    now = datetime.now(timezone.utc)
    old = fake_run(tmp_path, "sweep", now - timedelta(days=1), "finished")  # named as tbscope named runs before
    started = [tbscope.init("sweep", root=tmp_path, name=name) for name in ("zeta", "alpha", "mid")]
    for run in started:
        run.finish()
    unnamed = tbscope.init("sweep", root=tmp_path)
    unnamed.finish()
    names = [run.dir.name for run in [*started, unnamed]]
    assert names == ["0001-zeta", "0002-alpha", "0003-mid", f"0004-{unnamed.id}"]
    assert sorted(names) == names  # on disk, by name: in start order
    listed = [entry.run for entry in catalog(tmp_path)]
    assert listed == [old.name, *names]  # tbscope ls: in start order, the run from before numbers first
    assert [r.path for r in find_runs(tmp_path, "sweep")] == [old, *(r.dir for r in [*started, unnamed])]
    resumed = tbscope.init("sweep", root=tmp_path, resume=started[1].id)  # by id, whatever the folder's name
    assert resumed.dir == started[1].dir
    resumed.finish()


def test_a_name_too_long_for_a_folder_is_refused_with_the_limit(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="name must be at most 200 characters, got 300"):
        tbscope.init("exp", root=tmp_path, name="x" * 300)
    assert list(tmp_path.iterdir()) == []  # nothing made
