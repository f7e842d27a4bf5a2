"""What heavy logging costs a training loop: tbscope's media helpers, policies and ``watch`` against torch.

Measured in one run, on this machine's CPU:

1. caller time of ``add_histogram`` on a 10M-element tensor, tbscope against torch's SummaryWriter (which
   copies the whole tensor as float64 and bins it on the caller's thread);
2. a 10,000-step training loop of a small CNN calling ``add_image_grid`` and ``add_histogram`` every step,
   in a ``tbscope.init`` run with its default cadence and budget, against the same loop without logging;
   and the run's size on disk;
3. ``watch`` on a ResNet-18-sized model (11M parameters) at its default cadence, against the same loop
   without it.

Loops are timed twice each, alternating, and the faster time of each kept, to damp a shared machine's noise.

Usage: python benchmarks/media_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import tbscope


def histogram_caller_time(repeats: int) -> tuple[float, float]:
    from torch.utils.tensorboard import SummaryWriter

    values = torch.randn(10_000_000)
    times = {}
    for name, make in (("tbscope", tbscope.Writer), ("torch", SummaryWriter)):
        log_dir = tempfile.mkdtemp()
        writer = make(log_dir)
        spent = 0.0
        for step in range(repeats + 1):
            start = time.perf_counter()
            writer.add_histogram("weights", values, step)
            if step:  # the first call of each pays one-time costs (imports, first allocations)
                spent += time.perf_counter() - start
            writer.flush()  # tbscope bins in the background: let it finish before the next call
        writer.close()
        shutil.rmtree(log_dir, ignore_errors=True)
        times[name] = spent / repeats
    return times["tbscope"], times["torch"]


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


def train_loop(
    model: nn.Module, steps: int, batch: int, size: int, on_step: Callable[[int, torch.Tensor], None]
) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    start = time.perf_counter()
    for step in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        on_step(step, x)
    return time.perf_counter() - start


def media_loop_overhead(steps: int) -> tuple[float, float, int]:
    root = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    model = small_cnn()
    weights = model[-1].weight

    def nothing(step: int, x: torch.Tensor) -> None:
        pass

    timings: dict[str, list[float]] = {"plain": [], "logged": []}
    size = 0
    for _attempt in range(2):
        timings["plain"].append(train_loop(model, steps, 32, 32, nothing))
        with tbscope.init("bench", root=root) as run:

            def log(step: int, x: torch.Tensor, w: tbscope.Writer = run.writer) -> None:
                w.add_image_grid("train/batch", x[:16], step, normalize=True)
                w.add_histogram("fc/weight", weights, step)

            timings["logged"].append(train_loop(model, steps, 32, 32, log))
        size = sum(p.stat().st_size for p in run.dir.rglob("*") if p.is_file())
    shutil.rmtree(root, ignore_errors=True)
    return min(timings["plain"]), min(timings["logged"]), size


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.skip(x))


def resnet18(classes: int = 10) -> nn.Module:
    """ResNet-18's layout (11.2M parameters), written out: torchvision is not a dependency."""
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))


def watch_overhead(steps: int) -> tuple[float, float, int]:
    torch.manual_seed(0)
    model = resnet18()
    params = sum(p.numel() for p in model.parameters())

    def nothing(step: int, x: torch.Tensor) -> None:
        pass

    timings: dict[str, list[float]] = {"plain": [], "watched": []}
    for _attempt in range(2):
        timings["plain"].append(train_loop(model, steps, 4, 32, nothing))
        log_dir = tempfile.mkdtemp()
        with tbscope.Writer(log_dir) as w:
            w.watch(model)
            timings["watched"].append(train_loop(model, steps, 4, 32, nothing))
            w.unwatch()
        shutil.rmtree(log_dir, ignore_errors=True)
    return min(timings["plain"]), min(timings["watched"]), params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run, not a figure)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core trains, the other is free for tbscope's pipeline, as on a real machine
    ours, theirs = histogram_caller_time(2 if args.quick else 5)
    ratio = theirs / ours
    print(f"add_histogram(10M elements) caller time: tbscope {ours * 1e3:.1f} ms, torch {theirs * 1e3:.1f} ms: "
          f"{ratio:.1f}x faster; target >= 10x {'MET' if ratio >= 10 else 'MISSED'}")  # fmt: skip
    steps = 500 if args.quick else 10_000
    plain, logged, size = media_loop_overhead(steps)
    overhead = logged / plain - 1
    print(f"{steps:,}-step loop with add_image_grid + add_histogram every step (default policies): "
          f"{plain:.1f}s without logging, {logged:.1f}s with: {overhead:+.1%}; target <= 5% "
          f"{'MET' if overhead <= 0.05 else 'MISSED'}; run size {size / 1e6:.2f} MB")  # fmt: skip
    watch_steps = 100 if args.quick else 1000
    plain, watched, params = watch_overhead(watch_steps)
    overhead = watched / plain - 1
    print(f"watch() on a ResNet-18 ({params / 1e6:.1f}M parameters), {watch_steps} steps at the default cadence: "
          f"{plain:.1f}s without, {watched:.1f}s with: {overhead:+.1%}; target <= 3% "
          f"{'MET' if overhead <= 0.03 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
