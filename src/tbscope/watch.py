"""Model watching: per-layer weight and gradient norms, update-to-weight ratios and histograms, at a cadence.

Everything is computed on the model's device with batched (``torch._foreach_*``) operations, and the
results of one logging step (statistics and histogram bins alike) travel to the host as one tensor,
copied asynchronously (``Writer.add_deferred``): watching never synchronizes with the device, and goes
through the writer's public path (its gate decides on histograms, as for ``add_histogram``). Steps count backward passes
from 0 (set ``Watch.step`` to follow another count); statistics are taken at the end of a backward
pass, when every gradient is there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tensorboard.compat.proto.summary_pb2 import Summary

from tbscope.pipeline import warn_once
from tbscope.policy import Cadence
from tbscope.summaries import histogram, scalar, text

if TYPE_CHECKING:
    from tbscope.writer import Writer

# Heavy enough to see a distribution, light enough that a ResNet's bins are a few hundred KB a step.
BINS = 64
DEFAULT_CADENCE = Cadence(every=100, dense_until=100, dense_every=10)


# Tensors larger than this are binned from an evenly strided sample of about this many elements.
SAMPLE = 1 << 20
# Numbers a histogram row holds besides its bins (see ``histogram.device_bins``).
_ROW_STATS = 6


def encode(
    names: Sequence[str], stats: Sequence[str], histograms: Sequence[str], bins: int, packed: np.ndarray, step: int
) -> list[Summary.Value]:
    """Summary values from one logging step's packed tensor: ``len(stats)`` rows of per-layer numbers,
    then one histogram row per layer for each of ``histograms``. A non-finite norm is reported once per
    layer, in a warning and as text in the run (tag ``watch/nonfinite``)."""
    count = len(names)
    numbers = packed[: len(stats) * count].reshape(len(stats), count)
    rows = packed[len(stats) * count :].reshape(len(histograms), count, bins + _ROW_STATS)
    values = []
    for s, stat in enumerate(stats):
        for name, number in zip(names, numbers[s].tolist(), strict=True):
            values.append(scalar.simple_value(f"watch/{stat}/{name}", number))
            if stat != "update_ratio" and not math.isfinite(number):
                what = "weights" if stat == "weight_norm" else "gradient"
                message = f"tbscope: watch: {what} of layer {name!r} hold NaN or Inf at step {step} ({stat} {number})"
                if warn_once(("watch-nonfinite", name), message):
                    values.append(text.text_value("watch/nonfinite", message))
    for h, kind in enumerate(histograms):
        values += [
            histogram.from_device_bins(f"watch/{kind}/{name}", row, bins)[0]
            for name, row in zip(names, rows[h], strict=True)
        ]
    return values


def _activation_value(tag: str, row: np.ndarray, bins: int) -> Summary.Value:
    return histogram.from_device_bins(tag, row, bins)[0]


class Watch:
    """The hooks that watch one model for a ``Writer``; made by ``Writer.watch``, undone by ``remove``."""

    def __init__(
        self,
        writer: Writer,
        model: torch.nn.Module,
        cadence: Cadence,
        norms: bool,
        histograms: bool,
        update_ratio: bool,
        activations: bool,
        bins: int = BINS,
    ) -> None:
        self.writer, self.model, self.cadence, self.bins = writer, model, cadence, bins
        self.norms, self.histograms, self.update_ratio = norms, histograms, update_ratio
        self.step = 0
        self._params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self._previous: list[torch.Tensor] | None = None
        self._queued = False
        self._handles: list[Any] = [p.register_post_accumulate_grad_hook(self._on_grad) for _, p in self._params]
        if activations:
            leaves = [(name, m) for name, m in model.named_modules() if not any(m.children())]
            self._handles += [m.register_forward_hook(self._activation_hook(name)) for name, m in leaves]

    def remove(self) -> None:
        """Remove every hook this watch put on the model."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._previous = None

    def _on_grad(self, param: torch.Tensor) -> None:
        if not self._queued:
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._on_backward_end)

    def _on_backward_end(self) -> None:
        self._queued = False
        step = self.step
        self.step += 1
        with torch.no_grad():
            if self.cadence.keeps(step):
                self._log(step)
            if self.update_ratio and self.norms and self.cadence.keeps(step + 1):
                self._previous = [p.detach().clone() for _, p in self._params]

    def _log(self, step: int) -> None:
        names = [name for name, _ in self._params]
        weights = [p.detach() for _, p in self._params]
        grads = [p.grad.detach() if p.grad is not None else torch.zeros_like(p) for _, p in self._params]
        parts: list[torch.Tensor] = []
        stats: list[str] = []
        if self.norms:
            weight_norms = torch.stack(torch._foreach_norm(weights)).double()
            parts += [weight_norms, torch.stack(torch._foreach_norm(grads)).double()]
            stats += ["weight_norm", "grad_norm"]
            if self.update_ratio and self._previous is not None:
                before = torch.stack(torch._foreach_norm(self._previous)).double()
                moved = torch.stack(torch._foreach_norm(torch._foreach_sub(weights, self._previous))).double()
                parts.append(moved / before.clamp_min(1e-12))
                stats.append("update_ratio")
            self._previous = None
        # Histograms are heavy data: the writer's gate (its budget) decides, as for add_histogram. The
        # norms are scalars, which go on past any budget.
        gate = self.writer.gate
        kinds = [
            k
            for k in ("weights", "grads")
            if self.histograms and gate.admits("watch", "histogram", f"watch/{k}/*", step)
        ]
        for kind in kinds:
            tensors = weights if kind == "weights" else grads
            parts.append(torch.stack([histogram.device_bins(t, self.bins, SAMPLE) for t in tensors]).reshape(-1))
        if not parts:
            return
        packed = torch.cat([p.reshape(-1).to(parts[0].device) for p in parts])
        self.writer.add_deferred(
            encode, step, names=names, stats=stats, histograms=kinds, bins=self.bins, packed=packed, step=step
        )

    def _activation_hook(self, name: str) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            if not self.cadence.keeps(self.step) or not torch.is_grad_enabled():
                return
            tensor = output[0] if isinstance(output, tuple | list) else output
            tag = f"watch/activations/{name}"
            if (
                isinstance(tensor, torch.Tensor)
                and tensor.is_floating_point()
                and self.writer.gate.admits("watch", "histogram", tag, self.step)
            ):
                row = histogram.device_bins(tensor, self.bins, SAMPLE)
                self.writer.add_deferred(_activation_value, self.step, tag=tag, row=row, bins=self.bins)

        return hook
