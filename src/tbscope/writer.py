"""Writer: the SummaryWriter-compatible front, the only object a training loop touches.

Every ``add_*`` method checks its arguments, takes a snapshot of the value (see ``snapshot``) and
queues it. Encoding and disk I/O happen on the pipeline's thread.
"""

from __future__ import annotations

import collections
import functools
import inspect
import math
import numbers
import socket
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, NamedTuple, ParamSpec

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary

from tbscope import remote, snapshot, tagstats
from tbscope.pipeline import (
    MAX_ITEMS,
    Item,
    LoggingError,
    Pipeline,
    Scalar,
    end_status,
    given_time,
    install_exit_handlers,
    on_exit,
    warn_once,
)
from tbscope.policy import Budget, Cadence, Gate, Spaced
from tbscope.snapshot import Pending
from tbscope.spool import Upload, reachable
from tbscope.summaries import (
    audio,
    confusion,
    custom_scalars,
    detection,
    drawing,
    embedding,
    graph,
    grid,
    histogram,
    hparams,
    image,
    mesh,
    pr_curve,
    scalar,
    segmentation,
    text,
    video,
)
from tbscope.summaries import tensor as raw_tensor
from tbscope.summaries.figure import close_figure
from tbscope.summaries.figure import render as render_figure

# Bytes a small item (a scalar, a short text) holds in memory, for the pending-memory bound.
_SCALAR_BYTES = 120
_STEPS = snapshot.STEPS
# Scalars of one step logged this close together share an event (see ScalarEncoders.events).
SHARED_EVENT_SECONDS = 1e-3
_pack_simple = scalar.pack_simple


def _raise(what: str, error: BaseException, lost: int) -> None:
    raise error


_now = time.time


class FileWriter:
    """torch's ``FileWriter`` face of a ``Writer`` (``writer.file_writer``, ``writer._get_file_writer()``),
    for code that writes protos itself, as Lightning's loggers do: events go through the writer's pipeline.

    Example:
        >>> import tempfile
        >>> from tensorboard.compat.proto.summary_pb2 import Summary
        >>> with Writer(tempfile.mkdtemp()) as w:
        ...     w.file_writer.add_summary(Summary(value=[Summary.Value(tag="x", simple_value=1.0)]), 3)
    """

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    def get_logdir(self) -> str:
        return self._writer.log_dir

    def add_event(self, event: Event, step: int | None = None, walltime: float | None = None) -> None:
        """Write ``event``, at ``step`` if given (else its own), stamped ``walltime`` or now, as torch does."""
        if not isinstance(event, Event):
            raise TypeError(f"add_event: expected a tensorboard Event, got {type(event).__name__}")
        self._writer._put_event("", event.step if step is None else step, walltime, event)

    def add_summary(self, summary: Summary, global_step: int | None = None, walltime: float | None = None) -> None:
        """Write a ``Summary`` proto as an event."""
        if not isinstance(summary, Summary):
            raise TypeError(f"add_summary: expected a tensorboard Summary, got {type(summary).__name__}")
        self.add_event(Event(summary=summary), global_step, walltime)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def reopen(self) -> None:
        """Nothing to do: the writer reopens on its next value."""


class ScalarEncoders:
    """The run's scalar encoders, and the statistics (``tagstats``) of what they encoded, per tag.

    Lives on the pipeline thread. NaN and Inf are logged as
    they are, with one warning per tag, and left out of min and max. Values are kept as given and
    rounded to float32, as a reader sees them, when asked for (rounding keeps their order).
    """

    def __init__(self) -> None:
        # tag -> [last, min, max, last_step, count, the tag's simple_head]
        self.series: dict[str, list[Any]] = {}
        self._double: set[str] = set()  # tags logged with double_precision: not rounded to float32
        self._heads: dict[str, bytes] = {}  # of add_scalars' sub-runs, which have no summary

    def _start(self, tag: str) -> list[Any]:
        stats = self.series[tag] = [math.nan, math.inf, -math.inf, 0, 0, scalar.simple_head(tag)]
        return stats

    def events(self, batch: list[Scalar], on_error: Callable[..., None] = _raise) -> Iterator[tuple[int, float, bytes]]:
        """Queued scalars of the run, encoded in bulk: ``(step, wall time, serialized Summary)`` per
        event. Consecutive values of one step whose calls lie ``SHARED_EVENT_SECONDS`` apart at most
        share one event, stamped with the first one's time: a difference no reader shows. The hot
        path of every training loop: what a value costs here, every logged scalar costs. A value
        that cannot be encoded is left out and reported: ``on_error(what, error, lost=1)``."""
        parts: list[bytes] = []
        add, series = parts.append, self.series
        event_step, event_time = 0, 0.0
        for tag, value, step, wall_time in batch:
            if step != event_step or not 0.0 <= wall_time - event_time <= SHARED_EVENT_SECONDS or not parts:
                if parts:
                    yield event_step, event_time, b"".join(parts)
                    parts.clear()
                event_step, event_time = step, wall_time
            try:  # free in Python 3.11 when nothing raises
                if type(value) is not float:
                    value = value.result() if type(value) is Pending else float(value)  # Pending: a CUDA copy
                stats = series.get(tag) or self._start(tag)
                try:
                    add(stats[5] + _pack_simple(value))
                except OverflowError:
                    encoded, value = scalar.simple_value_field(stats[5], value)
                    add(encoded)
            except Exception as err:
                on_error(f"could not log {tag!r} at step {step}", err, lost=1)
                continue
            stats[0] = value
            stats[3] = step
            stats[4] += 1
            if value - value == 0.0:  # finite: NaN and Inf stay out of min and max
                if value < stats[1]:
                    stats[1] = value
                if value > stats[2]:
                    stats[2] = value
            else:
                self._nonfinite(tag, value)
        if parts:
            yield event_step, event_time, b"".join(parts)

    def simple(self, tag: str, value: float, step: int) -> bytes:
        """One ``simple_value`` of the run as its serialized summary entry (see ``events``)."""
        return next(self.events([(tag, value, step, 0.0)]))[2]

    def in_sub_run(self, tag: str, value: float) -> bytes:
        """A ``simple_value`` of another run than the writer's own (``add_scalars``, ``add_hparams``)."""
        head = self._heads.get(tag) or self._heads.setdefault(tag, scalar.simple_head(tag))
        encoded, value = scalar.simple_value_field(head, value)
        if value - value != 0.0:
            self._nonfinite(tag, value)
        return encoded

    def tensor(self, tag: str, value: float, step: int, double_precision: bool) -> Any:
        encoded = scalar.tensor_value(tag, value, double_precision)
        stored = encoded.tensor.double_val[0] if double_precision else encoded.tensor.float_val[0]
        if double_precision:
            self._double.add(tag)
        self.keep(tag, stored, step)
        return encoded

    def keep(self, tag: str, value: float, step: int) -> None:
        """Count a value of the run's own that was encoded elsewhere (a tensor, an AP of ``add_pr_curves``)."""
        stats = self.series.get(tag) or self._start(tag)
        stats[0], stats[3], stats[4] = value, step, stats[4] + 1
        if math.isfinite(value):
            stats[1], stats[2] = min(stats[1], value), max(stats[2], value)
        else:
            self._nonfinite(tag, value)

    def pr_curves(self, step: int, **args: Any) -> list[Any]:
        """``pr_curve.per_class_values``, with its AP and mAP scalars kept among the run's statistics."""
        values = pr_curve.per_class_values(**args)
        for value in values:
            if value.HasField("simple_value"):
                self.keep(value.tag, value.simple_value, step)
        return values

    @staticmethod
    def _nonfinite(tag: str, value: float) -> None:
        warn_once(
            ("nonfinite", tag),
            f"tbscope: scalar {tag!r} is {value}; it is logged as is and TensorBoard plots it as {value}",
        )

    def as_dict(self) -> tagstats.RunStats:
        """The run's own tags' statistics (``tagstats``), as a reader sees the values."""
        summary: tagstats.RunStats = {}
        for tag, (last, low, high, step, count, _) in list(self.series.items()):
            read = float if tag in self._double else _float32
            summary[tag] = tagstats.entry(read(last), read(low), read(high), step, count)
        return summary


