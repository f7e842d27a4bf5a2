"""Shared test fixtures: read a run back the way TensorBoard does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

ALL = {"scalars": 0, "images": 0, "audio": 0, "histograms": 0, "compressedHistograms": 0, "tensors": 0}


def accumulate(path: str | os.PathLike[str]) -> EventAccumulator:
    """Everything TensorBoard's own loader reads from one run directory, nothing sampled away."""
    return EventAccumulator(str(path), size_guidance=ALL).Reload()


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tensorboard_server() -> Iterator[object]:
    """A function that starts a real ``tensorboard`` on a logdir and returns its base URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(logdir: Path) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
             "--port", str(port), "--reload_interval", "1", "--samples_per_plugin", "images=0,scalars=0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                urllib.request.urlopen(f"{url}/data/runs", timeout=2).read()
                return url
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("tensorboard did not start within 60s")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)
