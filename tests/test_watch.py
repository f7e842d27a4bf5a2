"""Watching a model: what it logs equals an independent computation, and unwatch leaves no hook behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import accumulate
from tbscope import Cadence, Writer


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def train(model: torch.nn.Module, steps: int, record: dict[int, dict[str, torch.Tensor]] | None = None) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.randn(steps, 16, 6, generator=torch.Generator().manual_seed(1))
    for step in range(steps):
        optimizer.zero_grad()
        model(data[step]).pow(2).mean().backward()
        if record is not None:
            record[step] = {
                **{f"w/{n}": p.detach().clone() for n, p in model.named_parameters()},
                **{f"g/{n}": p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None},
            }
        optimizer.step()


def test_norms_and_update_ratios_equal_an_independent_computation(tmp_path: Path) -> None:
    model = small_model()
    seen: dict[int, dict[str, torch.Tensor]] = {}
    with Writer(tmp_path) as w:
        w.watch(model, cadence=Cadence(every=4, dense_until=0))
        train(model, 9, seen)
    acc = accumulate(tmp_path)
    for name, _ in model.named_parameters():
        weight = acc.Scalars(f"watch/weight_norm/{name}")
        grad = acc.Scalars(f"watch/grad_norm/{name}")
        assert [e.step for e in weight] == [0, 4, 8] == [e.step for e in grad]
        for e in weight:
            assert e.value == pytest.approx(torch.linalg.norm(seen[e.step][f"w/{name}"]).item(), rel=1e-5)
        for e in grad:
            assert e.value == pytest.approx(torch.linalg.norm(seen[e.step][f"g/{name}"]).item(), rel=1e-5)
        ratio = acc.Scalars(f"watch/update_ratio/{name}")
        assert [e.step for e in ratio] == [4, 8]  # step 0 has no step before it
        for e in ratio:
            before, after = seen[e.step - 1][f"w/{name}"], seen[e.step][f"w/{name}"]
            expected = (torch.linalg.norm(after - before) / torch.linalg.norm(before)).item()
            assert e.value == pytest.approx(expected, rel=1e-4)


def test_histograms_of_weights_gradients_and_activations(tmp_path: Path) -> None:
    model = small_model()
    with Writer(tmp_path) as w:
        w.watch(model, cadence=Cadence(every=5, dense_until=0), activations=True)
        train(model, 6)
    acc = accumulate(tmp_path)
    tags = set(acc.Tags()["histograms"])
    for name, param in model.named_parameters():
        assert {f"watch/weights/{name}", f"watch/grads/{name}"} <= tags
        histo = acc.Histograms(f"watch/weights/{name}")[0].histogram_value
        assert histo.num == param.numel() and sum(histo.bucket) == param.numel()
    assert {"watch/activations/0", "watch/activations/1", "watch/activations/2"} <= tags
    act = acc.Histograms("watch/activations/2")
    assert [e.step for e in act] == [0, 5] and act[0].histogram_value.num == 16 * 2


def test_nan_in_a_layer_is_reported_once_naming_the_layer_and_the_step(tmp_path: Path) -> None:
    model = small_model()
    expected = r"watch: gradient of layer '2.weight' hold NaN or Inf at step 2"
    with pytest.warns(RuntimeWarning, match=expected), Writer(tmp_path) as w:
        w.watch(model, cadence=Cadence(every=1, dense_until=0), histograms=False)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        for step in range(5):
            optimizer.zero_grad()
            out = model(torch.randn(4, 6))
            if step >= 2:
                out = out * torch.tensor([float("nan"), 1.0])
            out.sum().backward()
    notes = accumulate(tmp_path).Tensors("watch/nonfinite")
    texts = [n.tensor_proto.string_val[0].decode() for n in notes]
    assert any("'2.weight'" in t and "step 2" in t for t in texts)
    assert sum("'2.weight'" in t for t in texts) == 1


def test_unwatch_removes_every_hook(tmp_path: Path) -> None:
    model = small_model()
    with Writer(tmp_path) as w:
        w.watch(model, activations=True)
        assert any(p._post_accumulate_grad_hooks for p in model.parameters())
        assert any(m._forward_hooks for m in model.modules())
        w.unwatch(model)
        assert not any(p._post_accumulate_grad_hooks for p in model.parameters())
        assert not any(m._forward_hooks for m in model.modules())
        train(model, 3)
    assert not [t for t in accumulate(tmp_path).Tags()["scalars"] if t.startswith("watch/")]


def test_steps_the_cadence_skips_log_nothing(tmp_path: Path) -> None:
    model = small_model()
    with Writer(tmp_path) as w:
        watch = w.watch(model, cadence=Cadence(every=10, dense_until=10, dense_every=3))
        train(model, 25)
    assert watch.step == 25
    steps = [e.step for e in accumulate(tmp_path).Scalars("watch/grad_norm/0.weight")]
    assert steps == [0, 3, 6, 9, 10, 20]
    assert np.all(np.isfinite([e.value for e in accumulate(tmp_path).Scalars("watch/weight_norm/0.bias")]))
