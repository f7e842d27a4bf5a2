"""The pipeline: a background thread that turns snapshots into events and appends them to event files.

The writer front only appends ``Item``s to a deque. This thread drains it a few times a
second, waits for device copies, encodes summaries (batching the values of one step into one
event), and writes whole records to disk on an interval, on ``flush()`` and ``close()``, at
interpreter exit and on SIGTERM. It never lets an exception escape: a failure is warned about once,
counted, and kept for a ``strict`` writer to raise on its next call.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import errno
import os
import signal
import socket
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple, NoReturn

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary

from tbscope import record
from tbscope.snapshot import POOL, Pending
from tbscope.summaries import wire


class Item(NamedTuple):
    """One value for the thread to encode, an event of its own with its wall time. ``encode(**args)``
    returns a Summary.Value, a list of them (one event), a serialized Summary entry (bytes, see
    ``summaries.wire``), an Event, None, or a dict of those by sub-run of ``run`` (an event in each)."""

    run: str  # the sub-run it goes to, "" for the writer's own
    step: int
    wall_time: float
    encode: Callable[..., Any]
    args: dict[str, Any]  # the encoder's arguments, by name
    pending: bool  # whether ``args`` hold a Pending, resolved (waited for) before ``encode`` runs
    nbytes: int  # what the value holds in memory until it is encoded
    heavy: bool = False  # an image, a histogram...: shed first when memory or the disk runs short


# (tag, value, step, time of the call): a scalar of the writer's own run, a float or a Pending. These
# plain tuples are no objects the garbage collector tracks: a long queue of them costs no collection.
Scalar = tuple[str, Any, int, float]
# The writer's bulk scalar encoder: queued scalars in, ``(step, wall time, serialized Summary)`` out; a
# value that cannot be encoded is left out and reported to the callable, as ``Pipeline._fail``.
ScalarEncoder = Callable[[list[Scalar], Callable[..., None]], Iterable[tuple[int, float, bytes]]]


def given_time(method: str, walltime: Any) -> float:
    """``walltime`` as a float; a TypeError naming ``method`` for what is not a number."""
    try:
        return float(walltime)
    except (TypeError, ValueError):
        raise TypeError(
            f"{method}: walltime must be seconds since the epoch, as time.time() gives, got "
            f"{type(walltime).__name__} {walltime!r}"
        ) from None


# How long the thread sleeps between drains when nobody asks it to hurry.
_DRAIN_SECONDS = 0.1
# Encoded events reach their file (an os.write) at least this often, whatever flush_secs says, as with
# torch's writer: TensorBoard shows a value within about a second. ``flush_secs`` paces the rest
# (run.json's summaries and heartbeat).
WRITE_SECONDS = 1.0
# Queued items beyond which new values are dropped: bounds the memory a flood of scalars can take
# (about 100 MB) where ``max_pending_bytes`` bounds the heavy kinds.
MAX_ITEMS = 500_000
# Bytes of encoded records kept in memory before they are written, between flush intervals.
_WRITE_THRESHOLD = 4 << 20
# How long ``close()`` waits for the thread to write everything out before it gives up and says what is
# not on disk (a disk that hangs, an encoder that never returns).
CLOSE_SECONDS = 60.0


class LoggingError(RuntimeError):
    """Raised by a ``strict`` writer's next call after the pipeline failed to log something."""


class ForkedError(RuntimeError):
    """A pipeline inherited through ``fork``: its writer opens a new one in the child."""


# What the counts of ``Pipeline.losses`` mean, as the warning at close and run.json's "lost" tell them.
LOSS_WORDS = {
    "shed": "shed while memory or the disk ran short (images, histograms and other heavy values first)",
    "failed": "lost to errors (see the warnings above)",
    "unwritten": f"not on disk: close() gave up waiting for the background writer after {CLOSE_SECONDS:g} s",
}

_warned: set[object] = set()
_thread_state = threading.local()


def warn_once(key: object, message: str) -> bool:
    """Warn with ``message`` the first time ``key`` is seen: per writer when called from a
    pipeline thread (an encoder noticing bad data), per process otherwise. True if it warned."""
    seen: set[object] = getattr(_thread_state, "warned", _warned)
    if key in seen:
        return False
    seen.add(key)
    warnings.warn(message, RuntimeWarning, stacklevel=2)
    return True


