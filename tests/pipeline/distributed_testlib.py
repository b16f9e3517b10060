"""Helpers shared by the distributed rendering tests (tests/pipeline/test_distributed*.py)."""

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Tiny, fast settings: 32 px, 2 Cycles samples, canonical EXR views (byte-comparable).
TINY = ["-g", "render_single", "-p", "rendering.resolution = 32", "-p", "rendering.render_samples = 2",
        "-p", "rendering.render_exr = True"]


def run_main(args: list[str]) -> int:
    """Runs distributed_render.main in this process."""
    import distributed_render

    return distributed_render.main(args)


def start_driver(args: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """Starts distributed_render.py as a separate driver process (output into `log`)."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115  (closed with the process)
    return subprocess.Popen([sys.executable, str(REPO / "distributed_render.py"), *args], cwd=REPO,
                            env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)


def sample_names(dataset_dir: Path) -> list[str]:
    """Names of everything in samples/ (complete samples and any debris), sorted."""
    return sorted(p.name for p in (dataset_dir / "samples").iterdir())


def manifest_records(dataset_dir: Path) -> list[dict]:
    path = dataset_dir / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    """Polls `predicate` until it holds; fails after `timeout` s or when `proc` exits first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def file_bytes(dataset_dir: Path) -> dict[str, bytes]:
    """{"000003/view_00.exr": bytes, ...} of every file of every sample."""
    samples = dataset_dir / "samples"
    return {f"{d.name}/{f.name}": f.read_bytes() for d in sorted(samples.iterdir()) for f in sorted(d.iterdir())}


def mtimes(dataset_dir: Path, indices: list[int]) -> dict[str, int]:
    samples = dataset_dir / "samples"
    return {f"{i:06d}/{f.name}": f.stat().st_mtime_ns for i in indices for f in sorted((samples / f"{i:06d}").iterdir())}


def assert_exactly(dataset_dir: Path, num_samples: int, shard_size: int) -> list[dict]:
    """Every sample 0..N-1 complete and nothing else in samples/; the manifest lists every shard once."""
    assert sample_names(dataset_dir) == [f"{i:06d}" for i in range(num_samples)]
    for i in range(num_samples):
        assert (dataset_dir / "samples" / f"{i:06d}" / "sample.json").is_file()
    records = manifest_records(dataset_dir)
    by_shard = sorted(records, key=lambda r: r["shard"])
    expected = [list(range(s, min(s + shard_size, num_samples))) for s in range(0, num_samples, shard_size)]
    assert [r["shard"] for r in by_shard] == list(range(len(expected)))
    assert [r["samples"] for r in by_shard] == expected
    info = json.loads((dataset_dir / "dataset.json").read_text())
    for r in records:
        assert r["config_hash"] == info["config_hash"] and r["seed"] == info["seed"] and r["threads"] == 1
    return records


@contextlib.contextmanager
def embedded_ray():
    """One embedded Ray with 2 CPUs for a test module; yields its address, which drivers in other processes join."""
    import pytest
    import ray

    if ray.is_initialized():
        pytest.skip("Ray is already initialised in this process by another test module")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
