"""Model graphs: a module traced with ``torch.jit.trace``, as a GraphDef for the Graphs dashboard.

Nodes are named the way torch's own writer names them, ``Net/Sequential[features]/Conv2d[0]/input.3``,
so the dashboard nests them by module. Constants and module handles are left out; parameters show as
``.../Conv2d[0]/weight``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import Any

from tensorboard.compat.proto.attr_value_pb2 import AttrValue
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.graph_pb2 import GraphDef
from tensorboard.compat.proto.node_def_pb2 import NodeDef
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.compat.proto.versions_pb2 import VersionDef


class GraphError(ValueError, RuntimeError):
    """A model could not be traced; the message names the model and the reason. A RuntimeError too,
    which is what torch's writer raises."""


def trace(model: Any, inputs: Any, strict: bool) -> tuple[Any, dict[str, str]]:
    """Trace ``model`` on ``inputs`` in eval mode; returns the inlined graph and module class names.

    ``inputs`` is a tensor, a tuple or list of positional inputs, or a dict of keyword inputs (given
    to ``forward`` in the order it takes them).
    Outputs may be any nesting of tuples, lists and dicts: the model is traced inside a wrapper
    (its child ``model``, named away again by ``graph_event``) that returns their tensors as a flat
    tuple, which the tracer accepts. Each module's train/eval mode is restored afterwards.
    """
    import torch
    from torch.utils._pytree import tree_flatten

    class Flat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> tuple[Any, ...]:
            output = self.model(*args)
            leaves, _ = tree_flatten(output)
            tensors = tuple(leaf for leaf in leaves if isinstance(leaf, torch.Tensor))
            if not tensors:
                raise TypeError(f"it returned no tensor (a {type(output).__name__})")
            return tensors

    if isinstance(inputs, dict):  # keyword inputs, in the order forward() takes them
        try:
            bound = inspect.signature(model.forward).bind(**inputs)
        except TypeError as err:
            raise GraphError(
                f"add_graph: {type(model).__name__}.forward does not take {sorted(inputs)}: {err}"
            ) from err
        args: tuple[Any, ...] = tuple(bound.args)
    else:
        args = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # tbscope chose the tracer, not the user: its deprecation notice is ours to handle.
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            traced = None
            for lenient in [False, True] if strict else [True]:
                try:
                    traced = torch.jit.trace(Flat(), args, strict=not lenient, check_trace=False)
                    break
                except Exception:
                    if lenient:
                        raise
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GraphError(f"add_graph: could not trace {type(model).__name__}: {reason}") from err
    finally:
        for module, training in modes.items():
            module.training = training
    assert traced is not None  # the loop either traced or raised
    graph = traced.graph
    torch._C._jit_pass_inline(graph)
    names = {name: type(module).__name__ for name, module in model.named_modules()}
    return graph, names


def _scope(qualified: str, classes: Mapping[str, str]) -> str:
    """``features.0`` -> ``Net/Sequential[features]/Conv2d[0]``."""
    path = [classes[""]]
    parts = qualified.split(".") if qualified else []
    for i, part in enumerate(parts):
        path.append(f"{classes.get('.'.join(parts[: i + 1]), 'Module')}[{part}]")
    return "/".join(path)


def _shape_attr(values: Any) -> dict[str, AttrValue]:
    shapes = []
    for value in values:
        kind = value.type()
        sizes = kind.sizes() if kind.kind() == "TensorType" else None
        if sizes is None:
            return {}
        shapes.append(TensorShapeProto(dim=[TensorShapeProto.Dim(size=s) for s in sizes]))
    return {"_output_shapes": AttrValue(list=AttrValue.ListValue(shape=shapes))}


def _unwrapped(path: str) -> str:
    """A module path inside ``trace``'s wrapper, as a path inside the user's model."""
    return "" if path == "model" else path.removeprefix("model.") if path.startswith("model.") else path


