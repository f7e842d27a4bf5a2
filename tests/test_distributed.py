"""torchrun jobs of 2 processes on the gloo backend: every rank shares one run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import tbscope
from conftest import accumulate, free_port

TRAIN = """
import os, signal, sys, torch, torch.distributed as dist, tbscope
group_first = sys.argv[2] == "group-first"
if group_first:
    dist.init_process_group("gloo")
run = tbscope.init("ddp", root=sys.argv[1], config={"lr": 0.1}, all_ranks=sys.argv[3] == "all-ranks")
if not group_first:
    dist.init_process_group("gloo")
rank = dist.get_rank()
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(16, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
with tbscope.profile(run, wait=0, warmup=1, active=2) as prof:
    for step in range(4):
        loss = model(torch.randn(8, 16)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.writer.add_scalar("train/loss", loss.detach(), step)
        if rank == 1 and sys.argv[4] == "rank1-dies" and step == 2:
            os._exit(3)
        if rank == 1 and sys.argv[4] == "rank1-killed" and step == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        prof.step()
dist.barrier()
run.finish()
dist.destroy_process_group()
os._exit(0)  # gloo's threads sometimes abort the interpreter's own teardown
"""


def torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(free_port())]  # fmt: skip
    command = [*launcher, str(script), str(tmp_path / "runs"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_every_rank_shares_the_run_rank_0_logs_and_each_rank_profiles(tmp_path: Path) -> None:
    result = torchrun(tmp_path, "group-first", "rank-0", "-")
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs" / "ddp").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "finished" and meta["world_size"] == 2 and meta["config"] == {"lr": 0.1}
    assert {rank: state["status"] for rank, state in meta["ranks"].items()} == {"1": "finished"}
    assert [e.step for e in accumulate(run_dir).Scalars("train/loss")] == [0, 1, 2, 3]  # once: rank 0's
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["profile"]
    traces = sorted(p.name.split(".")[0] for p in (run_dir / "profile").iterdir())
    assert traces == ["rank0", "rank1"]


def test_without_a_process_group_yet_and_with_all_ranks_each_rank_has_its_sub_run(tmp_path: Path) -> None:
    result = torchrun(tmp_path, "init-first", "all-ranks", "-")
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs" / "ddp").iterdir()
    assert [e.step for e in accumulate(run_dir).Scalars("train/loss")] == [0, 1, 2, 3]
    assert [e.step for e in accumulate(run_dir / "rank1").Scalars("train/loss")] == [0, 1, 2, 3]
    assert not [p.name for p in (tmp_path / "runs" / "ddp").iterdir() if p.name.startswith(".")]  # note removed


def test_a_rank_that_dies_leaves_a_whole_run_that_ls_shows_ended(tmp_path: Path) -> None:
    result = torchrun(tmp_path, "group-first", "rank-0", "rank1-dies")
    assert result.returncode != 0
    (run_dir,) = (tmp_path / "runs" / "ddp").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())  # whole: written by rename
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("tbscope")), "ls", str(tmp_path / "runs"), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["status"] in ("crashed", "interrupted", "failed") and meta["status"] != "finished"
    assert [e.step for e in accumulate(run_dir).Scalars("train/loss")][:2] == [0, 1]


def test_a_killed_rank_1_is_told_apart_from_how_the_job_ended(tmp_path: Path) -> None:
    result = torchrun(tmp_path, "group-first", "rank-0", "rank1-killed")
    assert result.returncode != 0
    (run_dir,) = (tmp_path / "runs" / "ddp").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["ranks"]["1"]["pid"] > 0  # rank 1 as it recorded itself, kept by rank 0
    tbscope_cli = str(Path(sys.executable).with_name("tbscope"))
    listed = subprocess.run([tbscope_cli, "ls", str(tmp_path / "runs"), "--json"], capture_output=True, text=True)
    (row,) = json.loads(listed.stdout)
    assert row["ranks"] == {"1": "crashed"}  # its process is gone without a word
    # The job, rank 0: its collective broken by the lost peer ("failed"), stopped by torchrun ("interrupted"), or,
    # stuck in that collective, killed by torchrun ("crashed"): in each case not rank 1's status.
    assert row["status"] in ("failed", "interrupted", "crashed")
    table = subprocess.run([tbscope_cli, "ls", str(tmp_path / "runs")], capture_output=True, text=True).stdout
    assert f"{row['status']} (rank 1 crashed)" in table


def test_a_rank_that_ended_after_rank_0_last_wrote_is_shown_by_its_own_record(tmp_path: Path) -> None:
    from tbscope.rundir import RANKS, process_identity

    with tbscope.init("ddp", root=tmp_path) as run:
        pass
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    identity = {**process_identity(), "pid": int(gone.stdout), "pid_start": "1"}  # a process that has exited
    meta = json.loads((run.dir / "run.json").read_text())
    meta["ranks"] = {"1": {**identity, "status": "running"}, "2": {**identity, "status": "running"}}
    (run.dir / "run.json").write_text(json.dumps(meta))
    (run.dir / RANKS).mkdir()
    (run.dir / RANKS / "1.json").write_text(json.dumps({**identity, "status": "finished"}))  # after rank 0's last
    listed = subprocess.run([str(Path(sys.executable).with_name("tbscope")), "ls", str(tmp_path), "--json"],
                            capture_output=True, text=True)  # fmt: skip
    (row,) = json.loads(listed.stdout)
    assert row["ranks"] == {"1": "finished", "2": "crashed"}  # rank 2 died without a word
