"""Groups of runs that differ only in their seed: what they are made of, their statistics (checked against
an independent NumPy/pandas/SciPy computation), and what ``tbscope compare`` and ``export`` print."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import tbscope
from tbscope import catalog, groups
from tbscope.cli import main

TBSCOPE = str(Path(sys.executable).with_name("tbscope"))


def sweep(root: Path, grids: dict[int, range], lrs: tuple[float, ...] = (0.1, 0.01)) -> None:
    """Runs of lr x seed, each seed on its own step grid; train/loss a noisy curve, val/acc a final value."""
    for lr in lrs:
        for seed, grid in grids.items():
            rng = np.random.default_rng(seed + int(lr * 1000))
            config = {"lr": lr, "seed": seed, "model": {"width": 8}}
            with tbscope.init("sweep", root=root, config=config, name=f"lr{lr}-s{seed}") as run:
                for step in grid:
                    run.writer.add_scalar("train/loss", 1 / (1 + step * lr) + rng.normal(0, 0.01), step)
                run.writer.add_scalar("val/acc", (0.9 if lr == 0.1 else 0.8) + rng.normal(0, 0.01), grid[-1])


def expected_curve(frame: pd.DataFrame, runs: list[str], tag: str) -> pd.DataFrame:
    """The statistics, computed another way: pandas pivots each run onto the union of steps, fills inside
    a run's own range by linear interpolation on the step, and describes each step across runs."""
    rows = frame[frame["run"].astype(str).isin(runs) & (frame["tag"] == tag)]
    wide = rows.pivot_table(index="step", columns="run", values="value", aggfunc="last", observed=True)
    for run in wide.columns:
        known = wide[run].dropna()
        inside = (wide.index >= known.index.min()) & (wide.index <= known.index.max())
        wide.loc[inside, run] = np.interp(wide.index[inside], known.index, known.to_numpy())
    values = wide.to_numpy()
    n = np.isfinite(values).sum(axis=1)
    out = pd.DataFrame({"step": wide.index, "n": n, "mean": np.nanmean(values, axis=1),
                        "min": np.nanmin(values, axis=1), "max": np.nanmax(values, axis=1)})  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.array([np.std(v[np.isfinite(v)], ddof=1) if k > 1 else np.nan for v, k in zip(values, n, strict=True)])
    out["std"] = std
    out["sem"] = std / np.sqrt(n)
    low, high = [], []
    for v, k in zip(values, n, strict=True):
        finite = v[np.isfinite(v)]
        interval = stats.t.interval(0.95, k - 1, loc=finite.mean(), scale=stats.sem(finite)) if k > 1 else (np.nan,) * 2
        low.append(interval[0])
        high.append(interval[1])
    out["ci_low"], out["ci_high"] = low, high
    return out.reset_index(drop=True)


@pytest.mark.parametrize("misaligned", [False, True], ids=["aligned", "misaligned"])
def test_group_curves_equal_an_independent_computation(tmp_path: Path, misaligned: bool) -> None:
    grids = {0: range(0, 200, 10), 1: range(0, 200, 10), 2: range(0, 200, 10)}
    if misaligned:
        grids = {0: range(0, 200, 10), 1: range(5, 230, 15), 2: range(30, 150, 7)}
    sweep(tmp_path, grids)
    entries = catalog.catalog(tmp_path)
    found = groups.group_runs(entries)
    assert [(g.label, len(g.runs)) for g in found] == [("lr=0.1", 3), ("lr=0.01", 3)]
    frame = tbscope.read_scalars(tmp_path, cache=False)
    table = groups.curves(frame, found, ["train/loss"])
    for group in found:
        got = table[table["group"] == group.label].reset_index(drop=True)
        want = expected_curve(frame, group.runs, "train/loss")
        assert got["step"].tolist() == want["step"].tolist()
        assert got["n"].tolist() == want["n"].tolist()
        for column in ("mean", "std", "sem", "ci_low", "ci_high", "min", "max"):
            np.testing.assert_allclose(got[column], want[column], rtol=0, atol=1e-6, equal_nan=True, err_msg=column)
    if misaligned:
        # No point outside a run's own steps: at step 0 only seed 0 has begun (seed 1 starts at 5, seed 2 at 30).
        first = table[(table["group"] == "lr=0.1")].iloc[0]
        assert (first["step"], first["n"]) == (0, 1)
        assert table["n"].max() == 3 and table["n"].min() == 1


def test_smoothing_is_tensorboards_applied_to_each_run_before_aggregating(tmp_path: Path) -> None:
    sweep(tmp_path, {0: range(0, 100, 10), 1: range(0, 100, 10)}, lrs=(0.1,))
    frame = tbscope.read_scalars(tmp_path, cache=False)
    found = groups.group_runs(catalog.catalog(tmp_path))
    table = groups.curves(frame, found, ["train/loss"], smoothing=0.6)

    def tensorboard_smoothed(values: np.ndarray, weight: float) -> np.ndarray:
        # TensorBoard's scalar card: last = last * w + (1 - w) * v, divided by 1 - w ** (points so far)
        last, out = 0.0, []
        for i, v in enumerate(values, start=1):
            last = last * weight + (1 - weight) * v
            out.append(last / (1 - weight**i))
        return np.array(out)

    lines = [tensorboard_smoothed(rows.sort_values("step")["value"].to_numpy(), 0.6)
             for _, rows in frame[frame["tag"] == "train/loss"].groupby("run", observed=True)]  # fmt: skip
    np.testing.assert_allclose(table["mean"], np.mean(lines, axis=0), atol=1e-9)


