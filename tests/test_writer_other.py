"""Text, PR curves, hyperparameters, custom scalars, meshes, embeddings, graphs and raw tensors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from google.protobuf import text_format
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.pr_curve import metadata as pr_metadata
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig
from tensorboard.plugins.text import metadata as text_metadata
from tensorboard.util import tensor_util

from conftest import accumulate, hparams_table, session_infos
from tbscope import GraphError, Writer


def test_text_is_a_text_plugin_string(tmp_path: Path) -> None:
    with Writer(tmp_path) as w:
        w.add_text("notes", "**bold** and ünïcode", 2)
    acc = accumulate(tmp_path)
    (event,) = acc.Tensors("notes")
    assert event.step == 2
    assert tensor_util.make_ndarray(event.tensor_proto).tolist() == ["**bold** and ünïcode".encode()]
    assert acc.SummaryMetadata("notes").plugin_data.plugin_name == text_metadata.PLUGIN_NAME
    with Writer(tmp_path / "bad") as w, pytest.raises(TypeError, match="text_string must be a str, got int"):
        w.add_text("t", 5)  # type: ignore[arg-type]


def test_pr_curve_counts_match_an_independent_computation(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    predictions = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 500), 0, 1)
    with Writer(tmp_path) as w:
        w.add_pr_curve("pr", torch.from_numpy(labels), torch.from_numpy(predictions), 3, num_thresholds=11)
    acc = accumulate(tmp_path)
    data = tensor_util.make_ndarray(acc.Tensors("pr")[0].tensor_proto)
    assert data.shape == (6, 11)
    for i in range(11):
        predicted = predictions >= i / 10
        tp, fp = np.sum(predicted & (labels == 1)), np.sum(predicted & (labels == 0))
        fn, tn = np.sum(~predicted & (labels == 1)), np.sum(~predicted & (labels == 0))
        assert data[:4, i].tolist() == [tp, fp, tn, fn]
        assert data[4, i] == pytest.approx(tp / max(tp + fp, 1e-7), rel=1e-5)
        assert data[5, i] == pytest.approx(tp / max(tp + fn, 1e-7), rel=1e-5)
    content = acc.SummaryMetadata("pr").plugin_data.content
    assert pr_metadata.parse_plugin_metadata(content).num_thresholds == 11


def test_pr_curve_raw_and_its_errors(tmp_path: Path) -> None:
    with Writer(tmp_path) as w:
        w.add_pr_curve_raw("raw", [3, 1], [2, 0], [0, 2], [0, 2], [0.6, 1.0], [1.0, 0.33], 0, num_thresholds=2)
        with pytest.warns(RuntimeWarning, match=r"'short' has arrays of 2 thresholds, not num_thresholds=127"):
            w.add_pr_curve_raw("short", [3, 1], [2, 0], [0, 2], [0, 2], [0.6, 1.0], [1.0, 0.3], 0)
        with pytest.raises(ValueError, match=r"must have one, non-zero number of elements, got \(2,\), \(3,\)"):
            w.add_pr_curve_raw("bad", [3, 1], [2, 0, 1], [0, 2], [0, 2], [0.6, 1.0], [1.0, 0.3], 0)
        with pytest.raises(ValueError, match="same, non-zero number of elements"):
            w.add_pr_curve("bad", [1, 0, 1], [0.5, 0.2], 0)
    acc = accumulate(tmp_path)
    data = tensor_util.make_ndarray(acc.Tensors("raw")[0].tensor_proto)
    assert data[:, 0].tolist() == pytest.approx([3, 2, 0, 0, 0.6, 1.0])
    short = tensor_util.make_ndarray(acc.Tensors("short")[0].tensor_proto)
    assert short.shape == (6, 2)
    assert pr_metadata.parse_plugin_metadata(acc.SummaryMetadata("short").plugin_data.content).num_thresholds == 2


def test_hparams_go_into_the_run_itself_flattened_with_types_kept(tmp_path: Path) -> None:
    config = {
        "lr": 0.01,
        "epochs": 3,
        "amp": True,
        "optimizer": {"name": "adam", "betas": [0.9, 0.99]},
        "resume": None,
        "scale": np.float32(0.5),
        "path": Path("/data"),
    }
    with Writer(tmp_path) as w:
        w.add_hparams(config, {"val/acc": 0.5})
        w.add_scalar("val/acc", 0.9, 10)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == []  # no timestamp sub-run
    start, end = session_infos(tmp_path)
    hp = start.hparams  # type: ignore[attr-defined]
    assert hp["lr"].number_value == 0.01 and hp["epochs"].number_value == 3
    assert hp["amp"].WhichOneof("kind") == "bool_value" and hp["amp"].bool_value is True
    assert hp["optimizer/name"].string_value == "adam"
    assert hp["optimizer/betas"].string_value == "[0.9, 0.99]"
    assert hp["scale"].number_value == 0.5 and hp["path"].string_value == "/data"
    assert "resume" not in hp
    assert end.status == api_pb2.STATUS_SUCCESS  # type: ignore[attr-defined]
    assert [e.value for e in accumulate(tmp_path).Scalars("val/acc")] == pytest.approx([0.5, 0.9])


@pytest.mark.parametrize("layout", ["writer at the logdir", "writer below it", "one writer per trial"])
def test_hparams_logged_in_a_loop_show_one_row_per_trial_with_its_own_metrics(tmp_path: Path, layout: str) -> None:
    """torch's own add_hparams example: five trials from one writer, read by the HParams plugin's handlers."""
    trials = [({"lr": 0.1 * i, "bsize": i}, {"hparam/accuracy": 10.0 * i, "hparam/loss": -1.0 * i}) for i in range(5)]
    if layout == "one writer per trial":
        for i, (hparam_dict, metric_dict) in enumerate(trials):
            with Writer(tmp_path / f"trial{i}") as w:
                w.add_hparams(hparam_dict, metric_dict)
    else:
        with Writer(tmp_path if layout == "writer at the logdir" else tmp_path / "run1") as w:
            for hparam_dict, metric_dict in trials:
                w.add_hparams(hparam_dict, metric_dict)
    table = hparams_table(tmp_path)
    rows = {
        (round(row["hparams"]["lr"], 6), row["hparams"]["bsize"]): row["metrics"] for name, row in table.items() if name
    }
    assert rows == {
        (round(0.1 * i, 6), float(i)): {"hparam/accuracy": 10.0 * i, "hparam/loss": -1.0 * i} for i in range(5)
    }


def test_hparams_called_again_with_the_same_values_update_one_session(tmp_path: Path) -> None:
    with Writer(tmp_path / "run") as w:
        w.add_hparams({"lr": 0.1}, {"hparam/accuracy": 0.5})
        w.add_hparams({"lr": 0.1}, {"hparam/accuracy": 0.9}, global_step=1)
    table = hparams_table(tmp_path)
    assert [name for name in table if name] == ["run"]
    assert table["run"]["metrics"] == {"hparam/accuracy": pytest.approx(0.9)}


@pytest.mark.parametrize(("run_name", "key"), [("../outside", "/../../x"), ("/tmp/elsewhere", "a/../../b")])
def test_sub_run_names_that_leave_the_log_dir_are_refused(tmp_path: Path, run_name: str, key: str) -> None:
    with Writer(tmp_path / "run") as w:
        with pytest.raises(ValueError, match=r"add_hparams: run_name .* would write outside log_dir"):
            w.add_hparams({"lr": 0.1}, {"m": 1.0}, run_name=run_name)
        with pytest.raises(ValueError, match=r"add_scalars: key .* would write outside log_dir"):
            w.add_scalars("loss", {key: 1.0}, 0)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_dir()) == ["run"]


def test_hparams_status_is_failure_when_the_writer_closes_on_an_exception(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), Writer(tmp_path) as w:
        w.add_hparams({"lr": 0.1}, {"loss": 1.0})
        w.flush()
        assert session_infos(tmp_path)[1] is None  # no end status at call time
        raise RuntimeError("boom")
    assert session_infos(tmp_path)[1].status == api_pb2.STATUS_FAILURE  # type: ignore[union-attr]


def test_hparams_status_is_failure_when_the_process_dies_of_an_exception(tmp_path: Path) -> None:
    script = (
        "import tbscope, sys\n"
        f"w = tbscope.Writer({str(tmp_path)!r})\n"
        "w.add_hparams({'lr': 0.1}, {'loss': 1.0})\n"
        "raise SystemExit('no') if False else ValueError('training diverged')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "training diverged" in result.stderr
    assert session_infos(tmp_path)[1].status == api_pb2.STATUS_FAILURE  # type: ignore[union-attr]


def test_custom_scalar_charts_of_successive_calls_are_merged(tmp_path: Path) -> None:
    with Writer(tmp_path) as w:
        w.add_custom_scalars_multilinechart(["loss/.*"], category="training", title="losses")
        w.add_custom_scalars_marginchart(["acc", "acc_lo", "acc_hi"], category="training", title="acc")
        with pytest.raises(ValueError, match=r"chart 'c'/'t' must be \['Multiline', \[tags\]\]"):
            w.add_custom_scalars({"c": {"t": ["Pie", ["x"]]}})
    events = accumulate(tmp_path).Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(tensor_util.make_ndarray(events[-1].tensor_proto).item())
    (category,) = layout.category
    assert category.title == "training"
    assert [c.title for c in category.chart] == ["losses", "acc"]
    assert list(category.chart[0].multiline.tag) == ["loss/.*"]
    assert category.chart[1].margin.series[0].upper == "acc_hi"


def test_mesh_parts_are_written_for_the_mesh_plugin(tmp_path: Path) -> None:
    vertices = torch.rand(1, 4, 3)
    faces = torch.tensor([[[0, 1, 2], [1, 2, 3]]])
    with Writer(tmp_path) as w:
        w.add_mesh("cube", vertices, faces=faces, config_dict={"camera": {"fov": 60}}, global_step=1)
        with pytest.raises(ValueError, match=r"vertices must have shape \(B, N, 3\), got \(4, 3\)"):
            w.add_mesh("bad", torch.rand(4, 3))
    acc = accumulate(tmp_path)
    assert sorted(acc.Tags()["tensors"]) == ["cube_FACE", "cube_VERTEX"]
    got = tensor_util.make_ndarray(acc.Tensors("cube_VERTEX")[0].tensor_proto)
    assert np.allclose(got, vertices.numpy())
    assert acc.SummaryMetadata("cube_FACE").plugin_data.plugin_name == "mesh"


def read_projector_config(log_dir: Path) -> ProjectorConfig:
    return text_format.Parse((log_dir / "projector_config.pbtxt").read_text(), ProjectorConfig())


def test_embedding_files_and_config_load(tmp_path: Path) -> None:
    mat = torch.randn(10, 4)
    with Writer(tmp_path) as w:
        w.add_embedding(mat, metadata=[f"c{i % 2}" for i in range(10)], label_img=torch.rand(10, 3, 8, 8), tag="feat")
        w.add_embedding(mat[:3], metadata=[["a", 1], ["b", 2], ["c", 3]], metadata_header=["name", "n"], global_step=7)
    config = read_projector_config(tmp_path)
    assert [e.tensor_name for e in config.embeddings] == ["feat:00000", "default:00007"]
    feat = config.embeddings[0]
    tensors = np.loadtxt(tmp_path / feat.tensor_path, delimiter="\t")
    assert np.allclose(tensors, mat.numpy(), atol=1e-6)
    assert (tmp_path / feat.metadata_path).read_text().splitlines()[:2] == ["c0", "c1"]
    sprite = np.asarray(__import__("PIL.Image").Image.open(tmp_path / feat.sprite.image_path))
    assert sprite.shape == (32, 32, 3) and list(feat.sprite.single_image_dim) == [8, 8]
    header = (tmp_path / config.embeddings[1].metadata_path).read_text().splitlines()
    assert header == ["name\tn", "a\t1", "b\t2", "c\t3"]


def test_embedding_config_from_two_processes_keeps_both(tmp_path: Path) -> None:
    script = (
        "import sys, numpy as np, tbscope\n"
        f"with tbscope.Writer({str(tmp_path)!r}) as w:\n"
        "    w.add_embedding(np.ones((3, 2)), tag=sys.argv[1])\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, tag]) for tag in ("first", "second")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    with Writer(tmp_path) as w:
        w.add_embedding(np.zeros((3, 2)), tag="third")
        w.add_embedding(np.zeros((3, 2)), tag="third")  # the same name again replaces, never duplicates
    names = sorted(e.tensor_name for e in read_projector_config(tmp_path).embeddings)
    assert names == ["first:00000", "second:00000", "third:00000"]


def test_embedding_bad_input_names_the_argument(tmp_path: Path) -> None:
    with Writer(tmp_path) as w:
        with pytest.raises(ValueError, match=r"metadata has 2 rows, mat has 3"):
            w.add_embedding(np.ones((3, 2)), metadata=["a", "b"])
        with pytest.raises(ValueError, match=r"label_img must have shape \(N=3"):
            w.add_embedding(np.ones((3, 2)), label_img=np.ones((2, 3, 4, 4)))
        with pytest.raises(ValueError, match=r"mat must have shape \(N, D\), got \(3,\)"):
            w.add_embedding(np.ones(3))


def test_huge_sprite_is_shrunk_under_the_projector_limit_with_a_warning(tmp_path: Path) -> None:
    from tbscope.summaries.embedding import MAX_SPRITE_SIDE, sprite

    with pytest.warns(RuntimeWarning, match="over the Projector's 8192x8192"):
        sheet, (h, w) = sprite(np.zeros((5000, 1, 128, 128), dtype=np.uint8))
    assert max(sheet.shape[:2]) <= MAX_SPRITE_SIDE and (h, w) == (115, 115)  # 71 a row: 8192 // 71


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        self.head = torch.nn.Linear(4 * 6 * 6, 2)
        self.dropout = torch.nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x).flatten(1)))


def test_graph_nodes_are_named_by_module_and_modes_are_restored(tmp_path: Path) -> None:
    model = Net()
    model.features.eval()  # a mixed train/eval model must come back exactly as it was
    with Writer(tmp_path) as w:
        w.add_graph(model, torch.rand(1, 3, 8, 8))
    assert model.training and not model.features.training and model.head.training
    graph = accumulate(tmp_path).Graph()
    names = {n.name for n in graph.node}
    ops = {n.op for n in graph.node}
    assert "Net/Sequential[features]/Conv2d[0]/weight" in names
    assert any(name.startswith("Net/Linear[head]/") for name in names)
    assert {"aten::_convolution", "aten::relu", "aten::linear", "IO Node"} <= ops
    linear = next(n for n in graph.node if n.op == "aten::linear")
    assert list(linear.attr["_output_shapes"].list.shape[0].dim) == [
        type(linear.attr["_output_shapes"].list.shape[0].dim[0])(size=1),
        type(linear.attr["_output_shapes"].list.shape[0].dim[0])(size=2),
    ]
    assert any(n.name.startswith("input/") for n in graph.node)
    assert any(n.name.startswith("output/") and n.input for n in graph.node)


class Untraceable(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> str:
        return f"mean {x.mean()}"


class Structured(torch.nn.Module):
    """Dict, list and tuple inputs and outputs, and a dropout that differs between train and eval."""

    def __init__(self) -> None:
        super().__init__()
        self.image = torch.nn.Linear(4, 2)
        self.text = torch.nn.Linear(3, 2)
        self.dropout = torch.nn.Dropout(0.5)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        a, b = self.image(image), self.dropout(self.text(text))
        return {"logits": [a + b, a - b], "parts": (a, b)}  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "inputs",
    [
        {"image": torch.rand(1, 4), "text": torch.rand(1, 3)},
        (torch.rand(1, 4), torch.rand(1, 3)),
        [torch.rand(1, 4), torch.rand(1, 3)],
    ],
    ids=["dict", "tuple", "list"],
)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_graph_of_models_with_structured_inputs_and_outputs_in_either_mode(
    tmp_path: Path, inputs: object, training: bool
) -> None:
    model = Structured().train(training)
    with Writer(tmp_path) as w:
        w.add_graph(model, inputs)
    assert model.training is training
    names = {n.name for n in accumulate(tmp_path).Graph().node}
    assert any(n.startswith("Structured/Linear[image]/") for n in names)
    assert any(n.startswith("Structured/Linear[text]/") for n in names)
    assert sum(n.startswith("output/") for n in names) >= 1


def test_untraceable_model_warns_naming_it_and_why_and_training_goes_on(tmp_path: Path) -> None:
    with (
        pytest.warns(RuntimeWarning, match=r"add_graph: could not trace Untraceable: .*"),
        Writer(tmp_path) as w,
    ):
        w.add_graph(Untraceable(), torch.rand(2))
        w.add_scalar("after", 1.0, 0)
    assert accumulate(tmp_path).Scalars("after")[0].value == 1.0
    with (
        Writer(tmp_path / "strict", strict=True) as w,
        pytest.raises(RuntimeError, match="could not trace Untraceable") as raised,  # what torch raises
    ):
        w.add_graph(Untraceable(), torch.rand(2))
    assert isinstance(raised.value, GraphError)


def test_add_tensor_round_trips_the_array(tmp_path: Path) -> None:
    with Writer(tmp_path) as w:
        w.add_tensor("raw", torch.arange(6, dtype=torch.int32).reshape(2, 3), 1)
    acc = accumulate(tmp_path)
    got = tensor_util.make_ndarray(acc.Tensors("raw")[0].tensor_proto)
    assert got.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert acc.SummaryMetadata("raw").plugin_data.plugin_name == "tensor"  # torch's name, for tools that filter by it


def test_onnx_graph_is_logged_with_its_nodes_wired(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "mlp",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
            [helper.make_tensor("w", TensorProto.FLOAT, [4, 2], [0.0] * 8)],
        )
    )
    onnx.save(model, tmp_path / "mlp.onnx")
    with Writer(tmp_path / "run") as w:
        w.add_onnx_graph(str(tmp_path / "mlp.onnx"))
        with pytest.raises(FileNotFoundError, match="no ONNX model file at"):
            w.add_onnx_graph(str(tmp_path / "missing.onnx"))
    graph = accumulate(tmp_path / "run").Graph()
    by_name = {n.name: n for n in graph.node}
    assert by_name["y"].op == "Relu" and list(by_name["y"].input) == ["h"]
    assert by_name["h"].op == "MatMul" and list(by_name["h"].input) == ["x", "w"]
    assert by_name["x"].op == "Variable" and by_name["w"].op == "Variable"


def test_add_deferred_encodes_a_snapshot_on_the_background_thread_and_reports_a_failing_encoder(
    tmp_path: Path,
) -> None:
    import torch

    from tbscope.summaries.scalar import simple_value

    def mean_of(values: np.ndarray, scale: float) -> object:
        assert isinstance(values, np.ndarray)
        return simple_value("val/mean", float(values.mean()) * scale)

    def broken(values: np.ndarray) -> object:
        raise RuntimeError("no luck")

    def wrong_type(values: np.ndarray) -> object:
        return "not a summary"

    values = torch.arange(4.0)
    with pytest.warns(RuntimeWarning) as warned, Writer(tmp_path) as w:
        w.add_deferred(mean_of, 3, values=values, scale=2.0)
        values.add_(100)  # after the call: the value logged is the one at call time
        w.add_deferred(broken, 4, values=values)
        w.add_deferred(wrong_type, 5, values=values)
        for step in range(6, 9):
            w.add_scalar("after", float(step), step)
        w.flush()
        with pytest.raises(TypeError, match="encode must be a callable"):
            w.add_deferred(42, 9)  # type: ignore[arg-type]
    messages = " ".join(str(w.message) for w in warned)
    assert "no luck" in messages and "returned a str" in messages and "2 value(s) lost" in messages
    acc = accumulate(tmp_path)
    (event,) = acc.Scalars("val/mean")
    assert (event.step, event.value) == (3, 3.0)
    assert [e.step for e in acc.Scalars("after")] == [6, 7, 8]  # logging goes on after a bad encoder