def graph_event(graph: Any, classes: Mapping[str, str]) -> Event:
    """The GraphDef of a graph traced by ``trace`` (inlined), as an event."""
    names: dict[str, str] = {}  # value debugName -> node name
    attr_paths: dict[str, str] = {}  # value debugName -> dotted attribute path from the model
    nodes: list[NodeDef] = []
    emitted: set[str] = set()
    graph_inputs = list(graph.inputs())
    if graph_inputs:
        attr_paths[graph_inputs[0].debugName()] = ""  # the module itself
    for value in graph_inputs[1:]:
        name = names[value.debugName()] = f"input/{value.debugName()}"
        nodes.append(NodeDef(name=name, op="IO Node", attr=_shape_attr([value])))
    for node in graph.nodes():
        kind = node.kind()
        outputs = list(node.outputs())
        if kind == "prim::Constant":
            continue
        if kind == "prim::GetAttr":
            parent = attr_paths.get(node.input().debugName())
            if parent is None:
                continue
            path = _unwrapped(f"{parent}.{node.s('name')}" if parent else node.s("name"))
            if path in classes:  # a submodule: remember its path, draw nothing
                attr_paths[node.output().debugName()] = path
                continue
            owner, _, leaf = path.rpartition(".")
            name = names[node.output().debugName()] = f"{_scope(owner, classes)}/{leaf}"
            if name not in emitted:  # a shared parameter is read more than once: one node
                emitted.add(name)
                nodes.append(NodeDef(name=name, op=kind, attr=_shape_attr(outputs)))
            continue
        scope = node.scopeName().split("/")[-1].removeprefix("__module.")
        scope = _unwrapped(scope if scope != "__module" else "")
        leaf = outputs[0].debugName() if outputs else f"{kind.split('::')[-1]}_{len(nodes)}"
        name = f"{_scope(scope, classes)}/{leaf}"
        for out in outputs:
            names[out.debugName()] = name
        inputs = [names[v.debugName()] for v in node.inputs() if v.debugName() in names]
        nodes.append(NodeDef(name=name, op=kind, input=inputs, attr=_shape_attr(outputs)))
    for i, value in enumerate(graph.outputs()):
        source = names.get(value.debugName())
        nodes.append(NodeDef(name=f"output/output.{i}", op="IO Node", input=[source] if source else []))
    graph_def = GraphDef(node=nodes, versions=VersionDef(producer=22))
    return Event(graph_def=graph_def.SerializeToString())


def onnx_graph_event(path: str) -> Event:
    """The graph of the ONNX model file at ``path``, as an event (torch's ``add_onnx_graph``).

    Each ONNX node becomes a node named after its first output, wired to the nodes that produce its
    inputs; graph inputs and initializers are ``Variable`` nodes with their shapes.
    """
    try:
        import onnx
    except ImportError as err:
        raise ImportError("add_onnx_graph needs the onnx package: pip install onnx") from err
    model = onnx.load(path)
    nodes: list[NodeDef] = []
    for value in model.graph.input:
        dims = [TensorShapeProto.Dim(size=d.dim_value or -1) for d in value.type.tensor_type.shape.dim]
        shape = AttrValue(list=AttrValue.ListValue(shape=[TensorShapeProto(dim=dims)]))
        nodes.append(NodeDef(name=value.name, op="Variable", attr={"_output_shapes": shape}))
    inputs = {value.name for value in model.graph.input}
    for tensor in model.graph.initializer:
        if tensor.name not in inputs:
            nodes.append(NodeDef(name=tensor.name, op="Variable"))
    produced_by = {out: node.output[0] for node in model.graph.node for out in node.output if node.output}
    for node in model.graph.node:
        attrs = ", ".join(f"{a.name}={onnx.helper.get_attribute_value(a)!r}" for a in node.attribute)
        nodes.append(
            NodeDef(
                name=node.output[0] if node.output else node.name,
                op=node.op_type,
                input=[produced_by.get(i, i) for i in node.input if i],
                attr={"parameters": AttrValue(s=attrs.encode())},
            )
        )
    return Event(graph_def=GraphDef(node=nodes, versions=VersionDef(producer=22)).SerializeToString())
