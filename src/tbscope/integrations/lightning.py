"""A PyTorch Lightning logger built on tbscope's runs: ``Trainer(logger=TBScopeLogger("shapes-cnn"))``."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

import tbscope
from tbscope.runs import Resume, Run
from tbscope.writer import Writer


class TBScopeLogger(Logger):
    """Log a Lightning run as a tbscope run: ``root/experiment/<time>-<id>[-name]`` with its run.json.

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
        **init_kwargs: Passed to ``tbscope.init``: ``metrics``, ``budget``, ``cadence``, ``retention``.

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
        self._log_graph, self._resume, self._init_kwargs = log_graph, resume, init_kwargs
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
