"""PyTorch Lightning: a logger built on tbscope's runs, ``Trainer(logger=TBScopeLogger("shapes-cnn"))``, and callbacks
that log validation predictions, watch the model and profile a few steps (with Lightning's TensorBoardLogger too)."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

import tbscope
from tbscope.policy import Cadence
from tbscope.runs import Resume, Run
from tbscope.writer import Writer


class TBScopeLogger(Logger):
    """Log a Lightning run as a tbscope run: ``root/experiment/<n>-<name>`` with its run.json.

    The run starts when Lightning first needs it (at ``fit``, ``validate`` or ``test``); the
    hyperparameters of ``save_hyperparameters()`` become its config and its HParams session, next
    to the validation metrics it logs; ``finalize`` records how it ended ("finished", "failed", or
    "interrupted" for Ctrl-C). Lightning's ``log_every_n_steps`` decides which steps are logged; the
    logger never flushes by itself (values reach the event file within a second anyway). Checkpoints
    go to ``<run>/checkpoints``.

    Args:
        experiment: The experiment's name: runs of one experiment sit side by side.
        root: The folder of all experiments (default ``runs``).
        name: A name for the run, shown in its directory's name.
        log_graph: Log the model's graph, traced on ``example_input_array``.
        resume: A run id or directory, or a ``tbscope.Resume``, to continue (for a ``ckpt_path``
            restart: ``Resume(run_id, step=<the checkpoint's global step>)`` hides what the run logged
            after the checkpoint).
        **init_kwargs: Passed to ``tbscope.init``: ``metrics``, ``budget``, ``retention``, and
            ``cadence`` (by default every step: Lightning decides when heavy data is logged).

    Example:
        >>> import tempfile, torch, lightning as L
        >>> class Tiny(L.LightningModule):
        ...     def __init__(self, lr=0.1):
        ...         super().__init__()
        ...         self.save_hyperparameters()
        ...         self.layer = torch.nn.Linear(4, 1)
        ...     def training_step(self, batch, _):
        ...         loss = self.layer(batch[0]).square().mean()
        ...         self.log("train/loss", loss)
        ...         return loss
        ...     def configure_optimizers(self):
        ...         return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        >>> data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(8, 4)), batch_size=4)
        >>> logger = TBScopeLogger("tiny", root=tempfile.mkdtemp())
        >>> trainer = L.Trainer(max_epochs=2, logger=logger, log_every_n_steps=1, enable_progress_bar=False,
        ...                     enable_model_summary=False, enable_checkpointing=False)
        >>> trainer.fit(Tiny(), data)
        >>> logger.run.status, logger.run.config
        ('finished', {'lr': 0.1})
    """

    def __init__(
        self,
        experiment: str = "lightning",
        root: str | Path = "runs",
        name: str | None = None,
        log_graph: bool = False,
        resume: Resume | str | Path | None = None,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        self._experiment, self._root, self._run_name = experiment, Path(root), name
        self._log_graph, self._resume = log_graph, resume
        # Lightning (and its callbacks' every_n_epochs) decide when to log; the run's Budget still bounds it.
        self._init_kwargs = {"cadence": Cadence(every=1, dense_until=0), **init_kwargs}
        self._run: Run | None = None

    @property
    def run(self) -> Run:
        """The tbscope run, started on first use (on rank 0; other ranks never start one)."""
        if self._run is None:
            self._run = tbscope.init(
                self._experiment, root=self._root, name=self._run_name, resume=self._resume, **self._init_kwargs
            )
        return self._run

    def _live(self) -> Run:
        """The run, continued in its directory if a stage ended it (``test`` after ``fit``)."""
        run = self.run
        if run.status != "running":
            ended, run = run, tbscope.init(self._experiment, root=self._root, resume=run.dir, **self._init_kwargs)
            run.add_config(ended.config)
            self._run = run
        return run

    @property
    @rank_zero_experiment
    def experiment(self) -> Writer:
        """The run's ``tbscope.Writer``: a drop-in SummaryWriter for anything else to log."""
        return self._live().writer

    @property
    def name(self) -> str:
        return self._experiment

    @property
    def version(self) -> str:
        """The run's directory name, so that checkpoints go to ``<run>/checkpoints``."""
        return self.run.dir.name

    @property
    def root_dir(self) -> str:
        return str(self._root / self._experiment)

    @property
    def save_dir(self) -> str:
        return str(self._root)

    @property
    def log_dir(self) -> str:
        return str(self.run.dir)

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Record ``save_hyperparameters()``: the run's config, and its HParams session."""
        self._live().add_config(vars(params) if isinstance(params, Namespace) else params)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        writer = self._live().writer
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, step)

    @rank_zero_only
    def log_graph(self, model: torch.nn.Module, input_array: Any = None) -> None:
        if not self._log_graph:
            return
        inputs = getattr(model, "example_input_array", None) if input_array is None else input_array
        if inputs is None:
            return
        self._live().writer.add_graph(model, inputs)

    @rank_zero_only
    def save(self) -> None:
        """Nothing to do: the run writes by itself, within a second, and run.json at every flush."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """End the run: Lightning's "success" is "finished"; "failed" is "interrupted" for Ctrl-C."""
        if self._run is None:
            return
        if status == "success":
            self._run.finish("finished")
        else:
            interrupted = isinstance(sys.exc_info()[1], KeyboardInterrupt)
            self._run.finish("interrupted" if interrupted else "failed")


