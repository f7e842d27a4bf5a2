"""The demo's training script: a small CNN learns to tell shapes apart, and logs everything on the way.

Run it with ``tbscope demo`` (or ``make demo``): a sweep of three runs over the learning rate, in
``runs/shapes-cnn/<n>-lr-<lr>/``.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

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
    lr: float = 0.01
    momentum: float = 0.9
    width: int = 8
    train_images: int = 2048
    val_images: int = 256
    image_size: int = 32
    seed: int = 0


# The learning rates of the demo's sweep: three runs to compare side by side.
SWEEP = (0.003, 0.01, 0.03)


def build_model(width: int, classes: int) -> nn.Module:
    """A small CNN: three conv blocks, global pooling and a linear head, each part named, so that
    ``watch`` and the Graphs dashboard say ``features.block1.conv.weight`` rather than ``0.0.weight``."""

    def block(cin: int, cout: int) -> nn.Sequential:
        parts = {"conv": nn.Conv2d(cin, cout, 3, padding=1), "bn": nn.BatchNorm2d(cout), "relu": nn.ReLU(),
                 "pool": nn.MaxPool2d(2)}  # fmt: skip
        return nn.Sequential(OrderedDict(parts))

    blocks = {"block1": block(3, width), "block2": block(width, width * 2), "block3": block(width * 2, width * 4)}
    head = {"features": nn.Sequential(OrderedDict(blocks)), "pool": nn.AdaptiveAvgPool2d(1), "flatten": nn.Flatten(),
            "classifier": nn.Linear(width * 4, classes)}  # fmt: skip
    return nn.Sequential(OrderedDict(head))


def run_sweep(
    root: str | Path = "runs", config: DemoConfig | None = None, lrs: tuple[float, ...] = SWEEP
) -> list[Path]:
    """The demo: one run of experiment "shapes-cnn" per learning rate in ``lrs``, each profiling a few
    steps for the Profile tab (and its Diff view); returns their directories."""
    cfg = config or DemoConfig()
    return [run_demo(root, replace(cfg, lr=lr), name=f"lr-{lr:g}", profile=True) for lr in lrs]


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
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    steps_per_epoch = cfg.train_images // cfg.batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr * 10, total_steps=cfg.epochs * steps_per_epoch
    )

    started = time.monotonic()
    # Heavy data at every epoch's end, and 8 times during the first: every other call returns at once.
    cadence = tbscope.Cadence(
        every=steps_per_epoch, dense_until=steps_per_epoch, dense_every=max(1, steps_per_epoch // 8)
    )
    with contextlib.ExitStack() as stack:
        run = stack.enter_context(
            tbscope.init(
                "shapes-cnn", root=root, name=name, config=cfg, metrics=["val/acc", "val/loss"], cadence=cadence
            )
        )
        prof = stack.enter_context(tbscope.profile(run, wait=1, warmup=1, active=2)) if profile else None
        label = f"{run.dir.name}:"
        w = run.writer
        w.add_graph(model, x_val[:1])
        w.add_text("data/classes", ", ".join(f"`{i}` {name}" for i, name in enumerate(CLASS_NAMES)))
        w.add_image_with_mask(
            "data/masks", val.images[0], val.masks[0] * (int(val.labels[0]) + 1), 0,
            class_names=["background", *CLASS_NAMES],
        )  # fmt: skip
        w.watch(model)  # per-layer norms, update ratios and histograms, at the run's cadence
        step = 0
        for epoch in range(cfg.epochs):
            model.train()
            order = torch.randperm(cfg.train_images)
            for i in range(steps_per_epoch):
                idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                logits = model(x_train[idx])
                loss = F.cross_entropy(logits, y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                # Tensors go straight in: tbscope snapshots them without a host-device sync.
                w.add_scalar("train/loss", loss.detach(), step)
                w.add_scalar("train/acc", (logits.argmax(1) == y_train[idx]).float().mean(), step)
                w.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                w.add_image_grid("train/batch", x_train[idx][:32], step)  # the cadence keeps a few
                if prof is not None:
                    prof.step(step)  # the profile/... scalars go to this step, next to its loss
                step += 1
            val_loss, val_acc, predictions = evaluate(model, x_val, y_val)
            w.add_scalar("val/loss", val_loss, step)
            w.add_scalar("val/acc", val_acc, step)
            probabilities = predictions_prob(model, x_val)
            w.add_image_grid(
                "val/predictions", x_val[:32], step, captions=[CLASS_NAMES[int(p)] for p in predictions[:32]]
            )
            wrong = (predictions != y_val).nonzero().flatten()[:32]
            if len(wrong):
                captions = [f"{CLASS_NAMES[int(y_val[i])]} -> {CLASS_NAMES[int(predictions[i])]}" for i in wrong]
                w.add_image_grid("val/mistakes", x_val[wrong], step, captions=captions)  # true -> predicted
            w.add_image_with_detections(
                "val/detection", val.images[0], val.boxes[:1], step, labels=predictions[:1],
                scores=probabilities[0, predictions[0]].reshape(1), class_names=CLASS_NAMES,
                target_boxes=val.boxes[:1], target_labels=val.labels[:1],
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


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """Validation loss, accuracy and predicted classes."""
    model.eval()
    with torch.no_grad():
        logits = model(x)
    predictions = logits.argmax(1)
    return float(F.cross_entropy(logits, y)), float((predictions == y).float().mean()), predictions


def predictions_prob(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities of ``x``."""
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(x), dim=1)