def test_final_values_interval_and_lead_equal_scipy(tmp_path: Path) -> None:
    sweep(tmp_path, {0: range(0, 50, 10), 1: range(0, 50, 10), 2: range(0, 50, 10)})
    entries = catalog.catalog(tmp_path)
    found = groups.group_runs(entries)
    rows = {r.label: r for r in groups.finals(entries, found, "val/acc")}
    for group in found:
        values = np.array([e.summary["val/acc"]["last"] for e in entries if e.path in group.runs])
        row = rows[group.label]
        low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
        assert (row.n, row.mean, row.std) == (3, pytest.approx(values.mean()), pytest.approx(values.std(ddof=1)))
        assert (row.ci_low, row.ci_high) == (pytest.approx(low), pytest.approx(high))
    found_lead = groups.lead(list(rows.values()), "val/acc")
    assert found_lead is not None and found_lead.leader == "lr=0.1"
    (comparison,) = found_lead.comparisons
    a, b = np.array(rows["lr=0.1"].values), np.array(rows["lr=0.01"].values)
    assert comparison.p_value == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    assert comparison.effect_size == pytest.approx((a.mean() - b.mean()) / pooled)
    assert comparison.significant


def test_the_best_of_a_loss_is_its_minimum_and_of_an_accuracy_its_maximum(tmp_path: Path) -> None:
    with tbscope.init("e", root=tmp_path, config={"lr": 0.1}) as run:
        for step, (loss, acc) in enumerate([(0.9, 0.5), (0.2, 0.8), (0.4, 0.7)]):
            run.writer.add_scalar("val/loss", loss, step)
            run.writer.add_scalar("val/acc", acc, step)
    (entry,) = catalog.catalog(tmp_path)
    assert catalog.metric_value(entry, "val/loss", "best") == pytest.approx(0.2)
    assert catalog.metric_value(entry, "val/acc", "best") == pytest.approx(0.8)
    assert catalog.metric_value(entry, "val/acc", "best", toward="min") == pytest.approx(0.5)


def test_grouping_leaves_out_seeds_and_follows_by_and_ignore(tmp_path: Path) -> None:
    for lr, width, seed in [(0.1, 8, 0), (0.1, 8, 1), (0.1, 16, 0), (0.01, 8, 0)]:
        config = {"lr": lr, "width": width, "data": {"seed": seed}}
        with tbscope.init("e", root=tmp_path, config=config) as run:
            run.writer.add_scalar("val/acc", lr, 0)
    tbscope.Writer(tmp_path / "plain").close()  # a run without config: a group of its own
    with tbscope.Writer(tmp_path / "plain") as w:
        w.add_scalar("val/acc", 0.5, 0)
    entries = catalog.catalog(tmp_path)
    labels = {g.label: len(g.runs) for g in groups.group_runs(entries)}
    assert labels == {"e: lr=0.1, width=8": 2, "e: lr=0.1, width=16": 1, "e: lr=0.01, width=8": 1, "plain": 1}
    by_lr = {g.label: len(g.runs) for g in groups.group_runs(entries, by=["lr"]) if g.key}
    assert by_lr == {"e: lr=0.1": 3, "e: lr=0.01": 1}
    ignoring = {g.label: len(g.runs) for g in groups.group_runs(entries, ignore=["width"]) if g.key}
    assert ignoring == {"e: lr=0.1": 3, "e: lr=0.01": 1}
    assert groups.config_keys(entries) == ["data/seed", "lr", "width"]