_counter = 0
_counter_lock = threading.Lock()


def event_file_name(suffix: str = "") -> str:
    """A new event file name in TensorBoard's scheme, unique within and across processes."""
    global _counter
    with _counter_lock:
        _counter += 1
        n = _counter
    return f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{n}{suffix}"


def open_event_file(directory: Path, suffix: str) -> record.RecordFile:
    """Create ``directory`` and a new event file in it that starts with the file-version event."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        out = record.RecordFile(directory / event_file_name(suffix))
        out.append(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
        out.write_out()
    except OSError as err:
        raise OSError(err.errno, f"tbscope: cannot write event files in {directory}: {err.strerror or err}") from err
    return out


class Pipeline:
    """The background worker of one writer: its queue, its thread and its open event files."""

    def __init__(
        self,
        log_dir: Path,
        filename_suffix: str,
        flush_secs: float,
        max_pending_bytes: int,
        encode_scalars: ScalarEncoder,
        on_flush: Callable[[], None] | None = None,
        full: Callable[[], bool] | None = None,
    ):
        self.log_dir = log_dir
        self.full = full  # whether the folder takes no more writes now (a spool the store has not emptied)
        self.encode_scalars = encode_scalars
        self.on_flush = on_flush
        self.suffix = filename_suffix
        self.flush_secs = flush_secs
        self.max_pending_bytes = max_pending_bytes
        self.error: BaseException | None = None
        self.lost = 0  # values lost to errors
        self.shed = 0  # heavy values dropped because memory or the disk ran short
        self.unwritten = 0  # values still not on disk when close() gave up
        self._in_hand = 0  # values the thread took from the queue and has not written yet
        self._files = {"": open_event_file(log_dir, filename_suffix)}
        self.items: collections.deque[Item | threading.Event] = collections.deque()
        # The writer appends its plain scalars here directly, on its hot path (see Writer.add_scalar).
        self.scalars: collections.deque[Scalar] = collections.deque()
        # Two counters, each written by one side only, so no lock is needed to bound memory.
        self._enqueued_bytes = 0
        self._consumed_bytes = 0
        self._wake = threading.Event()
        self._stopping = False
        self._reported = False
        self._thread = threading.Thread(target=self._run, name="tbscope-pipeline", daemon=True)
        self._thread.start()
        _live.add(self)
        _close_at_child_exit()

    @property
    def forked(self) -> bool:
        """Whether this is a forked child's copy of the pipeline, whose thread does not exist here."""
        return isinstance(self.error, ForkedError)

    # -- caller side: O(1), never blocks ------------------------------------------------------------

    def put(self, item: Item, bounded: bool = True) -> None:
        """Queue ``item``, or shed it when the queue already holds too much: a heavy item past
        ``max_pending_bytes``, any past ``MAX_ITEMS`` unless not ``bounded`` (the few items that end a
        run, which must not be lost to a flood before them). Light values (an HParams session, text)
        are never shed for the heavy ones' bytes."""
        if bounded and (
            len(self.items) >= MAX_ITEMS
            or (item[7] and self._enqueued_bytes - self._consumed_bytes > self.max_pending_bytes)
        ):
            self.shed += 1
            warn_once(
                (self.log_dir, "shed"),
                f"tbscope: logging is {self.max_pending_bytes >> 20} MiB behind the disk in {self.log_dir}; "
                "shedding new images, histograms and other heavy values until it catches up (scalars are kept; "
                "the count is reported at close and in run.json)",
            )
            return
        self._enqueued_bytes += item[6]
        self.items.append(item)

    def flush(self, timeout: float | None = None) -> None:
        """Write everything logged so far to disk; returns when it is written (or the thread died)."""
        done = threading.Event()
        self.items.append(done)
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done.wait(0.05):
            if not self._thread.is_alive() or (deadline is not None and time.monotonic() > deadline):
                return

    def close(self) -> None:
        """Write everything queued, then stop the thread, waiting ``CLOSE_SECONDS`` at most. Called
        again (by a SIGTERM handler that interrupted a close), it waits for the same work rather than
        returning at once. What is not on disk then is counted (``losses``) and told in one warning."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=CLOSE_SECONDS)
        _live.discard(self)
        if self._reported:
            return
        self._reported = True
        if self._thread.is_alive():  # stuck: a hung disk, an encoder that never returns
            queued = sum(type(item) is Item for item in list(self.items)) + len(self.scalars)
            self.unwritten = queued + self._in_hand
        losses = self.losses()
        if losses:
            told = "; ".join(f"{count} value(s) {LOSS_WORDS[why]}" for why, count in losses.items())
            warnings.warn(f"tbscope: {self.log_dir}: {told}", RuntimeWarning, stacklevel=3)

    def losses(self) -> dict[str, int]:
        """Values not on disk, by why (the keys of ``LOSS_WORDS``); only the reasons that lost any."""
        counts = {"shed": self.shed, "failed": self.lost, "unwritten": self.unwritten}
        return {why: count for why, count in counts.items() if count}

    # -- pipeline thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        _thread_state.warned = set()
        last_write = last_flush = time.monotonic()
        while True:
            self._wake.wait(_DRAIN_SECONDS)
            self._wake.clear()
            markers: list[threading.Event] = []
            try:
                markers = self._drain()
                now = time.monotonic()
                flush = markers or self._stopping or now - last_flush >= self.flush_secs
                written = False
                if flush or now - last_write >= WRITE_SECONDS or self._buffered() > _WRITE_THRESHOLD:
                    written = self._write_out()
                    last_write = now
                    if written:
                        self._in_hand = 0
                if flush:
                    last_flush = now
                    # run.json's summaries say what is on disk: not updated while the disk refuses writes
                    if self.on_flush is not None and written:
                        try:
                            self.on_flush()
                        except Exception as err:
                            self._fail("could not update the run's metadata", err, lost=0)
            except Exception as err:  # the thread never dies: what failed is counted, the rest goes on
                self._fail("the background writer failed", err, lost=0)
            for marker in markers:
                marker.set()
            if self._stopping and not self.items and not self.scalars:
                break
        whole = True
        for run, out in self._files.items():
            with contextlib.suppress(OSError):
                out.write_out()  # the light records first, then the heavy ones while they fit
            self.shed += out.shed_heavy()  # the disk still refuses: what it refused is lost now, and counted
            lost = out.close()
            if lost:
                whole = False
                self._fail(f"could not write to {out.path}", OSError("the disk refused the last write"), lost, run)
        if self.on_flush is not None and whole:  # every light value is on disk: run.json may say so
            with contextlib.suppress(Exception):
                self.on_flush()

    def committed(self) -> dict[str, int]:
        """For each event file open, the bytes on disk that are whole records and stay (a write that fails
        part way is cut back; its bytes are not in this)."""
        return {out.path: out.written for out in list(self._files.values())}

    def _buffered(self) -> int:
        return sum(out.pending_bytes for out in self._files.values())

    def logged_bytes(self) -> int:
        """Bytes of event files written or encoded so far, plus heavy values still queued."""
        files = sum(out.size for out in list(self._files.values()))
        return files + max(0, self._enqueued_bytes - self._consumed_bytes)

    def _drain(self) -> list[threading.Event]:
        """Encode what is queued now; returns the flush markers among it, to be set once it is written.
        Items are taken before scalars, so a marker's flush covers every scalar logged before it."""
        take_item, take_scalar = self.items.popleft, self.scalars.popleft
        batch: list[Any] = [take_item() for _ in range(len(self.items))]
        scalars = [take_scalar() for _ in range(len(self.scalars))]
        markers = [item for item in batch if type(item) is not Item]
        self._in_hand += len(batch) - len(markers) + len(scalars)
        self._encode([item for item in batch if type(item) is Item] if markers else batch)
        if scalars:
            for step, wall_time, summary in self.encode_scalars(scalars, self._fail):
                self._append("", wire.event(wall_time, step, summary))
        return markers

    def _encode(self, batch: Iterable[Item]) -> None:
        """Encode items in order, each an event of its own."""
        consumed = 0
        for run, step, wall_time, encode, args, pending, nbytes, heavy in batch:
            consumed += nbytes
            try:
                if pending:
                    args = {name: a.result() if type(a) is Pending else a for name, a in args.items()}
                encoded = encode(**args)
                for arg in args.values():
                    if type(arg) is np.ndarray:
                        POOL.give(arg)  # encoded: the snapshot's buffer can serve the next one
                if type(encoded) is dict:  # by sub-run of the item's run: one value, several runs
                    parts = [(f"{run}/{sub_run}".strip("/"), part) for sub_run, part in encoded.items()]
                else:
                    parts = [(run, encoded)]
                events = [(where, self._event_of(step, wall_time, part)) for where, part in parts]
            except Exception as err:  # an encoder that raised, or returned what no event can hold
                what = repr(args["tag"]) if isinstance(args.get("tag"), str) else getattr(encode, "__name__", "a value")
                self._fail(f"could not log {what} at step {step}", err, lost=1)
                continue
            for where, event in events:
                if event is not None:
                    self._append(where, event, heavy)
        self._consumed_bytes += consumed

    @staticmethod
    def _event_of(step: int, wall_time: float, encoded: Any) -> bytes | None:
        """The serialized event of what an encoder returned (None, or an empty list: no event); a
        TypeError for anything else."""
        if type(encoded) is Event:
            encoded.step, encoded.wall_time = step, wall_time
            return bytes(encoded.SerializeToString())
        if encoded is None or encoded == []:
            return None
        if type(encoded) is list:
            summary = b"".join(wire.field_of(value) for value in encoded)
        elif type(encoded) is bytes:
            summary = encoded
        elif isinstance(encoded, Summary.Value):
            summary = wire.field_of(encoded)
        else:
            raise TypeError(
                f"an encoder returned a {type(encoded).__name__}; expected a Summary.Value, a list of them, "
                "an Event, None, or a dict of those by sub-run"
            )
        return wire.event(wall_time, step, summary)

    def _append(self, run: str, event: bytes, heavy: bool = False) -> None:
        out = self._files.get(run)
        if out is None:
            try:
                out = self._files[run] = open_event_file(self.log_dir / run, self.suffix)
            except OSError as err:
                self._fail(f"could not create the event file for run {run!r}", err, lost=1)
                return
        out.append(event, heavy)

    def _write_out(self) -> bool:
        """Write every file's pending records; whether all the light ones (scalars, whose statistics
        run.json keeps) are on disk now. What a full disk
        refused stays pending for the next try, light records first (see ``RecordFile.write_out``),
        up to ``max_pending_bytes``: past that the heavy records are shed, and counted, before any
        light one is dropped."""
        written = True
        for run, out in self._files.items():
            try:
                if self.full is not None and out.pending_bytes and self.full():
                    refused = OSError(errno.ENOSPC, "the upload spool is full: the store has not taken what it holds")
                    raise record.WriteError(out.path, 0, refused) from refused
                out.write_out()
            except record.WriteError as err:
                written = written and not out.light_records
                shed = out.shed_heavy() if out.pending_bytes > self.max_pending_bytes else 0
                lost = out.discard() if out.pending_bytes > self.max_pending_bytes else 0
                self._fail(f"could not write to {out.path}", err.__cause__ or err, lost=lost, key=run)
                if shed:
                    self.shed += shed
                    warn_once(
                        (self.log_dir, "shed"),
                        f"tbscope: the disk has refused {self.max_pending_bytes >> 20} MiB for {out.path}; shedding "
                        "images, histograms and other heavy values waiting for it (scalars are kept; the count is "
                        "reported at close and in run.json)",
                    )
        return written

    def _fail(self, what: str, err: BaseException, lost: int, key: object = None) -> None:
        self.lost += lost
        if self.error is None:
            self.error = err
        full = getattr(err, "errno", None) == errno.ENOSPC
        warn_once(
            (key if key is not None else what.split(" at step")[0], type(err)),
            f"tbscope: {what}: {err}. "
            + ("The disk is full. " if full else "")
            + "Training goes on; later failures of this kind are counted and reported at close.",
        )


