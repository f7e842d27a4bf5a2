"""``tbscope serve``: stock TensorBoard on a runs root, with flags that show everything that was kept.

TensorBoard answers any request that reaches its port, whatever host it names; a web page could then
read the runs through DNS rebinding (its own name made to resolve to 127.0.0.1). tbscope serves
TensorBoard behind ``HostCheck``, which answers 403 to a request whose Host header is not an address
of this server.

Inside a container (Docker's ``/.dockerenv``, Podman's ``/run/.containerenv``, or a container runtime named
in ``/proc/1/cgroup``), 127.0.0.1 is the container's own loopback, which a port published with ``docker run
-p`` does not reach: ``serve`` says so, suggests ``--host 0.0.0.0`` (the Host-header check stays), and prints
the host-side ``-p`` mapping and the URL to open there, after the ssh line.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tbscope.cli.arguments import parsed_by, source

DEFAULT_PORT = 6006
SYNC_SECONDS = 5.0
# Budgets already bound what a run logs: keep every image, histogram, ... TensorBoard would
# otherwise sample down (to 10 images a tag, say) and silently hide what was logged. (Its docs say
# 0 keeps all; TensorBoard 2.21 shows nothing with 0, so the bound is a count no budget reaches.)
KEEP_ALL = 10_000_000
SAMPLES_PER_PLUGIN = ",".join(
    f"{plugin}={KEEP_ALL}" for plugin in ("images", "audio", "histograms", "distributions", "text", "pr_curves", "mesh")
)
ALL_INTERFACES = ("0.0.0.0", "::", "")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
# What tells a container from the inside: Docker's and Podman's marker files, and the init process's cgroup.
CONTAINER_MARKERS = (Path("/.dockerenv"), Path("/run/.containerenv"))
CGROUP = Path("/proc/1/cgroup")
CGROUP_RUNTIMES = ("docker", "containerd", "kubepods", "libpod", "lxc")


def container_marker() -> str | None:
    """What shows this process runs in a container (a marker file, or the runtime in the cgroup), or None."""
    for marker in CONTAINER_MARKERS:
        if marker.exists():
            return str(marker)
    try:
        cgroup = CGROUP.read_text(errors="replace")
    except OSError:
        return None
    runtime = next((name for name in CGROUP_RUNTIMES if name in cgroup), None)
    return f"{runtime} in {CGROUP}" if runtime else None


def container_advice(root: Path, host: str, port: int, marker: str) -> list[str]:
    """What a user in a container needs to reach the server from the host: the interface to listen on (when
    it listens on loopback only), the ``docker run -p`` mapping and the URL to open on the host.

    Example:
        >>> for line in container_advice(Path("runs"), "127.0.0.1", 6006, "/.dockerenv")[1:]:
        ...     print(line)
          tbscope serve runs --host 0.0.0.0 --port 6006
        On the host: docker run -p 6006:6006 ...  then open http://localhost:6006/
    """
    lines = []
    if host not in ALL_INTERFACES:
        lines += [
            f"In a container ({marker}): a port published with docker run -p does not reach its {host}. To open it "
            "from the host, serve on the container's interfaces (requests for other hosts are still refused):",
            f"  tbscope serve {root} --host 0.0.0.0 --port {port}",
        ]
    else:
        lines.append(f"In a container ({marker}): listening on its interfaces; requests for other hosts are refused.")
    lines.append(f"On the host: docker run -p {port}:{port} ...  then open http://localhost:{port}/")
    return lines


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"a port is a number from 1 to 65535 (or 0: any free port), got {port}")
    return port


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="open the runs in TensorBoard, locally",
        description="Stock TensorBoard on ROOT, keeping every logged image, histogram, ... It answers only "
        "requests addressed to this server (127.0.0.1, localhost, [::1], --host or an IP address, with its port; "
        "--allow-host adds names), a guard against DNS rebinding.",
    )
    parser.add_argument(
        "root", type=source, help="the runs root, e.g. runs, or a URL (s3://bucket/runs: its mirror, synced every "
        f"{SYNC_SECONDS:.0f} s)",
    )  # fmt: skip
    parser.add_argument(
        "--port", type=parsed_by(_port), default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT}); 0 picks any free port. A port in use is an error.",
    )  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine)")
    parser.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME[:PORT]",
        help="also answer requests for this host name (a reverse proxy's, a tunnel's other port); repeatable",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def url_host(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets.

    Example:
        >>> url_host("::"), url_host("127.0.0.1")
        ('[::]', '127.0.0.1')
    """
    return f"[{host}]" if ":" in host else host


def _address(host: str, port: int) -> tuple[socket.AddressFamily, Any]:
    """The first address ``host`` resolves to for listening; raises OSError (socket.gaierror) when none."""
    family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    return family, address


def port_is_free(host: str, port: int) -> bool:
    family, address = _address(host, port)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no use
        try:
            s.bind(address)
        except OSError:
            return False
    return True


