"""PyTorch Lightning: a logger built on tbscope's runs, ``Trainer(logger=TBScopeLogger("shapes-cnn"))``, and callbacks
that log validation predictions, watch the model and profile a few steps (with Lightning's TensorBoardLogger too)."""

from __future__ import annotations

import os
import re
import sys
import warnings
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

import tbscope
from tbscope import runs
from tbscope.policy import Cadence
from tbscope.rundir import RUN_FILE
from tbscope.runs import Resume, Run
from tbscope.writer import Writer

# What TBScopeLogger takes for tbscope.init; its other keyword arguments are the SummaryWriter's, as Lightning's.
_INIT_OPTIONS = ("metrics", "budget", "retention", "cadence", "all_ranks")
_VERSION = re.compile(r"^version_(\d+)$")


class TBScopeLogger(TensorBoardLogger):
    """Lightning's ``TensorBoardLogger``, logging a tbscope run: change the import, nothing else.

    Files go where Lightning puts them: ``save_dir/name/version_<n>`` is the run's folder (its
    ``log_dir``, ``trainer.log_dir``), with its events, ``run.json``, ``hparams.yaml`` and Lightning's
    ``checkpoints/``. The run starts when Lightning first needs it (at ``fit``, ``validate`` or ``test``);
    ``save_hyperparameters()`` becomes its config and its HParams session, beside the validation metrics
    it logs (a Namespace or a nested dict flattened with "/", a tensor as its number, anything else as its
    text); ``finalize`` records how it ended ("finished", "failed", or "interrupted" for Ctrl-C).
    ``fit(ckpt_path=...)`` continues the run that saved the checkpoint, hiding what it logged after it,
    and everything logged before a checkpoint is on disk when the checkpoint is saved.

    Args:
        save_dir: The folder of all experiments (tbscope's runs root).
        name: The experiment's name; ``""`` or None puts runs directly in ``save_dir``.
        version: The run's folder: an int ``n`` is ``version_<n>``, a str is the folder's name, None is the
            next free ``version_<n>``. A folder that holds a run already continues it.
        log_graph: Log the model's graph, traced on ``example_input_array``.
        default_hp_metric: Accepted for Lightning's sake: every run has its HParams row without a
            placeholder, so no ``hp_metric`` of -1 is logged.
        prefix: Put before every metric's name, joined by "-".
        sub_dir: ``log_dir`` (and ``hparams.yaml``) is ``<run>/<sub_dir>``; the events stay in the run.
        resume: A run id or directory, or a ``tbscope.Resume``, to continue (``fit(ckpt_path=...)`` finds
            it by itself).
        **kwargs: ``metrics``, ``budget``, ``retention``, ``cadence`` and ``all_ranks`` go to ``tbscope.init``
            (``cadence`` by default every step: Lightning decides when to log); the rest go to the run's
            ``Writer``, as Lightning's logger passes them to its SummaryWriter (``flush_secs``, ``max_queue``, ...).

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
        >>> logger = TBScopeLogger(tempfile.mkdtemp(), name="tiny")
        >>> trainer = L.Trainer(max_epochs=2, logger=logger, log_every_n_steps=1, enable_progress_bar=False,
        ...                     enable_model_summary=False, enable_checkpointing=False)
        >>> trainer.fit(Tiny(), data)
        >>> logger.run.status, logger.run.config, logger.version, trainer.log_dir == logger.log_dir
        ('finished', {'lr': 0.1}, 0, True)
    """

    def __init__(
        self,
        save_dir: str | os.PathLike[str] = "runs",
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        log_graph: bool = False,
        default_hp_metric: bool = True,
        prefix: str = "",
        sub_dir: str | os.PathLike[str] | None = None,
        *,
        resume: Resume | str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        # Lightning (and its callbacks' every_n_epochs) decide when to log; the run's Budget still bounds it.
        init_options: dict[str, Any] = {"cadence": Cadence(every=1, dense_until=0)}
        init_options.update({key: kwargs.pop(key) for key in _INIT_OPTIONS if key in kwargs})
        super().__init__(
            os.fspath(save_dir), name, version, log_graph, default_hp_metric, prefix,
            None if sub_dir is None else os.fspath(sub_dir), **kwargs,
        )  # fmt: skip
        self._init_options, self._resume = init_options, resume
        self._plain_hparams: dict[str, Any] = {}  # the hyperparameters as run.json holds them
        self._hparams_saved: dict[str, Any] | None = None
        self._checkpointed = False  # a checkpoint was saved since the last save()
        self._purge_at_first_step = False  # resumed from a checkpoint, nothing logged yet
        self._run: Run | None = None

    @property
    def version(self) -> int | str:
        """The run's folder: ``n`` for ``version_<n>``, else the folder's name. Before the run starts
        without a given version, the next free number (taken for good when the run starts)."""
        if self._run is not None and self._run.rank == 0:
            match = _VERSION.match(self._run.dir.name)
            return int(match[1]) if match else self._run.dir.name
        if self._version is None:
            self._version = runs.numbered(self._experiment_dir(), "version_{n}")
        return self._version

    def _experiment_dir(self) -> Path:
        return Path(os.path.abspath(os.path.expanduser(os.path.expandvars(self.root_dir))))

    # -- the run ------------------------------------------------------------------------------------

    @property
    def run(self) -> Run:
        """The tbscope run, started on first use (on rank 0; other ranks never start one)."""
        if self._run is None:
            self._start(None, None)
        assert self._run is not None
        return self._run

    def _start(self, trainer: Any, ckpt_path: str | None = None) -> None:
        experiment_dir = self._experiment_dir()  # save_dir itself when name is "": runs sit in it
        root, experiment = experiment_dir.parent, experiment_dir.name
        resume = self._resume if self._resume is not None else _resumed_from(ckpt_path)
        # What the run logged from the first step the restart logs on was logged after the checkpoint:
        # hidden then (Lightning alone knows that step: one past the checkpoint's, or its own).
        self._purge_at_first_step = self._resume is None and resume is not None
        given = self._version is not None or type(self).version is not TBScopeLogger.version
        version = self.version if given else None
        folder = "version_{n}" if version is None else version if isinstance(version, str) else f"version_{version}"
        self._run = tbscope.init(
            experiment,
            root=root,
            resume=resume,
            folder=None if resume is not None else folder,
            writer_options=self._kwargs,
            join_ranks=False,  # Lightning logs from rank 0 alone; the other ranks never start a run
            **self._init_options,
        )
        self._version = None if given else self.version  # the folder the run took
        self._experiment = self._run.writer  # type: ignore[assignment]  # a drop-in SummaryWriter
        if trainer is not None and not any(isinstance(c, _RunInCheckpoints) for c in trainer.callbacks):
            trainer.callbacks.append(_RunInCheckpoints(self))

    def _live(self) -> Run:
        """The run, continued in its directory if a stage ended it (``test`` after ``fit``)."""
        run = self.run
        if run.status != "running":
            options = {"writer_options": self._kwargs, "join_ranks": False, **self._init_options}
            ended, run = run, tbscope.init(run.experiment, root=run.dir.parent.parent, resume=run.dir, **options)
            run.add_config(ended.config)
            self._run = run
        return run

    @property
    @rank_zero_experiment
    def experiment(self) -> Writer:
        """The run's ``tbscope.Writer``: a drop-in SummaryWriter for anything else to log."""
        if self._run is None:
            # Lightning hands a logger no Trainer: ``fit`` asks for the experiment first from its setup,
            # where the Trainer that holds this logger is on the stack (its ckpt_path: the run to continue).
            self._start(*_trainer_holding(self))
        return self._live().writer

    # -- what Lightning logs --------------------------------------------------------------------------

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, metrics: dict[str, Any] | None = None, step: int | None = None
    ) -> None:
        """Record ``save_hyperparameters()``: the run's config, its HParams session and ``hparams.yaml``.
        ``metrics`` (a dict, or one value: ``hp_metric``) are logged as scalars at ``step``."""
        given: Any = vars(params) if isinstance(params, Namespace) else params
        if type(given).__module__.startswith("omegaconf"):
            from omegaconf import OmegaConf

            given = OmegaConf.to_container(given, resolve=True)
        given = dict(given) if isinstance(given, Mapping) else {"hparams": given}
        plain = runs.plain_config(given, "hparams")  # one warning for what is stored as text
        self.hparams.update(given)
        self._plain_hparams.update(plain)
        self.experiment  # noqa: B018 (starts the run, from the Trainer's setup when there is one)
        self._live().add_config(plain)
        self.save()
        if metrics is not None:
            self.log_metrics(metrics if isinstance(metrics, dict) else {"hp_metric": metrics}, step)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        run = self._live()
        if self._purge_at_first_step and step is not None:
            self._purge_at_first_step = False
            run.purge(step)
        writer = run.writer
        for tag, value in metrics.items():
            tag = f"{self._prefix}{self.LOGGER_JOIN_CHAR}{tag}" if self._prefix else tag  # as Lightning's
            if isinstance(value, Mapping):
                writer.add_scalars(tag, dict(value), step)
            else:
                writer.add_scalar(tag, value, step)

    @rank_zero_only
    def save(self) -> None:
        """Write ``hparams.yaml`` when the hyperparameters changed, and, right after a checkpoint, the
        metrics Lightning logged of the checkpoint's own step (it logs them after saving it). Nothing else:
        Lightning calls this after every logging step, and the run writes by itself within a second."""
        if self._run is None:
            return
        if self._checkpointed:
            self._checkpointed = False
            self._run.writer.flush()
        if self._hparams_saved == self.hparams:
            return
        log_dir = Path(self.log_dir)
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            save_hparams_to_yaml(log_dir / self.NAME_HPARAMS_FILE, _readable(self.hparams, self._plain_hparams))
        except Exception as err:  # a full disk, a value YAML refuses: no reason to stop training
            warnings.warn(f"tbscope: could not write {log_dir / self.NAME_HPARAMS_FILE}: {err}", RuntimeWarning,
                          stacklevel=2)  # fmt: skip
            return
        self._hparams_saved = dict(self.hparams)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Lightning saved a checkpoint: everything logged before it is written to disk now (and the
        metrics of its step at the next ``save``), so that a run resumed from it has no hole."""
        if self._run is not None:
            self._run.writer.flush()
            self._checkpointed = True

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """End the run: Lightning's "success" is "finished"; "failed" is "interrupted" for Ctrl-C."""
        if self._run is None:
            return
        self.save()
        if status == "success":
            self._run.finish("finished")
        else:
            interrupted = isinstance(sys.exc_info()[1], KeyboardInterrupt)
            self._run.finish("interrupted" if interrupted else "failed")


