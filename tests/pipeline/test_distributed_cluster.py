"""distributed_render.py --address on a real two-node Ray cluster started on this machine with `ray start`.

Both nodes and the driver use token authentication with a token made for this test, the loopback address, free
ports and a private temp dir. The nodes run `ray start --block` as children of the test, so they are stopped by
signalling exactly those processes; `ray stop` is never used (it would kill every Ray on the machine).
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.pipeline.distributed_testlib import REPO, TINY, assert_exactly, wait_for

pytest.importorskip("bpy")
pytest.importorskip("ray")
pytestmark = [pytest.mark.blender, pytest.mark.ray, pytest.mark.slow]

RAY = Path(sys.executable).parent / "ray"


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _cluster_cpus(address: str, env: dict[str, str]) -> float:
    probe = "import ray; ray.init(address=%r, log_to_driver=False); print(ray.cluster_resources().get('CPU', 0))"
    proc = subprocess.run([sys.executable, "-c", probe % address], env=env, capture_output=True, text=True,
                          timeout=120)
    return float(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 and proc.stdout.strip() else 0.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A head and a worker node, 1 CPU each; yields (address, driver environment)."""
    temp_dir = tempfile.mkdtemp(prefix="nsd-ray-", dir="/tmp")  # short: Ray puts unix sockets under it
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))  # the form `ray` itself generates
    port, client_port, head_agent, node_agent = _free_ports(4)
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--block", "--disable-usage-stats",
              f"--temp-dir={temp_dir}"]
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(subprocess.Popen(
            [str(RAY), "start", "--head", f"--port={port}", f"--ray-client-server-port={client_port}",
             "--include-dashboard=false", f"--dashboard-agent-listen-port={head_agent}", *common],
            env=env, stdout=open(Path(temp_dir) / "head.out", "wb"), stderr=subprocess.STDOUT))
        wait_for(lambda: b"Ray runtime started" in (Path(temp_dir) / "head.out").read_bytes(), 120, "the head node",
                 nodes[0])
        nodes.append(subprocess.Popen(
            [str(RAY), "start", f"--address={address}", f"--dashboard-agent-listen-port={node_agent}", *common],
            env=env, stdout=open(Path(temp_dir) / "node.out", "wb"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 120
        while _cluster_cpus(address, env) < 2:
            assert nodes[1].poll() is None, (Path(temp_dir) / "node.out").read_text()[-2000:]
            assert time.monotonic() < deadline, "the second node did not join within 120 s"
            time.sleep(1)
        yield address, env
    finally:
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
        for node in reversed(nodes):
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
        time.sleep(1)
        for proc in psutil.process_iter(["cmdline"]):  # anything our nodes left behind (found by our temp dir)
            try:
                if temp_dir in " ".join(proc.info["cmdline"] or []):
                    proc.kill()
            except psutil.Error:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_render_through_address_on_two_nodes(cluster, tmp_path):
    address, env = cluster
    n, b = 8, 1
    args = [*TINY, "-d", "ds", "-n", str(n), "-b", str(b), "--data_dir", str(tmp_path), "--no_progress",
            "--address", address, "--workers", "2"]
    proc = subprocess.run([sys.executable, str(REPO / "distributed_render.py"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert f"ds: {n} samples ({n} rendered" in proc.stdout
    records = assert_exactly(tmp_path / "ds", n, b)
    assert len({r["node"] for r in records}) == 2, "both nodes should have rendered shards"
