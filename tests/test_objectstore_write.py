"""Runs written straight to object storage (``Writer("s3://...")``, ``tbscope.init(root="s3://...")``) through
the local spool, against a real S3 server (rclone) that the faults stop, restart and refuse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import tbscope
from conftest import ObjectStore, wait_until
from tbscope import spool
from test_lifecycle import run_script
from test_objectstore import s3, tbscope_cli

STEPS, TAGS = 300, 20


def tensorboard_reads(url: str) -> EventAccumulator:
    """What stock TensorBoard's own loader reads from the URL (its S3 file layer, S3_ENDPOINT honoured)."""
    import boto3
    from tensorboard.compat.tensorflow_stub.io import gfile

    boto3.DEFAULT_SESSION = None  # boto3 keeps the credentials it first read: this test's server has its own
    gfile.register_filesystem("s3", gfile.S3FileSystem())  # it reads S3_ENDPOINT when made
    return EventAccumulator(url, size_guidance={"scalars": 0, "images": 0}).Reload()


def steps(url: str, tag: str = "loss") -> list[int]:
    """The steps of ``tag`` TensorBoard reads from the URL, none while it has no such tag."""
    acc = tensorboard_reads(url)
    return [e.step for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def stored(store: ObjectStore, *parts: str) -> list[str]:
    """The objects under a prefix, relative to it, as the store lists them."""
    prefix = store.url(*parts)[len("s3://") :]
    return sorted(path[len(prefix) + 1 :] for path in s3(store).find(prefix))  # type: ignore[attr-defined]


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rounds a few times a second, so that a test sees what a live TensorBoard sees within seconds."""
    monkeypatch.setattr(spool, "UPLOAD_SECONDS", 0.2)


def test_a_loop_writing_to_the_bucket_shows_every_value_in_tensorboard_and_the_cli(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    url = object_store.url("runs")
    spools = []
    for lr in (0.1, 0.01):
        with tbscope.init("cnn", root=url, config={"lr": lr, "seed": 0}) as run:
            spools.append(run.dir)
            for step in range(STEPS):
                for t in range(TAGS):
                    run.writer.add_scalar(f"m/{t:02d}", lr * step + t, step)
                if step % 50 == 0:
                    run.writer.add_image("samples", np.random.default_rng(step).random((3, 16, 16)), step)
            run.writer.add_scalar("val/loss", lr, STEPS)
        assert run.url == f"{url}/cnn/{run.dir.name}"
    assert [p.name for p in spools] == ["0001-" + spools[0].name[5:], "0002-" + spools[1].name[5:]]
    assert not any(p.exists() for p in spools)  # sent whole: the spools are gone
    for folder in (p.name for p in spools):
        acc = tensorboard_reads(f"{url}/cnn/{folder}")
        for t in range(TAGS):
            assert [e.step for e in acc.Scalars(f"m/{t:02d}")] == list(range(STEPS))
        assert acc.Images("samples")[0].step == 0 and len(acc.Images("samples")) >= 3
        meta = json.loads(s3(object_store).cat_file(f"{url}/cnn/{folder}/run.json"))  # type: ignore[attr-defined]
        assert meta["status"] == "finished" and meta["summary"]["m/00"]["count"] == STEPS

    from tbscope import groups

    frame = tbscope.read_scalars(url, tags=["m/00"])  # the Python API takes the URL too
    assert len(frame) == 2 * STEPS and sorted(frame["run"].unique()) == sorted(f"cnn/{p.name}" for p in spools)
    assert sorted(g["label"] for g in groups.summary(url)["groups"]) == ["lr=0.01", "lr=0.1"]
    listed = json.loads(tbscope_cli("ls", url, "--json").stdout)
    assert sorted(e["hparams"]["lr"] for e in listed) == [0.01, 0.1]
    assert all(e["status"] == "finished" and e["last_step"] == STEPS for e in listed)
    compared = tbscope_cli("compare", url)
    assert compared.returncode == 0 and "0.01" in compared.stdout, compared.stderr


def test_a_live_tensorboard_sees_segments_grow_and_follow_each_other_in_order(
    object_store: ObjectStore, quick: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "SEGMENT_BYTES", 4_000)
    url = object_store.url("live", "run")
    with tbscope.Writer(url) as w:
        for step in range(500):
            w.add_scalar("loss", 1.0 / (step + 1), step)
            if step % 100 == 99:
                w.flush()
                wait_until(lambda s=step: steps(url)[-1:] == [s], what="the flushed step")
    objects = stored(object_store, "live", "run")
    assert len(objects) >= 2 and all(o.rsplit(".", 1)[1].isdigit() for o in objects)  # numbered segments
    assert [e.step for e in tensorboard_reads(url).Scalars("loss")] == list(range(500))  # in order, none twice


def test_the_store_down_for_a_while_loses_nothing(object_store: ObjectStore, quick: None) -> None:
    object_store.local_server()
    url = object_store.url("down", "run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w = tbscope.Writer(url)
        for step in range(100):
            w.add_scalar("loss", float(step), step)
        w.flush()
        wait_until(lambda: len(steps(url)) == 100, what="the first values")
        object_store.stop()
        started = time.monotonic()
        step = 100
        while not any("cannot upload" in str(c.message) for c in caught):  # training goes on, the store down
            assert time.monotonic() - started < 120, "no warning that uploads fail"
            w.add_scalar("loss", float(step), step)
            w.add_image("img", np.zeros((3, 8, 8)), step) if step % 100 == 0 else None
            step += 1
            time.sleep(0.001)
        w.flush()
        object_store.start()
        w.close()
    assert [e.step for e in tensorboard_reads(url).Scalars("loss")] == list(range(step))
    assert w.lost_values() == {}
    told = [str(c.message) for c in caught]
    assert any(f"cannot upload to {url}" in m for m in told) and any("uploads go on again" in m for m in told)
    assert not any(object_store.secret in m for m in told)


def test_a_full_spool_sheds_heavy_values_with_a_count_and_keeps_the_scalars(
    object_store: ObjectStore, quick: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    object_store.local_server()
    monkeypatch.setattr(spool, "MAX_BACKLOG", 50_000)
    url = object_store.url("full", "run")
    w = tbscope.Writer(url, max_pending_bytes=200_000)
    object_store.stop()
    with pytest.warns(RuntimeWarning, match="the upload spool is full"):
        for step in range(400):
            w.add_scalar("loss", float(step), step)
            w.add_image("img", np.random.default_rng(step).random((3, 32, 32)), step)
            time.sleep(0.01)
        w.flush()
    object_store.start()
    w.close()
    acc = tensorboard_reads(url)
    assert [e.step for e in acc.Scalars("loss")] == list(range(400))  # all, in the order they were logged
    shed = w.lost_values().get("shed", 0)
    assert shed > 0 and len(acc.Images("img")) + shed == 400  # every image written, or counted


def test_sigterm_during_an_upload_sends_everything_spooled(object_store: ObjectStore, tmp_path: Path) -> None:
    url = object_store.url("term", "run")
    proc = run_script(
        """
        import sys, tbscope
        w = tbscope.Writer(sys.argv[1])
        for step in range(200_000):
            w.add_scalar("loss", float(step), step)
        w.flush()  # a round starts: the signal comes while it sends, or while the loop logs on
        print("flushed", flush=True)
        for step in range(200_000, 10_000_000):
            w.add_scalar("loss", float(step), step)
        """,
        url,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "flushed"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == -signal.SIGTERM
    sent = steps(url)
    assert len(sent) >= 200_000 and sent == list(range(len(sent)))  # everything logged before it, none lost
    assert spool.left_spools() == []


def test_after_a_sigkill_tbscope_sync_sends_what_the_spool_kept(object_store: ObjectStore) -> None:
    url = object_store.url("killed", "run")
    proc = run_script(
        """
        import sys, time, tbscope
        w = tbscope.Writer(sys.argv[1])
        for step in range(5000):
            w.add_scalar("loss", float(step), step)
        w.flush()  # a round sends these
        for step in range(5000, 10_000):
            w.add_scalar("loss", float(step), step)
        time.sleep(1.5)  # these are on disk in the spool; the next round is seconds away
        print("written", flush=True)
        time.sleep(60)
        """,
        url,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
    proc.kill()
    proc.wait(timeout=30)
    left = spool.left_spools()
    assert len(left) == 1
    before = len(steps(url))
    assert before <= 5000  # at most what went up before the kill

    synced = tbscope_cli("sync")
    assert synced.returncode == 0, synced.stderr
    assert f"{url}: sent" in synced.stdout
    assert [e.step for e in tensorboard_reads(url).Scalars("loss")] == list(range(10_000))
    assert spool.left_spools() == [] and not left[0].exists()
    again = tbscope_cli("sync")
    assert again.returncode == 0 and "nothing to send" in again.stdout


def test_wrong_credentials_and_a_missing_bucket_fail_at_construction_naming_the_url(
    object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = object_store.url("runs")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-0123456789")
    with pytest.raises(PermissionError) as refused:
        tbscope.Writer(url + "/run")
    assert url in str(refused.value) and "wrong-secret" not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__  # one error, no botocore chain
    with pytest.raises(PermissionError, match="access denied"):
        tbscope.init("cnn", root=url)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", object_store.secret)
    with pytest.raises(FileNotFoundError, match="s3://no-such-bucket/runs: no such bucket"):
        tbscope.Writer("s3://no-such-bucket/runs")
    assert spool.left_spools() == [] and not list(spool.spools().glob("*/*"))  # no spool was started


def test_a_url_root_takes_no_resume_or_retention(object_store: ObjectStore) -> None:
    with pytest.raises(ValueError, match="takes no resume or retention"):
        tbscope.init("cnn", root=object_store.url("runs"), retention=tbscope.Retention(keep_last=2))


@pytest.mark.parametrize(
    ("url", "package"), [("gs://bucket/run", "gcsfs"), ("nosuch://bucket/run", "the fsspec package for nosuch://")]
)
def test_a_url_without_its_package_names_what_to_install(
    url: str, package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=package):
        tbscope.Writer(url)
    assert list(tmp_path.iterdir()) == []  # no local folder named like the URL


def test_a_file_url_is_written_like_a_bucket(tmp_path: Path) -> None:
    with tbscope.Writer(f"file://{tmp_path}/run") as w:
        for step in range(10):
            w.add_scalar("loss", float(step), step)
    assert [p.name.rsplit(".", 1)[1] for p in (tmp_path / "run").iterdir()] == ["000000"]
    assert [e.step for e in EventAccumulator(str(tmp_path / "run")).Reload().Scalars("loss")] == list(range(10))


def test_sync_leaves_a_spool_whose_writer_still_runs(object_store: ObjectStore) -> None:
    before = set(spool.spools().glob("*"))
    w = tbscope.Writer(object_store.url("alive", "run"))
    try:
        w.add_scalar("loss", 1.0, 0)
        mine = set(spool.spools().glob("*")) - before
        assert len(mine) == 1 and spool.left_spools() == [] and spool.sync() == []
    finally:
        w.close()
    assert not any(folder.exists() for folder in mine)


def test_stock_tensorboard_serves_a_live_run_from_the_bucket(object_store: ObjectStore, quick: None) -> None:
    import urllib.parse
    import urllib.request

    from conftest import free_port

    url = object_store.url("served")
    run = tbscope.init("cnn", root=url, name="live")
    for step in range(50):
        run.writer.add_scalar("val/loss", 1.0 / (step + 1), step)
    run.writer.flush()
    port = free_port()
    tensorboard = Path(sys.executable).with_name("tensorboard")
    argv = [str(tensorboard), "--logdir", url, "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"]
    # rclone answers a ranged read with the whole object's checksum, which botocore >= 1.36 rejects: a
    # TensorBoard reading a segment that grew (from where it stopped) needs validation left to when required
    env = {**os.environ, "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}  # S3_ENDPOINT: the server
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?"
    query = urllib.parse.urlencode({"run": "cnn/0001-live", "tag": "val/loss"})

    def served_steps() -> list[int]:
        try:
            with urllib.request.urlopen(base + query, timeout=10) as response:
                return [row[1] for row in json.loads(response.read())]
        except OSError:
            return []

    try:
        wait_until(lambda: served_steps() == list(range(50)), what="TensorBoard to serve the flushed steps")
        for step in range(50, 80):
            run.writer.add_scalar("val/loss", 1.0 / (step + 1), step)
        run.finish()
        wait_until(lambda: served_steps() == list(range(80)), what="TensorBoard to serve the steps sent later")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_embeddings_and_profiles_go_up_with_the_run(object_store: ObjectStore, tmp_path: Path) -> None:
    import torch

    url = object_store.url("assets")
    with tbscope.init("cnn", root=url, name="emb") as run:
        run.writer.add_embedding(torch.randn(20, 4), metadata=[str(i % 3) for i in range(20)], global_step=1)
        with tbscope.profile(run, wait=0, warmup=1, active=1) as prof:
            for _ in range(3):
                torch.ones(64, 64) @ torch.ones(64, 64)
                prof.step()
    objects = stored(object_store, "assets", "cnn", "0001-emb")
    assert "projector_config.pbtxt" in objects and any(o.endswith("tensors.tsv") for o in objects)
    assert any(o.startswith("profile/") and ".pt.trace.json" in o for o in objects), objects


def test_the_next_writer_to_a_url_sends_a_spool_a_killed_run_left(object_store: ObjectStore) -> None:
    url = object_store.url("adopted", "run")
    body = """
        import sys, time, tbscope
        w = tbscope.Writer(sys.argv[1])
        for step in range(3000):
            w.add_scalar("loss", float(step), step)
        time.sleep(1.5)  # on disk in the spool; the first round is seconds away
        print("written", flush=True)
        time.sleep(60)
        """
    proc = run_script(body, url)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
    proc.kill()
    proc.wait(timeout=30)
    assert len(spool.left_spools()) == 1
    other = run_script("import sys, tbscope\ntbscope.Writer(sys.argv[1]).close()\n", object_store.url("other", "run"))
    assert other.wait(timeout=120) == 0, other.stderr.read() if other.stderr else ""
    assert steps(url) == list(range(3000)) and spool.left_spools() == []


class Throttling:
    """An HTTP proxy in front of the S3 server that answers every second PUT with 503 SlowDown, as a throttled
    store does (the request is not passed on); the rest go through untouched, their signatures intact."""

    def __init__(self, upstream: str) -> None:
        import http.client
        import http.server
        import threading
        import urllib.parse

        target = urllib.parse.urlsplit(upstream)
        proxy = self
        self.puts = self.refused = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "PUT":
                    proxy.puts += 1
                    if proxy.puts % 2 == 0:
                        proxy.refused += 1
                        error = (
                            b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                        )
                        self.send_response(503)
                        self.send_header("Content-Type", "application/xml")
                        self.send_header("Content-Length", str(len(error)))
                        self.end_headers()
                        self.wfile.write(error)
                        return
                upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                upstream_conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    upstream_conn.putheader(name, value)
                upstream_conn.endheaders(body or None)
                answer = upstream_conn.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream_conn.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_throttling_store_loses_nothing(
    object_store: ObjectStore, quick: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    object_store.local_server()  # a proxy in front of a plain HTTP endpoint
    throttling = Throttling(str(object_store.endpoint))
    monkeypatch.setenv("S3_ENDPOINT", throttling.endpoint)
    url = object_store.url("throttled", "run")
    try:
        with tbscope.Writer(url) as w:
            for step in range(2000):
                w.add_scalar("loss", float(step), step)
                if step % 100 == 0:
                    w.add_image("img", np.random.default_rng(step).random((3, 16, 16)), step)
                    w.flush()
                    time.sleep(0.3)  # a round or two: PUTs for the proxy to refuse
    finally:
        throttling.close()
    assert throttling.refused >= 3  # the store said SlowDown, and the uploads went on
    monkeypatch.setenv("S3_ENDPOINT", str(object_store.endpoint))
    acc = tensorboard_reads(url)
    assert [e.step for e in acc.Scalars("loss")] == list(range(2000)) and len(acc.Images("img")) == 20
    assert w.lost_values() == {}


def test_a_backlog_goes_up_a_segment_at_a_time_and_a_big_record_alone(
    object_store: ObjectStore, quick: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    object_store.local_server()
    monkeypatch.setattr(spool, "SEGMENT_BYTES", 10_000)
    url = object_store.url("backlog", "run")
    w = tbscope.Writer(url)
    object_store.stop()  # the backlog builds while the store is down
    for step in range(3000):
        w.add_scalar("loss", float(step), step)
    w.add_text("notes", "x" * 30_000, 3000)  # one record three segments long
    w.flush()
    object_store.start()
    w.close()
    folder = object_store.local_server() / object_store.bucket / "backlog" / "run"
    sizes = sorted(p.stat().st_size for p in folder.iterdir())
    assert len(sizes) >= 8 and sum(size <= 10_000 for size in sizes) >= len(sizes) - 1  # one holds the big record
    assert steps(url) == list(range(3000)) and len(tensorboard_reads(url).Tensors("notes")) == 1


def test_a_forked_worker_logs_into_the_parents_spool_and_never_ends_it(object_store: ObjectStore) -> None:
    url = object_store.url("forked")
    proc = run_script(
        """
        import multiprocessing, sys, tbscope
        run = tbscope.init("fork", root=sys.argv[1], name="r")
        run.writer.add_scalar("parent", 1.0, 0)

        def worker(rank):
            for step in range(50):
                run.writer.add_scalar(f"child{rank}", float(step), step)

        children = [multiprocessing.get_context("fork").Process(target=worker, args=(r,)) for r in range(2)]
        [c.start() for c in children]
        [c.join() for c in children]
        print("spool kept", run.dir.exists(), flush=True)
        run.writer.add_scalar("parent", 2.0, 1)
        run.finish()
        print("spool gone", not run.dir.exists(), flush=True)
        """,
        url,
    )
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "spool kept True" in out and "spool gone True" in out
    run_url = f"{url}/fork/0001-r"
    assert steps(run_url, "child0") == list(range(50)) and steps(run_url, "child1") == list(range(50))
    assert steps(run_url, "parent") == [0, 1]
