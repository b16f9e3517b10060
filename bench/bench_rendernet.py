"""RenderNet pairs: per object, the CPU cost of voxelising its mesh against rendering its views, for the Sweet Home 3D
chairs and CGAL's meshes; and the picture of docs/generators.md.

For each mesh set, renders `--objects` samples of config/rendernet.gin (24 views, 64x64, 4 samples + Cycles' fast
denoiser, 64^3 voxels) through the real path (`DatasetRenderer`, 1 Cycles thread, after one warm-up sample) and
measures, per object, the process CPU time of the render (build, Cycles, EXR, clear) and, separately and with the
voxel cache emptied, of `render.voxels.voxelize_file` on the same mesh (load, normalise, shell, fill or carve).
CPU time, not wall time: other sessions share these 2 cores, and wall time then measures them too.

    .venv/bin/python bench/bench_rendernet.py [--objects 6]
    .venv/bin/python bench/bench_rendernet.py --picture docs/img     # docs/img/rendernet.png
"""

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_generators import _renderer, _rgb8  # noqa: E402
from bench.report import write_section  # noqa: E402
from core import publish  # noqa: E402

logger = logging.getLogger("bench_rendernet")

#: (label, gin bindings) of each mesh set.
SETS = (
    ("Sweet Home 3D chairs", []),
    ("CGAL meshes", ["rendernet_object.source = 'cgal'", "rendernet_object.classes = None"]),
)


#: (source, classes) of each set for voxelising every mesh of it.
WHOLE_SETS = (("sweethome3d", "chair"), ("cgal", None))


def measure(bindings: list[str], objects: int, threads: int, out: Path) -> list[dict]:
    """Per object: CPU seconds of rendering its views and of voxelising its mesh, and the fill rule."""
    from render import voxels

    renderer = _renderer("rendernet", bindings, out, threads)
    rows = []
    try:
        renderer.render_sample(0)  # warm-up: Blender's first render compiles kernels
        for index in range(1, objects + 1):
            spec = renderer._draw(index)  # the generator voxelises once (cached), as in a real run
            cpu = time.process_time()
            renderer.render_sample(index)
            render_cpu = time.process_time() - cpu
            source = spec.voxels[0].source
            voxels.voxelize_file.cache_clear()
            cpu = time.process_time()
            grid = voxels.voxelize_file(source, spec.voxels[0].dim, spec.voxels[0].fill)
            voxel_cpu = time.process_time() - cpu
            rows.append({"mesh": Path(source).stem, "render": render_cpu, "voxels": voxel_cpu, "fill": grid.fill,
                         "views": len(spec.views)})
    finally:
        renderer.close()
    return rows


def voxelise_all(source: str, classes: str | None) -> list[float]:
    """CPU seconds of voxelising every mesh of a set at 64^3 (cache emptied before each)."""
    from core.asset_index import load_index
    from render import voxels

    times = []
    for asset in load_index().meshes(source=source, classes=classes):
        voxels.voxelize_file.cache_clear()
        cpu = time.process_time()
        voxels.voxelize_file(str(asset.path), 64, "auto")
        times.append(time.process_time() - cpu)
    return times


