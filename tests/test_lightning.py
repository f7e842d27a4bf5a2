"""tbscope's Lightning logger with a real Trainer.fit on a tiny model, read back by TensorBoard's loaders."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
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
    logger = TBScopeLogger(tmp_path, name="tiny", version="baseline")
    trainer(logger).fit(Tiny(lr=0.05, width=8), loader(), loader())
    run = logger.run
    assert run.dir == tmp_path / "tiny" / "baseline"
    meta = json.loads((run.dir / "run.json").read_text())
    assert meta["status"] == "finished" and meta["config"] == {"lr": 0.05, "width": 8}
    table = hparams_table(tmp_path)
    (row,) = [row for name, row in table.items() if name]
    assert row["hparams"] == {"lr": 0.05, "width": 8.0}
    assert row["metrics"]["val/acc"] == pytest.approx(meta["summary"]["val/acc"]["last"])
    assert session_infos(run.dir)[1].status == api_pb2.STATUS_SUCCESS  # type: ignore[union-attr]


class Configured(Tiny):
    """A module whose hyperparameters are what scripts pass around: a Namespace, a tensor, a class, a device."""

    def __init__(self, args: Any, scale: Any, act: Any, device_name: Any = None) -> None:
        super().__init__(lr=0.05)
        self.save_hyperparameters()


def test_namespace_tensor_and_class_hyperparameters_train_and_read_back_from_hparams_yaml(tmp_path: Path) -> None:
    logger = TBScopeLogger(tmp_path, name="tiny")
    fit = trainer(logger, enable_checkpointing=True)
    assert fit.log_dir == logger.log_dir == str(tmp_path / "tiny" / "version_0")
    args = argparse.Namespace(depth=3, opt=argparse.Namespace(name="sgd", momentum=0.9))
    model = Configured(args, torch.tensor(0.5), torch.nn.ReLU, torch.device("cpu"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit.fit(model, loader(), loader())
    assert len([w for w in caught if "stored as text" in str(w.message)]) == 1  # the device, once
    run_dir = Path(fit.log_dir)
    assert run_dir == logger.run.dir and (run_dir / "checkpoints").is_dir()
    flat = json.loads((run_dir / "run.json").read_text())["config_flat"]
    assert flat == {"lr": 0.05, "width": 8, "args/depth": 3, "args/opt/name": "sgd", "args/opt/momentum": 0.9,
                    "scale": 0.5, "act": "torch.nn.modules.activation.ReLU", "device_name": "cpu"}  # fmt: skip
    (row,) = [row for name, row in hparams_table(tmp_path).items() if name]
    assert row["hparams"]["args/opt/name"] == "sgd" and row["hparams"]["scale"] == 0.5
    (checkpoint,) = (run_dir / "checkpoints").iterdir()
    loaded = Configured.load_from_checkpoint(checkpoint, hparams_file=run_dir / "hparams.yaml", weights_only=False)
    assert loaded.hparams["args"] == {"depth": 3, "opt": {"name": "sgd", "momentum": 0.9}}
    assert loaded.hparams["scale"] == 0.5 and loaded.hparams["act"] == "torch.nn.modules.activation.ReLU"


def test_version_sub_dir_and_prefix_place_things_as_lightnings_logger_does(tmp_path: Path) -> None:
    logger = TBScopeLogger(str(tmp_path), "exp", version=3, sub_dir="tb", prefix="p", flush_secs=1)
    fit = trainer(logger, max_epochs=1)
    fit.fit(Tiny(), loader())
    run_dir = tmp_path / "exp" / "version_3"
    assert (logger.root_dir, logger.log_dir, fit.log_dir) == (str(tmp_path / "exp"), str(run_dir / "tb"),
                                                               str(run_dir / "tb"))  # fmt: skip
    assert logger.run.dir == run_dir and logger.version == 3 and logger.run.writer.flush_secs == 1
    assert (run_dir / "tb" / "hparams.yaml").is_file()
    assert "p-train/loss" in accumulate(run_dir).Tags()["scalars"]
    again = TBScopeLogger(tmp_path, "exp", version=3)  # the same version again: the same run, continued
    trainer(again, max_epochs=1).validate(Tiny(), loader())
    assert again.run.dir == run_dir and json.loads((run_dir / "run.json").read_text())["resumed"]


def test_log_graph_without_an_example_input_warns_as_lightnings_logger_does(tmp_path: Path) -> None:
    model = Tiny()
    model.example_input_array = None
    with pytest.warns(UserWarning, match="Could not log computational graph.*example_input_array"):
        trainer(TBScopeLogger(tmp_path, log_graph=True), max_epochs=1).fit(model, loader())


def test_lightnings_log_every_n_steps_decides_and_the_logger_never_flushes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes: list[int] = []
    real_flush = tbscope.Writer.flush
    monkeypatch.setattr(tbscope.Writer, "flush", lambda self: (flushes.append(1), real_flush(self))[1])
    logger = TBScopeLogger(tmp_path, name="tiny")
    trainer(logger, log_every_n_steps=4).fit(Tiny(), loader())  # 8 steps an epoch, 2 epochs
    steps = [e.step for e in accumulate(logger.run.dir).Scalars("train/loss")]
    assert steps == [3, 7, 11, 15]
    assert flushes == []  # Lightning calls save() at every logging step; nothing is flushed for it


def test_a_run_that_raises_ends_failed(tmp_path: Path) -> None:
    logger = TBScopeLogger(tmp_path, name="tiny")
    with pytest.raises(RuntimeError, match="diverged"):
        trainer(logger).fit(Tiny(fail_at=3), loader())
    assert json.loads((logger.run.dir / "run.json").read_text())["status"] == "failed"
    assert session_infos(logger.run.dir)[1].status == api_pb2.STATUS_FAILURE  # type: ignore[union-attr]


def test_log_graph_and_validate_after_fit_continue_the_same_run(tmp_path: Path) -> None:
    logger = TBScopeLogger(tmp_path, name="tiny", log_graph=True)
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


def test_fit_from_a_checkpoint_continues_the_run_that_saved_it(tmp_path: Path) -> None:
    checkpoints = L.pytorch.callbacks.ModelCheckpoint(save_last=True)
    first = TBScopeLogger(tmp_path, name="tiny")
    trainer(first, enable_checkpointing=True, callbacks=[checkpoints]).fit(Tiny(), loader())
    run_dir = first.run.dir
    assert Path(checkpoints.last_model_path).parent == run_dir / "checkpoints"
    again = L.pytorch.callbacks.ModelCheckpoint(save_last=True)
    resumed = TBScopeLogger(tmp_path, name="tiny")  # as a restarted script makes it: nothing said about the run
    with warnings.catch_warnings():
        # Lightning warns when the checkpoints' folder moved, or a state in the checkpoint finds no callback
        warnings.filterwarnings("error", message=".*(dirpath has changed|callbacks used to create the checkpoint)")
        trainer(resumed, max_epochs=4, enable_checkpointing=True, callbacks=[again]).fit(
            Tiny(), loader(), ckpt_path=checkpoints.last_model_path
        )
    assert resumed.run.dir == run_dir and resumed.version == 0
    assert sorted(os.listdir(tmp_path / "tiny")) == ["version_0"]
    assert Path(again.last_model_path).parent == run_dir / "checkpoints"
    steps = [e.step for e in accumulate(run_dir).Scalars("train/loss")]
    assert steps == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31]  # 4 epochs of 8 steps, each once
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "finished" and meta["resumed"][0]["step"] == 17  # the first step it logged again


KILLED_AFTER_A_CHECKPOINT = """
import os, signal, sys, torch, lightning as L
sys.path.insert(0, sys.argv[3])
from test_lightning import Tiny, loader
from tbscope.integrations.lightning import TBScopeLogger

