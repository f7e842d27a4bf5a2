"""Writing runs to object storage: a training loop logging to a real S3 server (``rclone serve s3`` on this
machine) through tbscope's spool, against the same loop writing to local disk, and torch's SummaryWriter
writing to the same server through TensorBoard's file layer (boto3), same run.

The loop logs 20 scalars a step and a 3x64x64 image every 50 steps. Timed: the loop itself (what training
pays), and close() (until everything is in the store). Then every value is read back with TensorBoard's own
loader from the bucket. With ``--outage S`` a second tbscope run stops the server for S seconds in the middle
of its loop (the loop pauses S/2 seconds there, left out of its time), starts it again, and counts the values
TensorBoard reads back (lost = logged - read).

Usage: python benchmarks/objectstore_write.py [--steps N] [--outage SECONDS]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import free_port, start_rclone

TAGS = 20


def loop(writer: Any, steps: int, during: Callable[[int], None] = lambda step: None) -> float:
    """Seconds the loop spends logging ``steps`` steps (no model: logging is all it does)."""
    image = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    start = time.perf_counter()
    for step in range(steps):
        for t in range(TAGS):
            writer.add_scalar(f"m/{t:02d}", step * 0.001 + t, step)
        if step % 50 == 0:
            writer.add_image("samples", image, step)
        during(step)
    return time.perf_counter() - start


def read_back(url: str) -> int:
    """Scalars TensorBoard's own loader reads from ``url``."""
    import boto3
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.compat.tensorflow_stub.io import gfile

    boto3.DEFAULT_SESSION = None
    gfile.register_filesystem("s3", gfile.S3FileSystem())
    acc = EventAccumulator(url, size_guidance={"scalars": 0}).Reload()
    return sum(len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000, help="training steps (5000: 100,000 scalars)")
    parser.add_argument("--outage", type=float, default=0.0, help="seconds the server is down mid-run (0: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        backing = Path(scratch) / "backing"
        (backing / "bench").mkdir(parents=True)
        port, key, secret = free_port(), "benchkey", os.urandom(12).hex()
        os.environ.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, S3_ENDPOINT=f"http://127.0.0.1:{port}",
                          AWS_DEFAULT_REGION="us-east-1", TBSCOPE_CACHE_DIR=str(Path(scratch) / "cache"))  # fmt: skip
        server = [start_rclone(backing, port, key, secret)]
        from torch.utils.tensorboard import SummaryWriter

        import tbscope

        rows: list[tuple[str, float, float, int]] = []

        failures: list[str] = []

        def measure(what: str, make: Callable[[], Any], url: str | None) -> None:
            try:
                writer = make()
                spent = loop(writer, args.steps)
                start = time.perf_counter()
                writer.close()
            except Exception as err:  # a peer that cannot write to this server: said, and the rest goes on
                failures.append(f"{what}: failed: {' '.join(str(err).split())[:200]}")
                return
            closing = time.perf_counter() - start
            rows.append((what, spent, closing, read_back(url) if url else args.steps * TAGS))

        try:
            measure("tbscope, local disk", lambda: tbscope.Writer(Path(scratch) / "local"), None)
            measure("tbscope, s3", lambda: tbscope.Writer("s3://bench/tbscope"), "s3://bench/tbscope")
            measure("torch, local disk", lambda: SummaryWriter(str(Path(scratch) / "torch-local")), None)
            measure("torch, s3 (TensorBoard's file layer)", lambda: SummaryWriter("s3://bench/torch"),
                    "s3://bench/torch")  # fmt: skip
            if args.outage:
                writer = tbscope.Writer("s3://bench/outage")
                half = args.steps // 2

                def outage(step: int) -> None:
                    if step == half:
                        server[0].terminate()
                        server[0].wait(timeout=10)
                        print(f"server stopped at step {step} for {args.outage:g} s", file=sys.stderr)
                        timer = threading.Timer(args.outage, lambda: server.__setitem__(0, start_rclone(
                            backing, port, key, secret)))  # fmt: skip
                        timer.start()
                        time.sleep(args.outage / 2)  # training goes on through the outage (not counted below)

                spent = loop(writer, args.steps, outage) - args.outage / 2
                time.sleep(max(0.0, args.outage / 2 + 1))
                start = time.perf_counter()
                writer.close()
                rows.append((f"tbscope, s3, {args.outage:g} s outage", spent, time.perf_counter() - start,
                             read_back("s3://bench/outage")))  # fmt: skip
        finally:
            server[0].terminate()
            server[0].wait(timeout=10)
    logged = args.steps * TAGS
    base = rows[0][1]
    print(f"{args.steps} steps, {logged:,} scalars and {args.steps // 50} images a run")
    print(f"{'writer':40} {'loop s':>7} {'vs local':>8} {'close s':>8} {'read back':>10} {'lost':>6}")
    for what, spent, closing, read in rows:
        print(f"{what:40} {spent:7.2f} {spent / base:7.2f}x {closing:8.2f} {read:10,} {logged - read:6,}")
    for failure in failures:
        print(failure)


if __name__ == "__main__":
    main()
