"""Runs in object storage: reading through tbscope's mirror from a real S3 server (``rclone serve s3`` on this
machine) against reading the same runs from local disk, same run.

Data: the million scalars of reader_speed.py (4 runs x 25 tags x 10,000 steps) and N tbscope runs (``--runs``,
1,000 by default), uploaded to a bucket. Timed, each in a fresh process with an empty cache: ``tbscope ls``
(cold mirror, then warm: nothing changed, one listing) and ``read_scalars`` of the million scalars (cold mirror).
The server is local, so the figures are tbscope's own overhead (listing, transfers, manifest), not a network's.

Usage: python benchmarks/objectstore.py [--data DIR] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import free_port, start_rclone
from reader_speed import DEFAULT_DATA, ls_on_many_runs, write_data


def timed(code: str, env: dict[str, str]) -> float:
    """Seconds ``code`` takes in a fresh process (after its imports), as the process measures it."""
    script = f"import time, contextlib, io\nfrom tbscope.cli import main\nimport tbscope, tbscope.remote\n" \
             f"start = time.perf_counter()\nwith contextlib.redirect_stdout(io.StringIO()):\n    {code}\n" \
             f"print(time.perf_counter() - start)\n"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"where the data is kept ({DEFAULT_DATA})")
    parser.add_argument("--runs", type=int, default=1000, help="how many runs `ls` lists (1000)")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    scalars = write_data(args.data)
    ls_on_many_runs(args.data, args.runs)  # makes the runs (once)
    runs = args.data / f"tbscope-runs-{args.runs}"
    with tempfile.TemporaryDirectory() as scratch:
        backing = Path(scratch) / "backing"
        (backing / "bench").mkdir(parents=True)
        port, key, secret = free_port(), "benchkey", os.urandom(12).hex()
        server = start_rclone(backing, port, key, secret)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
               "S3_ENDPOINT": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
        try:
            import s3fs

            fs = s3fs.S3FileSystem(key=key, secret=secret, client_kwargs={"endpoint_url": env["S3_ENDPOINT"]})
            start = time.perf_counter()
            fs.put(str(scalars) + "/", "s3://bench/scalars/", recursive=True)
            fs.put(str(runs) + "/", "s3://bench/runs/", recursive=True)
            print(f"upload of both data sets: {time.perf_counter() - start:.1f}s", file=sys.stderr)

            def fresh(name: str) -> dict[str, str]:
                return {**env, "TBSCOPE_CACHE_DIR": str(Path(scratch) / name)}

            warm = fresh("ls-remote")
            rows = [
                ("tbscope ls, local disk", timed(f"main(['ls', {str(runs)!r}])", fresh("ls-local"))),
                ("tbscope ls, s3 cold mirror", timed("main(['ls', 's3://bench/runs'])", warm)),
                ("tbscope ls, s3 warm mirror", timed("main(['ls', 's3://bench/runs'])", warm)),
                ("read_scalars 1M, local disk", timed(f"tbscope.read_scalars({str(scalars)!r})", fresh("rs-local"))),
                ("read_scalars 1M, s3 cold mirror",
                 timed("tbscope.read_scalars(tbscope.remote.mirror('s3://bench/scalars'))", fresh("rs-remote"))),
            ]  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"{'what':36} {'seconds':>8} {'ratio':>7}")
    for i, (what, seconds) in enumerate(rows):
        base = rows[0][1] if i < 3 else rows[3][1]
        print(f"{what:36} {seconds:8.2f} {seconds / base:6.2f}x")


if __name__ == "__main__":
    main()
