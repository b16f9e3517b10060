"""Consolidation on the render farm (issue 17), side by side with the one-machine way, in one run:

1. Time from the last rendered shard to a trainable dataset, at two dataset sizes: the farm's virtual split files
   over the shard rows the workers already wrote (`pipeline.layouts.virtual.publish_virtual`, then opening
   `scenes_train.h5` for training) against a one-machine consolidation of the same samples (`consolidate`, one
   process, then the same open). Synthetic 64x64 GQN-like scenes of 10 views from the test fixture maker (ray-cast
   spheres as canonical EXRs), shards of 10 scenes; the workers' row writing itself happens while they render and
   is measured in 2.
2. The farm's frames/s with row writing on and off: real Blender renders through the shard driver in one process
   (`-l`, one worker: what each Ray worker does), interleaved off/on ... on/off, best of each, and the share of
   the shard time the worker spent writing rows (timed inside the worker).
3. Random reads of one scene row (10 views) through the virtual file against the single file of 1.

    .venv/bin/python bench/bench_farm.py [--sizes 40 320] [--reads 300] [--no_write]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import h5py  # noqa: E402

import paths  # noqa: E402
from bench.report import write_section  # noqa: E402
from pipeline.distribution.driver import render_dataset  # noqa: E402
from pipeline.distribution.job import RenderJob, RunOptions  # noqa: E402
from pipeline.layouts.consolidate import consolidate  # noqa: E402
from pipeline.layouts.farm_rows import write_shard_rows  # noqa: E402
from pipeline.layouts.virtual import publish_virtual  # noqa: E402
from tests.fixtures_raw import make_raw_dataset  # noqa: E402

SHARD = 10
VIEWS = 10
#: Real renders of 2.: (label, gin file, bindings, samples, shard size, views per sample).
RENDER_CASES = (
    ("GQN rooms, 10 views, EXR (scene-major)", "gqn_rooms_ring_camera", ("rendering.resolution = 64",), 6, 2, 10),
    ("selfstudy, 1 view, PNG (sample-major)", "render_single", ("rendering.resolution = 64",), 80, 10, 1),
)


def _train_ready(dataset_dir: Path) -> None:
    """What a trainer does before its first step: open scenes_train.h5 and read one scene."""
    with h5py.File(dataset_dir / "scenes_train.h5", "r") as fh:
        fh["images"][0]
        fh["viewpoints"][:]


def _to_trainable(scenes: int, root: Path) -> dict[str, float]:
    """Seconds from the last shard to a trainable dataset, farm and one machine, for one dataset size."""
    dataset = make_raw_dataset(root, f"size{scenes}", scenes, n_views=VIEWS, resolution=(64, 64))
    t0 = time.perf_counter()
    consolidate(dataset, jobs=1)
    _train_ready(dataset)
    classic = time.perf_counter() - t0
    aside = root / f"classic{scenes}"
    aside.mkdir()
    for p in [*dataset.glob("scenes_*.h5"), dataset / "consolidation.json", dataset / "splits.json"]:
        p.rename(aside / p.name)
    t0 = time.perf_counter()
    rows = [write_shard_rows(dataset, s // SHARD, range(s, min(scenes, s + SHARD))) for s in range(0, scenes, SHARD)]
    workers = time.perf_counter() - t0
    t0 = time.perf_counter()
    publish_virtual(dataset, rows)
    _train_ready(dataset)
    farm = time.perf_counter() - t0
    return {"scenes": scenes, "frames": scenes * VIEWS, "classic": classic, "farm": farm, "workers": workers,
            "shards": len(rows), "dataset": dataset, "aside": aside}


def _reads(virtual: Path, single: Path, n: int) -> dict[str, tuple[float, float, float]]:
    """(open ms, median ms, p95 ms) of reading one random scene row of scenes_train.h5, both ways, interleaved."""
    out: dict[str, list[float]] = {"virtual": [], "single": []}
    opens: dict[str, float] = {}
    handles = {}
    for name, path in (("virtual", virtual), ("single", single)):
        t0 = time.perf_counter()
        handles[name] = h5py.File(path, "r")
        handles[name]["images"][0]
        opens[name] = 1e3 * (time.perf_counter() - t0)
    count = handles["single"]["images"].shape[0]
    order = np.random.default_rng(0).integers(0, count, n)
    for i in order:
        for name in ("virtual", "single") if i % 2 else ("single", "virtual"):
            t0 = time.perf_counter()
            handles[name]["images"][int(i)]
            out[name].append(1e3 * (time.perf_counter() - t0))
    for fh in handles.values():
        fh.close()
    return {k: (opens[k], float(np.median(v)), float(np.percentile(v, 95))) for k, v in out.items()}


def _render(case: tuple, rows: bool, data_dir: Path, tag: str) -> tuple[float, float]:
    """(frames/s of one local driver run of `case`, worker start-up included; share of its shard time spent
    writing rows)."""
    label, gin, bindings, samples, shard, views = case
    job = RenderJob(dataset_dir=data_dir / tag, gin_files=(str(paths.CONFIG_DIR / f"{gin}.gin"),),
                    bindings=bindings, config_dir=paths.CONFIG_DIR, threads=1, rows=rows)
    # the driver's default cadence (virtual files rewritten at most every 10 s, and once at the end), as a farm runs
    options = RunOptions(local=True, retries=0, progress=False)
    stats = render_dataset(job, samples, shard, options)
    if stats.failures:
        raise RuntimeError(f"{tag}: {stats.failures}")
    shutil.rmtree(job.dataset_dir, ignore_errors=True)
    return samples * views / stats.seconds, stats.timings.get("rows", 0.0) / stats.worker_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Farm consolidation (shard rows + virtual files) vs one machine.")
    parser.add_argument("--sizes", type=int, nargs=2, default=[40, 320], help="scenes of the two datasets of 1.")
    parser.add_argument("--reads", type=int, default=300, help="random scene reads of 3.")
    parser.add_argument("--repeats", type=int, default=2, help="off/on pairs of 2. in each order")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md",
                        help="markdown file whose '## Farm consolidation' section is rewritten")
    parser.add_argument("--no_write", action="store_true", help="print the section only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="nsd-bench-farm-"))
    start = time.perf_counter()
    try:
        sizes = [_to_trainable(n, root) for n in args.sizes]
        big = sizes[-1]
        reads = _reads(big["dataset"] / "scenes_train.h5", big["aside"] / "scenes_train.h5", args.reads)
        fps: dict[str, dict[bool, list[tuple[float, float]]]] = {}
        for case in RENDER_CASES:
            fps[case[0]] = {False: [], True: []}
            for i, on in enumerate((False, True) * args.repeats + (True, False) * args.repeats):
                fps[case[0]][on].append(_render(case, on, root, f"{case[1]}-{i}"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total = time.perf_counter() - start
    load_after = os.getloadavg()

    lines = [
        f"One process on a 2-core VM shared with other engineers (load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after; {total:.0f} s in all): absolute figures are noisy, the ratios within one row "
        "are what to read.",
        "",
        "**From the last rendered shard to a trainable dataset** (synthetic 64x64 scenes of 10 views, canonical EXR, "
        f"shards of {SHARD} scenes; both ways end with `scenes_train.h5` opened and a scene read):",
        "",
        "| scenes (frames) | shards | one-machine consolidation s | farm: virtual files s | ratio "
        "| workers' row writing, spread over the render s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in sizes:
        lines.append(f"| {s['scenes']} ({s['frames']}) | {s['shards']} | {s['classic']:.2f} | {s['farm']:.3f} "
                     f"| {s['classic'] / s['farm']:.0f}x | {s['workers']:.2f} |")
    growth = sizes[-1]["scenes"] / sizes[0]["scenes"]
    lines += [
        "",
        f"{growth:.0f}x the scenes: one machine takes {sizes[-1]['classic'] / sizes[0]['classic']:.1f}x longer, "
        f"the farm's step {sizes[-1]['farm'] / sizes[0]['farm']:.1f}x (it maps each shard once and copies no pixel; "
        "it grows with the number of shards, not of frames, and stays far below a second here).",
        "",
        "**Farm frames/s with row writing on and off** (real Blender renders, the shard driver in one process with one "
        "worker, interleaved off/on ... on/off, best of each; worker start-up and the final virtual files included, rewritten at the driver's default cadence; the last column is measured inside the worker, so it does not depend on the machine's load between runs):",
        "",
        "| dataset | off frames/s | on frames/s | on / off | runs each | share of the on runs' shard time spent "
        "writing rows |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, runs in fps.items():
        off, on = max(f for f, _ in runs[False]), max(f for f, _ in runs[True])
        share = float(np.median([s for _, s in runs[True]]))
        lines.append(f"| {label} | {off:.2f} | {on:.2f} | {on / off:.3f} | {len(runs[True])} | {100 * share:.1f}% |")
    lines += [
        "",
        f"**Random reads of one scene row** (10 views of 64x64, {args.reads} reads interleaved, the "
        f"{sizes[-1]['scenes']}-scene `scenes_train.h5`):",
        "",
        "| file | open + first read ms | median ms | p95 ms |",
        "| --- | --- | --- | --- |",
    ]
    for name, label in (("single", "single file (consolidation)"), ("virtual", "virtual file over the shards")):
        o, med, p95 = reads[name]
        lines.append(f"| {label} | {o:.1f} | {med:.3f} | {p95:.3f} |")
    lines.append("")
    lines.append(f"Virtual / single median: {reads['virtual'][1] / reads['single'][1]:.2f}x.")
    print("\n".join(lines))
    if not args.no_write:
        write_section("Farm consolidation", lines, "python bench/bench_farm.py", path=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
