"""Files written whole: to a temporary file beside the target, then renamed over it, so that a reader, or
a kill, never sees half a file. The file gets the mode a plain ``open()`` would give it (0644 under the
usual umask), so that another user of a shared TensorBoard can read it. And ``locked``: one process at a
time, through a lock file."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path


@cache
def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for a moment, in every thread)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole (see the module). Raises OSError; leaves no temporary file.

    Example:
        >>> import tempfile; from pathlib import Path
        >>> target = Path(tempfile.mkdtemp()) / "run.json"
        >>> write_text(target, "{}")
        >>> oct(target.stat().st_mode & 0o777), target.read_text()
        ('0o644', '{}')
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock file ``path`` (created, with its folder, if missing): one holder at a time, among
    processes and threads alike; released when the block ends, or when the process dies. Not reentrant.
    With ``timeout``, waits that many seconds at most, then raises TimeoutError (an OSError) naming the
    holder where it can be found: a holder that is stopped (Ctrl-Z, a debugger) never lets go.

    Example:
        >>> import tempfile; from pathlib import Path
        >>> with locked(Path(tempfile.mkdtemp()) / ".tbscope" / "lock", timeout=10):
        ...     pass
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(
                            errno.ETIMEDOUT,
                            f"the lock {path} is still held after {timeout:g} s{_holder(fd)}: a process that is "
                            "stopped or hung keeps it until it is resumed (kill -CONT) or ended",
                        ) from None
                    time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    """Who holds the flock on the file open as ``fd``, in words (" by pid 123, which is stopped"), from
    Linux's /proc/locks; "" where that cannot be told."""
    info = os.fstat(fd)
    where = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/locks", encoding="ascii") as locks:
        for line in locks:
            fields = line.split()
            if fields[1] == "FLOCK" and fields[5] == where:
                pid = int(fields[4])
                with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
                    state = stat.read().rsplit(")", 1)[1].split()[0]
                return f" by pid {pid}" + (", which is stopped" if state in ("T", "t") else "")
    return ""
