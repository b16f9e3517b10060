"""Trainer throughput on CPU: GQN training steps vs the data loader that feeds them.

Makes a toy scene-major dataset (64x64, 10 views a scene, like GQN's rooms; `train.toydata`), then, side by side
in one run:

- training speed of the CPU default (config/train/gqn_cpu.gin: 32x32, ~0.34M parameters) in query images/s;
- data-loader speed in query images/s (and view images/s) for our loader (file opened once per process, one
  chunk-sized scene row per item) and for the naive way (open the file for every item, read views one by one),
  in the main process and with 2 worker processes;
- the ratio loader / training, which must stay >= 10 so the loader never throttles training.

    .venv/bin/python bench/bench_train.py [--scenes 256] [--steps 30] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import h5py  # noqa: E402
import torch  # noqa: E402

from bench.report import write_section  # noqa: E402
from train.cli import parse_gin  # noqa: E402
from train.data import ItemKey, SceneBatchSampler, SceneDataset, downsample, make_loader, split_path  # noqa: E402
from train.models import build_model  # noqa: E402
from train.toydata import make_toy_dataset  # noqa: E402
from train.trainer import make_optimizer  # noqa: E402

BATCH = 16


class NaiveDataset(torch.utils.data.Dataset):
    """The naive way: open the HDF5 file for every item and read each view separately."""

    def __init__(self, path: Path, image_size: int) -> None:
        self.path, self.image_size = path, image_size
        with h5py.File(path, "r") as f:
            self.num_views, self.factor = f["images"].shape[1], f["images"].shape[2] // image_size

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        order = np.random.default_rng(key.seed).choice(self.num_views, size=key.n_context + 1, replace=False)
        with h5py.File(self.path, "r") as f:
            ims = np.stack([f["images"][key.scene, int(v)] for v in order]).astype(np.float32) / 255.0
            vps = np.stack([f["viewpoints"][key.scene, int(v)] for v in order])
        ims = torch.from_numpy(np.ascontiguousarray(downsample(ims, self.factor).transpose(0, 3, 1, 2)))
        return {"context_images": ims[:-1], "context_viewpoints": torch.from_numpy(vps[:-1]),
                "query_image": ims[-1], "query_viewpoint": torch.from_numpy(vps[-1]),
                "scene": torch.tensor(key.scene), "noise_seed": torch.tensor(key.seed)}


def loader_rate(dataset: torch.utils.data.Dataset, num_scenes: int, steps: int, workers: int) -> tuple[float, float]:
    """(query images/s, view images/s) of a loader over `steps` batches of BATCH items."""
    sampler = SceneBatchSampler(num_scenes, 10, BATCH, 1, 5, seed=0, max_steps=steps)
    start, views = time.perf_counter(), 0
    for batch in make_loader(dataset, sampler, num_workers=workers):
        views += batch["context_images"].shape[0] * (batch["context_images"].shape[1] + 1)
    elapsed = time.perf_counter() - start
    return steps * BATCH / elapsed, views / elapsed


def training_rate(data: Path, steps: int) -> tuple[float, int]:
    """(query images/s, parameters) of the CPU default config, data loading excluded."""
    parse_gin([REPO / "config" / "train" / "gqn_cpu.gin"], [])
    dataset = SceneDataset(split_path(data, "train"))
    model = build_model("gqn")
    opt, sched = make_optimizer(model.parameters())
    sampler = SceneBatchSampler(len(dataset), dataset.num_views, BATCH, 1, 5, seed=0, max_steps=steps + 5)
    batches = list(make_loader(dataset, sampler))
    for i, batch in enumerate(batches):
        if i == 5:
            start = time.perf_counter()
        loss = sum(model(batch)["losses"].values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return steps * BATCH / (time.perf_counter() - start), sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=256, help="training scenes in the toy dataset")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps (batch 16)")
    parser.add_argument("--loader-steps", type=int, default=60, help="batches read per loader variant")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_toy_dataset(Path(tmp) / "toy", num_train=args.scenes, num_val=0, num_test=0, num_views=10,
                                size=64)
        path = split_path(data, "train")
        default_threads = args.threads or torch.get_num_threads()
        train = {}
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            train[threads], params = training_rate(data, args.steps)
        torch.set_num_threads(default_threads)
        train_ips = max(train.values())
        rows = []
        for name, ds in (("ours (file opened once per process, one read per scene row, one conversion per batch)", SceneDataset(path, 32)),
                         ("naive (open the file per item, read views one by one)", NaiveDataset(path, 32))):
            for workers in (0, 2):
                q, v = loader_rate(ds, args.scenes, args.loader_steps, workers)
                rows.append((name, workers, q, v))
        load = os.getloadavg()
    ours0 = rows[0][2]
    lines = [
        f"Toy scene-major dataset ({args.scenes} scenes x 10 views, 64x64 stored, 32x32 on load), batch {BATCH}, "
        f"1-5 context views; load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min) at the end, on "
        f"{os.cpu_count()} cores shared with other jobs.",
        "",
        "| what | query images/s | view images/s |",
        "| --- | --- | --- |",
        *[f"| training, CPU default `gqn_cpu.gin` ({params / 1e6:.2f}M parameters, forward + backward + Adam), "
          f"{t} torch thread{'s' if t > 1 else ''} | {r:.0f} | |" for t, r in train.items()],
        *[f"| loader: {n}, {w} workers | {q:.0f} | {v:.0f} |" for n, w, q, v in rows],
        "",
        f"Our loader in the training process alone delivers {ours0 / train_ips:.0f}x what the faster training "
        f"setting consumes (required: >= 10x); the naive per-item open is {ours0 / rows[2][2]:.1f}x slower than "
        "ours. On a busy machine 2 torch threads can be several times slower than 1 (OpenMP threads spin while "
        "waiting for a core): use `python -m train ... --threads 1` there.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("Trainer", lines, "make venv && .venv/bin/python bench/bench_train.py")
    if ours0 < 10 * train_ips:
        raise SystemExit(f"loader ({ours0:.0f}/s) is less than 10x training ({train_ips:.0f}/s)")


if __name__ == "__main__":
    main()
