"""A 2-process DDP run (torchrun, gloo on CPU) matches one process with the same global batch, for each model family."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import paths
from train import checkpoint as ckpt
from train.cli import main

#: Gradients are averaged over two ranks in a different summation order: per-step losses and weights agree to
#: float32 rounding, amplified a little by Adam over the steps.
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("family", ["gqn", "enr", "rendernet"])
def test_two_process_ddp_equals_one_process(family: str, toy_data: Path, enr_data: Path, object_data: Path,
                                            tiny_gin: Path, tiny_enr_gin: Path, tiny_rendernet_gin: Path,
                                            tmp_path: Path):
    data, gin_file, keys = {
        "gqn": (toy_data, tiny_gin, ("nll", "kl")),
        "enr": (enr_data, tiny_enr_gin, ("l1", "ssim")),
        "rendernet": (object_data, tiny_rendernet_gin, ("image", "normal", "mask")),
    }[family]
    args = ["fit", "-g", str(gin_file), "--data", str(data), "-p", "fit.max_steps=6", "-p", "fit.batch_size=4"]
    single, double = tmp_path / "single", tmp_path / "ddp"
    assert main([*args, "--run", str(single)]) == 0
    env = {**os.environ, "PYTHONPATH": str(paths.REPO_DIR), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "train", "fit", *args[1:], "--run-dir", str(double)]
    proc = subprocess.run(cmd, cwd=paths.REPO_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _losses(single), _losses(double)
    assert [r["step"] for r in b] == list(range(1, 7))
    for ra, rb in zip(a, b, strict=True):
        for key in (*keys, "loss", "mse"):
            assert rb[key] == pytest.approx(ra[key], rel=LOSS_RTOL), (ra["step"], key)
    wa = ckpt.load_checkpoint(ckpt.latest_checkpoint(single))["model"]
    wb = ckpt.load_checkpoint(ckpt.latest_checkpoint(double))["model"]
    worst = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    print(f"{family}: max |weight difference| {worst:.2e}; max loss rel. difference "
          f"{max(abs(rb['loss'] / ra['loss'] - 1) for ra, rb in zip(a, b, strict=True)):.2e}")
    assert worst < WEIGHT_ATOL
