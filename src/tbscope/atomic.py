"""Files written whole: to a temporary file beside the target, then renamed over it, so that a reader, or
a kill, never sees half a file. The file gets the mode a plain ``open()`` would give it (0644 under the
usual umask), so that another user of a shared TensorBoard can read it. And ``locked``: one process at a
time, through a lock file."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
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
def locked(path: Path) -> Iterator[None]:
    """Hold the lock file ``path`` (created, with its folder, if missing): one holder at a time, among
    processes and threads alike; released when the block ends, or when the process dies. Not reentrant.

    Example:
        >>> import tempfile; from pathlib import Path
        >>> with locked(Path(tempfile.mkdtemp()) / ".tbscope" / "lock"):
        ...     pass
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