# -- process-wide: every live pipeline is written out at exit and on SIGTERM ------------------------

_live: weakref.WeakSet[Pipeline] = weakref.WeakSet()
_exit_hooks: list[weakref.WeakMethod[Callable[[str], None]]] = []


def on_exit(hook: Callable[[str], None]) -> None:
    """Call the bound method ``hook(status)`` at interpreter exit or SIGTERM, before pipelines are
    closed, if its object is still alive. ``status`` is "interrupted" on SIGTERM or an uncaught
    KeyboardInterrupt, "failed" when the process dies of another uncaught exception, "finished"
    otherwise.
    """
    _exit_hooks[:] = [ref for ref in _exit_hooks if ref() is not None]
    _exit_hooks.append(weakref.WeakMethod(hook))


def _after_fork_in_child() -> None:
    """In a forked child (a DataLoader worker, ``os.fork()``): the parent's pipelines have no thread
    here and their files are the parent's. Each writer makes a pipeline of its own on its next value;
    a multiprocessing child, which exits without running atexit, writes it out at its exit."""
    global _exit_in_child
    for pipeline in list(_live):
        pipeline.error = ForkedError("this pipeline belongs to the parent process")
    _live.clear()
    _exit_in_child = True


# Whether this is a forked child whose exit must close its pipelines: a multiprocessing child ends
# with os._exit, so atexit never runs there. Registered by the child's first pipeline, since
# multiprocessing clears the finalizers a child inherits before its target runs.
_exit_in_child = False


