"""ENR sets: core-seconds per labelled 50-view 64x64 object, persistent workers against one Blender process per
object, and the speed-up of 2 distributed workers over 1.

Side by side, in one run, config/enr_rotation.gin as committed (real Sweet Home 3D chairs, 64x64, canonical EXR with
RGB, depth, instance, semantic and normals, sidecar):

* persistent: one `DatasetRenderer` (what every distributed worker keeps alive) renders object after object in
  this process with 1 Cycles thread, after one warm-up object; core-seconds = CPU time of the process (all threads);
* one process per object: `python render.py -- ... --start I --count 1` for each object, the way SRN's
  shapenet_renderer and the ENR reproduction's data script run Blender (a fresh Blender per object, as the
  project's `ProcessShardWorker` does per shard); core-seconds = CPU time of the finished children;
* distributed: `pipeline.distribution.driver.render_dataset` (what `distributed_render.py -g enr_rotation` runs) on
  an embedded Ray with 2 CPUs, persistent single-threaded workers, one object a shard, 1 worker and 2 workers,
  each twice in alternating order (the VM's speed drifts), wall time including worker start-up.

    .venv/bin/python bench/bench_enr.py [--objects 6] [--long 24] [--no_write]     # ~4 minutes on 2 idle cores
"""

import argparse
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import paths  # noqa: E402
from bench.report import write_section  # noqa: E402

logger = logging.getLogger("bench_enr")

SECTION = "ENR object sets"
CONFIG = "enr_rotation"


def persistent(objects: int, out: Path) -> dict:
    """Objects 1..`objects` through one DatasetRenderer after warm-up object 0: CPU and wall seconds per object."""
    from render.dataset import DatasetRenderer
    from render.gin_setup import parse_gin

    parse_gin([CONFIG], [], paths.CONFIG_DIR)
    renderer = DatasetRenderer(out, threads=1)
    try:
        renderer.prepare()
        renderer.render_sample(0)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for index in range(1, objects + 1):
            renderer.render_sample(index)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        renderer.close()
    return {"cpu": cpu / objects, "wall": wall / objects}


