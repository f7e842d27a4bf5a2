"""The demo's training script: a small CNN learns to tell shapes apart, and logs everything on the way.

Run it with ``tbscope demo`` (or ``make demo``): a sweep of three runs over the peak learning rate of a
one-cycle schedule (``max_lr``, the top of the ``train/lr`` curve), in ``runs/shapes-cnn/<n>-max_lr-<lr>/``.
The model tells the shape's class and puts a box around it: ``val/detection`` draws its box (dashed) over
the true one (solid), ``val/masks`` the box filled, beside the true mask.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import tbscope
from tbscope.demo.data import CLASS_NAMES, make_shapes


@dataclass(frozen=True)
class DemoConfig:
    """What the demo trains, and for how long: the run's hyperparameters."""

    epochs: int = 6
    max_seconds: float = 60.0  # a run stops after the epoch that passes this
    batch_size: int = 64
    max_lr: float = 0.1  # the peak of the one-cycle schedule: train/lr rises to it, then falls
    momentum: float = 0.9
    width: int = 8
    train_images: int = 2048
    val_images: int = 256
    image_size: int = 32
    seed: int = 0


# The peak learning rates of the demo's sweep, each trained with every seed in SEEDS: a group of runs per
# learning rate, so that `tbscope compare`, the Groups tab and the report show a mean, a band and whether
# the best learning rate's lead is real.
SWEEP = (0.03, 0.1, 0.3)
SEEDS = (0, 1)


def build_model(width: int, classes: int) -> nn.Module:
    """A small CNN: three conv blocks, global pooling and a linear head, each part named, so that
    ``watch`` and the Graphs dashboard say ``features.block1.conv.weight`` rather than ``0.0.weight``. The
    head gives ``classes`` logits, then four numbers for the shape's box (see ``boxes_of``)."""

    def block(cin: int, cout: int) -> nn.Sequential:
        parts = {"conv": nn.Conv2d(cin, cout, 3, padding=1), "bn": nn.BatchNorm2d(cout), "relu": nn.ReLU(),
                 "pool": nn.MaxPool2d(2)}  # fmt: skip
        return nn.Sequential(OrderedDict(parts))

    blocks = {"block1": block(3, width), "block2": block(width, width * 2), "block3": block(width * 2, width * 4)}
    head = {"features": nn.Sequential(OrderedDict(blocks)), "pool": nn.AdaptiveAvgPool2d(1), "flatten": nn.Flatten(),
            "classifier": nn.Linear(width * 4, classes + 4)}  # fmt: skip
    return nn.Sequential(OrderedDict(head))


def run_sweep(
    root: str | Path = "runs",
    config: DemoConfig | None = None,
    lrs: tuple[float, ...] = SWEEP,
    seeds: tuple[int, ...] = SEEDS,
) -> list[Path]:
    """The demo: a run of experiment "shapes-cnn" per peak learning rate in ``lrs`` and seed in ``seeds``;
    each learning rate's first seed profiles a few steps for the Profile tab (and its Diff view). Returns
    the runs' directories."""
    cfg = config or DemoConfig()
    return [
        run_demo(root, replace(cfg, max_lr=lr, seed=seed), name=f"max_lr-{lr:g}_seed-{seed}", profile=seed == seeds[0])
        for lr in lrs
        for seed in seeds
    ]


