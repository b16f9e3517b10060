"""Scene generators: core-seconds per complete labelled scene, where they go, and the rooms' RGB quality.

For every generator config (the GQN rooms and Shepard-Metzler sets, and the fruit still life when its assets are
fetched) renders scenes through the real path (`DatasetRenderer`: generator, scene build, Cycles and its denoiser, canonical
EXR, sidecar) in one process with 1 Cycles thread, after one warm-up scene, and reports CPU time of the process
(core-seconds: every thread of the process) and the split of the wall time. Side by side it renders the
same rooms the naive way (16 samples, 12 bounces, no denoiser: the render core's plain path) and against 256-sample
references measures the PSNR of both (sRGB 8-bit, as the consolidated data stores it).

    .venv/bin/python bench/bench_generators.py [--scenes 10] [--quality_scenes 2]
    .venv/bin/python bench/bench_generators.py --pictures docs/img     # the pictures of docs/generators.md
    .venv/bin/python bench/bench_generators.py --pictures docs/img --only enr_rotation   # one of them
"""

import argparse
import json
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

from bench.report import write_section  # noqa: E402
from core import publish  # noqa: E402

logger = logging.getLogger("bench_generators")

#: (config, short name) of every generator benchmarked.
GENERATORS = (
    ("gqn_rooms_ring_camera", "rooms, ring camera"),
    ("gqn_rooms_free_camera", "rooms, free camera"),
    ("gqn_shepard_metzler_5_parts", "Shepard-Metzler, 5 parts"),
    ("gqn_shepard_metzler_7_parts", "Shepard-Metzler, 7 parts"),
    ("fruit_still_life", "fruit still life"),
    ("enr_rotation", "ENR rotation (chairs)"),
    ("enr_translation", "ENR translation (chairs)"),
    ("enr_rototranslation", "ENR roto-translation (chairs)"),
)
#: Views a picture shows at most (ENR scenes have 50): the first ones, in order.
PICTURE_VIEWS = 12
NAIVE = ["rendering.render_samples = 16", "rendering.denoise = 'none'", "rendering.max_bounces = 12"]
NOTE = (
    "Notes: labels cost no extra render: Cycles writes depth and object/material ids from the first sample of each "
    "pixel, so the 1-sample RGB render is also the label pass. The render call column holds both and Cycles' own "
    "OIDN pass ('fast' filter on colour, albedo and normal), which runs at the end of the call. Cycles keeps its "
    "session between the views of a sample (persistent data) and drops it at each new sample, so a sample's pixels "
    "do not depend on what the worker rendered before; the fresh-session row shows what the kept session saves. "
    "The EXR column is reading Blender's uncompressed multilayer file and writing the canonical ZIP file "
    "(codec figures: `## EXR codec`).")


def _renderer(config: str, bindings: list[str], out: Path, threads: int):
    from render.dataset import DatasetRenderer
    from render.gin_setup import parse_gin

    parse_gin([config], bindings, REPO / "config")
    renderer = DatasetRenderer(out, threads=threads)
    renderer.prepare()
    return renderer


def measure(config: str, bindings: list[str], scenes: int, threads: int, out: Path) -> dict:
    """Renders scene 0 (warm-up) then scenes 1..`scenes`; returns per-scene CPU seconds and the wall-time split."""
    renderer = _renderer(config, bindings, out, threads)
    try:
        renderer.render_sample(0)
        timings = renderer.scene.timings
        for key in timings:
            timings[key] = 0.0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for index in range(1, scenes + 1):
            renderer.render_sample(index)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        split = {k: v / scenes for k, v in timings.items()}
    finally:
        renderer.close()
    views = len(json.loads((out / "samples" / "000001" / "sample.json").read_text())["views"])
    split["other"] = wall / scenes - sum(split.values())  # generator call, sidecar, publishing
    return {"cpu": cpu / scenes, "wall": wall / scenes, "split": split, "views": views}


def measure_fresh_session_per_view(config: str, scenes: int, threads: int, out: Path) -> dict:
    """`measure` with Cycles' session dropped before every view instead of once per sample (the way before)."""
    from render.blender_scene import BlenderScene

    render_view = BlenderScene.render_view

    def fresh_render_view(self, *args, **kwargs):
        self.drop_cycles_session()
        return render_view(self, *args, **kwargs)

    BlenderScene.render_view = fresh_render_view
    try:
        return measure(config, [], scenes, threads, out)
    finally:
        BlenderScene.render_view = render_view


