"""summaries/hparams.py: HParams sessions, as TensorBoard's HParams plugin reads them."""

from __future__ import annotations

from pathlib import Path

from tensorboard.plugins.hparams import api_pb2

from conftest import logged, session_infos
from tbscope.summaries import hparams


def test_a_session_start_and_end_read_back_with_typed_values_and_status(tmp_path: Path) -> None:
    flat = hparams.flatten({"lr": 0.1, "opt": {"name": "sgd", "nesterov": True}, "layers": [1, 2], "skip": None})
    assert flat == {"lr": 0.1, "opt/name": "sgd", "opt/nesterov": True, "layers": "[1, 2]"}
    logged(tmp_path, [hparams.session_start_value(flat, 100.0)])
    logged(tmp_path, [hparams.session_end_value("failed", 200.0)])
    start, end = session_infos(tmp_path)
    assert start.hparams["lr"].number_value == 0.1  # type: ignore[attr-defined]
    assert start.hparams["opt/name"].string_value == "sgd"  # type: ignore[attr-defined]
    assert start.hparams["opt/nesterov"].bool_value is True  # type: ignore[attr-defined]
    assert end.status == api_pb2.STATUS_FAILURE and end.end_time_secs == 200.0  # type: ignore[attr-defined]