def process_per_object(objects: int, out: Path) -> dict:
    """Objects 1..`objects`, each by its own `render.py` process (a fresh Blender): CPU and wall per object."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    for index in range(1, objects + 1):
        subprocess.run([sys.executable, str(REPO / "render.py"), "--", "-d", out.name, "--data_dir", str(out.parent),
                        "-g", CONFIG, "--start", str(index), "--count", "1", "--threads", "1"],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - wall0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu": cpu / objects, "wall": wall / objects}


def steady_rate(dataset_dirs: list[Path], workers: int) -> float:
    """Objects per second between the first and the last sample a run published (each sidecar is written last),
    which leaves out worker start-up: with `workers` workers finishing together, the first `workers` samples mark
    the start, so the rate is (n - workers) / (last - first)."""
    times = sorted(p.stat().st_mtime for d in dataset_dirs for p in d.glob("samples/*/sample.json"))
    if len(times) <= workers or times[-1] <= times[0]:
        raise RuntimeError(f"{dataset_dirs}: {len(times)} samples are too few to time {workers} workers")
    return (len(times) - workers) / (times[-1] - times[0])


def distributed(objects: int, workers: int, data_dir: Path, tag: str) -> tuple[float, float]:
    """`distributed_render.py -g enr_rotation`'s driver rendering `objects` objects, 1 a shard: objects / s over the
    whole run (worker start-up included) and in steady state (`steady_rate`)."""
    from pipeline.distribution.driver import render_dataset
    from pipeline.distribution.job import RenderJob, RunOptions
    from render.gin_setup import resolve_gin_file

    job = RenderJob(dataset_dir=data_dir / tag, gin_files=(str(resolve_gin_file(CONFIG, paths.CONFIG_DIR)),),
                    bindings=(), config_dir=paths.CONFIG_DIR, threads=1)
    stats = render_dataset(job, objects, 1, RunOptions(workers=workers, retries=0, progress=False))
    if stats.failures or stats.rendered != objects:
        raise RuntimeError(f"{tag}: {stats.rendered} of {objects} rendered; {stats.failures}")
    steady = steady_rate([job.dataset_dir], workers)
    shutil.rmtree(job.dataset_dir, ignore_errors=True)
    return objects / stats.seconds, steady


def machine_ceiling(objects: int, out: Path) -> tuple[float, float]:
    """Speed-up of 2 independent `render.py` processes over 1 (no Ray), each rendering `objects` / 2 objects: what
    two single-threaded workers can get from this machine right now; over the whole run (start-up included, as the
    Ray runs' first figure) and in steady state (`steady_rate`, as their second)."""
    count = max(2, objects // 2)

    def launch(name: str, start: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(REPO / "render.py"), "--", "-d", name, "--data_dir", str(out),
                                 "-g", CONFIG, "--start", str(start), "--count", str(count), "--threads", "1"],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    start = time.perf_counter()
    if launch("ceiling-a", 0).wait():
        raise RuntimeError("render.py failed in the ceiling run")
    one = time.perf_counter() - start
    start = time.perf_counter()
    if any(proc.wait() for proc in [launch("ceiling-b", 0), launch("ceiling-c", count)]):
        raise RuntimeError("render.py failed in the ceiling run")
    two = time.perf_counter() - start
    steady = steady_rate([out / "ceiling-b", out / "ceiling-c"], 2) / steady_rate([out / "ceiling-a"], 1)
    shutil.rmtree(out, ignore_errors=True)
    return 2 * one / two, steady


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=6, help="timed objects of the persistent and per-process runs")
    parser.add_argument("--long", type=int, default=24, help="objects of each distributed run")
    parser.add_argument("--no_write", action="store_true", help="print the figures, leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from render import generators  # noqa: F401  (registers the generators)
    from render.blender_threads import load_blender

    load_blender(1)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="nsd-bench-enr-"))
    try:
        ours = persistent(args.objects, tmp / "persistent")
        theirs = process_per_object(args.objects, tmp / "per_object")
        import ray

        ceilings = [machine_ceiling(args.long, tmp / "ceiling")]
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
            for rep in range(2):
                for workers in (1, 2) if rep == 0 else (2, 1):
                    runs[workers].append(distributed(args.long, workers, tmp, f"dist-w{workers}-{rep}"))
        finally:
            ray.shutdown()
        ceilings.append(machine_ceiling(args.long, tmp / "ceiling"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    rates = {w: [r[0] for r in runs[w]] for w in runs}
    steady = {w: [r[1] for r in runs[w]] for w in runs}
    mean = {w: sum(r) / len(r) for w, r in rates.items()}
    mean_steady = {w: sum(r) / len(r) for w, r in steady.items()}
    speedups = [two / one for one, two in zip(rates[1], rates[2], strict=True)]
    lines = [
        f"config/enr_rotation.gin as committed: one Sweet Home 3D chair a scene, 50 views, 64x64, 2 Cycles samples + "
        "Cycles' OIDN ('fast'), 3 bounces, canonical EXR (RGB, depth, instance, semantic, normals) and sidecar; "
        f"1 Cycles thread. Load average {load_before:.2f} before and {load_after:.2f} after ({total:.0f} s) on "
        f"{os.cpu_count()} cores, a machine shared with other sessions.",
        "",
        "| way | core-s / object (50 views, labelled) | wall s / object |",
        "| --- | --- | --- |",
        f"| persistent worker (one `DatasetRenderer`, as each `distributed_render.py` worker), {args.objects} objects "
        f"after a warm-up | {ours['cpu']:.2f} | {ours['wall']:.2f} |",
        f"| one Blender process per object (`python render.py ... --start I --count 1`, as SRN's shapenet_renderer and "
        f"the ENR reproduction run it), {args.objects} objects | {theirs['cpu']:.2f} | {theirs['wall']:.2f} |",
        "",
        f"`distributed_render.py -g enr_rotation` (the driver on an embedded Ray with 2 CPUs, persistent "
        f"single-threaded workers, one object a shard), {args.long} objects a run, objects / s over the whole run "
        "(wall time, worker start-up included) and in steady state:",
        "",
        "| workers | objects / s, whole run (each run) | mean | objects / s, steady state (each run) | mean |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {w} | {', '.join(f'{r:.3f}' for r in rates[w])} | {mean[w]:.3f} | "
          f"{', '.join(f'{r:.3f}' for r in steady[w])} | {mean_steady[w]:.3f} |" for w in (1, 2)),
        "",
        f"Speed-up of 2 workers over 1: **{mean_steady[2] / mean_steady[1]:.2f}x in steady state** (objects published "
        f"after each worker's first, against the time from the first to the last: start-up left out), "
        f"{mean[2] / mean[1]:.2f}x over the whole runs with start-up (paired runs: "
        f"{', '.join(f'{s:.2f}x' for s in speedups)}). The machine's ceiling at the same time (2 independent "
        f"`render.py` processes against 1, {max(2, args.long // 2)} objects each, before and after the Ray runs): "
        f"steady state {ceilings[0][1]:.2f}x, {ceilings[1][1]:.2f}x; whole runs "
        f"{ceilings[0][0]:.2f}x, {ceilings[1][0]:.2f}x. The requirements: at most 1.5 core-s a labelled object through "
        "persistent workers, and 2 workers at least 1.8x one; on a machine other sessions share, the ceiling is what "
        "2 workers could get at best, so compare the speed-up with it, and rerun the command below on an idle "
        "machine for the figure itself.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section(SECTION, lines, ".venv/bin/python bench/bench_enr.py" +
                      (f" --objects {args.objects}" if args.objects != 6 else "") +
                      (f" --long {args.long}" if args.long != 24 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