def _readable(hparams: Any, plain: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters as ``hparams.yaml`` keeps them for ``load_from_checkpoint(hparams_file=...)``:
    as given where YAML reads them back, else as run.json holds them (a Namespace as a dict, a tensor
    as its number, a class as its name)."""
    readable: dict[str, Any] = {}
    for key, value in hparams.items():
        try:
            yaml.safe_dump(value)
            readable[str(key)] = value
        except yaml.YAMLError:
            readable[str(key)] = plain.get(str(key))
    return readable


def _trainer_holding(logger: TBScopeLogger) -> tuple[Any, str | None]:
    """The Trainer whose loggers include ``logger``, and the ``ckpt_path`` its ``fit`` was given (its
    ``trainer.ckpt_path`` is set only later), found among the callers' locals; ``(None, None)`` elsewhere."""
    trainer: Trainer | None = None
    frame = sys._getframe(1)
    while frame is not None:
        here = frame.f_locals
        for value in (here.get("trainer"), here.get("self")):
            if trainer is None and isinstance(value, Trainer) and any(held is logger for held in value.loggers):
                trainer = value
        if trainer is not None and "ckpt_path" in here and here.get("self") is trainer:  # its fit's call
            path = here["ckpt_path"]
            return trainer, os.fspath(path) if path is not None and here["self"].state.fn == "fit" else None
        frame = frame.f_back  # type: ignore[assignment]
    return trainer, None


def _resumed_from(ckpt_path: str | None) -> Resume | None:
    """The run a ``fit(ckpt_path=...)`` continues: the one its checkpoint recorded."""
    if ckpt_path is None:
        return None
    try:  # mmap: the run's id is read without reading the weights
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # Lightning itself reports a checkpoint it cannot read
        warnings.warn(f"tbscope: could not read the run from {ckpt_path}: {err}", RuntimeWarning, stacklevel=2)
        return None
    state = (checkpoint.get("callbacks") or {}).get(_RunInCheckpoints.KEY)
    if not isinstance(state, dict) or "id" not in state:
        return None
    where = Path(state.get("dir", ""))
    return Resume(where if (where / RUN_FILE).is_file() else state["id"])


class _RunInCheckpoints(Callback):
    """Puts the logger's run in every checkpoint Lightning saves, after writing what was logged before it."""

    KEY = "TBScopeLogger"

    def __init__(self, logger: TBScopeLogger) -> None:
        self.logger = logger

    @property
    def state_key(self) -> str:
        return self.KEY

    def state_dict(self) -> dict[str, Any]:
        run = self.logger._run
        return {} if run is None else {"id": run.id, "dir": str(run.dir.resolve())}

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        self.logger.after_save_checkpoint(None)


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
