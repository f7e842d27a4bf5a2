"""Faults while logging: a SIGTERM during close, a forked child, a disk that fills and empties, a flood
at close, a run.json that cannot be written. Nothing logged is lost without a count."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tensorboard.plugins.hparams import api_pb2

import tbscope
from conftest import accumulate, free_port, serve, session_infos, stop


def run_script(body: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body), *args], capture_output=True, text=True, timeout=timeout
    )


def test_a_sigterm_during_the_final_close_loses_nothing_queued(tmp_path: Path) -> None:
    result = run_script(
        """
        import os, signal, sys, threading, tbscope
        w = tbscope.Writer(sys.argv[1], flush_secs=3600)
        for step in range(20_000):
            w.add_scalar("loss", float(step), step)
            w.add_text("note", "x", step) if step % 1000 == 0 else None
        # The signal arrives while close() is writing the queue out.
        threading.Timer(0.002, os.kill, (os.getpid(), signal.SIGTERM)).start()
        w.close()
        threading.Event().wait(5)
        """,
        str(tmp_path),
    )
    assert result.returncode == -15, result.stderr  # the process dies of the SIGTERM, after writing
    steps = [e.step for e in accumulate(tmp_path).Scalars("loss")]
    assert steps == list(range(20_000))


def test_a_forked_dataloader_style_child_logs_through_the_inherited_writer(tmp_path: Path) -> None:
    result = run_script(
        """
        import json, multiprocessing, sys, tbscope
        run = tbscope.init("fork", root=sys.argv[1])
        run.writer.add_scalar("parent", 1.0, 0)

        def worker(rank):
            for step in range(50):
                run.writer.add_scalar(f"child{rank}", float(step), step)
            # no flush, no close: a DataLoader worker just returns

        children = [multiprocessing.get_context("fork").Process(target=worker, args=(r,)) for r in range(2)]
        [c.start() for c in children]
        [c.join() for c in children]
        print("children", [c.exitcode for c in children])
        meta = json.loads((run.dir / "run.json").read_text())
        print("status while the parent trains", meta["status"])
        run.writer.add_scalar("parent", 2.0, 1)
        run.finish()
        print(run.dir)
        """,
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "children [0, 0]" in lines and "status while the parent trains running" in lines
    run_dir = Path(lines[-1])
    acc = accumulate(run_dir)
    assert [e.step for e in acc.Scalars("child0")] == list(range(50))
    assert [e.step for e in acc.Scalars("child1")] == list(range(50))
    assert [e.value for e in acc.Scalars("parent")] == [1.0, 2.0]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "finished" and meta["summary"]["parent"]["count"] == 2
    assert session_infos(run_dir)[1].status == api_pb2.STATUS_SUCCESS  # type: ignore[union-attr]


def test_an_os_fork_child_that_exits_never_touches_the_parents_run(tmp_path: Path) -> None:
    result = run_script(
        """
        import json, os, sys, tbscope
        run = tbscope.init("fork", root=sys.argv[1])
        run.writer.add_scalar("loss", 1.0, 0)
        run.writer.flush()
        pid = os.fork()
        if pid == 0:
            run.writer.add_scalar("from_child", 5.0, 0)
            sys.exit(0)  # atexit runs in the child
        os.waitpid(pid, 0)
        print("after child", json.loads((run.dir / "run.json").read_text())["status"])
        run.finish()
        print(run.dir)
        """,
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "after child running" in result.stdout.splitlines()
    run_dir = Path(result.stdout.splitlines()[-1])
    assert [e.value for e in accumulate(run_dir).Scalars("from_child")] == [5.0]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


def test_values_a_full_disk_refused_are_written_when_space_returns(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the kernel refuse writes past a size, as a full disk does; raising it back
    # is the space coming back.
    result = run_script(
        """
        import json, resource, signal, sys, warnings, numpy as np, tbscope
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        run = tbscope.init("disk", root=sys.argv[1], cadence=tbscope.Cadence(every=1))
        w = run.writer
        for step in range(50):
            w.add_scalar("loss", float(step), step)
        w.flush()
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, hard))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for step in range(50, 150):
                w.add_image("big", np.random.rand(3, 64, 64), step)
                w.add_scalar("loss", float(step), step)
                w.flush()
            summary = json.loads((run.dir / "run.json").read_text())["summary"]["loss"]
            print("run.json while the disk is full", summary["count"], summary["last_step"])
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            run.finish()
        for c in caught:
            print("WARNING", c.message)
        print(run.dir)
        """,
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    run_dir = Path(lines[-1])
    acc = accumulate(run_dir)
    assert [e.step for e in acc.Scalars("loss")] == list(range(150))  # nothing lost
    assert len(acc.Images("big")) == 100
    full = next(line for line in lines if line.startswith("run.json while the disk is full"))
    count = int(full.split()[-2])
    assert 50 <= count < 150  # run.json said what was on disk then, not what was queued
    assert not any("lost" in line for line in lines)
    assert sum("could not write" in line for line in lines) == 1
    assert json.loads((run_dir / "run.json").read_text())["summary"]["loss"]["count"] == 150


def test_the_end_status_is_recorded_past_the_memory_bound(tmp_path: Path) -> None:
    big = np.zeros((3, 256, 256), dtype=np.float32)
    with (
        pytest.warns(RuntimeWarning, match="behind the disk"),
        tbscope.Writer(tmp_path, max_pending_bytes=2 * big.nbytes) as w,
    ):
        w.add_hparams({"lr": 0.1}, {"loss": 1.0})
        for step in range(300):
            w.add_image("img", big, step)
    assert session_infos(tmp_path)[1].status == api_pb2.STATUS_SUCCESS  # type: ignore[union-attr]


def test_finish_warns_and_returns_when_run_json_cannot_be_written(tmp_path: Path) -> None:
    run = tbscope.init("gone", root=tmp_path)
    run.writer.add_scalar("loss", 1.0, 0)
    (run.dir / "run.json").unlink()
    (run.dir / "run.json").mkdir()  # run.json can no longer be replaced
    with pytest.warns(RuntimeWarning, match=r"could not record the end of run .* in run.json"):
        run.finish()
    assert accumulate(run.dir).Scalars("loss")[0].value == 1.0


def test_run_files_are_readable_by_others_and_no_lock_file_is_left(tmp_path: Path) -> None:
    """A shared TensorBoard, run by another user, reads run.json and the Projector config."""
    with tbscope.init("shared", root=tmp_path) as run:
        run.writer.add_embedding(np.random.default_rng(0).random((10, 3)), metadata=list(range(10)))
    for name in ("run.json", "projector_config.pbtxt"):
        assert (run.dir / name).stat().st_mode & 0o777 == 0o644, name
    assert not [p.name for p in run.dir.iterdir() if p.name.startswith(".")]


@contextlib.contextmanager
def stopped_lock_holder(root: Path) -> Iterator[int]:
    """A real process that holds the root's lock, stopped with SIGSTOP (Ctrl-Z, a debugger); its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from pathlib import Path
            from tbscope import atomic, schema
            with atomic.locked(Path(sys.argv[1]) / schema.HOME / schema.LOCK):
                print("held", flush=True)
                time.sleep(600)
            """), str(root)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        os.kill(holder.pid, signal.SIGSTOP)
        yield holder.pid
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        holder.kill()
        holder.wait()


def test_a_stopped_process_holding_the_roots_lock_costs_no_value_and_no_hang(tmp_path: Path) -> None:
    with tbscope.init("cnn", root=tmp_path, config={"lr": 0.1}) as earlier:
        earlier.writer.add_scalar("val/acc", 0.5, 0)
    with stopped_lock_holder(tmp_path) as pid:
        result = run_script(
            """
            import json, sys, warnings, tbscope
            from tbscope import schema
            schema.LOCK_SECONDS = 2.0  # the bound on waiting for the lock, short for the test
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                run = tbscope.init("cnn", root=sys.argv[1], config={"lr": 0.2})
                for step in range(10_704):
                    run.writer.add_scalar("train/loss", float(step), step)
                    if step % 1000 == 999:  # a new headline metric: the HParams columns change
                        run.writer.add_scalar("val/acc", step / 10_704, step)
                        run.writer.add_scalar(f"val/metric{step // 1000}", 1.0, step)
                        run.writer.flush()
                run.finish()
            for c in caught:
                print("WARNING", c.message)
            print(run.dir)
            """,
            str(tmp_path),
            timeout=300,  # before the fix the script waited on the lock for as long as the holder was stopped
        )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    run_dir = Path(lines[-1])
    acc = accumulate(run_dir)
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(10_704))  # every value on disk
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "finished" and "lost" not in meta
    assert meta["summary"]["train/loss"]["count"] == 10_704
    told = [line for line in lines if line.startswith("WARNING")]
    assert any(f"by pid {pid}, which is stopped" in line and "runs root's lock" in line for line in told)  # init
    columns = [line for line in told if "could not update the HParams columns" in line]
    assert len(columns) == 1 and f"by pid {pid}, which is stopped" in columns[0]  # one warning when it gives up


def test_a_later_refresh_catches_up_once_the_lock_holder_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tbscope import schema

    monkeypatch.setattr(schema, "LOCK_SECONDS", 1.0)
    with stopped_lock_holder(tmp_path):
        with pytest.warns(RuntimeWarning, match="which is stopped"):
            run = tbscope.init("cnn", root=tmp_path, config={"lr": 0.1, "depth": 3})
            run.writer.add_scalar("val/acc", 0.5, 0)
            run.writer.flush()
        assert not list(run.dir.glob("events.out.tfevents.*.tbscope-hparams-*"))
    run.writer.add_scalar("val/acc", 0.6, 1)
    run.writer.flush()  # the holder is gone: this flush's refresh catches up
    (summary,) = run.dir.glob("events.out.tfevents.*.tbscope-hparams-*")
    assert b"depth" in summary.read_bytes() and b"val/acc" in summary.read_bytes()
    run.finish()


def test_serve_on_a_root_whose_lock_holder_is_stopped_says_so_and_serves(tmp_path: Path) -> None:
    with tbscope.init("cnn", root=tmp_path, config={"lr": 0.1}) as run:
        run.writer.add_scalar("val/acc", 0.5, 0)
    with stopped_lock_holder(tmp_path) as pid:
        served = serve(tmp_path, "--port", str(free_port()))
        try:
            told = "".join(served.lines)
            assert "could not update the HParams columns" in told and f"by pid {pid}, which is stopped" in told
            with urllib.request.urlopen(f"{served.url}/data/runs", timeout=30) as response:
                assert response.status == 200
        finally:
            stop(served)


def test_a_sigterm_during_finish_leaves_run_json_ended_with_its_summary(tmp_path: Path) -> None:
    result = run_script(
        """
        import os, signal, sys, threading, tbscope
        run = tbscope.init("cnn", root=sys.argv[1], config={"lr": 0.1})
        print(run.dir, flush=True)
        for step in range(200_000):
            run.writer.add_scalar("train/loss", float(step), step)
        close = run.writer.close

        def close_after_a_signal(*args):
            # The signal is sent once finish() has begun, and arrives while it writes the queue out
            # (a timer started before finish() could fire before it, on a loaded machine).
            threading.Timer(0.002, os.kill, (os.getpid(), signal.SIGTERM)).start()
            close(*args)

        run.writer.close = close_after_a_signal
        run.finish()
        threading.Event().wait(5)
        """,
        str(tmp_path),
    )
    assert result.returncode == -15, result.stderr  # the process dies of the SIGTERM, after writing
    run_dir = Path(result.stdout.splitlines()[0])
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "finished" and meta["ended"]  # the end finish() was making, not "running"
    on_disk = accumulate(run_dir).Scalars("train/loss")
    assert len(on_disk) == 200_000 == meta["summary"]["train/loss"]["count"]
    assert meta["summary"]["train/loss"]["last_step"] == 199_999


def test_a_scripts_own_sigterm_handler_exiting_143_is_interrupted(tmp_path: Path) -> None:
    result = run_script(
        """
        import os, signal, sys, time, tbscope
        run = tbscope.init("cnn", root=sys.argv[1])
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # installed after tbscope's, replacing it
        run.writer.add_scalar("x", 1.0, 0)
        print(run.dir, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        """,
        str(tmp_path),
    )
    assert result.returncode == 143, result.stderr
    run_dir = Path(result.stdout.splitlines()[0])
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted", result.stderr
    assert session_infos(run_dir)[1].status == api_pb2.STATUS_FAILURE  # type: ignore[union-attr]


def test_values_logged_by_dataloader_workers_reach_the_runs_summary_and_ls(tmp_path: Path) -> None:
    result = run_script(
        """
        import sys, torch, tbscope
        from torch.utils.data import DataLoader, Dataset

        class Logged(Dataset):
            def __init__(self, writer):
                self.writer = writer
            def __len__(self):
                return 40
            def __getitem__(self, i):
                self.writer.add_scalar("metrics/sample_mean", float(i), i)  # from the worker process
                return torch.tensor(float(i))

        with tbscope.init("cnn", root=sys.argv[1]) as run:
            loader = DataLoader(Logged(run.writer), batch_size=4, num_workers=2,
                                multiprocessing_context="fork")
            for step, batch in enumerate(loader):
                run.writer.add_scalar("train/loss", float(batch.mean()), step)
        print(run.dir)
        """,
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.splitlines()[-1])
    on_disk = accumulate(run_dir).Scalars("metrics/sample_mean")
    assert sorted(e.step for e in on_disk) == list(range(40))
    summary = json.loads((run_dir / "run.json").read_text())["summary"]
    assert summary["metrics/sample_mean"]["count"] == 40 and summary["metrics/sample_mean"]["min"] == 0.0
    assert summary["metrics/sample_mean"]["max"] == 39.0 and summary["train/loss"]["count"] == 10
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("tbscope")), "compare", str(tmp_path), "--json", "--agg", "max"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    (compared,) = json.loads(shown.stdout)
    assert compared["metrics/sample_mean (max)"] == 39.0


def test_a_close_that_cannot_finish_says_how_many_values_are_not_on_disk(tmp_path: Path) -> None:
    result = run_script(
        """
        import json, sys, threading, warnings, tbscope
        from tbscope import pipeline
        pipeline.CLOSE_SECONDS = 2.0  # how long close() waits, short for the test
        run = tbscope.init("cnn", root=sys.argv[1], config={"lr": 0.1})
        for step in range(100):
            run.writer.add_scalar("train/loss", float(step), step)
        run.writer.flush()
        hang = threading.Event()
        run.writer.add_deferred(lambda: hang.wait(), 100)  # an encoder that never returns: a hung device, a disk
        for step in range(100, 1100):
            run.writer.add_scalar("train/loss", float(step), step)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run.finish()
        for c in caught:
            print("WARNING", c.message)
        print(run.dir)
        """,
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    run_dir = Path(lines[-1])
    meta = json.loads((run_dir / "run.json").read_text())
    on_disk = len(accumulate(run_dir).Scalars("train/loss"))
    # the hung value, the 1,000 scalars after it and the HParams session's end
    assert on_disk == 100 and meta["lost"] == {"unwritten": 1002}
    assert meta["status"] == "finished" and meta["summary"]["train/loss"]["count"] == on_disk
    assert any("1002 value(s) not on disk: close() gave up" in line for line in lines if line.startswith("WARNING"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system (tmpfs), mounted for the test: a disk that fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_sheds_queued_images_and_keeps_every_scalar_the_session_and_the_end(small_disk: Path) -> None:
    result = run_script(
        """
        import json, os, sys, warnings, numpy as np, tbscope
        from pathlib import Path
        root = Path(sys.argv[1])
        run = tbscope.init("disk", root=root, config={"lr": 0.1}, cadence=tbscope.Cadence(every=1))
        w = run.writer
        w.flush()
        filler = root / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # the disk fills up
            while os.write(fd, b"x" * 4096):
                pass
        except OSError:
            os.close(fd)
        rng = np.random.default_rng(0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for step in range(100):  # images queue up behind a full disk: about 5 MB
                w.add_image("samples", rng.random((3, 128, 128)), step)
                w.add_scalar("train/loss", float(step), step)
            w.flush()
            filler.unlink()  # space comes back, not enough for the images queued
            for step in range(100, 200):
                w.add_image("samples", rng.random((3, 128, 128)), step)
                w.add_scalar("train/loss", float(step), step)
            run.finish()
        for c in caught:
            print("WARNING", c.message)
        print(run.dir)
        """,
        str(small_disk),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    run_dir = Path(lines[-1])
    acc = accumulate(run_dir)
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(200))  # every scalar, once space returned
    start, end = session_infos(run_dir)
    assert start.hparams["lr"].number_value == 0.1  # type: ignore[attr-defined]
    assert end.status == api_pb2.STATUS_SUCCESS  # type: ignore[union-attr]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "finished" and meta["summary"]["train/loss"]["count"] == 200  # run.json = the disk
    images = len(acc.Images("samples"))
    shed = 200 - images  # every image not on disk is counted, alike in run.json and in the warning
    print(f"on disk: 200 of 200 scalars, {images} of 200 images; shed and counted: {shed}")
    assert images > 0 and meta["lost"] == {"shed": shed}
    assert any(f"{shed} value(s) shed" in line for line in lines if line.startswith("WARNING"))


def test_past_max_pending_bytes_the_hparams_session_is_kept_and_images_shed(tmp_path: Path) -> None:
    big = np.zeros((3, 256, 256), dtype=np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # the 512 MiB default, made two images here to keep the test's memory low: the rule is the same
        with tbscope.Writer(tmp_path, max_pending_bytes=2 * big.nbytes) as w:
            for step in range(300):
                w.add_image("img", big, step)
            w.add_hparams({"lr": 0.1, "depth": 3}, {"val/acc": 0.9})  # logged past the bound
    start, end = session_infos(tmp_path)
    assert dict(start.hparams)["depth"].number_value == 3  # type: ignore[attr-defined]
    assert end.status == api_pb2.STATUS_SUCCESS  # type: ignore[union-attr]
    assert [e.value for e in accumulate(tmp_path).Scalars("val/acc")] == [pytest.approx(0.9)]
    shed = 300 - len(accumulate(tmp_path).Images("img"))
    assert shed > 0 and w.lost_values() == {"shed": shed}
    assert any(f"{shed} value(s) shed" in str(c.message) for c in caught)
