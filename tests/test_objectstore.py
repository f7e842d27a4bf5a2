"""Runs kept in object storage, read through tbscope's local mirror, against a real S3 server (rclone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import tbscope
from conftest import ObjectStore, accumulate

STEPS, TAGS = 200, 20


def tbscope_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("tbscope")
    return subprocess.run(
        [str(command), *args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def s3(store: ObjectStore) -> object:
    import s3fs

    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": store.endpoint}, skip_instance_cache=True)


def training_runs(root: Path) -> None:
    """Two runs of a loop logging 20 scalars a step and an image every 50 steps."""
    for lr in (0.1, 0.01):
        with tbscope.init("cnn", root=root, config={"lr": lr}) as run:
            for step in range(STEPS):
                for t in range(TAGS):
                    run.writer.add_scalar(f"m/{t:02d}", lr * step + t, step)
                if step % 50 == 0:
                    run.writer.add_image("samples", np.random.default_rng(step).random((3, 16, 16)), step)


def test_ls_compare_and_tensorboard_read_every_value_of_runs_in_the_bucket(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    local = tmp_path / "runs"
    training_runs(local)
    s3(object_store).put(str(local) + "/", object_store.url("runs") + "/", recursive=True)
    url = object_store.url("runs")

    listed = tbscope_cli("ls", url, "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert sorted(e["hparams"]["lr"] for e in entries) == [0.01, 0.1]
    assert all(e["status"] == "finished" for e in entries)
    exported = tbscope_cli("export", url, "-o", str(tmp_path / "scalars.csv"))
    assert exported.returncode == 0, exported.stderr
    rows = (tmp_path / "scalars.csv").read_text().splitlines()[1:]
    assert sum(",m/" in row for row in rows) == 2 * STEPS * TAGS
    compared = tbscope_cli("compare", url)
    assert compared.returncode == 0 and "0.01" in compared.stdout and "0.1" in compared.stdout, compared.stderr

    from tbscope.remote import mirror

    runs = [p for p in mirror(url).glob("cnn/*") if p.is_dir()]
    assert len(runs) == 2
    for run in runs:
        acc = accumulate(run)
        for t in range(TAGS):
            assert [e.step for e in acc.Scalars(f"m/{t:02d}")] == list(range(STEPS))
        logged = accumulate(local / "cnn" / run.name)  # the writer's cadence keeps some images: the same ones
        assert [e.step for e in acc.Images("samples")] == [e.step for e in logged.Images("samples")]
        assert [e.encoded_image_string for e in acc.Images("samples")][-1] == logged.Images("samples")[
            -1
        ].encoded_image_string


def test_a_sync_fetches_only_what_changed_and_drops_what_is_gone(object_store: ObjectStore, tmp_path: Path) -> None:
    from tbscope.remote import mirror

    fs = s3(object_store)
    for name in ("a", "b", "c"):
        fs.pipe(object_store.url("logs", name, "x.txt"), name.encode())
    folder = mirror(object_store.url("logs"))
    assert sorted(p.read_text() for p in folder.rglob("x.txt")) == ["a", "b", "c"]
    kept = (folder / "a" / "x.txt").stat().st_ino
    fs.pipe(object_store.url("logs", "b", "x.txt"), b"bb")
    fs.rm(object_store.url("logs", "c", "x.txt"))
    assert mirror(object_store.url("logs")) == folder
    assert (folder / "a" / "x.txt").stat().st_ino == kept  # unchanged: not downloaded again
    assert (folder / "b" / "x.txt").read_text() == "bb"
    assert not (folder / "c").exists()  # with its folder: a deleted run is no empty folder to list
    held = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert held == [".tbscope-mirror.json", "a/x.txt", "b/x.txt"]  # no download left half-done in the mirror


def test_bad_credentials_and_a_missing_bucket_are_one_line_without_the_secret(object_store: ObjectStore) -> None:
    wrong = "wrong-secret-0123456789"
    bad = tbscope_cli("ls", object_store.url("runs"), env={"AWS_SECRET_ACCESS_KEY": wrong})
    assert bad.returncode == 2
    assert object_store.url("runs") in bad.stderr and "Traceback" not in bad.stderr and wrong not in bad.stderr
    missing = tbscope_cli("ls", "s3://no-such-bucket/runs")
    assert missing.returncode == 2 and "s3://no-such-bucket/runs" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_protocol_without_its_package_names_what_to_install() -> None:
    result = tbscope_cli("ls", "gs://bucket/runs")
    assert result.returncode == 2 and "gcsfs" in result.stderr and "Traceback" not in result.stderr


def test_prune_deletes_ended_runs_in_the_bucket_and_never_one_with_a_fresh_heartbeat(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    from datetime import datetime, timezone

    local = tmp_path / "runs"
    for name in ("r0", "r1", "r2", "r3"):
        with tbscope.init("cnn", root=local, name=name) as run:
            run.writer.add_scalar("loss", 1.0, 0)
    meta_path = local / "cnn" / "0001-r0" / "run.json"  # r0 trains on another host: only its heartbeat says so
    meta = json.loads(meta_path.read_text())
    heartbeat = datetime.now(timezone.utc).isoformat()
    meta.update(status="running", host="another-host", heartbeat=heartbeat, ended=None)
    meta_path.write_text(json.dumps(meta))
    fs = s3(object_store)
    fs.put(str(local) + "/", object_store.url("runs") + "/", recursive=True)

    result = tbscope_cli("prune", object_store.url("runs"), "--keep-last", "1", "--yes")
    assert result.returncode == 0, result.stderr
    assert f"delete  {object_store.url('runs', 'cnn', '0002-r1')}" in result.stdout
    left = {Path(p).name for p in fs.ls(object_store.url("runs", "cnn"), refresh=True)}
    assert left == {"0001-r0", "0004-r3"}
    listed = json.loads(tbscope_cli("ls", object_store.url("runs"), "--json").stdout)
    assert sorted(e["run"] for e in listed) == ["0001-r0", "0004-r3"]  # the mirror dropped its copies


def test_serve_keeps_the_mirror_of_a_bucket_fresh(object_store: ObjectStore, tmp_path: Path) -> None:
    import urllib.request

    from conftest import serve, stop, wait_until

    local = tmp_path / "runs"
    with tbscope.init("cnn", root=local, name="first") as run:
        run.writer.add_scalar("loss", 1.0, 0)
    fs = s3(object_store)
    fs.put(str(local) + "/", object_store.url("runs") + "/", recursive=True)
    served = serve(object_store.url("runs"), "--port", "0")
    try:

        def runs() -> list[str]:
            return json.loads(urllib.request.urlopen(f"{served.url}/data/runs", timeout=10).read())

        wait_until(lambda: any("first" in r for r in runs()), what="the first run in TensorBoard")
        with tbscope.init("cnn", root=local, name="second") as run:
            run.writer.add_scalar("loss", 2.0, 0)
        fs.put(str(local) + "/", object_store.url("runs") + "/", recursive=True)
        wait_until(lambda: any("second" in r for r in runs()), what="a run added to the bucket to show")
    finally:
        stop(served)
    said = "".join(served.lines)
    assert f"TensorBoard for {object_store.url('runs')} at" in said
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in said
