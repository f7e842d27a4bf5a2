"""Hostile logdirs: whatever lies in a logdir (a dangling or outside symlink, a FIFO, a file nobody may read,
garbage named like an event file, a run.json of anything), the reader and every read-only command show the
rest, skip each damaged thing with one warning naming it, never hang, and never show a traceback."""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary

import tbscope
from tbscope import record
from tbscope.cli import main
from tbscope.record import frame

EVENT_NAME = "events.out.tfevents.1700000000.host.1.0"


def tbscope_cli(*args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it; a hang fails the test after ``timeout`` seconds."""
    command = Path(sys.executable).with_name("tbscope")
    result = subprocess.run([str(command), *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result


def scalar_events(tag: str, steps: range) -> bytes:
    return b"".join(
        frame(Event(step=s, wall_time=1.0 + s, summary=Summary(value=[Summary.Value(tag=tag, simple_value=s)]))
              .SerializeToString())
        for s in steps
    )  # fmt: skip


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    """A logdir with one good run, ``good``, holding val/acc at steps 0..4; and an empty ``bad`` run folder."""
    root = tmp_path / "logdir"
    (root / "good").mkdir(parents=True)
    (root / "good" / EVENT_NAME).write_bytes(scalar_events("val/acc", range(5)))
    (root / "bad").mkdir()
    return root


def lines_naming(text: str, thing: Path | str) -> list[str]:
    return [line for line in text.splitlines() if str(thing) in line]


def assert_good_run_shown_and_bad_thing_warned_once(
    root: Path, bad: Path, reason: str, wrote: str = "Wrote 5 scalars of 1 run(s)"
) -> None:
    """``ls``, ``export`` and ``du`` show the good run, and say once, on one line, why ``bad`` was skipped."""
    listed = tbscope_cli("ls", str(root))
    assert listed.returncode == 0 and "good" in listed.stdout
    out = root.parent / "scalars.csv"
    exported = tbscope_cli("export", str(root), "-o", str(out))
    assert exported.returncode == 0 and wrote in exported.stdout
    usage = tbscope_cli("du", str(root), "--json")
    assert usage.returncode == 0 and "good" in json.loads(usage.stdout)["by_run"]
    for result in (listed, exported, usage):
        [warning] = lines_naming(result.stderr, bad)
        assert warning.startswith(f"tbscope: skipped {bad}: ") and reason in warning


def test_a_dangling_symlink_named_like_an_event_file_is_skipped_with_one_warning(logdir: Path) -> None:
    bad = logdir / "bad" / EVENT_NAME
    bad.symlink_to(logdir / "gone" / EVENT_NAME)
    with pytest.warns(RuntimeWarning, match=r"skipped .*bad/events.*: a symbolic link to .*gone.*which does not exist"):
        frame_ = tbscope.read_scalars(logdir)
    assert frame_["value"].tolist() == [0, 1, 2, 3, 4]
    assert_good_run_shown_and_bad_thing_warned_once(logdir, bad, "which does not exist")


def test_a_symlink_leading_outside_the_logdir_is_not_followed_and_one_inside_is(logdir: Path) -> None:
    outside = logdir.parent / "elsewhere" / EVENT_NAME
    outside.parent.mkdir()
    outside.write_bytes(scalar_events("secret", range(3)))
    (logdir / "bad" / EVENT_NAME).symlink_to(outside)
    (logdir / "alias").mkdir()
    (logdir / "alias" / EVENT_NAME).symlink_to(logdir / "good" / EVENT_NAME)
    with pytest.warns(RuntimeWarning, match=r"skipped .*bad/events.*: a symbolic link to .*elsewhere.*, outside"):
        frame_ = tbscope.read_scalars(logdir)
    assert "secret" not in set(frame_["tag"])
    assert sorted(set(frame_["run"])) == ["alias", "good"]
    bad = logdir / "bad" / EVENT_NAME
    assert_good_run_shown_and_bad_thing_warned_once(logdir, bad, "outside", "Wrote 10 scalars of 2 run(s)")


def test_a_fifo_named_like_an_event_file_hangs_nothing(logdir: Path) -> None:
    fifo = logdir / "bad" / EVENT_NAME
    os.mkfifo(fifo)
    assert_good_run_shown_and_bad_thing_warned_once(logdir, fifo, "a FIFO, not a regular file")
    profile_dir = logdir / "good" / "profile"
    profile_dir.mkdir()
    os.mkfifo(profile_dir / "w.pt.trace.json")
    profiled = tbscope_cli("profile", str(logdir))
    assert profiled.returncode == 2 and "skipped" in profiled.stderr and "a FIFO" in profiled.stderr


def _without_permission_override() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set, so
    that even root obeys file permissions (root reads a file of mode 000 otherwise)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_an_event_file_nobody_may_read_is_skipped_with_one_warning(logdir: Path) -> None:
    bad = logdir / "bad" / EVENT_NAME
    bad.write_bytes(scalar_events("hidden", range(3)))
    bad.chmod(0)
    kwargs: dict[str, Any] = {}
    if os.geteuid() == 0:
        if not sys.platform.startswith("linux"):
            pytest.skip("running as root, where mode 000 does not stop reads, and no Linux capabilities to drop")
        try:
            subprocess.run(["true"], preexec_fn=_without_permission_override, check=True)
        except (OSError, subprocess.SubprocessError) as err:
            pytest.skip(f"running as root, where mode 000 does not stop reads, and cannot drop CAP_DAC_*: {err}")
        kwargs["preexec_fn"] = _without_permission_override
    listed = tbscope_cli("ls", str(logdir), **kwargs)
    exported = tbscope_cli("export", str(logdir), "-o", str(logdir.parent / "x.csv"), **kwargs)
    usage = tbscope_cli("du", str(logdir), **kwargs)
    assert listed.returncode == exported.returncode == usage.returncode == 0
    assert "good" in listed.stdout and "Wrote 5 scalars of 1 run(s)" in exported.stdout and "good" in usage.stdout
    for result in (listed, exported, usage):
        [warning] = lines_naming(result.stderr, bad)
        assert warning == f"tbscope: skipped {bad}: Permission denied"


def test_sixteen_megabytes_of_garbage_named_like_an_event_file_are_crossed_in_a_few_steps(
    logdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = np.random.default_rng(0).integers(0, 256, 16 << 20, dtype=np.uint8).tobytes()
    good = scalar_events("x", range(3))
    (logdir / "bad" / EVENT_NAME).write_bytes(good + garbage + bytes(1 << 20) + good)
    header_checks: list[int] = []
    real_check = record._header_is_valid

    def counted(buf: bytes, pos: int) -> bool:
        header_checks.append(pos)
        return real_check(buf, pos)

    monkeypatch.setattr(record, "_header_is_valid", counted)
    with pytest.warns(RuntimeWarning, match=r"skipped 1 damaged record\(s\) in .*bad/events.*first at byte"):
        frame_ = tbscope.read_scalars(logdir, runs=["bad"], purge=False, cache=False)
    assert frame_["step"].tolist() == [0, 1, 2, 0, 1, 2]  # both good parts, around the damage
    assert len(header_checks) < 10  # not one Python call per byte of garbage


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=80), st.sampled_from([b"", bytes(40)])), max_size=6),
       st.integers(min_value=0, max_value=400))  # fmt: skip
def test_resynchronizing_finds_the_same_next_header_as_checking_every_byte(parts: list[bytes], start: int) -> None:
    buf = b"".join(part if i % 2 else frame(part) for i, part in enumerate(parts))
    pos = start % (len(buf) + 1)
    while pos + record.HEADER_SIZE <= len(buf) and not record._header_is_valid(buf, pos):
        pos += 1
    expected = pos if pos + record.HEADER_SIZE <= len(buf) else max(pos, len(buf) - record.HEADER_SIZE + 1)
    assert record._next_header(buf, start % (len(buf) + 1)) == expected


# -- run.json ------------------------------------------------------------------------------------------

BAD_FIELDS: dict[str, dict[str, Any]] = {
    "pid-text": {"status": "running", "pid": "abc"},
    "pid-huge": {"status": "running", "pid": 10**30},
    "config-number": {"config": 5},
    "config-flat-list": {"config_flat": [1, 2]},
    "config-flat-values": {"config_flat": {"lr": [1], "opt": {"name": "sgd"}}},
    "summary-list": {"summary": []},
    "summary-stats": {"summary": {"val/acc": 5, "loss": {"last": "low"}, "x": {"last_step": 1.5}}},
    "created-text": {"created": "not a time"},
    "created-number": {"created": 7},
    "heartbeat-text": {"status": "running", "heartbeat": "yesterday"},
    "status-number": {"status": 7},
    "experiment-number": {"experiment": 3},
    "metrics-text": {"metrics": "val/acc"},
    "bytes-text": {"bytes": "many"},
    "bytes-huge": {"bytes": 10**400},
    "ended-number": {"ended": 5},
}
FINE_FIELDS: dict[str, dict[str, Any]] = {"created-naive": {"created": "2024-01-01T00:00:00"}}  # UTC, no warning
WHOLE_FILE: dict[str, bytes] = {
    "missing-keys": b'{"schema": 1, "id": "ID"}',
    "a-list": b"[1, 2, 3]",
    "not-utf8": b'{"schema": 1, "id": "\xff\xfe"}',
    "not-json": b'{"schema": 1, "id": ',
    "id-number": b'{"schema": 1, "id": 5}',
}


@pytest.fixture(scope="module")
def damaged_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An experiment of tbscope runs, one with a good run.json, each other with one kind of damage."""
    root = tmp_path_factory.mktemp("runs")
    with tbscope.init("exp", root=root, config={"lr": 0.1}) as run:
        run.writer.add_scalar("val/acc", 0.5, 1)
    good = json.loads((run.dir / "run.json").read_text())
    stamp = run.dir.name.split("-")[0]
    for name, fields in {**BAD_FIELDS, **FINE_FIELDS}.items():
        damaged = root / "exp" / f"{stamp}-{good['id']}-{name}"
        shutil.copytree(run.dir, damaged)
        (damaged / "run.json").write_text(json.dumps({**good, **fields}))
    for name, content in WHOLE_FILE.items():
        damaged = root / "exp" / f"{stamp}-{good['id']}-{name}"
        shutil.copytree(run.dir, damaged)
        (damaged / "run.json").write_bytes(content.replace(b"ID", good["id"].encode()))
    return root


@pytest.mark.parametrize("command", [["ls"], ["ls", "--json"], ["compare", "--json"], ["compare", "--sort", "lr"]])
def test_every_damaged_run_json_is_named_in_one_warning_and_every_run_is_shown(
    damaged_runs: Path, command: list[str]
) -> None:
    result = tbscope_cli(command[0], str(damaged_runs), *command[1:])
    assert result.returncode == 0
    for name in [*BAD_FIELDS, *WHOLE_FILE]:
        [warning] = [line for line in result.stderr.splitlines() if f"-{name}/run.json" in line]
        assert warning.startswith("tbscope: ")
        assert name in result.stdout  # the run is still shown
    assert "created-naive/run.json" not in result.stderr
    if "--json" in command:
        json.loads(result.stdout)


def test_ls_shows_what_a_damaged_run_json_still_says(damaged_runs: Path) -> None:
    listed = json.loads(tbscope_cli("ls", str(damaged_runs), "--json").stdout)
    entries = {e["run"].split("-", 2)[2]: e for e in listed if e["run"].count("-") >= 2}
    assert entries["pid-text"]["metrics"]["val/acc"]["last"] == 0.5 and entries["pid-text"]["hparams"] == {"lr": 0.1}
    assert entries["status-number"]["status"] == "unknown"
    assert entries["created-text"]["started"] is None and entries["created-text"]["last_step"] == 1
    assert entries["created-naive"]["started"] == "2024-01-01T00:00:00+00:00"
    assert entries["summary-stats"]["summary"] == {}
    assert entries["experiment-number"]["experiment"] == "exp"
    assert entries["a-list"]["summary"]["val/acc"]["last"] == 0.5  # read from its event files instead


def test_prune_never_deletes_a_run_whose_run_json_cannot_say_when_or_what_it_was(damaged_runs: Path) -> None:
    result = tbscope_cli("prune", str(damaged_runs), "--keep-last", "1", "--dry-run")
    assert result.returncode == 0
    doomed = [Path(line.split()[2]).name for line in result.stdout.splitlines() if line.startswith("would delete")]
    assert len(doomed) >= 10  # of the 17 runs whose run.json says when and what they were, all but one
    for kept in ("created-text", "created-number", "status-number", "experiment-number", "missing-keys", "a-list"):
        assert not any(name.endswith(f"-{kept}") for name in doomed)
        [warning] = [line for line in result.stderr.splitlines() if f"-{kept}/run.json" in line]
        assert "never deletes" in warning or "leaves its folder alone" in warning


# -- fuzz ----------------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
FIELDS = ("schema", "id", "experiment", "name", "created", "status", "ended", "heartbeat", "host", "pid",
          "config", "config_flat", "metrics", "summary", "bytes")  # fmt: skip


@st.composite
def run_jsons(draw: st.DrawFn) -> bytes:
    """A run.json: a real one with any of its fields replaced by any JSON value or removed, or any JSON
    value at all, or bytes that are no JSON."""
    shape = draw(st.sampled_from(["fields", "fields", "fields", "any", "bytes"]))
    if shape == "bytes":
        return draw(st.binary(max_size=40))
    if shape == "any":
        return json.dumps(draw(JSON)).encode()
    meta: dict[str, Any] = {
        "schema": 1, "id": "ID", "experiment": "exp", "name": None, "created": "2024-05-01T10:00:00.000Z",
        "status": "finished", "ended": "2024-05-01T11:00:00.000Z", "heartbeat": "2024-05-01T11:00:00.000Z",
        "host": "h", "pid": 1, "config": {"lr": 0.1}, "config_flat": {"lr": 0.1}, "metrics": None, "bytes": 10,
        "summary": {"val/acc": {"last": 0.5, "min": 0.5, "max": 0.5, "last_step": 1, "count": 1}},
    }  # fmt: skip
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            del meta[key]
        else:
            meta[key] = draw(JSON)
    if draw(st.booleans()) and isinstance(meta.get("summary"), dict):
        meta["summary"]["val/acc"] = {k: draw(JSON) for k in ("last", "min", "last_step", "count")}
    if draw(st.booleans()) and isinstance(meta.get("config_flat"), dict):
        meta["config_flat"]["opt"] = draw(JSON)
    return json.dumps(meta).encode()


ENTRY_KINDS = ["garbage", "damaged", "dangling", "outside", "fifo", "folder", "trace", "hparams.yaml", "fifo-meta"]


@st.composite
def entries(draw: st.DrawFn) -> list[tuple[str, str, bytes]]:
    """Things in a logdir: (kind, where: the tbscope run or a torch run, bytes of it)."""
    found = []
    for kind in draw(st.lists(st.sampled_from(ENTRY_KINDS), max_size=4)):
        where = draw(st.sampled_from(["tbscope", "torch"]))
        content = draw(st.binary(max_size=300))
        if kind == "damaged":
            blob = bytearray(scalar_events("val/acc", range(20)))
            for flip in draw(st.lists(st.integers(0, len(blob) - 1), max_size=4)):
                blob[flip] ^= 0x20
            content = bytes(blob[: draw(st.integers(0, len(blob)))])
        found.append((kind, where, content))
    return found


def make_logdir(base: Path, run_json: bytes, things: list[tuple[str, str, bytes]]) -> Path:
    root = base / "logdir"
    tbscope_run = root / "exp" / "20240501T100000Z-abcd1234"
    torch_run = root / "torch" / "version_0"
    for folder in (tbscope_run, torch_run):
        folder.mkdir(parents=True)
        (folder / EVENT_NAME).write_bytes(scalar_events("val/acc", range(3)))
    (tbscope_run / "run.json").write_bytes(run_json.replace(b'"ID"', b'"abcd1234"'))
    outside = base / "outside" / EVENT_NAME
    outside.parent.mkdir()
    outside.write_bytes(scalar_events("secret", range(2)))
    for i, (kind, where, content) in enumerate(things):
        folder = tbscope_run if where == "tbscope" else torch_run
        path = folder / f"events.out.tfevents.{i}.x"
        if kind in ("garbage", "damaged"):
            path.write_bytes(content)
        elif kind == "dangling":
            path.symlink_to(folder / "nothing")
        elif kind == "outside":
            path.symlink_to(outside)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "folder":
            path.mkdir()
            (folder / f"{i}.pt.trace.json").mkdir()
        elif kind == "trace":
            (folder / f"{i}.pt.trace.json").write_bytes(content)
        elif kind == "hparams.yaml":
            (folder / "hparams.yaml").unlink(missing_ok=True)  # it may be a FIFO by now
            (folder / "hparams.yaml").write_bytes(content)
        else:  # a FIFO where run.json or hparams.yaml should be
            meta = folder / ("run.json" if where == "tbscope" else "hparams.yaml")
            meta.unlink(missing_ok=True)
            os.mkfifo(meta)
    return root


@contextlib.contextmanager
def at_most(seconds: int, what: str) -> Iterator[None]:
    """Fail, rather than hang, when the block takes longer than ``seconds`` (a FIFO opened for reading)."""

    def timeout(signum: int, frame_: Any) -> None:
        raise AssertionError(f"{what} hung for {seconds}s")

    previous: Callable[..., Any] | int | None = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with at_most(30, f"tbscope {' '.join(argv)}"), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run_json=run_jsons(), things=entries())