def _close_at_child_exit() -> None:
    global _exit_in_child
    if _exit_in_child:
        _exit_in_child = False
        from multiprocessing import util

        util.Finalize(None, _shutdown, args=("finished",), exitpriority=0)


def _shutdown(status: str) -> None:
    for ref in list(_exit_hooks):
        hook = ref()
        if hook is not None:
            try:
                hook(status)
            except Exception as err:  # the process ends anyway: said in one line, the other hooks still run
                with contextlib.suppress(Exception):
                    message = f"tbscope: ending a run or writer at exit failed: {err!r}"
                    warnings.warn(message, RuntimeWarning, stacklevel=1)
    for pipeline in list(_live):
        with contextlib.suppress(Exception):
            pipeline.close()


def end_status(exc_type: type[BaseException] | None) -> str:
    """How a run ended, told by the exception that ended it: "finished" (none), "interrupted"
    (KeyboardInterrupt) or "failed"."""
    if exc_type is None:
        return "finished"
    return "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"


# What ends the process, as far as it can be seen from atexit: the code given to sys.exit, and
# whether a SIGTERM came (a user's own handler may turn it into a clean-looking exit).
_exit_code: Any = None
_terminated = False
# Exit codes that say "ended by a signal", by the shell's convention (128 + the signal's number).
_SIGNALLED = (128 + signal.SIGTERM, 128 + signal.SIGINT)


