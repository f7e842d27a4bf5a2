"""torch.distributed: every rank of a job (``torchrun``) shares one run. Rank 0 creates it; the other ranks
learn its directory through the process group when there is one, else through a note rank 0 leaves beside
the experiment's runs, named after the job's launcher environment. Nothing here imports torch."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from tbscope import atomic, rundir

# How long rank 0, ending the run, waits for the other ranks to record their end (or be proved gone).
END_WAIT_SECONDS = 3.0
# How long a rank waits for rank 0 to start the run, and how old a note may be to be this job's.
WAIT_SECONDS = 300.0
FRESH_SECONDS = 60.0


def _group() -> Any:
    """``torch.distributed`` when its default process group is up, else None."""
    dist = sys.modules.get("torch.distributed")
    return dist if dist is not None and dist.is_available() and dist.is_initialized() else None


def place() -> tuple[int, int] | None:
    """``(rank, world size)`` of this process in a job of several processes, else None."""
    dist = _group()
    if dist is not None:
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        try:
            rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        except ValueError:
            return None
    return (rank, world) if world > 1 else None


def note_path(experiment_dir: Path) -> Path:
    """Where rank 0 leaves the run's directory for the others when there is no process group."""
    job = ":".join(os.environ.get(k, "") for k in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", "WORLD_SIZE"))
    return experiment_dir / f".job-{hashlib.sha1(job.encode()).hexdigest()[:16]}.json"


def announce(experiment_dir: Path, run_dir: Path) -> Path | None:
    """Rank 0: tell the other ranks where the run is. Returns the note it left (None through a process
    group), to be removed when the run ends."""
    dist = _group()
    if dist is not None:
        dist.broadcast_object_list([str(run_dir)], src=0)
        return None
    note = note_path(experiment_dir)
    atomic.write_text(note, json.dumps({"run": str(run_dir), "at": time.time()}))
    return note


def receive(experiment_dir: Path, rank: int) -> Path:
    """Another rank: the run's directory, as rank 0 announced it."""
    dist = _group()
    if dist is not None:
        box: list[Any] = [None]
        dist.broadcast_object_list(box, src=0)
        return Path(str(box[0]))
    note = note_path(experiment_dir)
    fresh_since, deadline = time.time() - FRESH_SECONDS, time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            left = json.loads(note.read_text())
            if float(left["at"]) >= fresh_since:
                return Path(left["run"])
        time.sleep(0.05)
    raise TimeoutError(
        f"init: rank {rank} waited {WAIT_SECONDS:.0f} s for rank 0 to start the run in {experiment_dir}; is rank 0 "
        "running? (with torch.distributed.init_process_group called first, the ranks meet through it)"
    )


def report(run_dir: Path, rank: int, status: str) -> None:
    """Another rank: record this process (to prove it gone if it dies) and ``status`` in the run's folder.
    A rank that cannot is still no reason to stop training: rank 0 then lists it unknown."""
    record = {"status": status, **rundir.process_identity()}
    with contextlib.suppress(OSError):
        (run_dir / rundir.RANKS).mkdir(exist_ok=True)
        atomic.write_text(run_dir / rundir.RANKS / f"{rank}.json", json.dumps(record))


def rank_states(run_dir: Path, ending: bool = False) -> dict[str, dict[str, Any]]:
    """Rank 0: how the other ranks stand, for run.json's ``ranks``: as each recorded itself, "crashed" for
    one recorded "running" whose process is proved gone (``rundir.rank_statuses``). ``ending``: rank 0 ends
    the run, and gives the others ``END_WAIT_SECONDS`` to record their own end or be proved gone."""
    deadline = time.monotonic() + (END_WAIT_SECONDS if ending else 0.0)
    while True:
        states = _recorded(run_dir)
        if all(state["status"] != "running" for state in states.values()) or time.monotonic() >= deadline:
            return states
        time.sleep(0.05)


def _recorded(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The other ranks' records in the run's folder, by rank, those proved gone while running "crashed"."""
    states: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(OSError):
        for path in sorted((run_dir / rundir.RANKS).glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                record = json.loads(path.read_text())
                if isinstance(record, dict) and isinstance(record.get("status"), str) and path.stem.isdigit():
                    states[path.stem] = record
    for rank, status in rundir.rank_statuses({"ranks": states}).items():
        states[rank]["status"] = status
    return dict(sorted(states.items(), key=lambda item: int(item[0])))