def test_no_logdir_makes_the_reader_or_a_read_only_command_fail_or_hang(
    run_json: bytes, things: list[tuple[str, str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TBSCOPE_TRACEBACK", "1")  # an unforeseen error fails here, with its traceback
    with tempfile.TemporaryDirectory() as base:
        root = make_logdir(Path(base), run_json, things)
        with warnings.catch_warnings(record=True) as caught, at_most(30, "reading"):
            warnings.simplefilter("always")
            scalars = tbscope.read_scalars(root)
            for kind in ("images", "histograms", "text", "hparams"):
                tbscope.read_events(root, kind)
        assert "secret" not in set(scalars["tag"])  # nothing outside the logdir is read
        assert {"exp/20240501T100000Z-abcd1234", "torch/version_0"} <= set(scalars["run"])
        assert all(str(w.message).startswith("tbscope") for w in caught if issubclass(w.category, RuntimeWarning))
        commands = [["ls"], ["ls", "--json"], ["compare", "--json"], ["compare", "--csv", "--sort", "val/acc"],
                    ["export", "-o", f"{base}/out.csv"], ["du", "--json"], ["prune", "--keep-last", "1", "--dry-run"],
                    ["profile"]]  # fmt: skip
        for command in commands:
            status, out, err = run_cli(command[0], str(root), *command[1:])
            assert status in (0, 1, 2), (command, err)
            assert status == 0 or command[0] == "profile", (command, err)
            if command[0] == "ls":
                assert "version_0" in out
        assert sorted(p.name for p in Path(base).iterdir()) == ["logdir", "out.csv", "outside"]  # nothing else written