class KillAfterCheckpoint(L.Callback):
    def on_train_batch_start(self, trainer, module, batch, index):
        if sys.argv[2] == "kill" and trainer.global_step == 12:  # two steps after the checkpoint at 10
            os.kill(os.getpid(), signal.SIGKILL)

checkpoints = L.pytorch.callbacks.ModelCheckpoint(every_n_train_steps=5, save_top_k=-1)
trainer = L.Trainer(logger=TBScopeLogger(sys.argv[1], name="tiny"), max_steps=20, log_every_n_steps=1,
                    callbacks=[checkpoints, KillAfterCheckpoint()], enable_progress_bar=False, accelerator="cpu")
ckpt = os.path.join(sys.argv[1], "tiny", "version_0", "checkpoints", "epoch=1-step=10.ckpt")
trainer.fit(Tiny(), loader(), ckpt_path=ckpt if sys.argv[2] == "resume" else None)
"""


def test_killed_after_a_checkpoint_and_resumed_from_it_every_step_is_logged_once(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(KILLED_AFTER_A_CHECKPOINT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def train(how: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(script), str(tmp_path / "runs"), how, str(Path(__file__).parent)]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)

    killed = train("kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = tmp_path / "runs" / "tiny" / "version_0"
    assert (run_dir / "checkpoints" / "epoch=1-step=10.ckpt").is_file()
    resumed = train("resume")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(p.name for p in (tmp_path / "runs" / "tiny").iterdir()) == ["version_0"]
    steps = [e.step for e in accumulate(run_dir).Scalars("train/loss")]
    assert steps == list(range(20))  # the steps before the checkpoint from the killed process, the rest after


DDP = """
import sys, lightning as L
sys.path.insert(0, sys.argv[3])
from test_lightning import Tiny, loader
from tbscope.integrations.lightning import TBScopeLogger

