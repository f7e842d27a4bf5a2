"""The HParams dashboard of a runs root, as TensorBoard's own plugin answers it: every run's keys, only
headline metrics, one experiment summary for the whole root, kept current as runs start."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import plugin_event_multiplexer

import tbscope
from conftest import ALL, hparams_table
from tbscope import schema
from tbscope.catalog import catalog

SWEEP = {"epochs": 2, "batch_size": 32, "momentum": 0.9, "width": 8, "seed": 0, "image_size": 32}


def sweep_run(root: Path, lr: float) -> tbscope.Run:
    config = {**SWEEP, "lr": lr}
    metrics = ["val/acc", "val/loss"]
    with tbscope.init("shapes-cnn", root=root, config=config, name=f"lr-{lr:g}", metrics=metrics) as run:
        for step in range(3):
            run.writer.add_scalar("train/loss", 1 / (step + 1), step)
            run.writer.add_scalar("watch/grad_norm/fc.weight", 0.1, step)
        run.writer.add_scalar("val/acc", 10 * lr, 3)
        run.writer.add_scalar("val/loss", lr, 3)
    return run


def baseline_run(root: Path) -> tbscope.Run:
    """The README's run: another experiment, other keys, one headline metric by the default prefixes."""
    config = {"lr": 0.01, "model": {"width": 16, "norm": "batch"}, "augment": True}
    with tbscope.init("other-cnn", root=root, config=config, name="baseline") as run:
        run.writer.add_scalar("train/loss", 0.5, 99)
        run.writer.add_scalar("val/acc", 0.93, 100)
        run.writer.add_scalar("test/acc", 0.91, 100)
    return run


def session(table: dict, run: tbscope.Run, root: Path) -> dict:
    return table[str(run.dir.relative_to(root))]


def test_every_run_shows_its_own_keys_and_only_headline_metrics(tmp_path: Path) -> None:
    sweep = [sweep_run(tmp_path, lr) for lr in (0.003, 0.01, 0.03)]
    baseline = baseline_run(tmp_path)
    table = hparams_table(tmp_path)
    columns = table[""]
    assert set(columns["hparams"]) == {*SWEEP, "lr", "model/width", "model/norm", "augment"}
    assert set(columns["metrics"]) == {"val/acc", "val/loss", "test/acc"}  # no train/*, no watch/*
    assert len(table) == 1 + 4  # the columns, and one session a run
    for run, lr in zip(sweep, (0.003, 0.01, 0.03), strict=True):
        row = session(table, run, tmp_path)
        assert row["hparams"] == {**{k: float(v) for k, v in SWEEP.items()}, "lr": lr}
        assert row["metrics"]["val/acc"] == np.float32(10 * lr)
    row = session(table, baseline, tmp_path)
    assert row["hparams"] == {"lr": 0.01, "model/width": 16.0, "model/norm": "batch", "augment": True}
    assert set(row["metrics"]) == {"val/acc", "test/acc"}


def test_the_columns_shown_at_first_are_the_keys_most_runs_have(tmp_path: Path) -> None:
    for lr in (0.003, 0.01, 0.03):
        sweep_run(tmp_path, lr)
    baseline_run(tmp_path)
    shown = {name for name, (_, first) in hparams_table(tmp_path)[""]["hparams"].items() if first}
    # lr is in every run and differs; the others shown are the sweep's, which three runs of four have
    assert len(shown) == schema.SHOWN and "lr" in shown and shown <= {*SWEEP, "lr"}


def summaries(root: Path) -> list[Path]:
    """The experiment summaries under ``root``: event files of the runs that hold one."""
    return sorted(root.glob("*/*/events.out.tfevents.*.tbscope-hparams-*"))


def test_the_summary_adds_no_run_and_rides_in_the_newest_run(tmp_path: Path) -> None:
    first = sweep_run(tmp_path, 0.01)
    assert [p.parent for p in summaries(tmp_path)] == [first.dir]
    baseline = baseline_run(tmp_path)
    assert [p.parent for p in summaries(tmp_path)] == [baseline.dir]  # one summary, the newest run's
    multiplexer = plugin_event_multiplexer.EventMultiplexer(size_guidance=ALL)
    table = hparams_table(tmp_path, multiplexer)
    assert sorted(multiplexer.Runs()) == sorted(str(r.dir.relative_to(tmp_path)) for r in (first, baseline))
    assert "augment" in table[""]["hparams"] and "test/acc" in table[""]["metrics"]
    assert session(table, baseline, tmp_path)["hparams"]["augment"] is True


