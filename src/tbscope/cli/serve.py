"""``tbscope serve``: stock TensorBoard on a runs root, with flags that show everything that was kept."""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
import time
from pathlib import Path

from tbscope.cli.arguments import directory

DEFAULT_PORT = 6006
# Budgets already bound what a run logs: keep every image, histogram, ... TensorBoard would
# otherwise sample down (to 10 images a tag, say) and silently hide what was logged. (Its docs say
# 0 keeps all; TensorBoard 2.21 shows nothing with 0, so the bound is a count no budget reaches.)
KEEP_ALL = 10_000_000
SAMPLES_PER_PLUGIN = ",".join(
    f"{plugin}={KEEP_ALL}" for plugin in ("images", "audio", "histograms", "distributions", "text", "pr_curves", "mesh")
)
ALL_INTERFACES = ("0.0.0.0", "::", "")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="open the runs in TensorBoard, locally")
    parser.add_argument("root", type=directory, help="the runs root, e.g. runs")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}, or a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine)")
    parser.set_defaults(handler=run)


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        try:
            s.bind((host or "0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host or "0.0.0.0", 0))
        return int(s.getsockname()[1])


def run(args: argparse.Namespace) -> int:
    root: Path = args.root
    port = args.port
    if not port_is_free(args.host, port):
        taken, port = port, free_port(args.host)
        print(f"tbscope serve: port {taken} is taken, using {port}", file=sys.stderr)
    if args.host in ALL_INTERFACES:
        print(
            "tbscope serve: WARNING: listening on all interfaces: anyone who can reach this machine can see "
            "these runs. Prefer the default (127.0.0.1) and an ssh tunnel.",
            file=sys.stderr,
        )
    from tensorboard import program

    tensorboard = program.TensorBoard()
    tensorboard.configure(
        argv=[
            "tensorboard", "--logdir", str(root), "--host", args.host, "--port", str(port),
            "--samples_per_plugin", SAMPLES_PER_PLUGIN, "--reload_interval", "5",
        ]
    )  # fmt: skip
    tensorboard.launch()
    shown_host = "127.0.0.1" if args.host in ("127.0.0.1", "localhost") else args.host or socket.gethostname()
    print(f"TensorBoard for {root} at http://{shown_host}:{port}/", flush=True)
    print(
        f"From another machine: ssh -N -L {port}:127.0.0.1:{port} {getpass.getuser()}@{socket.gethostname()}"
        f"  then open http://localhost:{port}/",
        flush=True,
    )
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
