"""A real ``tensorboard`` server shows what the Writer wrote: its HTTP API is what the browser gets."""

from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import running_tensorboard, wait_until
from tbscope import Writer


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return json.loads(body) if response.headers.get_content_type() == "application/json" else body


def post(url: str, payload: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("logs")
    with Writer(root / "adam") as w:
        w.add_hparams({"lr": 0.01, "optimizer": "adam", "amp": True}, {"val/acc": 0.5})
        for step in range(50):
            w.add_scalar("train/loss", 1.0 / (step + 1), step)
        w.add_scalar("val/acc", 0.75, 50)
        w.add_image("sample", np.full((3, 6, 8), 200, dtype=np.uint8), 3)
        w.add_histogram("weights", torch.arange(100.0), 3, bins=4)
        w.add_text("notes", "hello *tensorboard*", 3)
    with Writer(root / "sgd") as w:
        w.add_hparams({"lr": "1e-3 (warmup)", "momentum": 0.9}, {"val/acc": 0.6})
        w.add_scalar("val/acc", 0.8, 50)
    return root


@pytest.fixture(scope="module")
def server(logdir: Path) -> Iterator[str]:
    with running_tensorboard(logdir) as url:
        # The server answers before its first load of the logdir is complete.
        wait_until(
            lambda: (
                len(get(f"{url}/data/plugin/scalars/scalars?run=adam&tag=train%2Floss")) == 50
                and get(f"{url}/data/plugin/scalars/scalars?run=sgd&tag=val%2Facc")
            ),
            what="tensorboard to load the logdir",
        )
        yield url


def test_runs_and_scalars_are_served(server: str) -> None:
    assert sorted(get(f"{server}/data/runs")) == ["adam", "sgd"]
    points = get(f"{server}/data/plugin/scalars/scalars?run=adam&tag=train%2Floss")
    assert [p[1] for p in points] == list(range(50))
    assert np.allclose([p[2] for p in points], [1.0 / (s + 1) for s in range(50)])


def test_images_are_served_with_their_pixels(server: str) -> None:
    (entry,) = get(f"{server}/data/plugin/images/images?run=adam&tag=sample&sample=0")
    assert entry["step"] == 3
    png = get(f"{server}/data/plugin/images/individualImage?{entry['query']}")
    assert (np.asarray(Image.open(io.BytesIO(png))) == 200).all()


def test_histograms_are_served_with_their_buckets(server: str) -> None:
    ((_, step, buckets),) = get(f"{server}/data/plugin/histograms/histograms?run=adam&tag=weights")
    assert step == 3
    assert [b[2] for b in buckets] == [25.0, 25.0, 25.0, 25.0]
    assert buckets[0][0] == 0.0 and buckets[-1][1] == 99.0


def test_text_is_served(server: str) -> None:
    (entry,) = get(f"{server}/data/plugin/text/text?run=adam&tag=notes")
    assert "hello <em>tensorboard</em>" in entry["text"]


def test_hparams_dashboard_lists_every_run_with_its_own_keys_and_metrics(server: str) -> None:
    experiment = post(f"{server}/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {h["name"]: h for h in experiment["hparamInfos"]}
    assert set(infos) == {"lr", "optimizer", "amp", "momentum"}
    assert infos["lr"]["type"] == "DATA_TYPE_STRING"  # a number in one run, text in the other: still shown
    assert infos["amp"]["type"] == "DATA_TYPE_BOOL"
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert "val/acc" in metrics
    groups = post(
        f"{server}/data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [{"hparam": name} for name in infos] + [{"metric": {"group": "", "tag": "val/acc"}}],
            "startIndex": 0,
            "sliceSize": 100,
        },
    )
    by_run = {g["name"]: g for g in groups["sessionGroups"]}
    assert set(by_run) == {"adam", "sgd"}
    assert by_run["adam"]["hparams"]["optimizer"] == "adam" and by_run["adam"]["hparams"]["amp"] is True
    assert by_run["sgd"]["hparams"]["momentum"] == 0.9
    acc = {
        run: next(m["value"] for m in g["metricValues"] if m["name"]["tag"] == "val/acc") for run, g in by_run.items()
    }
    assert acc == pytest.approx({"adam": 0.75, "sgd": 0.8})
    assert by_run["adam"]["sessions"][0]["status"] == "STATUS_SUCCESS"


def test_quoting_of_tags_with_slashes(server: str) -> None:
    tags = get(f"{server}/data/plugin/scalars/tags")
    assert set(tags["adam"]) >= {"train/loss", "val/acc"}
    query = urllib.parse.urlencode({"run": "sgd", "tag": "val/acc"})
    assert get(f"{server}/data/plugin/scalars/scalars?{query}")[-1][2] == pytest.approx(0.8)
