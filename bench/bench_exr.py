"""EXR codec of the render side (render/exr.py): reading Blender's multilayer file and writing the canonical view.

Renders two GQN rooms scenes (64x64, the config as committed) twice, keeping the uncompressed multilayer EXRs
Blender wrote as one interleaved part (ours) and as a part per pass (Blender 5.0's default), then times, side by
side in one run:

* reading the interleaved file in one piece (ours) against the file with a part per pass, and against reading the
  interleaved file block by block (the general path, which files whose blocks are not back to back take);
* writing the canonical view EXR with ISA-L's deflate at level 1 (ours) against zlib's level 1 and level 6 (zlib's
  default), with file sizes.

    .venv/bin/python bench/bench_exr.py [--repeats 5]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.report import write_section  # noqa: E402


def blender_files(out: Path, scenes: int, interleave: bool = True) -> list[Path]:
    """Renders `scenes` rooms scenes and returns copies of the EXRs Blender wrote for their views (one interleaved
    part, or Blender 5.0's part per pass)."""
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
    tag = "interleaved" if interleave else "parts"

    def keep(path: Path, names: dict) -> dict:
        kept.append(out / f"blender_{tag}_{len(kept):03d}.exr")
        shutil.copy(path, kept[-1])
        return read(path, names)

    view_output.read_blender_exr = keep
    renderer = DatasetRenderer(out / f"dataset_{tag}", threads=1)
    renderer.scene.scene.render.image_settings.use_exr_interleave = interleave
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
        part_files = blender_files(tmp_dir, args.scenes, interleave=False)
        from render import compat  # imports bpy, which blender_files loaded with the thread limit

        whole = per_file_ms(exr.read_exr, files, args.repeats)
        per_pass = per_file_ms(exr.read_exr, part_files, args.repeats)
        channels = len(exr.read_exr(files[0]))
        fast_path = exr._uncompressed_lines
        exr._uncompressed_lines = lambda *a, **k: None  # every part through the block-by-block path
        try:
            by_block = per_file_ms(exr.read_exr, files, args.repeats)
        finally:
            exr._uncompressed_lines = fast_path
        views = [view_output.canonical_channels(view_output.read_blender_exr(f, compat.PASS_NAMES)) for f in files]
        writes = {}
        ours = exr._deflate
        deflaters = {"isal 1": ours, "zlib 1": lambda d: zlib.compress(d, 1), "zlib 6": lambda d: zlib.compress(d, 6)}
        try:
            for name, deflate in deflaters.items():
                exr._deflate = deflate
                targets = [tmp_dir / f"canonical_{name[:4]}{name[-1]}_{k:03d}.exr" for k in range(len(views))]
                pairs = dict(zip(targets, views, strict=True))
                ms = per_file_ms(lambda t, pairs=pairs: view_output.write_canonical_exr(t, pairs[t]), targets,
                                 args.repeats)
                writes[name] = (ms, sum(t.stat().st_size for t in targets) / len(targets) / 1024)
        finally:
            exr._deflate = ours
        canonical_read = per_file_ms(exr.read_exr, [tmp_dir / f"canonical_isal1_{k:03d}.exr" for k in range(len(views))],
                                     args.repeats)
    raw_kb = sum(a.nbytes for a in views[0].values()) / 1024
    lines = [
        f"{len(files)} views of {args.scenes} GQN rooms scenes (64x64, config/gqn_rooms_ring_camera.gin), one process; "
        f"best of {args.repeats} rounds; load average at the end {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores.",
        "",
        "| step | ours | other way | ratio |",
        "| --- | --- | --- | --- |",
        f"| read Blender's multilayer EXR (uncompressed, {channels} channels) | {whole:.2f} ms (one interleaved "
        f"part, read in one piece) | {per_pass:.2f} ms (a part per pass, Blender 5.0's default) | "
        f"{per_pass / whole:.1f}x |",
        f"| the same, the interleaved file | {whole:.2f} ms (in one piece) | {by_block:.2f} ms (block by block) | "
        f"{by_block / whole:.1f}x |",
    ]
    ours_ms, ours_kb = writes["isal 1"]
    for name in ("zlib 1", "zlib 6"):
        ms, kb = writes[name]
        lines.append(f"| write the canonical view EXR ({raw_kb:.0f} KiB of channels, ZIP) | {ours_ms:.2f} ms, "
                     f"{ours_kb:.1f} KiB (ISA-L level 1) | {ms:.2f} ms, {kb:.1f} KiB (zlib level {name[-1]}) | "
                     f"{ms / ours_ms:.1f}x faster, {100 * (ours_kb / kb - 1):+.1f}% bytes |")
    lines += [
        f"| read the canonical view EXR | {canonical_read:.2f} ms | | |",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("EXR codec", lines, command=".venv/bin/python bench/bench_exr.py")


if __name__ == "__main__":
    main()