def test_a_running_tensorboard_keeps_the_first_summary_it_read_from_a_run(tmp_path: Path) -> None:
    """Why a change of columns reaches a running TensorBoard only through a new run: it keeps the first
    summary it read from a run, even once that file is gone. tbscope adds no run, so such a TensorBoard
    shows new columns once restarted."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer(size_guidance=ALL)
    first = sweep_run(tmp_path, 0.01)
    assert set(hparams_table(tmp_path, multiplexer)[""]["hparams"]) == {*SWEEP, "lr"}
    with tbscope.init("shapes-cnn", root=tmp_path, name="wider", config={"lr": 0.1, "extra": 1}) as wider:
        pass
    assert [p.parent for p in summaries(tmp_path)] == [wider.dir] and first.dir.is_dir()
    assert "extra" not in hparams_table(tmp_path, multiplexer)[""]["hparams"]  # the running one: the first
    assert "extra" in hparams_table(tmp_path)[""]["hparams"]  # a TensorBoard started now: the newer


def test_an_older_versions_summary_run_is_removed_at_the_next_update(tmp_path: Path) -> None:
    old = tmp_path / schema.HOME / "hparams-0123456789abcdef"
    old.mkdir(parents=True)
    (old / "events.out.tfevents.0000000000.tbscope-hparams").write_bytes(b"")
    run = sweep_run(tmp_path, 0.01)
    assert not old.exists() and [p.parent for p in summaries(tmp_path)] == [run.dir]
    assert [entry.path for entry in catalog(tmp_path)] == [str(run.dir.relative_to(tmp_path))]


def test_default_headline_metrics_become_columns_once_logged(tmp_path: Path) -> None:
    with tbscope.init("cnn", root=tmp_path, config={"lr": 0.1}) as run:
        run.writer.add_scalar("train/loss", 1.0, 0)
        run.writer.flush()
        assert hparams_table(tmp_path)[""]["metrics"] == {}
        run.writer.add_scalar("metrics/map", 0.5, 1)
        run.writer.flush()
        assert set(hparams_table(tmp_path)[""]["metrics"]) == {"metrics/map"}


def test_processes_starting_runs_at_once_leave_one_summary_with_every_key(tmp_path: Path) -> None:
    body = """
        import sys, threading, tbscope
        barrier = threading.Barrier(6)
        def start(i):
            barrier.wait()
            tbscope.init("sweep", root=sys.argv[1], config={f"key_{sys.argv[2]}_{i}": i}).finish()
        threads = [threading.Thread(target=start, args=(i,)) for i in range(6)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    """
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(body), str(tmp_path), str(p)], stderr=subprocess.PIPE)
        for p in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    assert [p.name for p in (tmp_path / schema.HOME).iterdir()] == ["lock"]
    assert len(summaries(tmp_path)) == 1
    table = hparams_table(tmp_path)
    assert set(table[""]["hparams"]) == {f"key_{p}_{i}" for p in range(2) for i in range(6)}
    assert len(table) == 1 + 12


def test_a_run_json_written_by_someone_else_leaves_the_other_runs_columns_whole(tmp_path: Path) -> None:
    sweep_run(tmp_path, 0.01)
    odd = tmp_path / "shapes-cnn" / "20200101T000000Z-deadbeef"
    odd.mkdir()
    (odd / "run.json").write_text(
        json.dumps({"schema": 1, "id": "deadbeef", "created": "yesterday", "config_flat": {"x": [1], "ok": 2}})
    )
    (tmp_path / "shapes-cnn" / "notes").mkdir()
    (tmp_path / "shapes-cnn" / "notes" / "run.json").write_text("[not json")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert schema.refresh(tmp_path) is not None
    columns = hparams_table(tmp_path)[""]
    assert set(columns["hparams"]) == {*SWEEP, "lr", "ok"} and set(columns["metrics"]) == {"val/acc", "val/loss"}


def test_a_root_tbscope_did_not_write_is_left_alone(tmp_path: Path) -> None:
    with tbscope.Writer(tmp_path / "plain") as w:
        w.add_hparams({"lr": 0.1}, {"final/loss": 0.2})
    assert schema.refresh(tmp_path) is None
    assert not (tmp_path / schema.HOME).exists()


def test_tbscope_ls_lists_runs_not_the_summary_folder(tmp_path: Path) -> None:
    run = sweep_run(tmp_path, 0.01)
    assert [entry.path for entry in catalog(tmp_path)] == [str(run.dir.relative_to(tmp_path))]


def test_tbscope_serve_brings_the_columns_of_a_tbscope_root_up_to_date_and_leaves_other_roots_alone(
    tmp_path: Path,
) -> None:
    from conftest import free_port, serve, stop

    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    sweep_run(ours, 0.01)
    for summary in summaries(ours):  # as runs of a tbscope before the summary left it
        summary.unlink()
    with tbscope.Writer(theirs / "plain") as w:
        w.add_hparams({"lr": 0.1}, {"final/loss": 0.2})
    for root in (ours, theirs):
        stop(serve(root, "--port", str(free_port())))
    assert set(hparams_table(ours)[""]["metrics"]) == {"val/acc", "val/loss"}
    assert not (theirs / schema.HOME).exists()


def test_a_run_starts_where_the_roots_tbscope_folder_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / ".tbscope").write_text("someone's file")
    with pytest.warns(RuntimeWarning) as warned, tbscope.init("exp", root=tmp_path, config={"lr": 0.1}) as run:
        run.writer.add_scalar("val/acc", 0.5, 1)
    messages = [str(w.message) for w in warned]
    assert run.status == "finished" and run.dir.name.startswith("0001-")
    assert any("cannot take the runs root's lock" in m for m in messages)
    assert sum("could not update the HParams columns" in m for m in messages) == 1
    assert (tmp_path / ".tbscope").read_text() == "someone's file"
    assert tbscope.read_scalars(run.dir, runs=["."])["value"].tolist() == [0.5]


def test_the_five_columns_shown_first_leave_the_largest_group_of_runs_drawn() -> None:
    # TensorBoard shows five columns and draws a run in parallel coordinates only if it has all five.
    configs = [{"lr": 0.1, "width": 8, "a": 1, "b": 2, "c": 3}, {"lr": 0.2, "width": 8, "a": 1, "b": 2, "c": 3}]
    configs += [{"lr": 0.1 * i, "width": 4, "x": i} for i in range(3)]  # x is the commonest key past lr, width
    hparams, _ = schema.columns([{"config_flat": c} for c in configs])
    shown = [h.name for h in hparams if h.differs]
    assert shown[:2] == ["lr", "width"] and len(shown) == 5
    assert sum(set(shown) <= set(c) for c in configs) == 2  # the first two runs; any other choice draws none
    assert {h.name for h in hparams} == {"lr", "width", "a", "b", "c", "x"}  # every key is a column


def test_prune_leaves_the_columns_of_the_runs_left(tmp_path: Path) -> None:
    from tbscope.cli import main

    for config in ({"lr": 0.1, "old_key": 1}, {"lr": 0.2, "width": 8}):
        with tbscope.init("exp", root=tmp_path, config=config) as run:
            run.writer.add_scalar("val/acc", 0.5, 1)
    assert "old_key" in {h.name for h in hparams_columns(tmp_path)}
    assert main(["prune", str(tmp_path), "--keep-last", "1", "--yes"]) == 0
    assert {h.name for h in hparams_columns(tmp_path)} == {"lr", "width"}


def hparams_columns(root: Path) -> list:
    (summary,) = summaries(root)
    acc = plugin_event_multiplexer.EventMultiplexer(size_guidance=ALL)
    acc.AddRunsFromDirectory(str(summary.parent))
    acc.Reload()
    from tensorboard.plugins.hparams import metadata as hparams_metadata

    tags = [acc.PluginRunToTagToContent("hparams").get(run, {}) for run in acc.Runs()]
    (content,) = [t[hparams_metadata.EXPERIMENT_TAG] for t in tags if hparams_metadata.EXPERIMENT_TAG in t]
    return list(hparams_metadata.parse_experiment_plugin_data(content).hparam_infos)
