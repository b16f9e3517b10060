"""Render-core cost: ms per frame at 64x64 and 128x128 for the default scene, and where the time goes.

Compares our way (one long-lived Blender process rendering every sample) with the original way (a fresh
Blender process per sample), side by side in one run, and writes the figures to docs/benchmarks.md.

    .venv/bin/python bench/bench_render.py [--samples 20]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.report import write_section  # noqa: E402

_PERSISTENT = """
import json, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from render import generators
from render.gin_setup import parse_gin
parse_gin(["render_single"], {bindings!r}, Path({repo!r}) / "config")
from render.blender_threads import load_blender
load_blender({threads})
from render.dataset import DatasetRenderer
r = DatasetRenderer(Path({out!r}), threads={threads})
r.prepare()
r.render_sample(0)  # warm-up: first-use costs (kernel load) are paid once per process
for k in r.scene.timings: r.scene.timings[k] = 0.0
t0 = time.perf_counter()
for i in range(1, {n} + 1):
    r.render_sample(i)
wall = time.perf_counter() - t0
print(json.dumps({{"wall": wall, **r.scene.timings}}))
"""


def persistent(res: int, n: int, threads: int, out: Path) -> dict:
    bindings = [f"rendering.resolution = {res}", "rendering.render_exr = True"]
    code = _PERSISTENT.format(repo=str(REPO), bindings=bindings, out=str(out), threads=threads, n=n)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def process_per_sample(res: int, n: int, threads: int, out: Path) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        subprocess.run([sys.executable, str(REPO / "render.py"), "--", "-d", "pp", "--data_dir", str(out),
                        "-p", f"rendering.resolution = {res}", "-p", "rendering.render_exr = True",
                        "--start", str(i), "--count", "1", "--threads", str(threads)],
                       capture_output=True, check=True, cwd=REPO)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20, help="frames per measurement")
    parser.add_argument("--threads", type=int, default=2, help="Cycles threads")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for res in (64, 128):
            t = persistent(res, args.samples, args.threads, Path(tmp) / f"p{res}")
            per_process = process_per_sample(res, max(3, args.samples // 4), args.threads, Path(tmp) / f"s{res}")
            n_pp = max(3, args.samples // 4)
            ms = 1000 * t["wall"] / args.samples
            ms_pp = 1000 * per_process / n_pp
            outside = 1 - t["render_call"] / t["wall"]
            rows.append((res, ms, 1000 * t["render_call"] / args.samples, outside, 1000 * t["build"] / args.samples,
                         1000 * t["write"] / args.samples, 1000 * t["clear"] / args.samples, ms_pp, ms_pp / ms))
    load = os.getloadavg()[0]
    lines = [
        f"Default scene (config/render_single.gin: one object, 32 samples, EXR output), {args.threads} Cycles threads, "
        f"{args.samples} frames after one warm-up frame; load average at the end {load:.2f} on {os.cpu_count()} cores.",
        "",
        "| resolution | ms/frame (persistent) | inside Cycles' render call | share outside it | scene build | "
        "EXR read+write | clear+purge | ms/frame (process per sample) | speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for res, ms, call, outside, build, write, clear, ms_pp, ratio in rows:
        lines.append(f"| {res}x{res} | {ms:.0f} | {call:.0f} ms | {100 * outside:.1f}% | {build:.1f} ms | "
                     f"{write:.1f} ms | {clear:.1f} ms | {ms_pp:.0f} | {ratio:.1f}x |")
    write_section("Render core", lines, command="make venv && .venv/bin/python bench/bench_render.py")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