def run_demo(root: str | Path = "runs", config: DemoConfig | None = None, name: str | None = None,
             profile: bool = False) -> Path:  # fmt: skip
    """Train the demo model as a run of experiment "shapes-cnn" under ``root``, on the GPU when there is
    one; with ``profile``, a few steps go to the Profile tab. Returns the run's directory."""
    cfg = config or DemoConfig()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    train = make_shapes(cfg.train_images, cfg.image_size, seed=cfg.seed)
    val = make_shapes(cfg.val_images, cfg.image_size, seed=cfg.seed + 1)
    x_train, y_train = torch.from_numpy(train.images).to(device), torch.from_numpy(train.labels).to(device)
    x_val, y_val = torch.from_numpy(val.images).to(device), torch.from_numpy(val.labels).to(device)

    model = build_model(cfg.width, len(CLASS_NAMES)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.max_lr, momentum=cfg.momentum)
    steps_per_epoch = cfg.train_images // cfg.batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.max_lr, total_steps=cfg.epochs * steps_per_epoch
    )

    box_train = torch.from_numpy(train.boxes).to(device) / cfg.image_size
    classes = len(CLASS_NAMES)

    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        # tbscope.init's defaults: heavy data spaced out as the run grows, a tag's first call always kept
        run = stack.enter_context(
            tbscope.init("shapes-cnn", root=root, name=name, config=cfg, metrics=["val/acc", "val/loss"])
        )
        prof = stack.enter_context(quiet_profile(run)) if profile else None
        label = f"{run.dir.name}:"
        w = run.writer
        w.add_graph(model, x_val[:1])
        classes_text = ", ".join(f"`{i}` {name}" for i, name in enumerate(CLASS_NAMES))
        w.add_text("val/classes", f"{classes_text}. Captions of val/predictions and val/mistakes: true / pred.")
        w.watch(model)  # per-layer norms, update ratios and histograms, at the run's cadence
        step = 0
        for epoch in range(cfg.epochs):
            model.train()
            order = torch.randperm(cfg.train_images)
            for i in range(steps_per_epoch):
                idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                out = model(x_train[idx])
                logits = out[:, :classes]
                loss = F.cross_entropy(logits, y_train[idx]) + F.l1_loss(out[:, classes:].sigmoid(), box_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                # Tensors go straight in: tbscope snapshots them without a host-device sync.
                w.add_scalar("train/loss", loss.detach(), step)
                w.add_scalar("train/acc", (logits.argmax(1) == y_train[idx]).float().mean(), step)
                w.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                if prof is not None:
                    with quiet_stderr():
                        prof.step(step)  # the watch/profile/... scalars go to this step, next to its loss
                step += 1
            val_loss, val_acc, predictions, boxes = evaluate(model, x_val, y_val)
            w.add_scalar("val/loss", val_loss, step)
            w.add_scalar("val/acc", val_acc, step)
            probabilities = predictions_prob(model, x_val)
            pairs = zip(y_val[:32].tolist(), predictions[:32].tolist(), strict=True)
            captions = [f"{CLASS_NAMES[t]} / {CLASS_NAMES[p]}" for t, p in pairs]
            w.add_image_grid("val/predictions", x_val[:32], step, captions=captions)  # true / pred
            wrong = (predictions != y_val).nonzero().flatten()[:32]
            if len(wrong):
                captions = [f"{CLASS_NAMES[int(y_val[i])]} / {CLASS_NAMES[int(predictions[i])]}" for i in wrong]
                w.add_image_grid("val/mistakes", x_val[wrong], step, captions=captions)  # true / pred
            # The model's box (dashed) against the true one (solid), and its mask: the box, filled with its class.
            box = (boxes[:1] * cfg.image_size).clamp(0, cfg.image_size)
            w.add_image_with_detections(
                "val/detection", val.images[0], box, step, labels=predictions[:1],
                scores=probabilities[0, predictions[0]].reshape(1), class_names=CLASS_NAMES,
                target_boxes=val.boxes[:1], target_labels=val.labels[:1],
            )  # fmt: skip
            w.add_image_with_mask(
                "val/masks", val.images[0], box_mask(box[0], int(predictions[0]) + 1, cfg.image_size), step,
                class_names=["background", *CLASS_NAMES], alpha=0.75,
                target=torch.from_numpy(val.masks[0]).long() * (int(val.labels[0]) + 1),
            )  # fmt: skip
            w.add_confusion_matrix("val/confusion", y_val, predictions, CLASS_NAMES, step, normalize="true")
            w.add_pr_curves("val/pr", y_val, probabilities, step, class_names=CLASS_NAMES)
            elapsed = time.monotonic() - started
            print(
                f"{label} epoch {epoch + 1}/{cfg.epochs}  step {step}  val/loss {val_loss:.3f}  "
                f"val/acc {val_acc:.3f}  {elapsed:.0f}s",
                flush=True,
            )
            if elapsed > cfg.max_seconds and epoch + 1 < cfg.epochs:
                print(f"{label} stopping after {elapsed:.0f}s (max_seconds={cfg.max_seconds:g})", flush=True)
                break
        w.add_embedding(
            predictions_prob(model, x_val[:200]),
            metadata=[CLASS_NAMES[int(c)] for c in y_val[:200]],
            label_img=x_val[:200],
            global_step=step,
            tag="val/probabilities",
        )
    return run.dir


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """The process's stderr (file descriptor 2, where torch's C++ profiler prints) sent to /dev/null for the
    block, and Python's own stderr along with it: the demo's console shows its epoch lines and tables."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def quiet_profile(run: tbscope.Run) -> Iterator[Any]:
    """``tbscope.profile`` of a few steps, its start and end without torch's console noise."""
    with quiet_stderr():
        prof = tbscope.profile(run, wait=1, warmup=1, active=2)
        prof.__enter__()
    try:
        yield prof
    finally:
        with quiet_stderr():
            prof.__exit__(*sys.exc_info())


def boxes_of(out: torch.Tensor) -> torch.Tensor:
    """The boxes the model gives (its last four outputs), xyxy as fractions of the image's side (corners put
    in order: an untrained model may give them crossed)."""
    corners = out[:, -4:].sigmoid()
    x, y = corners[:, 0::2].sort(dim=1).values, corners[:, 1::2].sort(dim=1).values
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


def box_mask(box: torch.Tensor, class_id: int, size: int) -> torch.Tensor:
    """A (size, size) mask of class ids: ``class_id`` inside ``box`` (xyxy pixels), 0 elsewhere."""
    x1, y1, x2, y2 = (int(v) for v in box.round().tolist())
    mask = torch.zeros(size, size, dtype=torch.long)
    mask[y1 : max(y1 + 1, y2), x1 : max(x1 + 1, x2)] = class_id
    return mask


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """Validation loss, accuracy, predicted classes and boxes (``boxes_of``)."""
    model.eval()
    with torch.no_grad():
        out = model(x)
    logits = out[:, : len(CLASS_NAMES)]
    predictions = logits.argmax(1)
    return float(F.cross_entropy(logits, y)), float((predictions == y).float().mean()), predictions, boxes_of(out)


def predictions_prob(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities of ``x``."""
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(x)[:, : len(CLASS_NAMES)], dim=1)