def _rgb8(path: Path) -> np.ndarray:
    from pipeline.formats.png import linear_to_srgb8
    from render.exr import read_exr

    ch = read_exr(path)
    return linear_to_srgb8(np.stack([ch["R"], ch["G"], ch["B"]], -1))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (or stacks), on [0, 1]."""
    mse = float(np.mean((a.astype(np.float64) / 255.0 - b.astype(np.float64) / 255.0) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def views_of(dataset: Path, indices: range) -> np.ndarray:
    out = []
    for index in indices:
        sample = dataset / "samples" / f"{index:06d}"
        sidecar = json.loads((sample / "sample.json").read_text())
        out.extend(_rgb8(sample / v["file"]) for v in sidecar["views"])
    return np.stack(out)


def quality(config: str, fast: Path, naive: Path, scenes: int, threads: int, tmp: Path) -> dict:
    """PSNR of the fast and naive renders of scenes 1..`scenes` against 256-sample renders of the same views."""
    result = {}
    for bounces in (3, 12):
        ref_dir = tmp / f"reference_{bounces}"
        renderer = _renderer(config, ["rendering.render_samples = 256", "rendering.denoise = 'none'",
                                      f"rendering.max_bounces = {bounces}"], ref_dir, threads)
        try:
            for index in range(1, scenes + 1):
                renderer.render_sample(index)
        finally:
            renderer.close()
        ref = views_of(ref_dir, range(1, scenes + 1))
        per_view = [psnr(a, b) for a, b in zip(views_of(fast, range(1, scenes + 1)), ref, strict=True)]
        result[f"fast_vs_ref{bounces}"] = psnr(views_of(fast, range(1, scenes + 1)), ref)
        result[f"fast_vs_ref{bounces}_worst_view"] = min(per_view)
        result[f"naive_vs_ref{bounces}"] = psnr(views_of(naive, range(1, scenes + 1)), ref)
    return result


def pictures(out_dir: Path, threads: int, only: list[str] | None = None) -> None:
    """One row of RGB views and one of instance ids per generator (those of `only` when given), from scene 0, as
    docs/img/<config>.png; at most PICTURE_VIEWS views, the first ones."""
    from PIL import Image

    from pipeline.quality.contact_sheet import palette_colour
    from render.catalogue import AssetError
    from render.exr import read_exr

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        for config, _ in GENERATORS:
            if only and config not in only:
                continue
            try:
                renderer = _renderer(config, [], Path(tmp) / config, threads)
            except AssetError as err:
                logger.warning("no picture for %s: %s", config, err)
                continue
            try:
                renderer.render_sample(0)
            finally:
                renderer.close()
            sample = Path(tmp) / config / "samples" / "000000"
            sidecar = json.loads((sample / "sample.json").read_text())
            shown = sidecar["views"][:PICTURE_VIEWS]
            rgb = [_rgb8(sample / v["file"]) for v in shown]
            inst = []
            for v in shown:
                ids = read_exr(sample / v["file"])["instance"]
                colours = np.array([palette_colour(int(i), "instance") for i in range(int(ids.max()) + 1)], np.uint8)
                inst.append(colours[ids])
            sheet = np.concatenate([np.concatenate(rgb, 1), np.concatenate(inst, 1)], 0)
            path = out_dir / f"{config}.png"
            with publish.Staged(path) as staged:
                Image.fromarray(sheet).save(staged.path, optimize=True)
            logger.info("wrote %s", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=10, help="timed scenes per generator (after one warm-up)")
    parser.add_argument("--quality_scenes", type=int, default=2, help="room scenes compared with 256-sample renders")
    parser.add_argument("--threads", type=int, default=1, help="Cycles threads (1: CPU time = wall time when idle)")
    parser.add_argument("--pictures", type=Path, default=None, help="only write the generator pictures into this folder")
    parser.add_argument("--only", nargs="+", default=None, help="--pictures: only these configs")
    parser.add_argument("--no_write", action="store_true", help="print the figures, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from render import generators  # noqa: F401  (registers the generators)
    from render.blender_threads import load_blender
    from render.catalogue import AssetError

    load_blender(args.threads)  # as render.py and the workers do: no idle task-scheduler threads
    if args.pictures:
        pictures(args.pictures, args.threads, args.only)
        return
    rows, figures = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        tmp_dir = Path(tmp)
        for config, label in GENERATORS:
            try:
                fig = measure(config, [], args.scenes, args.threads, tmp_dir / config)
            except AssetError as err:
                logger.warning("skipping %s: %s", config, err)
                rows.append(f"| {label} (`{config}`) | not measured: {str(err).splitlines()[0]} | | | | | | | |")
                continue
            figures[config] = fig
            s = fig["split"]
            rows.append(
                f"| {label} (`{config}`) | {fig['views']} | {fig['cpu']:.2f} | {3600 / fig['cpu']:.0f} | {fig['wall']:.2f} "
                f"| {1000 * s['render_call']:.0f} | {1000 * (s['build'] + s['clear']):.0f} "
                f"| {1000 * s['write']:.0f} | {1000 * s['other']:.0f} |")
            logger.info("%s: %s", config, fig)
        room = "gqn_rooms_ring_camera"
        fresh = measure_fresh_session_per_view(room, args.scenes, args.threads, tmp_dir / "fresh")
        s = fresh["split"]
        rows.append(
            f"| rooms, ring camera, fresh Cycles session for every view (before: no persistent data) | "
            f"{fresh['views']} | {fresh['cpu']:.2f} | {3600 / fresh['cpu']:.0f} | {fresh['wall']:.2f} "
            f"| {1000 * s['render_call']:.0f} | {1000 * (s['build'] + s['clear']):.0f} "
            f"| {1000 * s['write']:.0f} | {1000 * s['other']:.0f} |")
        naive = measure(room, NAIVE, args.scenes, args.threads, tmp_dir / "naive")
        logger.info("naive: %s", naive)
        q = quality(room, tmp_dir / room, tmp_dir / "naive", args.quality_scenes, args.threads, tmp_dir)
        logger.info("quality: %s", q)
        shutil.rmtree(tmp_dir, ignore_errors=True)
    fast = figures[room]
    load = os.getloadavg()[0]
    lines = [
        f"Every generator's config as committed, 64x64, 1 Cycles thread, {args.scenes} scenes after one warm-up scene, "
        "through `DatasetRenderer` (generator, scene build, render and denoise, canonical EXR with RGB, depth, instance, "
        "semantic and normals, sidecar). Core-seconds = CPU time of the process (all its threads); the split is "
        f"wall time per scene. Load average at the end: {load:.2f} on {os.cpu_count()} cores "
        "(the machine is shared, so wall times run above CPU times).",
        "",
        "| generator | views | core-s / scene | scenes / hour / core | wall s / scene | render call ms (RGB + label "
        "passes + Cycles' denoiser, one call per view) | scene build + clear ms | EXR read + write ms | other ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "Rooms (ring camera), our way against the naive way, same scenes and views; PSNR of the 8-bit sRGB views "
        f"({args.quality_scenes} scenes, {args.quality_scenes * fast['views']} views) against 256-sample renders:",
        "",
        "| way | core-s / scene | PSNR vs 256 samples, 3 bounces | PSNR vs 256 samples, 12 bounces | worst view (3 bounces) |",
        "| --- | --- | --- | --- | --- |",
        f"| ours: 1 sample, 3 bounces, Cycles' OIDN fast (colour + albedo + normal), labels from the same sample | {fast['cpu']:.2f} "
        f"| {q['fast_vs_ref3']:.1f} dB | {q['fast_vs_ref12']:.1f} dB | {q['fast_vs_ref3_worst_view']:.1f} dB |",
        f"| naive: 16 samples, 12 bounces, no denoiser | {naive['cpu']:.2f} | {q['naive_vs_ref3']:.1f} dB "
        f"| {q['naive_vs_ref12']:.1f} dB | |",
        "",
        f"Speed-up {naive['cpu'] / fast['cpu']:.1f}x. Target: at most 0.5 core-seconds for a labelled 10-view scene "
        f"with at least 30 dB: {'met' if fast['cpu'] <= 0.5 and q['fast_vs_ref3'] >= 30 else 'NOT met'} "
        f"({fast['cpu']:.2f} core-s, {q['fast_vs_ref3']:.1f} dB).",
        "",
        NOTE,
    ]
    for line in lines:
        print(line)
    if not args.no_write:
        write_section("Scene generators", lines, "make venv && .venv/bin/python bench/bench_generators.py")


if __name__ == "__main__":
    main()
