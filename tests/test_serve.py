"""``tbscope serve`` starts stock TensorBoard on the runs, and the HParams dashboard lists every run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tbscope
from conftest import Served, free_port, serve, stop, wait_until


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    configs = [
        {"lr": 0.1, "optimizer": {"name": "sgd", "nesterov": True}},
        {"lr": "cosine from 0.3", "optimizer": {"name": "adam"}, "warmup": 500},
        {"lr": 0.01, "batch_size": 64},
    ]
    for i, config in enumerate(configs):
        every_step = tbscope.Cadence(every=1)
        with tbscope.init("sweep", root=root, config=config, name=f"trial{i}", cadence=every_step) as run:
            run.writer.add_scalar("train/loss", 1.0 / (i + 1), 10)
            run.writer.add_scalar("val/acc", 0.5 + i / 10, 10)
            for step in range(12):
                run.writer.add_image("samples", [[step / 12.0]], step, dataformats="HW")
    return root


@pytest.fixture(scope="module")
def served(root: Path) -> Iterator[Served]:
    served = serve(root, "--port", str(free_port()))

    def loaded() -> bool:
        runs = get_json(f"{served.url}/data/runs")
        assert len(runs) <= 3, runs  # the runs the user started, and no other
        return len(runs) == 3 and all(
            get_json(f"{served.url}/data/plugin/images/images?run={run}&tag=samples&sample=0") for run in runs
        )

    wait_until(loaded, what="tensorboard to load the runs")
    yield served
    stop(served)


def test_serve_prints_the_url_and_an_ssh_tunnel_line_on_loopback(served: Served) -> None:
    assert served.url.startswith("http://127.0.0.1:")
    port = served.url.rsplit(":", 1)[1]
    assert any(f"ssh -N -L {port}:127.0.0.1:{port}" in line for line in served.lines)


def test_no_logged_image_is_sampled_away(served: Served) -> None:
    run = next(r for r in get_json(f"{served.url}/data/runs") if r.endswith("trial0"))
    images = get_json(f"{served.url}/data/plugin/images/images?run={run}&tag=samples&sample=0")
    assert [entry["step"] for entry in images] == list(range(12))  # stock TensorBoard keeps 10


def test_hparams_dashboard_lists_every_run_with_its_hyperparameters_and_metrics(served: Served) -> None:
    request = urllib.request.Request(
        f"{served.url}/data/plugin/hparams/experiment",
        data=json.dumps({"experimentName": ""}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        experiment = json.loads(response.read())
    infos = {h["name"]: h["type"] for h in experiment["hparamInfos"]}
    assert infos == {
        "lr": "DATA_TYPE_STRING",  # a number in two runs, text in one: still shown
        "optimizer/name": "DATA_TYPE_STRING",
        "optimizer/nesterov": "DATA_TYPE_BOOL",
        "warmup": "DATA_TYPE_FLOAT64",
        "batch_size": "DATA_TYPE_FLOAT64",
    }
    body = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [{"hparam": name} for name in infos] + [{"metric": {"group": "", "tag": "val/acc"}}],
        "startIndex": 0,
        "sliceSize": 100,
    }
    request = urllib.request.Request(
        f"{served.url}/data/plugin/hparams/session_groups",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        groups = json.loads(response.read())["sessionGroups"]
    by_trial = {g["name"].rsplit("-", 1)[1]: g for g in groups}
    assert set(by_trial) == {"trial0", "trial1", "trial2"}
    assert by_trial["trial0"]["hparams"] == {"lr": 0.1, "optimizer/name": "sgd", "optimizer/nesterov": True}
    assert by_trial["trial1"]["hparams"]["warmup"] == 500 and by_trial["trial2"]["hparams"]["batch_size"] == 64
    for i in range(3):
        values = {m["name"]["tag"]: m["value"] for m in by_trial[f"trial{i}"]["metricValues"]}
        assert values["val/acc"] == pytest.approx(0.5 + i / 10)
        assert by_trial[f"trial{i}"]["sessions"][0]["status"] == "STATUS_SUCCESS"


def tbscope_serve(*args: str) -> subprocess.CompletedProcess[str]:
    """``tbscope serve`` where it is expected to stop at once, by itself."""
    command = Path(sys.executable).with_name("tbscope")
    return subprocess.run([str(command), "serve", *args], capture_output=True, text=True, timeout=60)


def test_a_taken_port_stops_serve_with_a_message_that_says_how_to_choose_another(root: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = tbscope_serve(str(root), "--port", str(port))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"tbscope serve: port {port} on 127.0.0.1 is in use (another TensorBoard?); choose another with --port N, "
        "or --port 0 for any free port\n"
    )


def test_port_zero_serves_on_any_free_port_and_says_which(root: Path) -> None:
    served = serve(root, "--port", "0")
    try:
        port = int(served.url.rsplit(":", 1)[1])
        assert port > 0 and isinstance(get_json(f"{served.url}/data/runs"), list)
    finally:
        stop(served)
    help_text = subprocess.run([str(Path(sys.executable).with_name("tbscope")), "serve", "--help"],
                               capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    assert "0 picks any free port" in " ".join(help_text.split())


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_port_that_is_no_port_is_a_usage_error(root: Path, port: str) -> None:
    result = tbscope_serve(str(root), "--port", port)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "tbscope serve: error: argument --port:" in result.stderr.splitlines()[-1]


def test_an_ipv6_host_is_bracketed_in_the_url(root: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as err:
        pytest.skip(f"no IPv6 loopback here: {err}")
    served = serve(root, "--port", "0", "--host", "::1")
    try:
        assert served.url.startswith("http://[::1]:")
        assert isinstance(get_json(f"{served.url}/data/runs"), list)
    finally:
        stop(served)


def get_with_host(url: str, host: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_a_request_for_another_host_is_refused_against_dns_rebinding(served: Served) -> None:
    port = served.url.rsplit(":", 1)[1]
    for foreign in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}", f"localhost:{port}0"):
        status, body = get_with_host(f"{served.url}/data/runs", foreign)
        assert status == 403 and f"refused a request for host {foreign!r}" in body
    for own in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        status, body = get_with_host(f"{served.url}/data/runs", own)
        assert status == 200 and len([r for r in json.loads(body) if r.startswith("sweep/")]) == 3


def test_allow_host_adds_a_name(root: Path) -> None:
    served = serve(root, "--port", "0", "--allow-host", "box.internal")
    try:
        assert get_with_host(f"{served.url}/data/runs", "box.internal")[0] == 200
        assert get_with_host(f"{served.url}/data/runs", "box.internal:8080")[0] == 200
        assert get_with_host(f"{served.url}/data/runs", "other.internal")[0] == 403
    finally:
        stop(served)


def test_listening_on_all_interfaces_is_warned_about(root: Path) -> None:
    served = serve(root, "--port", str(free_port()), "--host", "0.0.0.0")
    try:
        assert "WARNING: listening on all interfaces" in "".join(served.lines)
    finally:
        stop(served)


def test_serve_refuses_a_missing_root(tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("tbscope")
    result = subprocess.run([str(command), "serve", str(tmp_path / "nope")], capture_output=True, text=True)
    assert result.returncode == 2 and "is not a directory" in result.stderr


# -- in a container: the markers are simulated (the test patches where serve looks for them) --

SERVE_WITH_MARKERS = """
import sys
from pathlib import Path
from tbscope.cli import main, serve
serve.CONTAINER_MARKERS = tuple(Path(p) for p in sys.argv[1].split(",") if p)
serve.CGROUP = Path(sys.argv[2])
sys.exit(main(["serve", *sys.argv[3:]]))
"""


def serve_with_markers(tmp_path: Path, markers: list[Path], cgroup: str, *args: str) -> tuple[Any, str, str]:
    """``tbscope serve`` as if ``markers`` were the container's marker files and ``cgroup`` /proc/1/cgroup;
    returns the process, its URL and what it printed before "Press Ctrl-C"."""
    for marker in markers:
        marker.write_text("")
    (tmp_path / "cgroup").write_text(cgroup)
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_WITH_MARKERS, ",".join(map(str, markers)), str(tmp_path / "cgroup"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    printed = ""
    for line in proc.stdout:
        printed += line
        if line.startswith("Press Ctrl-C"):
            break
    url = printed.split(" at ", 1)[1].split()[0].rstrip("/")
    return proc, url, printed


def non_loopback_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the interface
        except OSError as err:
            pytest.skip(f"no network interface here: {err}")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("no interface here but loopback")
    return address


def test_in_a_container_serve_says_so_and_prints_the_host_side_line(root: Path, tmp_path: Path) -> None:
    port = free_port()
    proc, _, printed = serve_with_markers(tmp_path, [tmp_path / ".dockerenv"], "0::/\n", str(root), "--port", str(port))
    try:
        assert f"In a container ({tmp_path / '.dockerenv'})" in printed
        assert f"tbscope serve {root} --host 0.0.0.0 --port {port}" in printed
        assert f"docker run -p {port}:{port} ...  then open http://localhost:{port}/" in printed
        assert f"ssh -N -L {port}:127.0.0.1:{port}" in printed  # the ssh line stays
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_in_a_container_host_0000_answers_on_its_address_and_still_refuses_a_foreign_host(
    root: Path, tmp_path: Path
) -> None:
    address = non_loopback_address()
    port = free_port()
    proc, _, printed = serve_with_markers(
        tmp_path, [], "12:pids:/docker/0123abcd\n", str(root), "--host", "0.0.0.0", "--port", str(port)
    )
    try:
        assert "In a container (docker in " in printed
        assert f"docker run -p {port}:{port} ...  then open http://localhost:{port}/" in printed
        status, body = get_with_host(f"http://{address}:{port}/data/runs", f"{address}:{port}")
        assert status == 200 and len([r for r in json.loads(body) if r.startswith("sweep/")]) == 3
        assert get_with_host(f"http://{address}:{port}/data/runs", f"evil.example:{port}")[0] == 403
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_outside_a_container_serve_prints_no_container_advice(root: Path, tmp_path: Path) -> None:
    proc, _, printed = serve_with_markers(tmp_path, [], "0::/\n", str(root), "--port", str(free_port()))
    try:
        assert "container" not in printed and "ssh -N -L" in printed
    finally:
        proc.terminate()
        proc.wait(timeout=30)
