"""Hyperparameters: a run's values as an HParams session, written into the run's own event file, and
the experiment summary that tells the HParams dashboard its columns.

A run never writes an experiment summary of its own: TensorBoard takes the first one it finds as the
schema of the whole logdir, which would hide every key other runs have and that run lacks. The one
summary of a runs root, with the columns of every run, is ``tbscope.schema``'s.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import struct_pb2
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

HParamValue = bool | int | float | str

# A run's end status (tbscope's words) as the HParams dashboard knows it: it has no "interrupted".
STATUSES = {
    "running": api_pb2.STATUS_RUNNING,
    "finished": api_pb2.STATUS_SUCCESS,
    "failed": api_pb2.STATUS_FAILURE,
    "interrupted": api_pb2.STATUS_FAILURE,
}


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, HParamValue]:
    """``config`` as flat ``{key: value}``, the way users expect to see it in the HParams table.

    Nested mappings are joined with "/", bools stay bools, numbers stay numbers, ``None`` is
    skipped, and anything else (lists, paths, enums, ...) is shown as its ``str``.

    Example:
        >>> flatten({"opt": {"lr": 0.1, "nesterov": True}, "layers": [64, 64], "seed": None})
        {'opt/lr': 0.1, 'opt/nesterov': True, 'layers': '[64, 64]'}
    """
    flat: dict[str, HParamValue] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
            value = value.item()  # NumPy and torch scalars become Python numbers and bools
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}/"))
        elif value is None:
            continue
        elif isinstance(value, bool | str):
            flat[name] = value
        elif isinstance(value, numbers.Real):
            flat[name] = float(value) if not isinstance(value, int) else value
        else:
            flat[name] = str(value)
    return flat


def _proto_value(value: HParamValue) -> struct_pb2.Value:
    if isinstance(value, bool):
        return struct_pb2.Value(bool_value=value)
    if isinstance(value, str):
        return struct_pb2.Value(string_value=value)
    return struct_pb2.Value(number_value=float(value))


def session_start_value(hparams: Mapping[str, HParamValue], start_time_secs: float) -> Summary.Value:
    """The session start info holding the run's flat hyperparameters."""
    info = plugin_data_pb2.SessionStartInfo(start_time_secs=start_time_secs)
    for key, value in hparams.items():
        info.hparams[key].CopyFrom(_proto_value(value))
    return _value(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=info))


def session_end_value(status: str, end_time_secs: float) -> Summary.Value:
    """The session end info; ``status`` is one of ``STATUSES``."""
    info = plugin_data_pb2.SessionEndInfo(status=STATUSES[status], end_time_secs=end_time_secs)
    return _value(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=info))


def _value(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary.Value:
    data.version = metadata.PLUGIN_DATA_VERSION
    return Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)


def session_of(value: Summary.Value) -> tuple[str, dict[str, HParamValue] | str] | None:
    """What an HParams value says: ``("start", hparams)`` or ``("end", status)``, else None."""
    if value.tag not in (metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG):
        return None
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    if data.HasField("session_start_info"):
        hparams: dict[str, HParamValue] = {}
        for key, v in data.session_start_info.hparams.items():
            kind = v.WhichOneof("kind")
            hparams[key] = (
                v.bool_value if kind == "bool_value" else (v.string_value if kind == "string_value" else v.number_value)
            )
        return "start", hparams
    if data.HasField("session_end_info"):
        status = api_pb2.Status.Name(data.session_end_info.status)
        return "end", {"STATUS_SUCCESS": "finished", "STATUS_FAILURE": "failed", "STATUS_RUNNING": "running"}.get(
            status, "unknown"
        )
    return None


def _type(value: HParamValue) -> int:
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL
    if isinstance(value, str):
        return api_pb2.DATA_TYPE_STRING
    return api_pb2.DATA_TYPE_FLOAT64


def hparam_info(name: str, values: Sequence[HParamValue], differs: bool) -> api_pb2.HParamInfo:
    """The column of hyperparameter ``name`` holding ``values`` (one a run that has it): numbers over
    their range, bools and text as their distinct values. A key whose kind differs between runs is text
    with no domain, so that the dashboard's value filter never hides a run. ``differs`` marks the column
    as one the dashboard shows at first."""
    kinds = {_type(v) for v in values}
    kind = next(iter(kinds)) if len(kinds) == 1 else api_pb2.DATA_TYPE_STRING
    info = api_pb2.HParamInfo(name=name, type=kind, differs=differs)
    if len(kinds) > 1:
        return info
    if kind == api_pb2.DATA_TYPE_FLOAT64:
        floats = [float(v) for v in values]
        info.domain_interval.min_value, info.domain_interval.max_value = min(floats), max(floats)
    else:
        info.domain_discrete.extend(sorted(set(values), key=str))
    return info


def experiment_value(hparams: Sequence[api_pb2.HParamInfo], metrics: Sequence[str]) -> Summary.Value:
    """The experiment summary: the HParams dashboard's hyperparameter columns, in order, and its metric
    columns, the scalar tags ``metrics`` of each session's own run."""
    experiment = api_pb2.Experiment(
        hparam_infos=hparams, metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metrics]
    )
    return _value(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment))