def _split_host(header: str) -> tuple[str, int | None]:
    """A Host header as (name in lower case, without brackets or a final dot; port or None)."""
    name, port = header.strip().lower(), None
    if name.startswith("["):
        inside, _, rest = name[1:].partition("]")
        name, port_text = inside, rest[1:] if rest.startswith(":") else ""
    elif name.count(":") == 1:
        name, port_text = name.split(":")
    else:
        port_text = ""
    if port_text:
        port = int(port_text) if port_text.isdigit() else -1
    return name.rstrip("."), port


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostCheck:
    """WSGI middleware: passes a request on to ``app`` only when its Host header names this server at
    ``port`` (set once the server listens): one of ``names``, or an IP address (which no DNS rebinding
    can forge); or one of ``extra`` (``name`` at any port, or ``name:port``). Answers 403 otherwise. A
    request without a Host header (no browser sends one) passes.

    Example:
        >>> check = HostCheck(lambda environ, start: [b"runs"], ["127.0.0.1", "localhost"], port=6006)
        >>> check.allows("localhost:6006"), check.allows("evil.example:6006"), check.allows("localhost:1")
        (True, False, False)
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], names: Iterable[str], port: int = 0,
                 extra: Iterable[str] = ()) -> None:  # fmt: skip
        self.app = app
        self.names = {_split_host(url_host(n))[0] for n in names}
        self.port = port
        self.extra = {_split_host(e) for e in extra}
        self.refused: set[str] = set()

    def allows(self, header: str) -> bool:
        name, port = _split_host(header)
        if (name, port) in self.extra or (name, None) in self.extra:
            return True
        return port == self.port and (name in self.names or _is_ip_address(name))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        header = environ.get("HTTP_HOST")
        if header is None or self.allows(header):
            return self.app(environ, start_response)
        served = ", ".join(f"{url_host(n)}:{self.port}" for n in sorted(self.names))
        message = (
            f"tbscope serve: refused a request for host {header!r}: this server answers only to {served} "
            "(a guard against DNS rebinding); to open it under another name, start it with --allow-host NAME\n"
        )
        if header not in self.refused and len(self.refused) < 20:
            self.refused.add(header)
            print(message.strip(), file=sys.stderr, flush=True)
        body = message.encode()
        start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])  # fmt: skip
        return [body]


def _keep_synced(url: str) -> None:
    """Bring the mirror of ``url`` up to date every SYNC_SECONDS; a failure is said once, until it passes."""
    from tbscope import remote

    said = ""
    while True:
        time.sleep(SYNC_SECONDS)
        try:
            remote.mirror(url)
        except ValueError as err:
            if str(err) != said:
                print(f"tbscope serve: sync failed (retrying): {err}", file=sys.stderr, flush=True)
            said = str(err)
        else:
            said = ""


def run(args: argparse.Namespace) -> int:
    root, url = args.root
    host: str = args.host
    try:
        free = args.port == 0 or port_is_free(host, args.port)
    except OSError as err:  # a host name that does not resolve, an address of no interface here
        print(f"tbscope serve: cannot listen on --host {host!r}: {getattr(err, 'strerror', None) or err}",
              file=sys.stderr)  # fmt: skip
        return 2
    if not free:
        print(
            f"tbscope serve: port {args.port} on {url_host(host) or '*'} is in use (another TensorBoard?); choose "
            "another with --port N, or --port 0 for any free port",
            file=sys.stderr,
        )
        return 1
    marker = container_marker()
    if host in ALL_INTERFACES:
        print(
            "tbscope serve: WARNING: listening on all interfaces: anyone who can reach this machine can see "
            "these runs. Prefer the default (127.0.0.1) and an ssh tunnel.",
            file=sys.stderr,
        )
    from tensorboard import program

    from tbscope import schema

    try:  # tbscope's runs keep their root's HParams columns current; a root of other tools' runs is left alone
        schema.refresh(root)
    except OSError as err:
        print(f"tbscope serve: could not update the HParams columns in {root}: {err}", file=sys.stderr)
    names = [*LOOPBACK_NAMES, host] + ([socket.gethostname()] if host in ALL_INTERFACES else [])
    checks: list[HostCheck] = []

    def server(app: Any, flags: argparse.Namespace) -> Any:
        check = HostCheck(app, [n for n in names if n], extra=args.allow_host)
        made = program.WerkzeugServer(check, flags)
        check.port = made.server_port
        checks.append(check)
        return made

    tensorboard = program.TensorBoard(server_class=server)
    tensorboard.configure(
        argv=[
            "tensorboard", "--logdir", str(root), "--host", host, "--port", str(args.port),
            "--samples_per_plugin", SAMPLES_PER_PLUGIN, "--reload_interval", "5",
        ]
    )  # fmt: skip
    try:
        tensorboard.launch()
    except program.TensorBoardServerException as err:
        print(f"tbscope serve: {err.msg}; choose another port with --port N, or --port 0", file=sys.stderr)
        return 1
    port = checks[0].port
    shown_host = "127.0.0.1" if host in ("127.0.0.1", "localhost") else host or socket.gethostname()
    tunnel_to = "[::1]" if host == "::1" else "127.0.0.1"
    print(f"TensorBoard for {url or root} at http://{url_host(shown_host)}:{port}/", flush=True)
    print(
        f"From another machine: ssh -N -L {port}:{tunnel_to}:{port} {getpass.getuser()}@{socket.gethostname()}"
        f"  then open http://localhost:{port}/",
        flush=True,
    )
    if marker is not None:
        print("\n".join(container_advice(root, host, port, marker)), flush=True)
    if url is not None:
        threading.Thread(target=_keep_synced, args=(url,), name="tbscope-sync", daemon=True).start()
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
