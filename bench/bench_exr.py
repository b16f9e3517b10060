"""EXR codec of the render side (render/exr.py): reading Blender's multilayer file and writing the canonical view.

Renders two GQN rooms scenes (64x64, the config as committed) and keeps the uncompressed multilayer EXRs Blender
wrote, then times, side by side in one run:

* reading them with each part taken in one piece (ours) against block by block (the general path, which files
  whose blocks are not back to back in line order take);
* writing the canonical view EXR with zlib level 1 (ours) against level 6 (zlib's default), with file sizes.

    .venv/bin/python bench/bench_exr.py [--repeats 5]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.report import write_section  # noqa: E402


def blender_files(out: Path, scenes: int) -> list[Path]:
    """Renders `scenes` rooms scenes and returns copies of the EXRs Blender wrote for their views."""
    import paths
    from render import (
        generators,  # noqa: F401  (registers the generators)
        view_output,
    )
    from render.blender_threads import load_blender
    from render.gin_setup import parse_gin

    parse_gin(["gqn_rooms_ring_camera"], [], paths.CONFIG_DIR)
    load_blender(1)
    from render.dataset import DatasetRenderer

    kept: list[Path] = []
    read = view_output.read_blender_exr

    def keep(path: Path, names: dict) -> dict:
        kept.append(out / f"blender_{len(kept):03d}.exr")
        shutil.copy(path, kept[-1])
        return read(path, names)

    view_output.read_blender_exr = keep
    renderer = DatasetRenderer(out / "dataset", threads=1)
    try:
        renderer.prepare()
        for index in range(scenes):
            renderer.render_sample(index)
    finally:
        renderer.close()
        view_output.read_blender_exr = read
    return kept


def per_file_ms(work: Callable[[Path], object], files: list[Path], repeats: int) -> float:
    """Best over `repeats` rounds of the mean time of `work` per file, in ms."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for path in files:
            work(path)
        best = min(best, (time.perf_counter() - start) / len(files))
    return 1000 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=2, help="rooms scenes rendered for their Blender EXRs")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (the best one counts)")
    parser.add_argument("--no_write", action="store_true", help="print the figures, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    from render import exr, view_output

    with tempfile.TemporaryDirectory(prefix="bench-exr-") as tmp:
        tmp_dir = Path(tmp)
        files = blender_files(tmp_dir, args.scenes)
        from render import compat  # imports bpy, which blender_files loaded with the thread limit

        whole = per_file_ms(exr.read_exr, files, args.repeats)
        channels = len(exr.read_exr(files[0]))
        fast_path = exr._uncompressed_lines
        exr._uncompressed_lines = lambda *a, **k: None  # every part through the block-by-block path
        try:
            by_block = per_file_ms(exr.read_exr, files, args.repeats)
        finally:
            exr._uncompressed_lines = fast_path
        views = [view_output.canonical_channels(view_output.read_blender_exr(f, compat.PASS_NAMES)) for f in files]
        writes = {}
        for level in (1, 6):
            exr.ZIP_LEVEL = level
            targets = [tmp_dir / f"canonical_{level}_{k:03d}.exr" for k in range(len(views))]
            pairs = dict(zip(targets, views, strict=True))
            ms = per_file_ms(lambda t, pairs=pairs: view_output.write_canonical_exr(t, pairs[t]), targets, args.repeats)
            writes[level] = (ms, sum(t.stat().st_size for t in targets) / len(targets) / 1024)
        exr.ZIP_LEVEL = 1
        canonical_read = per_file_ms(exr.read_exr, [tmp_dir / f"canonical_1_{k:03d}.exr" for k in range(len(views))],
                                     args.repeats)
    raw_kb = sum(a.nbytes for a in views[0].values()) / 1024
    lines = [
        f"{len(files)} views of {args.scenes} GQN rooms scenes (64x64, config/gqn_rooms_ring_camera.gin), one process; "
        f"best of {args.repeats} rounds; load average at the end {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores.",
        "",
        "| step | ours | other way | ratio |",
        "| --- | --- | --- | --- |",
        f"| read Blender's multilayer EXR (uncompressed, {channels} channels) | {whole:.2f} ms "
        f"(each part in one piece) | {by_block:.2f} ms (block by block) | {by_block / whole:.1f}x |",
        f"| write the canonical view EXR ({raw_kb:.0f} KiB of channels, ZIP) | {writes[1][0]:.2f} ms, "
        f"{writes[1][1]:.1f} KiB (zlib level 1) | {writes[6][0]:.2f} ms, {writes[6][1]:.1f} KiB (level 6) "
        f"| {writes[6][0] / writes[1][0]:.1f}x faster, {100 * (writes[1][1] / writes[6][1] - 1):+.1f}% bytes |",
        f"| read the canonical view EXR | {canonical_read:.2f} ms | | |",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("EXR codec", lines, command=".venv/bin/python bench/bench_exr.py")


if __name__ == "__main__":
    main()
