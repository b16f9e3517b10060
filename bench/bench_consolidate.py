"""Consolidation throughput (1 process vs a pool) and random-read latency (HDF5 vs loose files).

Makes a few hundred synthetic 64x64 frames with the test fixture maker (ray-cast spheres written as canonical
EXRs, and the same frames as loose 8-bit PNGs), then, side by side in one run:

- consolidates them with ``jobs=1`` (the original single-process way) and with ``jobs=N`` (our pool + one
  writer), in frames per second, including pool start-up;
- reads random samples (image + labels + metadata) from the loose EXR files, from the loose PNG files, from the
  ``imgs_XX.h5`` buckets (PNG decode included) and from the preprocessed ``data_64.h5``, in ms per sample.

    .venv/bin/python bench/bench_consolidate.py [--frames 300] [--jobs 2] [--reads 300]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import h5py  # noqa: E402

from bench.report import write_section  # noqa: E402
from pipeline.formats.exr import read_view_exr  # noqa: E402
from pipeline.formats.png import decode_png  # noqa: E402
from pipeline.layouts.consolidate import consolidate  # noqa: E402
from pipeline.layouts.preprocess import preprocess  # noqa: E402
from tests.fixtures_raw import make_raw_dataset  # noqa: E402


def _dir_bytes(folder: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in folder.glob(pattern))


def _latency(fn, order: list[int]) -> tuple[float, float]:
    """Median and 95th percentile of ``fn(i)`` over ``order``, in milliseconds (first call is a warm-up)."""
    fn(order[0])
    times = []
    for i in order:
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="synthetic frames (default 300)")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="pool size (default: CPUs)")
    parser.add_argument("--reads", type=int, default=300, help="random reads per reader (default 300)")
    parser.add_argument("--repeats", type=int, default=3, help="consolidation runs per setting; best is kept")
    parser.add_argument("--resolution", type=int, default=64, help="frame edge in pixels (default 64)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    res = (args.resolution, args.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        exr_dir = make_raw_dataset(Path(tmp), "exr", args.frames, resolution=res)
        png_dir = make_raw_dataset(Path(tmp), "png", args.frames, resolution=res, exr=False)
        print(f"made {args.frames} frames twice in {time.perf_counter() - t0:.1f} s")

        fps = {}
        walls: dict[int, list[float]] = {1: [], args.jobs: []}
        for _ in range(args.repeats):  # interleaved, best of N: the machine is shared
            for jobs in walls:
                t0 = time.perf_counter()
                result = consolidate(exr_dir, jobs=jobs)
                walls[jobs].append(time.perf_counter() - t0)
                assert result.written == args.frames and not result.bad
        for jobs, wall in walls.items():
            fps[jobs] = args.frames / min(wall)
            print(f"consolidate jobs={jobs}: best {min(wall):.2f} s of {len(wall)}, {fps[jobs]:.0f} frames/s")
        preprocess(exr_dir, res=args.resolution, jobs=args.jobs)

        rng = np.random.default_rng(0)
        order = rng.integers(0, args.frames, args.reads).tolist()
        samples = exr_dir / "samples"

        def loose_exr(i: int) -> None:
            json.loads((samples / f"{i:06d}" / "sample.json").read_text())
            read_view_exr(samples / f"{i:06d}" / "view_00.exr")

        def loose_png(i: int) -> None:
            json.loads((png_dir / "samples" / f"{i:06d}" / "sample.json").read_text())
            decode_png((png_dir / "samples" / f"{i:06d}" / "view_00.png").read_bytes())

        # A reader opens each file once and keeps its dataset handles: looking a dataset up by name costs
        # about as much as reading a row.
        files = {b: h5py.File(exr_dir / f"imgs_{b:02d}.h5", "r") for b in range(12)}
        keys = ("png_images", "png_targets", "K", "cam_to_world", "class_index")
        buckets = {b: {k: fh[k] for k in keys} for b, fh in files.items()}
        row_of = {int(idx): (b, r) for b, fh in files.items() for r, idx in enumerate(fh["index"][:])}

        def h5_bucket(i: int) -> None:
            b, r = row_of[i]
            ds = buckets[b]
            decode_png(ds["png_images"][r])
            decode_png(ds["png_targets"][r])
            ds["K"][r], ds["cam_to_world"][r], ds["class_index"][r]

        def h5_bucket_bytes(i: int) -> None:
            b, r = row_of[i]
            buckets[b]["png_images"][r], buckets[b]["png_targets"][r]

        data_file = h5py.File(exr_dir / f"data_{args.resolution}.h5", "r")
        data = {k: data_file[k] for k in ("images", "depth", "instance", "K")}

        def h5_preprocessed(i: int) -> None:
            data["images"][i], data["depth"][i], data["instance"][i], data["K"][i]

        readers = [
            ("loose EXR (sidecar + OpenEXR decode, the raw output)", loose_exr),
            ("loose PNG (sidecar + 8-bit PNG decode, no labels)", loose_png),
            ("imgs_XX.h5 row, PNG + 16-bit target decoded", h5_bucket),
            ("imgs_XX.h5 row, encoded bytes only", h5_bucket_bytes),
            (f"data_{args.resolution}.h5 row (float16 image + dense targets)", h5_preprocessed),
        ]
        lat = {name: _latency(fn, order) for name, fn in readers}
        for fh in files.values():
            fh.close()
        data_file.close()
        sizes = {
            "loose EXR": _dir_bytes(samples, "*/*.exr"),
            "imgs_XX.h5": _dir_bytes(exr_dir, "imgs_*.h5"),
            f"data_{args.resolution}.h5": _dir_bytes(exr_dir, "data_*.h5"),
        }
    load = os.getloadavg()
    for name, (med, p95) in lat.items():
        print(f"{name}: median {med:.3f} ms, p95 {p95:.3f} ms")
    print({k: f"{v / 2**20:.1f} MiB" for k, v in sizes.items()})
    lines = [
        f"{args.frames} synthetic {res[0]}x{res[1]} frames (ray-cast spheres, canonical EXR with labels), "
        f"{len(os.sched_getaffinity(0))} CPUs.",
        "",
        "| consolidation (`-f`, EXR -> sRGB PNG + 16-bit target PNG -> HDF5) | frames/s |",
        "| --- | --- |",
        f"| 1 process (the original way) | {fps[1]:.0f} |",
        f"| {args.jobs} processes + 1 writer (ours, pool start-up included) | {fps[args.jobs]:.0f} |",
        "",
        f"Best of {args.repeats} interleaved runs each; load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min) at the "
        "end of the run. At this frame size about half of the work is the single writer's (sidecar parsing, HDF5 "
        "appends), so a pool can at most about double the rate, and only on otherwise idle cores; on a shared, "
        "loaded machine `-j 1` can be as fast.",
        "",
        f"| random read of one sample ({args.reads} reads, warm page cache, open handles) | median ms | p95 ms |",
        "| --- | --- | --- |",
        *[f"| {name} | {med:.3f} | {p95:.3f} |" for name, (med, p95) in lat.items()],
        "",
        "Disk: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sizes.items()) + ".",
    ]
    if not args.no_write:
        write_section("Consolidation", lines, "python bench/bench_consolidate.py")
        print("wrote the Consolidation section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