def picture(out_dir: Path, threads: int, views: int = 8) -> Path:
    """docs/img/rendernet.png: scene 0's first `views` views; rows: shaded RGB, albedo, world normals, mask, and the
    object's voxels rendered with each view's stored camera (one ray a pixel, as the mask)."""
    from PIL import Image

    from pipeline.formats.png import linear_to_srgb8
    from render.exr import read_exr
    from render.voxels import read_binvox
    from tests.render.test_rendernet import _silhouette

    with tempfile.TemporaryDirectory(prefix="bench-rn-") as tmp:
        renderer = _renderer("rendernet", [], Path(tmp) / "rn", threads)
        try:
            renderer.render_sample(0)
        finally:
            renderer.close()
        sample = Path(tmp) / "rn" / "samples" / "000000"
        sidecar = json.loads((sample / "sample.json").read_text())
        grid, _, _ = read_binvox(sample / sidecar["arrays"]["voxels"]["file"])
        rows: list[list[np.ndarray]] = [[], [], [], [], []]
        for view in sidecar["views"][:views]:
            ch = read_exr(sample / view["file"])
            rows[0].append(_rgb8(sample / view["file"]))
            rows[1].append(linear_to_srgb8(np.stack([ch[f"albedo.{c}"] for c in "RGB"], -1)))
            normal = np.stack([ch[f"normal.{c}"] for c in "XYZ"], -1)
            rows[2].append(np.rint((normal + 1) * 127.5).astype(np.uint8) * (ch["instance"] > 0)[..., None])
            mask = ch["instance"] > 0
            rows[3].append(np.repeat((mask * 255).astype(np.uint8)[..., None], 3, -1))
            sil = _silhouette(grid, np.asarray(view["K"]), np.asarray(view["cam_to_world_opencv"]), mask.shape[0])
            rows[4].append(np.repeat((sil * 255).astype(np.uint8)[..., None], 3, -1))
    sheet = np.concatenate([np.concatenate(r, 1) for r in rows], 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "rendernet.png"
    with publish.Staged(path) as staged:
        Image.fromarray(sheet).save(staged.path, optimize=True)
    logger.info("wrote %s", path)
    return path


def _line(label: str, rows: list[dict]) -> str:
    render = np.array([r["render"] for r in rows])
    vox = np.array([r["voxels"] for r in rows])
    ratio = vox / render
    carved = sum(r["fill"] == "carve" for r in rows)
    return (f"| {label} | {len(rows)} ({carved} carved) | {rows[0]['views']} | {np.median(render):.2f} "
            f"({render.max():.2f}) | {np.median(vox):.3f} ({vox.max():.3f}) | {np.median(ratio):.3f} "
            f"({ratio.max():.3f}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=6, help="timed objects per mesh set (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="Cycles threads")
    parser.add_argument("--picture", type=Path, default=None, help="only write docs/img/rendernet.png into this folder")
    parser.add_argument("--no_write", action="store_true", help="print the figures, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from render import generators  # noqa: F401  (registers the generators)
    from render.blender_threads import load_blender

    load_blender(args.threads)
    if args.picture:
        picture(args.picture, args.threads)
        return
    lines = ["| mesh set | objects | views | render CPU s / object, median (max) | voxelise CPU s / object, "
             "median (max) | voxelise / render, median (max) |", "| --- | --- | --- | --- | --- | --- |"]
    details, whole = [], []
    with tempfile.TemporaryDirectory(prefix="bench-rn-") as tmp:
        for k, ((label, bindings), (source, classes)) in enumerate(zip(SETS, WHOLE_SETS, strict=True)):
            rows = measure(bindings, args.objects, args.threads, Path(tmp) / f"set{k}")
            lines.append(_line(label, rows))
            every = np.array(voxelise_all(source, classes))
            quarter = 0.25 * float(np.median([r["render"] for r in rows]))
            whole.append(f"| {label} | {len(every)} | {np.median(every):.3f} | {np.percentile(every, 90):.3f} | "
                         f"{every.max():.3f} | {int((every < quarter).sum())} of {len(every)} |")
            details += [f"{label}: " + ", ".join(f"{r['mesh']} {r['voxels']:.3f}/{r['render']:.2f} s ({r['fill']})"
                                                 for r in rows)]
    notes = ["", "Voxelising every mesh of the set (CPU s at 64^3), against a quarter of the median render cost "
             "above:", "", "| mesh set | meshes | median | 90th percentile | max | under a quarter of a render |",
             "| --- | --- | --- | --- | --- | --- |", *whole, "", "Per object (voxelise / render CPU seconds, fill rule):", "", *[f"- {d}" for d in details], "",
             "Render: 24 views at 64x64, each under its own sun (Cycles' session dropped per view), 4 samples and "
             "Cycles' fast OIDN filter, with the albedo pass; CPU time of the process, 1 Cycles thread. Voxelise: "
             "`render.voxels.voxelize_file` at 64^3 from the mesh file (load, normalise, surface samples, closed fill "
             "or space carving), cache emptied first. The requirement: voxelising costs under a quarter of rendering."]
    print("\n".join(lines + notes))
    if not args.no_write:
        write_section("RenderNet pairs", lines + notes,
                      f".venv/bin/python bench/bench_rendernet.py --objects {args.objects}")


if __name__ == "__main__":
    main()
