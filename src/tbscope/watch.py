"""Model watching: per-layer weight and gradient norms, update-to-weight ratios and histograms, at a cadence.

Layers are named by their parameters' qualified names (``features.0.conv.weight``). Each layer's numbers
go to a sub-run of its own, ``watch/<layer>``, under one tag per quantity (``watch/grad_norm``,
``watch/weight_norm``, ``watch/update_ratio``): TensorBoard then draws one chart per quantity with a line
per layer, rather than a chart per layer and quantity. Histograms stay in the run, a tag per layer
(``watch/weights/<layer>``, ``watch/grads/<layer>``, ``watch/activations/<module>``).

Everything is computed on the model's device with batched (``torch._foreach_*``) operations; of one
logging step, each layer's few numbers travel to the host as one small tensor and every histogram's bins
as one more, copied asynchronously: watching never synchronizes with the device. Steps count backward passes
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
from tbscope.snapshot import Pending, array
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


def layer_values(name: str, stats: Sequence[str], numbers: np.ndarray, step: int) -> list[Summary.Value]:
    """One layer's numbers of one logging step, a scalar per quantity of ``stats``, for its sub-run. A
    non-finite norm is reported once per layer, in a warning and as text (tag ``watch/nonfinite``)."""
    values = []
    for stat, number in zip(stats, np.asarray(numbers).reshape(-1).tolist(), strict=True):
        if stat == "update_ratio" and math.isnan(number):
            continue  # the weights were all zero (a bias at its start): no ratio to them
        values.append(scalar.simple_value(f"watch/{stat}", number))
        if stat != "update_ratio" and not math.isfinite(number):
            what = "weights" if stat == "weight_norm" else "gradient"
            message = f"tbscope: watch: {what} of layer {name!r} hold NaN or Inf at step {step} ({stat} {number})"
            if warn_once(("watch-nonfinite", name), message):
                values.append(text.text_value("watch/nonfinite", message))
    return values


def histogram_values(
    names: Sequence[str], histograms: Sequence[str], bins: int, packed: np.ndarray
) -> list[Summary.Value]:
    """The histograms of one logging step from its packed tensor: a row per layer for each of ``histograms``."""
    rows = np.asarray(packed).reshape(len(histograms), len(names), bins + _ROW_STATS)
    return [
        histogram.from_device_bins(f"watch/{kind}/{name}", row, bins)[0]
        for h, kind in enumerate(histograms)
        for name, row in zip(names, rows[h], strict=True)
    ]


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
        stats: list[str] = []
        if self.norms:
            rows = [
                torch.stack(torch._foreach_norm(weights)).double(),
                torch.stack(torch._foreach_norm(grads)).double(),
            ]
            stats += ["weight_norm", "grad_norm"]
            if self.update_ratio and self._previous is not None:
                before = torch.stack(torch._foreach_norm(self._previous)).double()
                moved = torch.stack(torch._foreach_norm(torch._foreach_sub(weights, self._previous))).double()
                rows.append(torch.where(before > 0, moved / before, torch.nan))  # no ratio to all-zero weights
                stats.append("update_ratio")
            self._previous = None
            per_layer = torch.stack(rows).t()  # a row of quantities per layer
            for name, numbers in zip(names, per_layer, strict=True):
                row = array("watch", numbers)
                self.writer._put(
                    "watch", f"watch/{name}", step, None, layer_values, (name, stats, row, step),
                    isinstance(row, Pending), 8 * len(stats),
                )  # fmt: skip
        # Histograms are heavy data: the writer's gate (its budget) decides, as for add_histogram. The
        # norms are scalars, which go on past any budget.
        gate = self.writer.gate
        kinds = [
            k
            for k in ("weights", "grads")
            if self.histograms and gate.admits("watch", "histogram", f"watch/{k}/*", step)
        ]
        if not kinds:
            return
        parts = [
            torch.stack([histogram.device_bins(t, self.bins, SAMPLE) for t in (weights if k == "weights" else grads)])
            for k in kinds
        ]
        packed = array("watch", torch.cat([p.reshape(-1) for p in parts]))
        self.writer._put(
            "watch", "", step, None, histogram_values, (names, kinds, self.bins, packed),
            isinstance(packed, Pending), int(packed.nbytes if not isinstance(packed, Pending) else packed.host.nbytes),
        )  # fmt: skip

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
                packed = array("watch", histogram.device_bins(tensor, self.bins, SAMPLE))
                self.writer._put(
                    "watch", "", self.step, None, _activation_value, (tag, packed, self.bins),
                    isinstance(packed, Pending), 8 * (self.bins + _ROW_STATS),
                )  # fmt: skip

        return hook