def _float32(value: float) -> float:
    """``value`` as a reader of a float32 field sees it."""
    return float(np.float32(value)) if math.isfinite(value) else value


def _histogram(
    tag: str, data: np.ndarray, bins: histogram.Bins, max_bins: int | None, binned_on_device: bool = False
) -> Any:
    """A histogram of host values, or of the bins ``histogram.device_bins`` made where the values were."""
    if binned_on_device:
        value, dropped = histogram.from_device_bins(tag, data, bins if isinstance(bins, str | int) else 0, max_bins)
    else:
        value, dropped = histogram.histogram_value(tag, data, bins, max_bins)
    if dropped:
        warn_once(
            ("nonfinite-histogram", tag),
            f"tbscope: histogram {tag!r} had {dropped} NaN/Inf value(s); they are left out of it",
        )
    return value


def _event(event: Event) -> Event:
    return event


def _close_figures(figure: Any, close: bool = True, **_: Any) -> None:
    """``add_figure``'s figures, closed although the gate dropped them (as the call asked)."""
    if close:
        for fig in figure if isinstance(figure, list) else [figure]:
            close_figure(fig)


def _nbytes(data: Any) -> int:
    return int(data.host.nbytes if isinstance(data, Pending) else getattr(data, "nbytes", _SCALAR_BYTES))


def _sub_run(method: str, what: str, name: str) -> str:
    """``name`` as a sub-run of the log_dir; a ValueError for one that would leave it."""
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or ".." in parts or "\\" in name:
        raise ValueError(f"{method}: {what} {name!r} would write outside log_dir; use a plain relative name")
    return name


