"""Watching a model: what it logs equals an independent computation, and unwatch leaves no hook behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import accumulate
from tbscope import Budget, Cadence, Writer


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
    for name, _ in model.named_parameters():
        acc = accumulate(tmp_path / "watch" / name)  # a sub-run a layer: one chart a quantity, a line a layer
        weight = acc.Scalars("watch/weight_norm")
        grad = acc.Scalars("watch/grad_norm")
        assert [e.step for e in weight] == [0, 4, 8] == [e.step for e in grad]
        for e in weight:
            assert e.value == pytest.approx(torch.linalg.norm(seen[e.step][f"w/{name}"]).item(), rel=1e-5)
        for e in grad:
            assert e.value == pytest.approx(torch.linalg.norm(seen[e.step][f"g/{name}"]).item(), rel=1e-5)
        ratio = acc.Scalars("watch/update_ratio")
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
    notes = accumulate(tmp_path / "watch" / "2.weight").Tensors("watch/nonfinite")
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
    assert not (tmp_path / "watch").exists() and not accumulate(tmp_path).Tags()["histograms"]


def test_steps_the_cadence_skips_log_nothing(tmp_path: Path) -> None:
    model = small_model()
    with Writer(tmp_path) as w:
        watch = w.watch(model, cadence=Cadence(every=10, dense_until=10, dense_every=3))
        train(model, 25)
    assert watch.step == 25
    steps = [e.step for e in accumulate(tmp_path / "watch" / "0.weight").Scalars("watch/grad_norm")]
    assert steps == [0, 3, 6, 9, 10, 20]
    assert np.all(
        np.isfinite([e.value for e in accumulate(tmp_path / "watch" / "0.bias").Scalars("watch/weight_norm")])
    )


def wide_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))


def test_watch_stops_histograms_at_the_runs_byte_budget_with_one_warning_and_norms_go_on(tmp_path: Path) -> None:
    model = wide_model()
    budget = Budget(max_run_bytes=50_000)
    with (
        pytest.warns(RuntimeWarning, match=r"over its budget of 50,000 \(Budget.max_run_bytes\)") as caught,
        Writer(tmp_path, budget=budget) as w,
    ):
        w.watch(model, cadence=Cadence(every=1, dense_until=0), activations=True)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        data = torch.randn(200, 16, 6, generator=torch.Generator().manual_seed(1))
        for step in range(200):
            optimizer.zero_grad()
            model(data[step]).pow(2).mean().backward()
            optimizer.step()
            w.flush()
    assert sum("over its budget" in str(c.message) for c in caught) == 1
    acc = accumulate(tmp_path)
    kept = [len(acc.Histograms(tag)) for tag in acc.Tags()["histograms"]]
    assert kept and max(kept) < 200
    assert len(accumulate(tmp_path / "watch" / "0.weight").Scalars("watch/grad_norm")) == 200  # scalars go on
    (note,) = acc.Tensors("tbscope/budget")
    assert b"no longer logged" in note.tensor_proto.string_val[0]
    # What the run holds past its budget is the scalars that went on, not histograms.
    assert sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()) < 3 * 50_000


def test_watch_keeps_the_budgets_histograms_per_tag_like_add_histogram(tmp_path: Path) -> None:
    model = small_model()
    budget = Budget(max_histograms_per_tag=5)
    with (
        pytest.warns(RuntimeWarning, match=r"'watch/weights/\*' has 5 histograms, its budget") as caught,
        Writer(tmp_path, budget=budget) as w,
    ):
        w.watch(model, cadence=Cadence(every=1, dense_until=0), activations=True)
        train(model, 40)
        for step in range(40):
            w.add_histogram("h", np.arange(10.0), step)
    acc = accumulate(tmp_path)
    counts = {tag: len(acc.Histograms(tag)) for tag in acc.Tags()["histograms"]}
    assert set(counts.values()) == {5}
    assert {"watch/weights/0.weight", "watch/grads/2.bias", "watch/activations/1", "h"} <= counts.keys()
    assert [e.step for e in acc.Histograms("watch/grads/0.weight")] == [0, 1, 2, 3, 4]
    assert sum("'watch/weights/*' has 5" in str(c.message) for c in caught) == 1


def test_tensorboard_draws_one_chart_a_quantity_with_a_line_a_layer_named_by_its_qualified_name(
    tmp_path: Path,
) -> None:
    from collections import OrderedDict

    from tensorboard.backend.event_processing import plugin_event_multiplexer

    conv = torch.nn.Sequential(OrderedDict(conv=torch.nn.Conv2d(3, 4, 3), bn=torch.nn.BatchNorm2d(4)))
    model = torch.nn.Sequential(
        OrderedDict(
            features=torch.nn.Sequential(conv),
            pool=torch.nn.AdaptiveAvgPool2d(1),
            flat=torch.nn.Flatten(),
            head=torch.nn.Linear(4, 2),
        )
    )
    with Writer(tmp_path) as w:
        w.watch(model, cadence=Cadence(every=1, dense_until=0))
        for _ in range(3):
            model(torch.randn(2, 3, 8, 8)).sum().backward()
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    charts: dict[str, set[str]] = {}  # what the Scalars dashboard draws: a chart a tag, a line a run
    for run, tags in multiplexer.PluginRunToTagToContent("scalars").items():
        for tag in tags:
            charts.setdefault(tag, set()).add(run)
    layers = {"features.0.conv.weight", "features.0.conv.bias", "features.0.bn.weight", "features.0.bn.bias",
              "head.weight", "head.bias"}  # fmt: skip
    assert set(charts) == {"watch/weight_norm", "watch/grad_norm", "watch/update_ratio"}
    assert charts["watch/weight_norm"] == charts["watch/grad_norm"] == {f"watch/{layer}" for layer in layers}
    # no update ratio to weights that are all zero (a batch norm's bias before any step): no 1e12 spike
    assert charts["watch/update_ratio"] == {f"watch/{layer}" for layer in layers - {"features.0.bn.bias"}}
    histograms = multiplexer.PluginRunToTagToContent("histograms")["."]
    assert {f"watch/{kind}/{layer}" for kind in ("weights", "grads") for layer in layers} == set(histograms)
