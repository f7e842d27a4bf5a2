"""Model watching: per-layer weight and gradient norms, update-to-weight ratios and histograms, at a cadence.

Layers are named by their parameters' qualified names (``features.0.conv.weight``). Everything goes into
the run itself, so that watching adds no run to TensorBoard's run selector: a scalar tag per quantity and
layer (``watch/grad_norm/<layer>``, ``watch/weight_norm/<layer>``, ``watch/update_ratio/<layer>``), and a
Custom Scalars layout (category ``watch``) that draws one chart per quantity with a line per layer.
Histograms are a tag per layer (``watch/weights/<layer>``, ``watch/grads/<layer>``,
``watch/activations/<module>``). Logdirs of older versions, with a sub-run per layer (``<run>/watch/<layer>``),
still read.

Everything is computed on the model's device with batched (``torch._foreach_*``) operations; of one
logging step, the numbers of every layer and every histogram's bins travel to the host as one tensor,
copied asynchronously through the writer's public path (``Writer.add_deferred``; its gate decides on
histograms, as for ``add_histogram``): watching never synchronizes with the device. Steps count backward passes
from 0 (set ``Watch.step`` to follow another count); statistics are taken at the end of a backward
pass, when every gradient is there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tensorboard.compat.proto.summary_pb2 import Summary

from tbscope.pipeline import warn_once
from tbscope.policy import Cadence, Spaced
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


# The quantities a layer has a scalar of, in the order of the Custom Scalars charts.
QUANTITIES = ("weight_norm", "grad_norm", "update_ratio")


def layout(quantities: Sequence[str]) -> dict[str, dict[str, list[Any]]]:
    """The Custom Scalars layout of ``quantities``: a chart each, a line for each layer of each run.

    Example:
        >>> layout(["grad_norm"])
        {'watch': {'grad_norm': ['Multiline', ['^watch/grad_norm/']]}}
    """
    return {"watch": {stat: ["Multiline", [f"^{re.escape(f'watch/{stat}/')}"]] for stat in quantities}}


def layer_values(name: str, stats: Sequence[str], numbers: np.ndarray, step: int) -> list[Summary.Value]:
    """One layer's numbers of one logging step, a scalar per quantity of ``stats`` (tag
    ``watch/<quantity>/<layer>``). A non-finite norm is reported once per layer, in a warning and as text
    (tag ``watch/nonfinite``)."""
    values = []
    for stat, number in zip(stats, np.asarray(numbers).reshape(-1).tolist(), strict=True):
        if stat == "update_ratio" and math.isnan(number):
            continue  # the weights were all zero (a bias at its start): no ratio to them
        values.append(scalar.simple_value(f"watch/{stat}/{name}", number))
        if stat != "update_ratio" and not math.isfinite(number):
            what = "weights" if stat == "weight_norm" else "gradient"
            message = f"tbscope: watch: {what} of layer {name!r} hold NaN or Inf at step {step} ({stat} {number})"
            if warn_once(("watch-nonfinite", name), message):
                values.append(text.text_value("watch/nonfinite", message))
    return values


def step_values(
    names: Sequence[str], stats: Sequence[str], histograms: Sequence[str], bins: int, packed: np.ndarray, step: int
) -> list[Summary.Value]:
    """One logging step's values from its packed tensor: each layer's numbers (a row of ``stats`` per
    layer), then the histograms (a row per layer for each of ``histograms``)."""
    count = len(names)
    numbers = packed[: len(stats) * count].reshape(count, len(stats))
    rows = packed[len(stats) * count :].reshape(len(histograms), count, bins + _ROW_STATS)
    out = [value for i, name in enumerate(names) for value in layer_values(name, stats, numbers[i], step)]
    return out + [
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
        cadence: Cadence | Spaced,
        norms: bool,
        histograms: bool,
        update_ratio: bool,
        activations: bool,
        bins: int = BINS,
    ) -> None:
        self.writer, self.model, self.cadence, self.bins = writer, model, cadence, bins
        self.norms, self.histograms, self.update_ratio = norms, histograms, update_ratio
        self.step = 0
        self._last: int | None = None  # the last step logged
        self._params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self._previous: list[torch.Tensor] | None = None
        self._queued = False
        self._handles: list[Any] = [p.register_post_accumulate_grad_hook(self._on_grad) for _, p in self._params]
        if norms:
            writer.add_custom_scalars(layout(QUANTITIES if update_ratio else QUANTITIES[:2]))
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
            if self.cadence.keeps(step, self._last):
                self._last = step
                self._log(step)
            if self.update_ratio and self.norms and self.cadence.keeps(step + 1, self._last):
                self._previous = [p.detach().clone() for _, p in self._params]

    def _log(self, step: int) -> None:
        names = [name for name, _ in self._params]
        weights = [p.detach() for _, p in self._params]
        grads = [p.grad.detach() if p.grad is not None else torch.zeros_like(p) for _, p in self._params]
        stats: list[str] = []
        parts: list[torch.Tensor] = []
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
            parts.append(torch.stack(rows).t())  # a row of quantities per layer
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
            parts.append(torch.stack([histogram.device_bins(t, self.bins, SAMPLE) for t in tensors]))
        if not parts:
            return
        packed = torch.cat([p.reshape(-1).to(parts[0].device) for p in parts])  # one copy to the host a step
        self.writer.add_deferred(
            step_values, step, names=names, stats=stats, histograms=kinds, bins=self.bins, packed=packed, step=step
        )

    def _activation_hook(self, name: str) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            if not self.cadence.keeps(self.step, self._last) or not torch.is_grad_enabled():
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
