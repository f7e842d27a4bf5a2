"""What may be read under a logdir: each file checked on the descriptor that is read, and what
decompressing it may produce bounded."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tbscope.logdir import ReadLimit, TooLarge, decompressed, open_inside


def test_only_a_regular_file_really_inside_the_logdir_is_opened(tmp_path: Path) -> None:
    logs, outside = tmp_path / "logs", tmp_path / "outside"
    (logs / "run").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("secret")
    (logs / "run" / "kept").write_text("kept")
    (logs / "run" / "link_out").symlink_to(outside / "secret")
    (logs / "run" / "link_in").symlink_to(logs / "run" / "kept")
    (logs / "folder_out").symlink_to(outside, target_is_directory=True)
    os.mkfifo(logs / "run" / "fifo")
    with open_inside(logs / "run" / "kept", logs) as f:
        assert f.read() == b"kept"
    with pytest.raises(OSError, match="a symbolic link, not followed"):
        open_inside(logs / "run" / "link_in", logs)  # the Profile tab follows no link at all
    with open_inside(logs / "run" / "link_in", logs, links=True) as f:  # the reader: links that stay inside
        assert f.read() == b"kept"
    with pytest.raises(OSError, match="outside the logdir"):
        open_inside(logs / "run" / "link_out", logs, links=True)
    with pytest.raises(OSError, match="outside the logdir"):
        open_inside(logs / "folder_out" / "secret", logs)  # a folder on the way that is a link
    with pytest.raises(OSError, match="not a regular file but a FIFO"):
        open_inside(logs / "run" / "fifo", logs)  # at once: no writer is waited for


def test_every_member_of_a_gzip_file_is_read_and_a_bomb_is_refused_at_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "members.gz"
    path.write_bytes(gzip.compress(b"first ") + gzip.compress(b"second") + b"\0" * 8)  # zero padding after
    with open_inside(path, tmp_path) as f:
        assert decompressed(f, path).read() == b"first second"
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(b"\0" * (8 << 20)) * 8)  # 64 MiB from about 64 KB
    with open_inside(bomb, tmp_path) as f, pytest.raises(TooLarge, match=r"more than 4,194,304 bytes"):
        decompressed(f, bomb, ReadLimit(ratio=4, cap=1 << 30)).read()  # a file under 1 MiB counts as 1 MiB
    with open_inside(bomb, tmp_path) as f, pytest.raises(TooLarge, match=r"1,000,000 at most"):
        decompressed(f, bomb, ReadLimit(ratio=1000, cap=1_000_000)).read()


def test_the_limit_is_set_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TBSCOPE_READ_RATIO", "20")
    monkeypatch.setenv("TBSCOPE_READ_CAP_BYTES", str(1 << 30))
    assert ReadLimit.from_env() == ReadLimit(20.0, 1 << 30)
    monkeypatch.setenv("TBSCOPE_READ_RATIO", "lots")
    assert ReadLimit.from_env() == ReadLimit()


def test_a_trace_that_compresses_too_well_is_streamed_and_takes_no_memory(tmp_path: Path) -> None:
    path = tmp_path / "w.pt.trace.json.gz"
    path.write_bytes(gzip.compress(b'{"traceEvents": [' + b"{}," * 3_000_000 + b"{}]}"))  # 9 MB of text from 30 KB
    measured = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("""
            import resource, sys
            from tbscope.profiler.trace import load
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(len(load(sys.argv[1])), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) >> 10)
            """), str(path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert measured.returncode == 0, measured.stderr
    events, grown_mib = map(int, measured.stdout.split())
    assert events == 0 and grown_mib < 64  # parsed whole, its three million dicts took about 200 MiB