def _at_exit() -> None:
    status = end_status(getattr(sys, "last_type", None))
    if _terminated:
        status = "interrupted"
    elif status == "finished" and _exit_code in _SIGNALLED:
        status = "interrupted"  # sys.exit(143): the script's own SIGTERM handler ended it
    elif status == "finished" and _exit_code not in (None, 0):
        status = "failed"  # sys.exit(3): the script said it failed
    _shutdown(status)


def _exit(code: Any = None) -> NoReturn:
    """``sys.exit``, noting the code for the run's end status."""
    global _exit_code
    _exit_code = code
    _system_exit(code)


_system_exit = sys.exit
_previous_sigterm: Any = signal.SIG_DFL
_handlers_installed = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _terminated
    _terminated = True
    previous = _previous_sigterm
    if callable(previous):
        for pipeline in list(_live):
            pipeline.flush(timeout=10)
        previous(signum, frame)
        return
    _shutdown("interrupted")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def install_exit_handlers() -> None:
    """Flush at exit, and on SIGTERM when this is the main thread; another SIGTERM handler is chained."""
    global _previous_sigterm, _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_at_exit)
    sys.exit = _exit
    os.register_at_fork(after_in_child=_after_fork_in_child)
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        if previous is not signal.SIG_IGN and previous is not None:
            _previous_sigterm = previous
            signal.signal(signal.SIGTERM, _on_sigterm)
