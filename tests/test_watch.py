"""Watching a model: what it logs equals an independent computation, and unwatch leaves no hook behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tbscope
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
        acc = accumulate(tmp_path)  # in the run itself: a tag a quantity and layer
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
    assert not (tmp_path / "watch").exists() and not accumulate(tmp_path).Tags()["histograms"]


def test_steps_the_cadence_skips_log_nothing(tmp_path: Path) -> None:
    model = small_model()
    with Writer(tmp_path) as w:
        watch = w.watch(model, cadence=Cadence(every=10, dense_until=10, dense_every=3))
        train(model, 25)
    assert watch.step == 25
    steps = [e.step for e in accumulate(tmp_path).Scalars("watch/grad_norm/0.weight")]
    assert steps == [0, 3, 6, 9, 10, 20]
    assert np.all(np.isfinite([e.value for e in accumulate(tmp_path).Scalars("watch/weight_norm/0.bias")]))


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
    assert len(accumulate(tmp_path).Scalars("watch/grad_norm/0.weight")) == 200  # scalars go on
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


def resnet50() -> torch.nn.Module:
    """A ResNet-50 (He et al. 2016: bottleneck blocks 3, 4, 6, 3; 25.6M parameters), built here."""
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, width: int, stride: int) -> None:
            super().__init__()
            cout = width * 4
            self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
            self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
            self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
            self.downsample = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout
                else nn.Identity()
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.relu(self.bn1(self.conv1(x)))
            out = torch.relu(self.bn2(self.conv2(out)))
            return torch.relu(self.bn3(self.conv3(out)) + self.downsample(x))

    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
        for block in range(blocks):
            layers.append(Bottleneck(cin, width, 2 if block == 0 and stage > 0 else 1))
            cin = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000)]
    torch.manual_seed(0)
    return nn.Sequential(*layers)


def test_watching_a_resnet50_adds_no_run_and_its_chart_a_quantity_draws_every_layer(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.context import RequestContext
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.custom_scalar import custom_scalars_plugin
    from tensorboard.plugins.scalar import scalars_plugin

    model = resnet50()
    layers = [name for name, p in model.named_parameters()]
    assert len(layers) == 161 and sum(p.numel() for p in model.parameters()) == 25_557_032
    zero = {name for name, p in model.named_parameters() if not p.any()}  # batch norms' biases, at first
    with tbscope.init("resnet", root=tmp_path, name="watched") as run:
        run.writer.watch(model, cadence=Cadence(every=1, dense_until=0))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(2):
            optimizer.zero_grad()
            model(torch.randn(2, 3, 64, 64)).logsumexp(1).mean().backward()
            optimizer.step()
            run.writer.add_scalar("train/loss", 1.0, step)

    multiplexer = plugin_event_multiplexer.EventMultiplexer(size_guidance={"tensors": 0, "scalars": 0})
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    assert sorted(multiplexer.Runs()) == ["resnet/0001-watched"]  # what TensorBoard lists: the run, and no other
    context = base_plugin.TBContext(
        logdir=str(tmp_path), multiplexer=multiplexer,
        data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path)), plugin_name_to_instance={},
    )  # fmt: skip
    context.plugin_name_to_instance["scalars"] = scalars_plugin.ScalarsPlugin(context)
    custom = custom_scalars_plugin.CustomScalarsPlugin(context)
    context.plugin_name_to_instance["custom_scalars"] = custom
    layout = json.loads(custom.layout_impl(RequestContext(), ""))  # what the dashboard gets
    (category,) = [c for c in layout["category"] if c["title"] == "watch"]
    charts = {chart["title"]: chart["multiline"]["tag"] for chart in category["chart"]}
    assert list(charts) == ["weight_norm", "grad_norm", "update_ratio"]
    for quantity, (regex,) in charts.items():
        drawn = custom.scalars_impl(RequestContext(), "resnet/0001-watched", regex, "")["tag_to_events"]
        # a line a layer (an update ratio for each layer whose weights were not all zero)
        expected = layers if quantity != "update_ratio" else [n for n in layers if n not in zero]
        assert set(drawn) >= {f"watch/{quantity}/{name}" for name in expected}, quantity
        assert all(tag.startswith(f"watch/{quantity}/") for tag in drawn)
    histograms = multiplexer.PluginRunToTagToContent("histograms")["resnet/0001-watched"]
    assert {f"watch/{kind}/{layer}" for kind in ("weights", "grads") for layer in layers} == set(histograms)


def test_a_run_of_an_older_version_with_a_sub_run_a_layer_still_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tbscope.cli import main

    with tbscope.init("old", root=tmp_path, name="watched", config={"lr": 0.1}) as run:
        run.writer.add_scalar("val/acc", 0.5, 1)
    for layer in ("0.weight", "0.bias"):  # as older versions wrote watch's numbers: a sub-run a layer
        with Writer(run.dir / "watch" / layer) as w:
            w.add_scalar("watch/grad_norm", 0.25, 0)
    scalars = tbscope.read_scalars(tmp_path)
    by_run = {run: set(frame["tag"]) for run, frame in scalars.groupby("run", observed=True)}
    assert by_run == {
        "old/0001-watched": {"val/acc"},
        "old/0001-watched/watch/0.weight": {"watch/grad_norm"},
        "old/0001-watched/watch/0.bias": {"watch/grad_norm"},
    }
    capsys.readouterr()
    assert main(["ls", str(tmp_path), "--json"]) == 0
    assert [row["path"] for row in json.loads(capsys.readouterr().out)] == ["old/0001-watched"]  # one run
    assert main(["compare", str(tmp_path)]) == 0
    assert "0001-watched" in capsys.readouterr().out