checkpoints = L.pytorch.callbacks.ModelCheckpoint(save_last=True)
trainer = L.Trainer(logger=TBScopeLogger(sys.argv[1], name="ddp"), max_epochs=int(sys.argv[2]), strategy="ddp",
                    devices=2, accelerator="cpu", log_every_n_steps=1, enable_progress_bar=False,
                    callbacks=[checkpoints])
trainer.fit(Tiny(), loader(), ckpt_path=sys.argv[4] if len(sys.argv) > 4 else None)
"""


def test_ddp_on_two_processes_logs_one_run_from_rank_0_and_resumes_it(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(DDP)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(script), str(tmp_path / "runs"), "2", str(Path(__file__).parent)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "runs" / "ddp" / "version_0"
    command[3:] = ["4", str(Path(__file__).parent), str(run_dir / "checkpoints" / "last.ckpt")]
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert [p.name for p in (tmp_path / "runs" / "ddp").iterdir()] == ["version_0"]
    meta = json.loads((run_dir / "run.json").read_text())
    assert (meta["status"], meta["world_size"]) == ("finished", 2)
    steps = [e.step for e in accumulate(run_dir).Scalars("train/loss")]
    assert steps == list(range(16))  # 4 epochs of 4 batches a rank, logged once, by rank 0


class ImageClassifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                       torch.nn.Linear(4, 3))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, index: int) -> torch.Tensor:
        loss = torch.nn.functional.cross_entropy(self(batch[0]), batch[1])
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: Any, index: int) -> None:
        images = batch["images"] if isinstance(batch, dict) else batch[0]
        labels = batch["labels"] if isinstance(batch, dict) else batch[1]
        self.log("val/loss", torch.nn.functional.cross_entropy(self(images), labels))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def image_data(as_dict: bool = False) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.rand(32, 3, 16, 16, generator=generator), torch.randint(0, 3, (32,), generator=generator)
    if not as_dict:
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=8)
    boxes = torch.tensor([[2.0, 2.0, 10.0, 12.0]]).expand(32, 1, 4)
    masks = (torch.rand(32, 16, 16, generator=generator) > 0.5).long()
    items = [{"images": images[i], "labels": labels[i], "boxes": boxes[i], "masks": masks[i]} for i in range(32)]
    return torch.utils.data.DataLoader(items, batch_size=8)


@pytest.mark.parametrize("logger_kind", ["tbscope", "lightning's TensorBoardLogger"])
def test_callbacks_log_predictions_watch_the_model_and_profile_steps(tmp_path: Path, logger_kind: str) -> None:
    from tbscope.integrations.lightning import ProfileSteps, ValidationPredictions, WatchModel

    if logger_kind == "tbscope":
        logger: Any = TBScopeLogger(tmp_path, name="tiny")
    else:
        logger = L.pytorch.loggers.TensorBoardLogger(str(tmp_path), name="tb")
    callbacks = [ValidationPredictions(class_names=["circle", "square", "triangle"]), WatchModel(),
                 ProfileSteps(wait=0, warmup=1, active=2)]  # fmt: skip
    model = ImageClassifier()
    trainer(logger, callbacks=callbacks, log_every_n_steps=1).fit(model, image_data(), image_data())
    log_dir = Path(logger.log_dir)
    images = {}
    for folder in {p.parent for p in log_dir.rglob("events.out.tfevents.*")}:
        acc = accumulate(folder)
        images.update({tag: acc.Images(tag) for tag in acc.Tags()["images"]})
    assert accumulate(log_dir).Scalars("watch/grad_norm/net.3.weight")  # the watched layer, in the run
    assert [e.step for e in images["val/predictions"]] == [4, 8]  # the first validation batch, each epoch
    assert images["val/predictions"][0].width > 16 * 4  # a grid of the batch, captioned
    assert len(list((log_dir / "profile").glob("*.pt.trace.json.gz"))) == 1
    scalars = accumulate(log_dir)
    profiled = [e.step for e in scalars.Scalars("watch/profile/step_time_ms")]
    assert profiled == [1, 2]  # batches 1 and 2: their loss's steps
    assert {1, 2} <= {e.step for e in scalars.Scalars("train/loss")}
    assert not any(p._post_accumulate_grad_hooks for p in model.parameters())  # unwatched at the end


def test_predictions_draw_the_boxes_and_the_mask_a_batch_has(tmp_path: Path) -> None:
    from tbscope.integrations.lightning import ValidationPredictions

    logger = TBScopeLogger(tmp_path, name="tiny")
    trainer(logger, callbacks=[ValidationPredictions()], max_epochs=1).fit(
        ImageClassifier(), image_data(), image_data(as_dict=True)
    )
    tags = accumulate(logger.run.dir).Tags()["images"]
    assert {"val/predictions", "val/boxes", "val/mask"} <= set(tags)