def _writer(trainer: Any, owned: list[Writer]) -> Writer | None:
    """The tbscope writer the callbacks log to: a ``TBScopeLogger``'s, else one of their own in the first
    logger's folder (Lightning's ``TensorBoardLogger`` included), kept in ``owned`` to be closed."""
    for logger in trainer.loggers:
        if isinstance(logger, TBScopeLogger):
            return logger.experiment
    if owned:
        return owned[0]
    log_dir = next((logger.log_dir for logger in trainer.loggers if getattr(logger, "log_dir", None)), None)
    if log_dir is None or trainer.global_rank != 0:
        return None
    owned.append(Writer(log_dir))
    return owned[0]


class _TBScopeCallback(Callback):
    def __init__(self) -> None:
        self._owned: list[Writer] = []

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        for writer in self._owned:
            writer.close()
        self._owned.clear()


class ValidationPredictions(_TBScopeCallback):
    """Log the first validation batch's pictures with what the model made of them, every
    ``every_n_epochs`` epochs: a grid captioned "true -> predicted" for class labels, and the boxes or the
    mask of a batch that has them (a dict with "boxes" or "masks").

    A batch is ``(images, labels)`` or a dict with "image(s)" and "label(s)"; predictions are the argmax
    of the module's output on the images. Works with ``TBScopeLogger`` and with Lightning's own
    ``TensorBoardLogger``.
    """

    def __init__(self, max_images: int = 16, every_n_epochs: int = 1, class_names: list[str] | None = None) -> None:
        super().__init__()
        self.max_images, self.every_n_epochs, self.class_names = max_images, every_n_epochs, class_names

    def on_validation_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs:
            return
        writer = _writer(trainer, self._owned)
        if writer is None:
            return
        if isinstance(batch, dict):
            images = batch.get("images", batch.get("image"))
            labels = batch.get("labels", batch.get("label"))
        else:
            images, labels = batch[0], batch[1] if len(batch) > 1 else None
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            return
        images = images[: self.max_images]
        step = trainer.global_step
        names = self.class_names or []

        def name(k: int) -> str:
            return names[k] if k < len(names) else str(k)

        captions = None
        if isinstance(labels, torch.Tensor) and labels.ndim == 1 and not labels.is_floating_point():
            with torch.no_grad():
                predicted = pl_module(images).argmax(1).tolist()
            captions = [
                f"{name(t)} -> {name(p)}" for t, p in zip(labels[: len(images)].tolist(), predicted, strict=True)
            ]
        writer.add_image_grid("val/predictions", images, step, normalize=True, captions=captions)
        if isinstance(batch, dict) and isinstance(batch.get("boxes"), torch.Tensor | list):
            boxes = batch["boxes"][0]
            writer.add_image_with_detections("val/boxes", images[0], boxes, step, class_names=self.class_names)
        if isinstance(batch, dict) and isinstance(batch.get("masks"), torch.Tensor):
            writer.add_image_with_mask("val/mask", images[0], batch["masks"][0], step, class_names=self.class_names)


class WatchModel(_TBScopeCallback):
    """``writer.watch(model)`` for the length of ``fit``: per-layer weight and gradient norms, update
    ratios and histograms at a bounded cadence (see ``Writer.watch``; arguments are passed to it)."""

    def __init__(self, **watch_kwargs: Any) -> None:
        super().__init__()
        self.watch_kwargs = watch_kwargs

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        writer = _writer(trainer, self._owned)
        if writer is not None:
            writer.watch(pl_module, **self.watch_kwargs)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        writer = _writer(trainer, self._owned)
        if writer is not None:
            writer.unwatch(pl_module)


class ProfileSteps(_TBScopeCallback):
    """Profile a few training steps with ``tbscope.profile`` into the run's ``profile/`` folder, for the
    Profile tab: skip ``wait`` steps, warm up ``warmup``, record ``active``. The ``profile/...`` scalars
    are logged at the steps of the profiled batches' own metrics."""

    def __init__(self, wait: int = 1, warmup: int = 1, active: int = 3) -> None:
        super().__init__()
        self.wait, self.warmup, self.active = wait, warmup, active
        self._profile: Any = None
        self._left = 0
        self._step = 0  # the step the current batch's metrics are logged at

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        writer = _writer(trainer, self._owned)
        if writer is None:
            return
        self._profile = tbscope.profile(writer, wait=self.wait, warmup=self.warmup, active=self.active)
        self._profile.__enter__()
        self._left = self.wait + self.warmup + self.active

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._step = trainer.global_step  # Lightning logs this batch's metrics at it

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._profile is None:
            return
        self._profile.step(self._step)
        self._left -= 1
        if self._left <= 0:
            self._stop()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._profile is not None:
            profile, self._profile = self._profile, None
            profile.__exit__(None, None, None)