def _check_positive(method: str, what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < math.inf:
        raise ValueError(f"{method}: {what} must be a positive number, got {value!r}")


def _check_tag(method: str, tag: Any) -> None:
    if type(tag) is not str:
        raise TypeError(f"{method}: tag must be a str, got {type(tag).__name__} {tag!r}")
    if not tag:
        raise ValueError(f"{method}: tag must not be empty")


class _Encoding(NamedTuple):
    """What the body of a heavy method hands its guard (``_heavy``): the encoder and its arguments, by name."""

    encode: Callable[..., Any]
    args: dict[str, Any]


def _encoding(encode: Callable[..., Any], **args: Any) -> _Encoding:
    return _Encoding(encode, args)


P = ParamSpec("P")


def _heavy(
    kind: str, on_skip: Callable[..., None] | None = None
) -> Callable[[Callable[Concatenate[Writer, P], _Encoding]], Callable[Concatenate[Writer, P], None]]:
    """The guard of a heavy method (images, histograms, ...; ``kind`` for the gate). It checks the tag,
    asks the gate (cadence, caps, budget) before any work is done, runs the method's body (which takes
    its snapshot, checks its arguments and names its encoder) and puts the result on the pipeline at
    the call's ``global_step`` and ``walltime``. ``on_skip`` gets the call's arguments when the gate
    drops it (a figure is closed even then)."""

    def guard(body: Callable[Concatenate[Writer, P], _Encoding]) -> Callable[Concatenate[Writer, P], None]:
        method = body.__name__
        signature = inspect.signature(body)

        @functools.wraps(body)
        def guarded(self: Writer, *args: P.args, **kwargs: P.kwargs) -> None:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()  # add_embedding's tag has a default, as torch's has
            call = bound.arguments
            tag, step = call["tag"], call["global_step"]
            _check_tag(method, tag)
            if self._skips(method, kind, tag, step):
                if on_skip is not None:
                    on_skip(**call)
                return
            encode, encoder_args = body(self, *args, **kwargs)
            self._put(method, step, call.get("walltime"), encode, encoder_args, heavy=True)

        return guarded

    return guard


class Writer:
    """Log scalars, images, histograms and more for TensorBoard, without slowing training down.

    A drop-in for ``torch.utils.tensorboard.SummaryWriter``: the same methods and arguments, and
    files that stock TensorBoard reads. What differs is where the work happens: each ``add_*``
    call only checks its arguments and takes a snapshot of the value, so it costs microseconds,
    never encodes, never touches the disk and never waits on the GPU (a CUDA tensor is copied
    asynchronously). A background thread encodes and writes.

    Files go to ``log_dir`` (default ``runs/<date>_<host><comment>``, as torch does): a local folder, or
    a URL of object storage (``s3://bucket/runs/run``, any fsspec URL; ``pip install tbscope[s3]``),
    written through a local spool and uploaded in the background (see ``tbscope.spool``). Every value
    reaches its event file within about a second, and on ``flush()`` and ``close()``, at interpreter exit
    and on SIGTERM; in object storage within ``spool.UPLOAD_SECONDS`` more.

    Args:
        log_dir: Directory of the run's event files; created if missing. An unwritable one, or a URL
            whose bucket is missing or whose credentials are refused, is an error here, at
            construction, not later in training.
        comment: Appended to the default ``log_dir``; ignored when ``log_dir`` is given.
        purge_step: Hide every event at or after this step that earlier, crashed attempts of this
            run wrote, as TensorBoard's purge does (use it when resuming from a checkpoint).
        max_queue: Accepted for compatibility with torch; memory is bounded by
            ``max_pending_bytes`` instead.
        flush_secs: How often ``on_flush`` runs (``run.json``'s summaries and heartbeat for
            ``tbscope.init`` runs); default 5 seconds. Events reach the file within about a second
            whatever it says, as with torch's writer.
        filename_suffix: Appended to event file names.
        strict: When False (the default) a failure to log (a full disk, a value that cannot be
            encoded) is warned about once, counted, and training goes on. When True the next call
            raises ``LoggingError`` instead.
        max_pending_bytes: Memory that heavy values (images, histograms...) waiting to be written
            may hold, in the queue and again while a full disk refuses them. Past it they are shed
            (with one warning, and a count at close and in ``lost_values``) instead of growing memory
            or blocking the training loop; scalars, text and the HParams session are kept.
        cadence: A ``Spaced`` or ``Cadence``: the steps at which images, figures, histograms, embeddings,
            audio and video are logged; calls at other steps cost next to nothing, and are counted
            (``gate.skipped``), the first of each tag with a warning. A tag's first call is always
            logged. None (the default for a plain Writer, as in torch) logs every call;
            ``tbscope.init`` runs get ``Spaced()``.
        budget: A ``Budget``: bytes per run, images and histograms per tag, the largest image side.
            Past a limit heavy data stops being logged; scalars and text go on. None (the default
            for a plain Writer, as in torch) means no limit; ``tbscope.init`` runs get ``Budget()``.
        on_flush: Called on the background thread every ``flush_secs``, after a write to disk, and
            on ``flush()`` and ``close()``; ``tbscope.init`` uses it to keep ``run.json`` current.
        on_flushed: Called on the caller's thread when ``flush()`` has written everything;
            ``tbscope.init`` uses it to wait (boundedly) for the HParams columns it asked for.
        spool: The ``spool.Upload`` that sends ``log_dir`` to object storage, owned by the caller
            (``tbscope.init`` on a URL root passes its run's): the writer tells it what is written whole
            and starts a round on ``flush()``, and treats the spool as a full disk while it is.

    Example:
        >>> import tempfile
        >>> from tbscope import Writer
        >>> log_dir = tempfile.mkdtemp()
        >>> with Writer(log_dir) as w:
        ...     for step in range(100):
        ...         w.add_scalar("train/loss", 1.0 / (step + 1), step)
        >>> from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        >>> acc = EventAccumulator(log_dir, size_guidance={"scalars": 0}).Reload()
        >>> [(e.step, e.value) for e in acc.Scalars("train/loss")][:2]
        [(0, 1.0), (1, 0.5)]
    """

    def __init__(
        self,
        log_dir: str | Path | None = None,
        comment: str = "",
        purge_step: int | None = None,
        max_queue: int = 10,
        flush_secs: float = 5.0,
        filename_suffix: str = "",
        *,
        strict: bool = False,
        max_pending_bytes: int = 512 << 20,
        cadence: Cadence | Spaced | None = None,
        budget: Budget | None = None,
        on_flush: Callable[[], None] | None = None,
        on_flushed: Callable[[], None] | None = None,
        spool: Upload | None = None,
    ) -> None:
        if log_dir is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = Path("runs") / f"{stamp}_{socket.gethostname()}{comment}"
        self._url = str(log_dir).rstrip("/") if remote.is_url(str(log_dir)) else None
        self._dir = Path(log_dir)
        if self._url is not None:
            reachable(self._url)  # a missing bucket, refused credentials: an error now, not in training
            spool = Upload(self._url)
            self._dir = spool.dir
        self._upload = spool
        self.log_dir = str(log_dir)  # a str, as torch's
        if self._dir.exists() and not self._dir.is_dir():
            raise NotADirectoryError(f"Writer: log_dir {self.log_dir!r} exists and is not a directory")
        self.strict = strict
        self.purge_step, self.max_queue, self.flush_secs = purge_step, max_queue, flush_secs
        self.filename_suffix = filename_suffix
        self.file_writer: FileWriter | None = None  # set while the writer is open, as torch's
        self._max_pending_bytes = max_pending_bytes
        self.budget = budget
        self.cadence = cadence
        self.gate = Gate(cadence, budget, self._used_bytes, self._budget_spent)
        self._max_side = budget.max_image_side if budget is not None else None
        self._bytes_before = 0
        self._on_flush = on_flush
        self._on_flushed = on_flushed
        self._lost: collections.Counter[str] = collections.Counter()  # of closed pipelines (see lost_values)
        self._pipeline: Pipeline | None = None
        self._closing: Pipeline | None = None  # while close() writes it out
        self._hparams_runs: dict[str, tuple[Any, ...]] = {}  # session run -> its hyperparameters
        self._layout: dict[str, dict[str, Sequence[Any]]] = {}
        self._watches: list[Any] = []
        self._tensor_type = snapshot.tensor_type()  # for add_scalar's fast path; None without torch
        self._scalars = ScalarEncoders()
        self._written_stats: tagstats.RunStats = {}  # the scalars' statistics at the last full write
        self._open()
        install_exit_handlers()
        on_exit(self.close)
        if purge_step is not None:
            self._put_event("", purge_step, None, Event(session_log=SessionLog(status=SessionLog.START)))

    # -- plumbing ------------------------------------------------------------------------------------

    def _open(self) -> Pipeline:
        upload = self._upload
        if self._url is not None and upload is None:  # logging again after close(): a new spool
            upload = self._upload = Upload(self._url)
            self._dir = upload.dir
        if self.budget is not None and self.budget.max_run_bytes is not None and self._dir.is_dir():
            self._bytes_before = sum(p.stat().st_size for p in self._dir.rglob("*") if p.is_file())
        self._pipeline = Pipeline(
            self._dir,
            self.filename_suffix,
            self.flush_secs,
            self._max_pending_bytes,
            self._scalars.events,
            self._flushed,
            upload.full if upload is not None else None,
        )
        self.file_writer = FileWriter(self)
        if upload is not None:
            upload.committed = self._pipeline.committed
            if self._url is not None:  # its own spool (a run's spool is started by the run)
                upload.start()
        return self._pipeline

    def _skips(self, method: str, kind: str, tag: str, step: Any) -> bool:
        """Whether the gate (cadence and budget) drops this heavy call, decided before any work is done."""
        return self.gate.skips(method, kind, tag, step if type(step) is int else snapshot.step(method, step))

    def _used_bytes(self) -> int:
        return self._bytes_before + (self._pipeline or self._open()).logged_bytes()

    def _budget_spent(self, method: str, step: int, message: str) -> None:
        warnings.warn(message, RuntimeWarning, stacklevel=7)  # at the add_* call: through the gate
        self.add_text("tbscope/budget", message, step)

    def _flushed(self) -> None:
        """On the pipeline thread, when every value encoded so far is on disk."""
        self._written_stats = self._scalars.as_dict()
        if self._on_flush is not None:
            self._on_flush()

    def scalar_stats(self) -> tagstats.RunStats:
        """Per scalar tag of this run, the statistics (``tagstats``) of what is on disk: as of the last
        flush (every ``flush_secs``, ``flush()``, ``close()``) that wrote everything encoded before it."""
        return self._written_stats

    def lost_values(self) -> dict[str, int]:
        """Values this writer was given that are not on disk, by why (only the reasons that lost any):
        "shed" (heavy values dropped while memory or the disk ran short; see ``max_pending_bytes``),
        "failed" (values that could not be encoded or written), "unwritten" (still queued when
        ``close()`` gave up waiting for a disk or an encoder that hangs). The same counts as the
        warning at close; a ``tbscope.init`` run stores them in run.json's "lost".

        Example:
            >>> import tempfile
            >>> with Writer(tempfile.mkdtemp()) as w:
            ...     w.add_scalar("loss", 1.0, 0)
            >>> w.lost_values()
            {}
        """
        pipeline = self._pipeline or self._closing  # a close that a SIGTERM interrupted counts too
        live = pipeline.losses() if pipeline is not None and not pipeline.forked else {}
        return dict(self._lost + collections.Counter(live))

    def _put(
        self,
        method: str,
        step: Any,
        walltime: float | None,
        encode: Callable[..., Any],
        args: dict[str, Any],
        run: str = "",
        nbytes: int | None = None,
        heavy: bool = False,
    ) -> None:
        """Hand the pipeline one value: ``encode(**args)`` runs on its thread, any ``Pending`` in ``args``
        resolved first; ``run`` is a sub-run ("" for the writer's own). ``nbytes`` (default: the arrays in
        ``args``) is what the value holds in memory until then; a ``heavy`` value is shed first when
        memory or the disk runs short. The one door to the pipeline."""
        pipeline = self._pipeline or self._open()
        if pipeline.forked:  # the first value in a forked child: a pipeline and event file of its own
            pipeline = self._open()
            self._hparams_runs.clear()  # the parent's sessions: the parent ends them
        if pipeline.error is not None and self.strict:
            error, pipeline.error = pipeline.error, None
            raise LoggingError(f"{method}: an earlier value could not be logged: {error}") from error
        pending = any(type(value) is Pending for value in args.values())
        if nbytes is None:
            nbytes = _SCALAR_BYTES + sum(_nbytes(v) for v in args.values() if type(v) in (np.ndarray, Pending))
        pipeline.put(
            Item(
                run,
                step if type(step) is int and -_STEPS <= step < _STEPS else snapshot.step(method, step),
                time.time() if walltime is None else given_time(method, walltime),
                encode,
                args,
                pending,
                nbytes,
                heavy,
            )
        )

    def _put_event(self, run: str, step: Any, walltime: float | None, event: Event) -> None:
        self._put("log", step, walltime, _event, {"event": event}, run, event.ByteSize())

    def get_logdir(self) -> str:
        """The directory this writer writes to."""
        return self.log_dir

    def _get_file_writer(self) -> FileWriter:
        """torch's way to ``file_writer`` (Lightning's loggers call it): reopens a closed writer, as torch's does."""
        if self.file_writer is None:
            self._open()
        assert self.file_writer is not None
        return self.file_writer

    # -- scalars -------------------------------------------------------------------------------------

    def add_scalar(
        self,
        tag: str,
        scalar_value: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        new_style: bool = False,
        double_precision: bool = False,
    ) -> None:
        """Log a number: a Python number, a NumPy scalar or a one-element tensor (CUDA too).

        A CUDA tensor is copied asynchronously: no host-device sync. NaN and Inf are logged as
        they are (TensorBoard plots them) with one warning per tag. ``new_style`` writes a
        scalars-plugin tensor instead of ``simple_value``; ``double_precision`` keeps 64 bits.
        """
        if type(tag) is not str or not tag:
            _check_tag("add_scalar", tag)
        kind = type(scalar_value)
        if kind is float:
            value: float | Pending = scalar_value
        elif kind is self._tensor_type and not scalar_value.is_cuda:
            try:
                value = float(scalar_value.item())  # a CPU tensor: copied now, no device involved
            except RuntimeError:  # not one element: snapshot.scalar says so clearly
                value = snapshot.scalar("add_scalar", scalar_value)
        else:
            value = snapshot.scalar("add_scalar", scalar_value)
        if type(global_step) is not int or not -_STEPS <= global_step < _STEPS:
            global_step = snapshot.step("add_scalar", global_step)
        # The hot path of every training loop: append straight to the scalar queue when nothing is
        # unusual, else take the general path (reopen, a forked child, a strict writer's error, the memory
        # bound). A failure elsewhere keeps a writer that is not strict on this path: the thread encodes the
        # general path's values before this queue's, so switching would write a tag's steps out of order.
        pipeline = self._pipeline
        if not (new_style or double_precision or walltime is not None) and pipeline is not None:
            scalars = pipeline.scalars
            if (pipeline.error is None or not (self.strict or pipeline.forked)) and len(scalars) < MAX_ITEMS:
                scalars.append((tag, value, global_step, _now()))
                return
        if new_style or double_precision:
            encode: Any = self._scalars.tensor
            args: dict[str, Any] = {"tag": tag, "value": value, "step": global_step}
            args["double_precision"] = double_precision
        else:
            encode, args = self._scalars.simple, {"tag": tag, "value": value, "step": global_step}
        self._put("add_scalar", global_step, walltime, encode, args)

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: Mapping[str, Any],
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Log several numbers in one chart: each key becomes a sub-run ``<main_tag>_<key>`` (torch's layout)."""
        _check_tag("add_scalars", main_tag)
        walltime = time.time() if walltime is None else given_time("add_scalars", walltime)
        step = snapshot.step("add_scalars", global_step)
        for key, raw in tag_scalar_dict.items():
            value = snapshot.scalar("add_scalars", raw)
            run = _sub_run("add_scalars", "key", f"{main_tag.replace('/', '_')}_{key}")
            self._put("add_scalars", step, walltime, self._scalars.in_sub_run, {"tag": main_tag, "value": value}, run)

    @_heavy("other")
    def add_tensor(
        self, tag: str, tensor: Any, global_step: int | None = None, walltime: float | None = None
    ) -> _Encoding:
        """Log a raw tensor (no dashboard shows it; readers get the array back)."""
        data = snapshot.array("add_tensor", tensor)
        return _encoding(raw_tensor.tensor_value, tag=tag, array=data)

    # -- images --------------------------------------------------------------------------------------

    def _image(self, method: str, img: Any, dataformats: str, batch_method: str = "") -> np.ndarray | Pending:
        data = snapshot.array(method, img)
        image.check_layout(method, data.shape, dataformats, batch_method)
        image.check_dtype(method, data.dtype)
        return data

    @_heavy("image")
    def add_image(
        self,
        tag: str,
        img_tensor: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "CHW",
    ) -> _Encoding:
        """Log an image: uint8 (0-255), or float or bool (0-1); layout CHW, HWC, HW or any permutation."""
        data = self._image("add_image", img_tensor, dataformats, batch_method="add_images")
        return _encoding(image.image_value, tag=tag, array=data, dataformats=dataformats, max_side=self._max_side)

    @_heavy("image")
    def add_images(
        self,
        tag: str,
        img_tensor: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "NCHW",
    ) -> _Encoding:
        """Log a batch of images as one grid, 8 a row (layout NCHW, NHWC or any permutation)."""
        data = self._image("add_images", img_tensor, dataformats)
        return _encoding(image.image_value, tag=tag, array=data, dataformats=dataformats, max_side=self._max_side)

    @_heavy("image")
    def add_image_with_boxes(
        self,
        tag: str,
        img_tensor: Any,
        box_tensor: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        rescale: float = 1,
        dataformats: str = "CHW",
        labels: Sequence[str] | None = None,
    ) -> _Encoding:
        """Log an image with boxes drawn on it: ``box_tensor`` is (N, 4) pixel ``x1, y1, x2, y2``."""
        data = self._image("add_image_with_boxes", img_tensor, dataformats)
        boxes = snapshot.array("add_image_with_boxes", box_tensor)
        if len(boxes.shape) != 2 or boxes.shape[1] != 4:
            raise ValueError(f"add_image_with_boxes: box_tensor must have shape (N, 4), got {tuple(boxes.shape)}")
        if isinstance(labels, str):
            labels = [labels]  # one label, as torch takes it
        if labels is not None and len(labels) != boxes.shape[0]:
            warn_once(
                ("boxes-labels", tag),
                f"add_image_with_boxes: {tag!r} got {len(labels)} labels for {boxes.shape[0]} boxes; the boxes "
                "are drawn without labels (as torch does): give one label per box",
            )
            labels = None
        return _encoding(
            image.image_value,
            tag=tag,
            array=data,
            dataformats=dataformats,
            boxes=boxes,
            labels=None if labels is None else list(labels),
            rescale=float(rescale),
            max_side=self._max_side,
        )

    @_heavy("image")
    def add_image_grid(
        self,
        tag: str,
        images: Any,
        global_step: int | None = None,
        nrow: int = 8,
        normalize: bool = False,
        value_range: tuple[float, float] | None = None,
        captions: Sequence[str] | None = None,
        padding: int = 2,
        dataformats: str = "auto",
        walltime: float | None = None,
    ) -> _Encoding:
        """Log a batch as one grid, ``nrow`` images a row, ``padding`` pixels apart (no torchvision needed).

        ``images`` is NCHW or NHWC ("auto" tells them apart by where the 1 or 3 channels are), uint8 or
        float in [0, 1]. ``normalize`` stretches ``value_range`` (default: the batch's min and max) to
        [0, 1] first. ``captions`` (one per image) are written under the images.

        Example:
            >>> import tempfile, numpy as np, tbscope
            >>> with tbscope.Writer(tempfile.mkdtemp()) as w:
            ...     w.add_image_grid("val/batch", np.random.rand(16, 3, 32, 32), 0, nrow=4, captions=list("abcd" * 4))
        """
        data = snapshot.array("add_image_grid", images)
        layout = grid.batch_layout(data.shape, dataformats)
        grid.check_batch("add_image_grid", "images", data.shape, layout)
        image.check_dtype("add_image_grid", data.dtype)
        if captions is not None and len(captions) != data.shape[0]:
            raise ValueError(
                f"add_image_grid: got {len(captions)} captions for {data.shape[0]} images; give one per image"
            )
        if nrow < 1 or padding < 0:
            raise ValueError(f"add_image_grid: nrow must be at least 1 and padding not negative, got {nrow}, {padding}")
        return _encoding(
            grid.grid_value,
            tag=tag,
            images=data,
            layout=layout,
            nrow=nrow,
            padding=padding,
            normalize=normalize,
            value_range=value_range,
            captions=None if captions is None else [str(c) for c in captions],
            max_side=self._max_side,
        )

    @_heavy("image")
    def add_image_with_detections(
        self,
        tag: str,
        img_tensor: Any,
        boxes: Any,
        global_step: int | None = None,
        labels: Any = None,
        scores: Any = None,
        class_names: Sequence[str] | None = None,
        box_format: str = "xyxy",
        normalized: bool = False,
        score_threshold: float = 0.0,
        dataformats: str = "CHW",
        walltime: float | None = None,
        target_boxes: Any = None,
        target_labels: Any = None,
    ) -> _Encoding:
        """Log an image with detection boxes, each in its class's colour, named and scored, and with
        ``target_boxes`` the ground truth beside them.

        ``boxes`` is (N, 4) in ``box_format`` ("xyxy", "xywh" or "cxcywh"), in pixels or, with
        ``normalized``, as fractions of the image. ``labels`` (N class ids, named by
        ``class_names``) and ``scores`` (N) are optional; boxes scoring under ``score_threshold``
        are not drawn. ``target_boxes`` (M, 4, the same format) and ``target_labels`` (M) are the
        ground truth: drawn solid, the predictions dashed, with a legend. Labels go outside the boxes
        where they fit; an image under 256 pixels is enlarged (nearest neighbour) so that they fit.
        Boxes outside the image and unknown class ids are errors.

        Example:
            >>> import tempfile, numpy as np, tbscope
            >>> with tbscope.Writer(tempfile.mkdtemp()) as w:
            ...     w.add_image_with_detections("val/detection", np.zeros((3, 48, 48)), [[8, 20, 30, 44]], 0,
            ...                                 labels=[1], scores=[0.87], class_names=["circle", "triangle"],
            ...                                 target_boxes=[[10, 18, 32, 42]], target_labels=[1])
        """
        method = "add_image_with_detections"
        data = self._image(method, img_tensor, dataformats)
        if box_format not in detection.BOX_FORMATS:
            raise ValueError(
                f"{method}: box_format must be one of {', '.join(detection.BOX_FORMATS)}, got {box_format!r}"
            )
        height, width = image.image_size(data.shape, dataformats)
        arrays: dict[str, Any] = {}
        for boxes_name, labels_name, box_value, more in (
            ("boxes", "labels", boxes, {"labels": labels, "scores": scores}),
            ("target_boxes", "target_labels", target_boxes, {"target_labels": target_labels}),
        ):
            if box_value is None and boxes_name == "target_boxes":
                continue
            box_array = snapshot.array(method, box_value)
            if len(box_array.shape) != 2 or box_array.shape[1] != 4:
                raise ValueError(f"{method}: {boxes_name} must have shape (N, 4), got {tuple(box_array.shape)}")
            arrays[boxes_name] = box_array
            for name, value in more.items():
                if value is None:
                    continue
                arrays[name] = snapshot.array(method, value)
                if int(np.prod(arrays[name].shape)) != box_array.shape[0]:
                    raise ValueError(
                        f"{method}: {name} has shape {tuple(arrays[name].shape)} for {box_array.shape[0]} boxes"
                    )
            if not isinstance(box_array, Pending):
                detection.check_boxes(box_array, box_format, normalized, width, height, boxes_name)
            if labels_name in arrays and not isinstance(arrays[labels_name], Pending):
                drawing.check_class_ids(method, labels_name, arrays[labels_name], class_names)
        return _encoding(
            detection.detections_value,
            tag=tag,
            image=data,
            dataformats=dataformats,
            boxes=arrays["boxes"],
            labels=arrays.get("labels"),
            scores=arrays.get("scores"),
            class_names=None if class_names is None else list(class_names),
            box_format=box_format,
            normalized=normalized,
            score_threshold=float(score_threshold),
            max_side=self._max_side,
            target_boxes=arrays.get("target_boxes"),
            target_labels=arrays.get("target_labels"),
        )

    @_heavy("image")
    def add_image_with_mask(
        self,
        tag: str,
        img_tensor: Any,
        mask: Any,
        global_step: int | None = None,
        class_names: Sequence[str] | None = None,
        alpha: float = 0.5,
        target: Any = None,
        dataformats: str = "CHW",
        walltime: float | None = None,
    ) -> _Encoding:
        """Log an image with a segmentation mask overlaid, and a legend of its classes.

        ``mask`` is (H, W) class ids (0 is background, left clear) or (K, H, W) per-class scores
        (their argmax is drawn). With ``target`` (the ground truth, the same way), the picture shows
        target and prediction side by side. ``alpha`` is the colours' opacity.
        """
        method = "add_image_with_mask"
        data = self._image(method, img_tensor, dataformats)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"{method}: alpha must be in [0, 1], got {alpha}")
        height, width = image.image_size(data.shape, dataformats)
        masks = {"mask": snapshot.array(method, mask)}
        if target is not None:
            masks["target"] = snapshot.array(method, target)
        for name, value in masks.items():
            if len(value.shape) not in (2, 3) or tuple(value.shape[-2:]) != (height, width):
                raise ValueError(
                    f"{method}: {name} must be (H, W) class ids or (K, H, W) scores for an image of "
                    f"{height}x{width}, got shape {tuple(value.shape)}"
                )
            if len(value.shape) == 2 and value.dtype.kind not in "iub":
                raise TypeError(f"{method}: a (H, W) {name} holds integer class ids, got {value.dtype}")
            if len(value.shape) == 2 and not isinstance(value, Pending):
                drawing.check_class_ids(method, name, value, class_names)
        return _encoding(
            segmentation.mask_value,
            tag=tag,
            image=data,
            dataformats=dataformats,
            mask=masks["mask"],
            target=masks.get("target"),
            class_names=None if class_names is None else list(class_names),
            alpha=float(alpha),
            max_side=self._max_side,
        )

    @_heavy("image")
    def add_confusion_matrix(
        self,
        tag: str,
        y_true: Any,
        y_pred: Any,
        class_names: Sequence[str],
        global_step: int | None = None,
        normalize: str | None = None,
        walltime: float | None = None,
    ) -> _Encoding:
        """Log the confusion matrix of class ids ``y_true`` against ``y_pred`` as a picture.

        Rows are true classes, columns predicted ones. ``normalize``: None (counts), "true" (each
        row sums to 1: recall per class) or "pred" (each column sums to 1: precision per class).
        """
        method = "add_confusion_matrix"
        if normalize not in (None, "true", "pred"):
            raise ValueError(f"{method}: normalize must be None, 'true' or 'pred', got {normalize!r}")
        if not class_names:
            raise ValueError(f"{method}: class_names must name at least one class")
        truth, predicted = snapshot.array(method, y_true), snapshot.array(method, y_pred)
        confusion.check_same_length(method, y_true=truth, y_pred=predicted)
        for name, ids in (("y_true", truth), ("y_pred", predicted)):
            if ids.dtype.kind not in "iub":
                raise TypeError(f"{method}: {name} holds class ids (integers), got {ids.dtype}")
            if not isinstance(ids, Pending):
                drawing.check_class_ids(method, name, ids, class_names)
        return _encoding(
            confusion.confusion_value,
            tag=tag,
            y_true=truth,
            y_pred=predicted,
            class_names=[str(c) for c in class_names],
            normalize=normalize,
        )

    @_heavy("other")
    def add_pr_curves(
        self,
        tag: str,
        labels: Any,
        probabilities: Any,
        global_step: int | None = None,
        class_names: Sequence[str] | None = None,
        num_thresholds: int = 127,
        walltime: float | None = None,
    ) -> _Encoding:
        """Log one PR curve per class, ``<tag>/<class name>``, from class ids and (N, K) probabilities, and
        as scalars each class's average precision, ``<tag>/AP/<class name>``, and their mean over the
        classes present in ``labels``, ``<tag>/mAP``.

        Example:
            >>> import tempfile, numpy as np, tbscope
            >>> with tbscope.Writer(tempfile.mkdtemp()) as w:
            ...     w.add_pr_curves("val/pr", [0, 1, 1], np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), 0,
            ...                     class_names=["cat", "dog"])
        """
        method = "add_pr_curves"
        ids, scores = snapshot.array(method, labels), snapshot.array(method, probabilities)
        if len(scores.shape) != 2 or int(np.prod(ids.shape)) != scores.shape[0] or scores.shape[0] == 0:
            raise ValueError(
                f"{method}: probabilities must be (N, K) for N labels, got labels {tuple(ids.shape)} and "
                f"probabilities {tuple(scores.shape)}"
            )
        names = list(class_names) if class_names is not None else [str(k) for k in range(scores.shape[1])]
        if len(names) != scores.shape[1]:
            raise ValueError(f"{method}: {len(names)} class_names for {scores.shape[1]} columns of probabilities")
        if not 2 <= num_thresholds <= 127:
            raise ValueError(f"{method}: num_thresholds must be in 2..127, got {num_thresholds}")
        if not isinstance(ids, Pending):
            drawing.check_class_ids(method, "labels", ids, names)
        return _encoding(
            self._scalars.pr_curves,
            step=snapshot.step(method, global_step),
            tag=tag,
            labels=ids,
            probabilities=scores,
            class_names=names,
            num_thresholds=num_thresholds,
        )

    @_heavy("image", on_skip=_close_figures)
    def add_figure(
        self,
        tag: str,
        figure: Any,
        global_step: int | None = None,
        close: bool = True,
        walltime: float | None = None,
    ) -> _Encoding:
        """Log a matplotlib figure (or a list of them, as a grid) as an image; closes it by default.

        The figure is rendered before this returns (matplotlib is not thread-safe); its PNG
        encoding happens in the background.
        """
        if isinstance(figure, list):
            pixels = np.stack(_same_size([render_figure(fig, close) for fig in figure]))
            layout = "NHWC"
        else:
            pixels, layout = render_figure(figure, close), "HWC"
        return _encoding(image.image_value, tag=tag, array=pixels, dataformats=layout)

    @_heavy("image")
    def add_video(
        self,
        tag: str,
        vid_tensor: Any,
        global_step: int | None = None,
        fps: float = 4,
        walltime: float | None = None,
    ) -> _Encoding:
        """Log a batch of clips, (N, T, C, H, W) uint8 or float in [0, 1], as an animated GIF."""
        _check_positive("add_video", "fps", fps)
        data = snapshot.array("add_video", vid_tensor)
        video.check_shape(tuple(data.shape))
        image.check_dtype("add_video", data.dtype)
        return _encoding(video.video_value, tag=tag, clips=data, fps=float(fps))

    @_heavy("audio")
    def add_audio(
        self,
        tag: str,
        snd_tensor: Any,
        global_step: int | None = None,
        sample_rate: int = 44100,
        walltime: float | None = None,
    ) -> _Encoding:
        """Log a sound clip: samples in [-1, 1], shape (L,) or (1, L) mono, or (C, L)."""
        _check_positive("add_audio", "sample_rate", sample_rate)
        data = snapshot.array("add_audio", snd_tensor)
        if len(data.shape) not in (1, 2) or 0 in data.shape:
            raise ValueError(f"add_audio: expected shape (L,) or (C, L), got {tuple(data.shape)}")
        return _encoding(audio.audio_value, tag=tag, samples=data, sample_rate=int(sample_rate))

    # -- distributions -------------------------------------------------------------------------------

    @_heavy("histogram")
    def add_histogram(
        self,
        tag: str,
        values: Any,
        global_step: int | None = None,
        bins: histogram.Bins = "tensorflow",
        walltime: float | None = None,
        max_bins: int | None = None,
    ) -> _Encoding:
        """Log the distribution of ``values`` (any shape); binned in the background.

        ``bins`` as in torch: "tensorflow" (default), a NumPy bin name, a count or the edges.
        NaN and Inf values are left out of the histogram, with one warning per tag. A CUDA tensor
        is binned on its device ("tensorflow" or a number of bins): only the bins reach the host.
        """
        histogram.check_bins(bins, max_bins)
        if snapshot.is_cuda(values) and (bins == "tensorflow" or type(bins) is int):
            if values.numel() == 0:
                raise ValueError(f"add_histogram: values is empty, shape {tuple(values.shape)}")
            packed = snapshot.array("add_histogram", histogram.device_bins(values, bins))  # type: ignore[arg-type]
            return _encoding(_histogram, tag=tag, data=packed, bins=bins, max_bins=max_bins, binned_on_device=True)
        data = snapshot.array("add_histogram", values)
        if 0 in data.shape:
            raise ValueError(f"add_histogram: values is empty, shape {tuple(data.shape)}")
        return _encoding(_histogram, tag=tag, data=data, bins=bins, max_bins=max_bins)

    @_heavy("histogram")
    def add_histogram_raw(
        self,
        tag: str,
        min: float,
        max: float,
        num: int,
        sum: float,
        sum_squares: float,
        bucket_limits: Sequence[float],
        bucket_counts: Sequence[float],
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> _Encoding:
        """Log a histogram computed elsewhere: bucket right edges and the count in each bucket."""
        limits = [float(x) for x in np.asarray(bucket_limits).reshape(-1)]
        counts = [float(x) for x in np.asarray(bucket_counts).reshape(-1)]
        if len(limits) != len(counts):
            raise ValueError(
                f"add_histogram_raw: {len(limits)} bucket_limits but {len(counts)} bucket_counts; "
                "give one limit per bucket"
            )
        return _encoding(
            histogram.histogram_raw_value,
            tag=tag,
            min=float(min),
            max=float(max),
            num=int(num),
            sum=float(sum),
            sum_squares=float(sum_squares),
            bucket_limits=limits,
            bucket_counts=counts,
        )

    @_heavy("other")
    def add_pr_curve(
        self,
        tag: str,
        labels: Any,
        predictions: Any,
        global_step: int | None = None,
        num_thresholds: int = 127,
        weights: Any = None,
        walltime: float | None = None,
    ) -> _Encoding:
        """Log a precision-recall curve of binary ``labels`` against ``predictions`` in [0, 1]."""
        if not 2 <= num_thresholds <= 127:
            raise ValueError(f"add_pr_curve: num_thresholds must be in 2..127, got {num_thresholds}")
        truth = snapshot.array("add_pr_curve", labels)
        scores = snapshot.array("add_pr_curve", predictions)
        parts = [truth, scores] + ([] if weights is None else [snapshot.array("add_pr_curve", weights)])
        sizes = {int(np.prod(p.shape)) for p in parts}
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError(
                "add_pr_curve: labels, predictions (and weights) must have the same, non-zero number "
                f"of elements, got shapes {[tuple(p.shape) for p in parts]}"
            )
        return _encoding(
            pr_curve.pr_curve_value,
            tag=tag,
            labels=truth,
            predictions=scores,
            num_thresholds=num_thresholds,
            weights=parts[2] if weights is not None else None,
        )

    @_heavy("other")
    def add_pr_curve_raw(
        self,
        tag: str,
        true_positive_counts: Any,
        false_positive_counts: Any,
        true_negative_counts: Any,
        false_negative_counts: Any,
        precision: Any,
        recall: Any,
        global_step: int | None = None,
        num_thresholds: int = 127,
        weights: Any = None,
        walltime: float | None = None,
    ) -> _Encoding:
        """Log a PR curve from counts per threshold (each of length ``num_thresholds``; arrays of
        another, common length are taken as they are, with one warning, as torch takes them)."""
        arrays = (true_positive_counts, false_positive_counts, true_negative_counts,
                  false_negative_counts, precision, recall)  # fmt: skip
        parts = [snapshot.array("add_pr_curve_raw", a) for a in arrays]
        sizes = {int(np.prod(p.shape)) for p in parts}
        if len(sizes) != 1 or 0 in sizes:
            shapes = ", ".join(str(tuple(p.shape)) for p in parts)
            raise ValueError(
                f"add_pr_curve_raw: the six arrays must have one, non-zero number of elements, got {shapes}"
            )
        (size,) = sizes
        if size != num_thresholds:
            warn_once(
                ("pr-thresholds", tag),
                f"add_pr_curve_raw: {tag!r} has arrays of {size} thresholds, not num_thresholds={num_thresholds}; "
                f"it is logged with {size} (as torch does)",
            )
            num_thresholds = size
        true_positives, false_positives, true_negatives, false_negatives, precision_, recall_ = parts
        return _encoding(
            pr_curve.pr_curve_raw_value,
            tag=tag,
            true_positives=true_positives,
            false_positives=false_positives,
            true_negatives=true_negatives,
            false_negatives=false_negatives,
            precision=precision_,
            recall=recall_,
            num_thresholds=num_thresholds,
        )

    def add_deferred(
        self, encode: Callable[..., Any], global_step: int | None = None, walltime: float | None = None, **args: Any
    ) -> None:
        """Log what ``encode(**args)`` returns, computed on the writer's background thread: a
        ``Summary.Value``, a list of them, or None. Tensors and arrays among ``args`` are snapshotted
        now (a CUDA tensor by an asynchronous copy: no sync) and reach ``encode`` as NumPy arrays;
        other arguments are passed as they are. For values gathered on the device and copied once
        (``watch`` packs a step's statistics of every layer into one tensor this way). An ``encode``
        that raises is reported like any value that could not be logged.

        Example:
            >>> import tempfile, torch, tbscope
            >>> from tbscope.summaries.scalar import simple_value
            >>> def mean_of(values):
            ...     return simple_value("val/mean", float(values.mean()))
            >>> with tbscope.Writer(tempfile.mkdtemp()) as w:
            ...     w.add_deferred(mean_of, 0, values=torch.arange(4.0))
        """
        if not callable(encode):
            raise TypeError(f"add_deferred: encode must be a callable, got {type(encode).__name__} {encode!r}")
        tensor_cls = snapshot.tensor_type()
        taken = {
            name: snapshot.array("add_deferred", value)
            if isinstance(value, np.ndarray) or (tensor_cls is not None and isinstance(value, tensor_cls))
            else value
            for name, value in args.items()
        }
        heavy = any(type(value) in (np.ndarray, Pending) for value in taken.values())
        self._put("add_deferred", global_step, walltime, encode, taken, heavy=heavy)

    # -- text, structure, 3D -------------------------------------------------------------------------

    def add_text(
        self, tag: str, text_string: str, global_step: int | None = None, walltime: float | None = None
    ) -> None:
        """Log a string; TensorBoard renders it as Markdown."""
        _check_tag("add_text", tag)
        if not isinstance(text_string, str):
            raise TypeError(f"add_text: text_string must be a str, got {type(text_string).__name__}")
        args = {"tag": tag, "text": text_string}
        self._put("add_text", global_step, walltime, text.text_value, args, nbytes=len(text_string) + _SCALAR_BYTES)

    @_heavy("other")
    def add_mesh(
        self,
        tag: str,
        vertices: Any,
        colors: Any = None,
        faces: Any = None,
        config_dict: Mapping[str, Any] | None = None,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> _Encoding:
        """Log a mesh or point cloud: vertices (B, N, 3) float, colors (B, N, 3) uint8, faces (B, F, 3) int."""
        parts = [None if a is None else snapshot.array("add_mesh", a) for a in (vertices, colors, faces)]
        mesh.check_shapes(
            vertices=tuple(parts[0].shape),  # type: ignore[union-attr]
            colors=None if parts[1] is None else tuple(parts[1].shape),
            faces=None if parts[2] is None else tuple(parts[2].shape),
        )
        return _encoding(
            mesh.mesh_values,
            tag=tag,
            vertices=parts[0],
            colors=parts[1],
            faces=parts[2],
            config=dict(config_dict) if config_dict else None,
        )

    @_heavy("embedding")
    def add_embedding(
        self,
        mat: Any,
        metadata: Sequence[Any] | None = None,
        label_img: Any = None,
        global_step: int | None = None,
        tag: str = "default",
        metadata_header: Sequence[str] | None = None,
    ) -> _Encoding:
        """Log vectors (N, D) for the Projector, with per-row labels and thumbnails.

        ``metadata`` is one label per row, or one list per row with ``metadata_header`` naming the
        columns. ``label_img`` (N, C, H, W) makes the sprite; a sprite over the Projector's
        8192x8192 limit is shrunk, with a warning. The Projector config already in the run is
        kept: this embedding is added to it.
        """
        data = snapshot.array("add_embedding", mat)
        images = None if label_img is None else snapshot.array("add_embedding", label_img)
        rows = None if metadata is None else [list(r) if metadata_header is not None else r for r in metadata]
        embedding.check_inputs(
            tuple(data.shape), rows, metadata_header, None if images is None else tuple(images.shape)
        )
        step = snapshot.step("add_embedding", global_step)
        return _encoding(
            embedding.write_embedding,
            log_dir=self._dir,
            subdir=f"{step:05d}/{urllib.parse.quote(tag, safe='')}",
            tensor_name=f"{tag}:{step:05d}",
            mat=data,
            metadata=rows,
            metadata_header=None if metadata_header is None else list(metadata_header),
            label_img=images,
        )

    def add_graph(
        self, model: Any, input_to_model: Any = None, verbose: bool = False, use_strict_trace: bool = True
    ) -> None:
        """Log the graph of ``model`` traced on ``input_to_model`` (a tensor or a tuple of them).

        The model runs once, here, in eval mode (each module's mode is restored). A model that
        cannot be traced gets a warning naming the model and the reason, and training goes on
        (``strict`` writers raise ``GraphError``). ``verbose`` prints the traced graph.
        """
        if not callable(model):
            raise TypeError(f"add_graph: model must be a torch.nn.Module, got {type(model).__name__} {model!r}")
        try:
            traced, classes = graph.trace(model, input_to_model, use_strict_trace)
        except graph.GraphError as err:
            if self.strict:
                raise
            warn_once(("graph", str(err)), f"tbscope: {err}; no graph was logged, training goes on")
            return
        if verbose:
            print(traced)
        self._put("add_graph", 0, None, graph.graph_event, {"graph": traced, "classes": classes})

    def add_onnx_graph(self, prototxt: str) -> None:
        """Log the graph of the ONNX model file ``prototxt`` (its path, as torch names it); needs ``onnx``."""
        path = str(prototxt)
        if not Path(path).is_file():
            raise FileNotFoundError(f"add_onnx_graph: no ONNX model file at {path!r}")
        self._put("add_onnx_graph", 0, None, graph.onnx_graph_event, {"path": path})

    def watch(
        self,
        model: Any,
        cadence: Cadence | Spaced | None = None,
        norms: bool = True,
        histograms: bool = True,
        update_ratio: bool = True,
        activations: bool = False,
    ) -> Any:
        """Watch a model's health: per-layer weight norm, gradient norm and update-to-weight ratio, and
        histograms of weights and gradients (with ``activations``, of each leaf module's output too).

        Statistics are taken at the end of each backward pass whose step (backward passes counted
        from 0) the ``cadence`` keeps: by default the writer's cadence, else every 10 steps up to 100
        and every 100 after. They are computed on the model's device in batched operations and copied
        once per logged step, without a host-device sync; histograms are binned on the device and only
        the bins travel. NaN or Inf in a layer's weights or gradients is reported once, naming the layer
        and the step, and written as text in the run. Returns the ``Watch``; ``unwatch()`` removes it.

        Example:
            >>> import tempfile, torch, tbscope
            >>> model = torch.nn.Linear(4, 2)
            >>> with tbscope.Writer(tempfile.mkdtemp()) as w:
            ...     watch = w.watch(model)
            ...     for step in range(3):
            ...         model(torch.randn(8, 4)).sum().backward()
            ...     w.unwatch()
            >>> watch.step
            3
        """
        from tbscope.watch import DEFAULT_CADENCE, Watch

        watched = Watch(
            self, model, cadence or self.cadence or DEFAULT_CADENCE, norms, histograms, update_ratio, activations
        )
        self._watches.append(watched)
        return watched

    def unwatch(self, model: Any = None) -> None:
        """Stop watching ``model`` (every watched model when None): every hook is removed."""
        for watched in [w for w in self._watches if model is None or w.model is model]:
            watched.remove()
            self._watches.remove(watched)

    def add_custom_scalars(self, layout: custom_scalars.Layout) -> None:
        """Lay out the Custom Scalars dashboard: ``{category: {title: ["Multiline", [tags]]}}``.

        Charts of successive calls are merged (torch keeps only the last call's).
        """
        custom_scalars.check_layout(layout)
        for category, charts in layout.items():
            self._layout.setdefault(category, {}).update({title: list(chart) for title, chart in charts.items()})
        merged = {category: dict(charts) for category, charts in self._layout.items()}
        self._put("add_custom_scalars", 0, None, custom_scalars.layout_value, {"layout": merged})

    def add_custom_scalars_multilinechart(
        self, tags: Sequence[str], category: str = "default", title: str = "untitled"
    ) -> None:
        """One chart plotting every tag matching ``tags`` (regular expressions)."""
        self.add_custom_scalars({category: {title: ["Multiline", list(tags)]}})

    def add_custom_scalars_marginchart(
        self, tags: Sequence[str], category: str = "default", title: str = "untitled"
    ) -> None:
        """One chart of a value between a lower and an upper bound: ``tags`` is [value, lower, upper]."""
        self.add_custom_scalars({category: {title: ["Margin", list(tags)]}})

    # -- hyperparameters -----------------------------------------------------------------------------

    def add_hparams(
        self,
        hparam_dict: Mapping[str, Any],
        metric_dict: Mapping[str, Any],
        hparam_domain_discrete: Mapping[str, Sequence[Any]] | None = None,
        run_name: str | None = None,
        global_step: int | None = None,
        *,
        name: str | None = None,
    ) -> None:
        """Record this run's hyperparameters and metrics for the HParams dashboard.

        Unlike torch, the first call goes into this run's own event file, so that the metrics the
        run logs as it trains show beside its hyperparameters; a later call with other
        hyperparameters (torch's loop over trials) is a session of its own in a sub-run named as
        torch names it, and ``run_name`` (tensorboardX: ``name``) names one. Nested dicts are
        flattened with "/", bools stay bools, lists and other values are shown as text and None is
        left out. The metrics are logged as scalars at ``global_step`` and may be logged again
        later: the dashboard shows their last value. The session's status is recorded when the
        writer closes: a failure if it is closed by an exception (or the process dies of one or of
        SIGTERM), a success otherwise. ``hparam_domain_discrete`` is accepted for compatibility:
        TensorBoard derives each domain from the values of all runs.
        """
        if not isinstance(hparam_dict, Mapping) or not isinstance(metric_dict, Mapping):
            raise TypeError("add_hparams: hparam_dict and metric_dict must be dicts")
        run_name = run_name or name  # ``name`` is tensorboardX's word for it
        flat = hparams.flatten(hparam_dict)
        trial = tuple(sorted(flat.items(), key=lambda item: item[0]))
        if run_name:
            run = _sub_run("add_hparams", "run_name", run_name)
        elif self._hparams_runs.get("", trial) == trial:
            run = ""  # the run's own session
        else:  # another trial logged from this writer (torch's loop): a session of its own, as torch names it
            run = next((r for r, t in self._hparams_runs.items() if t == trial and r), None) or str(time.time())
        if self._hparams_runs.get(run) != trial:
            start = {"hparams": flat, "start_time_secs": time.time()}
            self._put("add_hparams", 0, None, hparams.session_start_value, start, run, _SCALAR_BYTES * (1 + len(flat)))
            self._hparams_runs[run] = trial
        step = snapshot.step("add_hparams", global_step)
        for key, raw in metric_dict.items():
            value = snapshot.scalar("add_hparams", raw)
            if run:
                self._put("add_hparams", step, None, self._scalars.in_sub_run, {"tag": key, "value": value}, run)
            else:
                self._put("add_hparams", step, None, self._scalars.simple, {"tag": key, "value": value, "step": step})

    # -- lifecycle -----------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything logged so far to disk; returns once it is there."""
        if self._pipeline is not None:
            self._pipeline.flush()
            if self._upload is not None:
                self._upload.kick()
            if self._on_flushed is not None:
                self._on_flushed()

    def close(self, status: str = "finished") -> None:
        """Write everything and close the files. ``status`` ("finished", "failed" or "interrupted")
        ends the HParams session. Logging again afterwards opens a new event file, as torch does."""
        if status not in hparams.STATUSES or status == "running":
            raise ValueError(f"close: status must be finished, failed or interrupted, got {status!r}")
        pipeline = self._pipeline
        if pipeline is None:
            if self._closing is not None:  # a close interrupted (by SIGTERM): wait for the same work
                self._closing.close()
            self._end_upload()
            return
        self._pipeline = self.file_writer = None
        if pipeline.forked:  # the parent's, in a forked child that logged nothing: the parent ends it
            return
        self._closing = pipeline
        for run in sorted(self._hparams_runs):  # past the memory bound too: a run's end is never dropped
            end = {"status": status, "end_time_secs": time.time()}
            pipeline.put(Item(run, 0, time.time(), hparams.session_end_value, end, False, 0), bounded=False)
        self._hparams_runs.clear()
        pipeline.close()
        self._lost.update(pipeline.losses())
        self._closing = None
        self._end_upload()

    def _end_upload(self) -> None:
        """Send what the spool holds, if this writer made it (a URL log_dir), and let it go."""
        if self._upload is not None and self._url is not None:
            self._upload.close()  # a second call (a SIGTERM during close) waits for the same rounds
            self._upload = None

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(end_status(exc_type))


class NullWriter(Writer):
    """What a rank other than 0 of a distributed job logs to by default (see ``tbscope.init``): every
    public method of ``Writer``, doing nothing, so that the same training code runs on every rank for free."""

    def __init__(self, log_dir: str | Path) -> None:  # no pipeline, no file: nothing to set up
        self.log_dir, self.file_writer, self.budget, self.cadence = str(log_dir), None, None, None


def _nothing(*args: Any, **kwargs: Any) -> None:
    """A ``NullWriter`` method."""


for _name in dir(Writer):
    if not _name.startswith("_") and callable(getattr(Writer, _name)) and _name != "get_logdir":
        setattr(NullWriter, _name, _nothing)


def _same_size(images: list[np.ndarray]) -> list[np.ndarray]:
    """Pad images to the largest height and width (white), so figures of any size form a grid."""
    height = max(i.shape[0] for i in images)
    width = max(i.shape[1] for i in images)
    return [np.pad(i, ((0, height - i.shape[0]), (0, width - i.shape[1]), (0, 0)), constant_values=255) for i in images]