def test_plain_tensorboard_and_lightning_runs_group_by_their_logged_config(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    for lr, seed in [(0.1, 0), (0.1, 1), (0.01, 0)]:
        with SummaryWriter(tmp_path / "torch" / f"lr{lr}-s{seed}") as w:
            w.add_scalar("val/acc", lr + seed / 100, 1)
            w.add_hparams({"lr": lr, "seed": seed}, {"hparam/acc": lr}, run_name=".")
    for version, (lr, seed) in enumerate([(0.1, 0), (0.1, 1)]):
        folder = tmp_path / "lightning" / f"version_{version}"
        folder.mkdir(parents=True)
        (folder / "hparams.yaml").write_text(f"lr: {lr}\nseed: {seed}\n")
        with SummaryWriter(folder) as w:
            w.add_scalar("val/acc", lr, 1)
    entries = catalog.catalog(tmp_path)
    labels = sorted((g.label, len(g.runs)) for g in groups.group_runs(entries))
    assert labels == [("lightning: lr=0.1", 2), ("torch: lr=0.01", 1), ("torch: lr=0.1", 2)]


HYDRA_APP = """
import os
import hydra
from hydra.core.hydra_config import HydraConfig
from torch.utils.tensorboard import SummaryWriter

@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg):
    with SummaryWriter(os.path.join(HydraConfig.get().runtime.output_dir, "tb")) as w:  # the job's own folder
        w.add_scalar("val/acc", (0.9 if cfg.lr == 0.1 else 0.8) + cfg.seed / 1000, 1)

main()
"""


def test_a_hydra_multirun_of_plain_writers_groups_by_its_config(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("lr: 0.1\nseed: 0\n")
    (tmp_path / "app.py").write_text(textwrap.dedent(HYDRA_APP))
    sweep_dir = tmp_path / "multirun"
    result = subprocess.run(
        [sys.executable, "app.py", "-m", "lr=0.1,0.01", "seed=1,2,3", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = subprocess.run([TBSCOPE, "compare", str(sweep_dir)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:2] == ["group", "n"]
    rows = {line.split()[0]: line.split()[1] for line in lines[2:4]}
    assert rows == {"lr=0.1": "3", "lr=0.01": "3"}
    assert lines[4].startswith("lr=0.1 leads val/acc (higher is better): 0.902 vs 0.802 for lr=0.01, Welch's t-test p=")
    assert lines[4].endswith("significant at 0.05")


def test_compare_prints_one_row_per_group_and_the_lead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep(tmp_path, {0: range(0, 50, 10), 1: range(0, 50, 10), 2: range(0, 50, 10)})
    assert main(["compare", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(g["label"], g["n"]) for g in report["groups"]] == [("lr=0.1", 3), ("lr=0.01", 3)]
    assert report["groups"][0]["metrics"]["val/acc"]["n"] == 3
    assert report["leads"]["val/acc"]["leader"] == "lr=0.1"
    assert report["leads"]["val/acc"]["comparisons"][0]["significant"] is True
    assert main(["compare", str(tmp_path), "--csv"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.startswith("group,n,runs,val/acc (last) mean,val/acc (last) std,val/acc (last) ci_low")
    assert len(rows) == 2
    assert main(["compare", str(tmp_path), "--no-groups"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2 + 6
    assert main(["compare", str(tmp_path), "--group-by", "seed", "--sort", "val/acc", "--desc"]) == 0
    text = capsys.readouterr().out
    assert sorted(line.split()[0] for line in text.splitlines()[2:5]) == ["seed=0", "seed=1", "seed=2"]
    means = [float(line.split()[2]) for line in text.splitlines()[2:5]]
    assert means == sorted(means, reverse=True)
    assert "leads val/acc" in text


def test_export_adds_each_runs_config_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep(tmp_path / "runs", {0: range(0, 30, 10)}, lrs=(0.1, 0.01))
    out = tmp_path / "scalars.json"
    assert main(["export", str(tmp_path / "runs"), "-o", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert {(r["config/lr"], r["config/seed"], r["config/model/width"]) for r in rows} == {(0.1, 0, 8), (0.01, 0, 8)}
    parquet = tmp_path / "scalars.parquet"
    assert main(["export", str(tmp_path / "runs"), "-o", str(parquet)]) == 0
    assert set(pd.read_parquet(parquet)["config/lr"]) == {0.1, 0.01}


def test_cli_edges_a_new_user_hit_say_what_is_wrong(tmp_path: Path) -> None:
    sweep(tmp_path / "runs", {0: range(0, 30, 10)}, lrs=(0.1,))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([TBSCOPE, *args], capture_output=True, text=True, timeout=120)

    nothing = cli("export", str(tmp_path / "runs"), "--tags", "zzz", "-o", str(tmp_path / "x.csv"))
    assert nothing.returncode == 1 and not (tmp_path / "x.csv").exists()
    assert "no scalar matched --tags 'zzz'" in nothing.stderr
    negative = cli("prune", str(tmp_path / "runs"), "--older-than", "-5d")
    assert negative.returncode == 2 and "a duration is at least 0, got '-5d'" in negative.stderr
    assert "expected one argument" not in negative.stderr
    zero = cli("demo", "--epochs", "0", "--root", str(tmp_path / "demo"))
    assert zero.returncode == 2 and "--epochs: must be above 0, got 0" in zero.stderr
    assert "Traceback" not in zero.stderr + negative.stderr + nothing.stderr


def test_a_summary_is_made_again_only_when_a_run_changed(tmp_path: Path) -> None:
    sweep(tmp_path, {0: range(0, 30, 10), 1: range(0, 30, 10)}, lrs=(0.1,))
    first = groups.summary(str(tmp_path))
    assert groups.summary(str(tmp_path)) is first  # nothing changed: the tab's refresh costs a walk
    with tbscope.init("sweep", root=tmp_path, config={"lr": 0.1, "seed": 9, "model": {"width": 8}}) as run:
        run.writer.add_scalar("val/acc", 0.1, 30)
    again = groups.summary(str(tmp_path))
    assert again is not first and again["finals"]["val/acc"]["rows"][0]["n"] == 3
