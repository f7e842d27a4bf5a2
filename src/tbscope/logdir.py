"""What may be read under a logdir: regular files that lie inside it, each opened once, checked on the
open descriptor and read from it; and a budget on the bytes that decompressing one may produce.

A check made on a path and a read made later by the same path can be raced: the file swapped for a
symbolic link in between is read wherever the link points. So a file is opened without following a
final link and without blocking (a FIFO), and the open descriptor is what is checked (a regular file,
whose real location lies inside the logdir's) and what is read.

A compressed file says nothing trustworthy about its size (a gzip trailer can lie, and a file may hold
many members): ``decompressed`` counts the bytes it produces and refuses past a ``ReadLimit``, a
multiple of the compressed size and an absolute cap, both configurable (``TBSCOPE_READ_RATIO``,
``TBSCOPE_READ_CAP_BYTES``). Nothing here imports more than the standard library.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import zlib
from dataclasses import dataclass
from typing import BinaryIO


def _real_path(fd: int, path: str) -> str:
    """Where the open descriptor ``fd`` really is: Linux says so (/proc/self/fd); elsewhere the path's
    resolution, trusted only when it is the very file that is open."""
    with_proc = f"/proc/self/fd/{fd}"
    if os.path.islink(with_proc):
        return os.readlink(with_proc)
    real = os.path.realpath(path)
    opened, found = os.fstat(fd), os.stat(real)
    if (opened.st_dev, opened.st_ino) != (found.st_dev, found.st_ino):
        raise OSError(errno.ESTALE, "the file changed while it was opened", path)
    return real


def is_inside(path: str | os.PathLike[str], logdir: str | os.PathLike[str]) -> bool:
    """Whether the real path ``path`` lies in the folder ``logdir`` (resolved here)."""
    root = os.path.realpath(logdir)
    return os.path.commonpath([root, os.fspath(path)]) == root


def open_inside(
    path: str | os.PathLike[str], logdir: str | os.PathLike[str] | None, *, links: bool = False
) -> BinaryIO:
    """The file at ``path`` opened for reading, if it is a regular file inside ``logdir`` (None: anywhere,
    for a path a user named). OSError otherwise, naming what was found: a symbolic link (not followed
    under a logdir unless ``links``, and then only to a file inside it), a FIFO or a device, or a file
    whose real location is outside ``logdir`` (a link, or a folder on the way swapped for one). Every
    check is made on the open descriptor, which is what is read.

    Example:
        >>> import tempfile; from pathlib import Path
        >>> logdir = Path(tempfile.mkdtemp()); _ = (logdir / "a.json").write_text("{}")
        >>> with open_inside(logdir / "a.json", logdir) as f:
        ...     f.read()
        b'{}'
        >>> (logdir / "link.json").symlink_to("/etc/hostname")
        >>> open_inside(logdir / "link.json", logdir)
        Traceback (most recent call last):
        ...
        OSError: [Errno 40] a symbolic link, not followed under a logdir: '...link.json'
    """
    name = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    if logdir is not None and not links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(name, flags)
    except OSError as err:
        if err.errno == errno.ELOOP and logdir is not None and not links:
            raise OSError(errno.ELOOP, "a symbolic link, not followed under a logdir", name) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file but {file_kind(mode)}", name)
        if logdir is not None and not is_inside(_real_path(fd, name), logdir):
            raise OSError(errno.EACCES, f"outside the logdir {os.fspath(logdir)}", name)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_kind(mode: int) -> str:
    """What a file of ``mode`` (from ``os.stat``) is, in words."""
    kinds = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISLNK, "a symbolic link"))  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "a special file")


class TooLarge(ValueError):
    """Decompressing a file would produce more than its ``ReadLimit`` allows."""


@dataclass(frozen=True)
class ReadLimit:
    """The most bytes decompressing a file may produce: ``ratio`` times the compressed size, and never
    more than ``cap``; a file under a megabyte counts as one. Torch's gzipped traces expand about 10 to
    30 times; a compression bomb, a thousand times and more. ``from_env()`` reads ``TBSCOPE_READ_RATIO``
    and ``TBSCOPE_READ_CAP_BYTES``.

    Example:
        >>> ReadLimit(ratio=100, cap=1 << 30).bytes_for(5_000_000), ReadLimit(cap=1 << 30).bytes_for(50_000_000)
        (500000000, 1073741824)
    """

    ratio: float = 100.0
    cap: int = 4 << 30

    def bytes_for(self, compressed: int) -> int:
        return int(min(self.cap, max(compressed, 1 << 20) * self.ratio))

    @classmethod
    def from_env(cls) -> ReadLimit:
        """The limit the environment sets (the defaults where it sets none, or sets no number)."""
        default = cls()
        try:
            ratio = float(os.environ.get("TBSCOPE_READ_RATIO", default.ratio))
            cap = int(os.environ.get("TBSCOPE_READ_CAP_BYTES", default.cap))
        except ValueError:
            return default
        return cls(ratio, cap) if ratio > 0 and cap > 0 else default


# Compressed bytes fed to the decompressor at a time, and the most it may return for them: memory stays
# small whatever a member expands to.
_CHUNK = 1 << 16
_OUT = 1 << 20


class _Gunzip(io.RawIOBase):
    """The decompressed bytes of a gzip file of any number of members, counted against a limit."""

    def __init__(self, file: BinaryIO, path: str, limit: ReadLimit) -> None:
        self._file, self._path = file, path
        self._size = os.fstat(file.fileno()).st_size
        self._limit = limit.bytes_for(self._size)
        self._ratio, self._cap = limit.ratio, limit.cap
        self._inflate = zlib.decompressobj(31)
        self._input = b""
        self._produced = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._ended:
            if self._inflate.eof:  # the next member, if any
                rest = self._inflate.unused_data + self._input
                if not rest.strip(b"\0"):
                    rest = self._file.read(_CHUNK)
                    if not rest.strip(b"\0"):
                        self._ended = True
                        break
                self._inflate, self._input = zlib.decompressobj(31), rest
            if not self._input and not self._inflate.unconsumed_tail:
                self._input = self._file.read(_CHUNK)
                if not self._input:
                    raise EOFError("the file ends inside a gzip member: truncated")
            data = self._inflate.unconsumed_tail or self._input
            if data is self._input:
                self._input = b""
            out = self._inflate.decompress(data, min(len(buffer), _OUT))
            if out:
                self._produced += len(out)
                if self._produced > self._limit:
                    raise TooLarge(
                        f"{self._path}: decompressing it produces more than {self._limit:,} bytes ({self._ratio:g} "
                        f"times its {self._size:,} bytes, {self._cap:,} at most): refused as a likely compression "
                        "bomb. A genuine file needs a higher limit: TBSCOPE_READ_RATIO, TBSCOPE_READ_CAP_BYTES"
                    )
                buffer[: len(out)] = out
                return len(out)
        return 0


def decompressed(file: BinaryIO, path: str | os.PathLike[str], limit: ReadLimit | None = None) -> BinaryIO:
    """The content of the open ``file``: decompressed (within ``limit``, default ``ReadLimit.from_env()``)
    when it is gzip, else the file itself. Reading past the limit raises ``TooLarge``; a damaged gzip
    file raises ``zlib.error`` or ``EOFError``.

    Example:
        >>> import gzip, tempfile; from pathlib import Path
        >>> path = Path(tempfile.mkdtemp()) / "t.json.gz"
        >>> _ = path.write_bytes(gzip.compress(b'{"a": 1}') + gzip.compress(b" "))  # two members
        >>> with open_inside(path, path.parent) as f:
        ...     decompressed(f, path).read()
        b'{"a": 1} '
    """
    head = file.read(2)
    file.seek(0)
    if head != b"\x1f\x8b":
        return file
    return io.BufferedReader(_Gunzip(file, os.fspath(path), limit or ReadLimit.from_env()), _OUT)


def read_inside(path: str | os.PathLike[str], logdir: str | os.PathLike[str] | None) -> bytes:
    """The bytes of the regular file at ``path`` inside ``logdir`` (see ``open_inside``), as stored."""
    with open_inside(path, logdir) as file:
        return file.read()
