"""tbscope's Lightning logger with a real Trainer.fit on a tiny model, read back by TensorBoard's loaders."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from tensorboard.plugins.hparams import api_pb2

import tbscope
from conftest import accumulate, hparams_table, session_infos
from tbscope.integrations.lightning import TBScopeLogger


class Tiny(L.LightningModule):
    def __init__(self, lr: float = 0.1, width: int = 8, fail_at: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore="fail_at")
        self.fail_at = fail_at
        self.net = torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.ReLU(), torch.nn.Linear(width, 2))
        self.example_input_array = torch.zeros(1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, index: int) -> torch.Tensor:
        if self.global_step == self.fail_at:
            raise RuntimeError("diverged")
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: Any, index: int) -> None:
        x, y = batch
        self.log("val/acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader() -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator)
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
    return torch.utils.data.DataLoader(data, batch_size=8)


def trainer(logger: TBScopeLogger, **kwargs: Any) -> L.Trainer:
    options: dict[str, Any] = {
        "max_epochs": 2, "log_every_n_steps": 2, "enable_progress_bar": False, "enable_model_summary": False,
        "enable_checkpointing": False, "accelerator": "cpu", **kwargs,
    }  # fmt: skip
    return L.Trainer(logger=logger, **options)


@pytest.fixture(autouse=True)
def quiet() -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers|GPU available).*")
        yield


def test_fit_logs_the_run_its_hyperparameters_beside_its_validation_metrics_and_its_end(tmp_path: Path) -> None:
    logger = TBScopeLogger("tiny", root=tmp_path, name="baseline")
    trainer(logger).fit(Tiny(lr=0.05, width=8), loader(), loader())
    run = logger.run
    assert run.dir.parent == tmp_path / "tiny" and run.dir.name.endswith("-baseline")
    meta = json.loads((run.dir / "run.json").read_text())
    assert meta["status"] == "finished" and meta["config"] == {"lr": 0.05, "width": 8}
    table = hparams_table(tmp_path)
    (row,) = [row for name, row in table.items() if name]
    assert row["hparams"] == {"lr": 0.05, "width": 8.0}
    assert row["metrics"]["val/acc"] == pytest.approx(meta["summary"]["val/acc"]["last"])
    assert session_infos(run.dir)[1].status == api_pb2.STATUS_SUCCESS  # type: ignore[union-attr]


def test_lightnings_log_every_n_steps_decides_and_the_logger_never_flushes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes: list[int] = []
    real_flush = tbscope.Writer.flush
    monkeypatch.setattr(tbscope.Writer, "flush", lambda self: (flushes.append(1), real_flush(self))[1])
    logger = TBScopeLogger("tiny", root=tmp_path)
    trainer(logger, log_every_n_steps=4).fit(Tiny(), loader())  # 8 steps an epoch, 2 epochs
    steps = [e.step for e in accumulate(logger.run.dir).Scalars("train/loss")]
    assert steps == [3, 7, 11, 15]
    assert flushes == []  # Lightning calls save() at every logging step; nothing is flushed for it


def test_a_run_that_raises_ends_failed(tmp_path: Path) -> None:
    logger = TBScopeLogger("tiny", root=tmp_path)
    with pytest.raises(RuntimeError, match="diverged"):
        trainer(logger).fit(Tiny(fail_at=3), loader())
    assert json.loads((logger.run.dir / "run.json").read_text())["status"] == "failed"
    assert session_infos(logger.run.dir)[1].status == api_pb2.STATUS_FAILURE  # type: ignore[union-attr]


def test_log_graph_and_validate_after_fit_continue_the_same_run(tmp_path: Path) -> None:
    logger = TBScopeLogger("tiny", root=tmp_path, log_graph=True)
    fit = trainer(logger)
    model = Tiny()
    fit.fit(model, loader())
    first = logger.run.dir
    fit.validate(model, loader())
    assert logger.run.dir == first and len(list((tmp_path / "tiny").iterdir())) == 1
    acc = accumulate(first)
    assert acc.Graph() is not None
    assert acc.Scalars("val/acc")
    assert json.loads((first / "run.json").read_text())["status"] == "finished"


def test_resuming_from_a_checkpoint_continues_the_same_run(tmp_path: Path) -> None:
    logger = TBScopeLogger("tiny", root=tmp_path)
    checkpoints = L.pytorch.callbacks.ModelCheckpoint(save_last=True)
    trainer(logger, enable_checkpointing=True, callbacks=[checkpoints]).fit(Tiny(), loader())
    run_dir = logger.run.dir
    assert Path(checkpoints.last_model_path).parent == run_dir / "checkpoints"
    step = torch.load(checkpoints.last_model_path, weights_only=False)["global_step"]
    resumed = TBScopeLogger("tiny", root=tmp_path, resume=tbscope.Resume(logger.run.id, step=step))
    trainer(resumed, max_epochs=4).fit(Tiny(), loader(), ckpt_path=checkpoints.last_model_path)
    assert resumed.run.dir == run_dir
    steps = [e.step for e in accumulate(run_dir).Scalars("train/loss")]
    assert steps == sorted(set(steps)) and steps[-1] == 31  # 4 epochs of 8 steps, no step twice
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
