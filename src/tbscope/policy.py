"""Policies: small frozen values that decide, before any work is done, whether a call is logged.

``Spaced`` (the default of ``tbscope.init`` runs) and ``Cadence`` thin heavy data by step, the same way in
every run, so that runs compared side by side show the same steps. ``Budget`` caps what a run may hold. A
plain ``Writer`` has neither (it is a drop-in for torch's); ``tbscope.init`` runs get ``Spaced()`` and
``Budget()``.

Nothing is skipped in silence: a tag's first call is always logged; each later call the cadence or a budget
drops is counted (``Gate.skipped``: run.json's ``skipped``, ``tbscope ls`` and ``tbscope du`` show it), and
the first one of each tag is warned about, saying how to log more.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Cadence:
    """Which steps heavy data (images, figures, histograms, embeddings, audio, video) is logged at.

    A step is kept when it is a multiple of ``every``, or, while ``step < dense_until``, a multiple
    of ``dense_every``: dense early, when things change fast, sparse later. The default keeps steps
    0, 100, ..., 900, then 1000, 2000, ...: 109 images a tag over a 100,000-step run that logs one
    every step. Calls at other steps return at once, before any copy, rendering or device work.

    Example:
        >>> cadence = Cadence(every=1000, dense_until=1000, dense_every=100)
        >>> [s for s in range(0, 3001, 50) if cadence.keeps(s)]
        [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 2000, 3000]
    """

    every: int = 1000
    dense_until: int = 1000
    dense_every: int = 100

    def __post_init__(self) -> None:
        if self.every < 1 or self.dense_every < 1 or self.dense_until < 0:
            raise ValueError(
                f"Cadence: every and dense_every must be at least 1 and dense_until not negative, got {self}"
            )

    def keeps(self, step: int, last: int | None = None) -> bool:
        """Whether heavy data logged at ``step`` is kept (``last``, the tag's last kept step, is not needed)."""
        return step % self.every == 0 or (step < self.dense_until and step % self.dense_every == 0)


@dataclass(frozen=True)
class Spaced:
    """Heavy data spaced out as a run grows: a tag's call is kept when at least ``fraction`` of its step
    has passed since the tag's last kept call (and at least one step). The default of ``tbscope.init``.

    Whatever steps the calls come at, a short run keeps them all (a grid every epoch, or every 10 steps,
    of a run of a few hundred steps), and a long one keeps at most about ``(1 + ln(fraction * steps)) /
    fraction`` a tag, denser early, when things change fast: of a 1,000,000-step run, 520 of a grid logged
    every step, 180 of one logged every 1,000 steps. Runs that log at the same steps keep the same steps.

    Example:
        >>> spaced, last, kept = Spaced(fraction=0.25), None, []
        >>> for step in range(0, 40, 2):
        ...     if spaced.keeps(step, last):
        ...         last = step
        ...         kept.append(step)
        >>> kept
        [0, 2, 4, 6, 8, 12, 16, 22, 30]
    """

    fraction: float = 0.02

    def __post_init__(self) -> None:
        if not 0 <= self.fraction < 1:
            raise ValueError(f"Spaced: fraction must be at least 0 and below 1, got {self.fraction!r}")

    def keeps(self, step: int, last: int | None = None) -> bool:
        """Whether a tag's call at ``step`` is kept, ``last`` being the tag's last kept step (None: none yet)."""
        return last is None or step - last >= max(1.0, self.fraction * step)


@dataclass(frozen=True)
class Budget:
    """What a run may hold. Past a limit, the heavy data it concerns stops being logged, with one
    warning; scalars and text always go on.

    - ``max_run_bytes``: the size of the run's directory past which heavy data (images, histograms,
      embeddings, audio, video, meshes, PR curves, raw tensors) stops, with a text note in the run
      (tag ``tbscope/budget``) saying when and why. Default 1 GiB: a laptop holds hundreds of runs.
    - ``max_images_per_tag`` and ``max_histograms_per_tag``: the first N calls of a tag that pass the
      cadence are kept, later ones dropped (default 1000 each).
    - ``max_image_side``: images (grids included) larger than this on either side are downscaled,
      keeping their aspect ratio, before they are encoded (default 1024 pixels).

    ``None`` means no limit, for each of them.

    Example:
        >>> Budget(max_run_bytes=200 * 2**20).max_run_bytes
        209715200
    """

    max_run_bytes: int | None = 1 << 30
    max_images_per_tag: int | None = 1000
    max_histograms_per_tag: int | None = 1000
    max_image_side: int | None = 1024

    def __post_init__(self) -> None:
        for name in ("max_run_bytes", "max_images_per_tag", "max_histograms_per_tag", "max_image_side"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"Budget: {name} must be positive or None, got {value}")


class Gate:
    """The one gate every heavy write passes, the writer's methods and ``watch`` alike: a call is dropped
    when the cadence skips its step (never a tag's first call), when its tag has had its budget of images
    or histograms, or once the run's bytes are past ``max_run_bytes``. Nothing is copied or computed for a
    dropped call; ``skipped`` counts them by tag, and the cadence's first skip of a tag is warned about.

    ``used_bytes`` says how many bytes the run holds now; ``on_spent(method, step, message)`` is called
    once, when the run's byte budget is first found spent (the writer warns and notes it in the run).

    Example:
        >>> import warnings; warnings.simplefilter("ignore")
        >>> gate = Gate(Cadence(every=10, dense_until=0), Budget(max_histograms_per_tag=2), lambda: 0, print)
        >>> [step for step in range(3, 50) if not gate.skips("add_histogram", "histogram", "w", step)]
        [3, 10]
        >>> gate.skipped
        {'w': 45}
    """

    def __init__(
        self,
        cadence: Cadence | Spaced | None,
        budget: Budget | None,
        used_bytes: Callable[[], int],
        on_spent: Callable[[str, int, str], None],
    ) -> None:
        self.cadence, self.budget = cadence, budget
        self._used_bytes, self._on_spent = used_bytes, on_spent
        self._kept: dict[str, int] = {}
        self._last: dict[str, int] = {}  # a tag's last step the cadence kept
        self.skipped: dict[str, int] = {}  # calls dropped, by tag
        self._spent = False

    def skips(self, method: str, kind: str, tag: str, step: int) -> bool:
        """Whether a heavy call of ``kind`` ("image", "histogram", "embedding", "audio": the cadence
        applies; "other": the budget alone) at ``step`` is dropped; counted if so."""
        cadence = self.cadence
        if kind != "other" and cadence is not None:
            last = self._last.get(tag)
            if last is not None and not cadence.keeps(step, last):
                self._skip(tag)
                if self.skipped[tag] == 1:
                    warnings.warn(
                        f"tbscope: {method} {tag!r} at step {step} is not logged: the cadence ({cadence}) keeps "
                        f"the steps after {last} it spaces out. Calls not logged are counted (run.json's "
                        "'skipped', tbscope ls, tbscope du). To log more, pass a denser cadence to tbscope.init or "
                        "Writer: cadence=tbscope.Spaced(fraction=0) keeps every call, "
                        "tbscope.Cadence(every=N, dense_until=0) every N-th step",
                        RuntimeWarning,
                        stacklevel=4,  # at the writer's add_* call
                    )
                return True
            self._last[tag] = step
        return not self.admits(method, kind, tag, step)

    def _skip(self, tag: str) -> None:
        self.skipped[tag] = self.skipped.get(tag, 0) + 1

    def admits(self, method: str, kind: str, tag: str, step: int) -> bool:
        """Whether the budget lets one more item of ``kind`` under ``tag`` in; counts it if so. For a
        caller that keeps a cadence of its own (``watch``)."""
        budget = self.budget
        if budget is None:
            return True
        cap = {"image": budget.max_images_per_tag, "histogram": budget.max_histograms_per_tag}.get(kind)
        if cap is not None:
            seen = self._kept.get(tag, 0)
            if seen >= cap:
                if seen == cap:  # the first call past the cap says so, once
                    self._kept[tag] = seen + 1
                    warnings.warn(
                        f"tbscope: {tag!r} has {cap} {kind}s, its budget (Budget.max_{kind}s_per_tag): later ones "
                        f"are not logged, from step {step} on",
                        RuntimeWarning,
                        stacklevel=5,  # at the writer's add_* call
                    )
                self._skip(tag)
                return False
            self._kept[tag] = seen + 1
        if self._over_bytes(method, step):
            self._skip(tag)
            return False
        return True

    def _over_bytes(self, method: str, step: int) -> bool:
        limit = self.budget.max_run_bytes if self.budget is not None else None
        if limit is None:
            return False
        if self._spent:
            return True
        used = self._used_bytes()
        if used <= limit:
            return False
        self._spent = True
        self._on_spent(
            method,
            step,
            f"tbscope: the run holds {used:,} bytes, over its budget of {limit:,} (Budget.max_run_bytes): "
            f"from {method} at step {step} on, images, histograms, embeddings, audio, video, meshes, PR curves "
            "and raw tensors are no longer logged. Scalars and text go on.",
        )
        return True
