"""Benchmark of distributed rendering: persistent Blender workers versus one render process per shard.

Both designs run on the same embedded Ray (2 CPUs), through the same driver (pipeline.distribution.driver), side by side:

* persistent: Ray actors that each keep one Blender scene alive and render shard after shard (ours);
* process per shard: each shard starts a fresh `python render.py -- ... --start I --count N` process (the
  original design: a new Blender for every batch).

Two shard kinds, 64x64: one GQN rooms scene (10 views, config/gqn_rooms_ring_camera.gin) per shard, and 40
selfstudy samples (config/render_single.gin, one view each) per shard; 1 and 2 single-threaded workers. Beside
them: the machine's ceiling for each kind (two independent render.py processes against one), long GQN runs with
one shard at a time per worker (the default) and with a second one queued on each worker (`--queue_depth 2`),
and workers with Blender's task scheduler sized to every CPU (the way before render/blender_threads.py). The
figures go into the `## Distributed rendering` section of docs/benchmarks.md.

Run: `.venv/bin/python bench/bench_distributed.py` (about 15 minutes on 2 cores).
"""

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paths  # noqa: E402
from bench.report import write_section  # noqa: E402
from pipeline.distribution.driver import render_dataset  # noqa: E402
from pipeline.distribution.job import RenderJob, RunOptions  # noqa: E402
from pipeline.distribution.progress import Throughput  # noqa: E402
from render.blender_threads import UNLIMITED_ENV  # noqa: E402
from render.gin_setup import resolve_gin_file  # noqa: E402

logger = logging.getLogger("bench_distributed")

SECTION = "Distributed rendering"
#: GQN scenes of the long persistent-worker runs (1 and 2 workers), and runs of each kind.
LONG_SCENES = 120
LONG_REPEATS = 2


@dataclass(frozen=True)
class Case:
    """A shard kind: dataset config, frames per sample, samples per shard, shards per measured run."""

    label: str
    gin: str
    views: int
    shard_size: int
    shards: int


CASES = (
    Case("GQN rooms scene (10 views) per shard", "gqn_rooms_ring_camera", 10, 1, 40),
    Case("40 selfstudy samples per shard", "render_single", 1, 40, 10),
)


def run_one(case: Case, workers: int, persistent: bool, data_dir: Path, tag: str, queue_depth: int = 1) -> Throughput:
    job = RenderJob(
        dataset_dir=data_dir / tag,
        gin_files=(str(resolve_gin_file(case.gin, paths.CONFIG_DIR)),),
        bindings=("rendering.resolution = 64",),
        config_dir=paths.CONFIG_DIR,
        threads=1,
        launcher=None if persistent else (sys.executable,),
    )
    options = RunOptions(workers=workers, retries=0, progress=False, queue_depth=queue_depth)
    stats = render_dataset(job, case.shard_size * case.shards, case.shard_size, options)
    if stats.failures:
        raise RuntimeError(f"{tag}: {stats.failures}")
    shutil.rmtree(job.dataset_dir, ignore_errors=True)
    return stats


def machine_ceiling(case: Case, data_dir: Path) -> float:
    """Speed-up of 2 over 1 independent `render.py` processes (no Ray) rendering `case`'s dataset: what two
    single-threaded workers can get on this machine right now, start-up included as in the Ray runs."""
    count = case.shard_size * case.shards // 2

    def launch(name: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(REPO / "render.py"), "--", "-d", name, "--data_dir", str(data_dir),
                                 "-g", case.gin, "-p", "rendering.resolution = 64", "--start", "0",
                                 "--count", str(count)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)

    start = time.perf_counter()
    launch("ceiling-a").wait()
    one = time.perf_counter() - start
    start = time.perf_counter()
    for proc in [launch("ceiling-b"), launch("ceiling-c")]:
        proc.wait()
    two = time.perf_counter() - start
    for name in ("ceiling-a", "ceiling-b", "ceiling-c"):
        shutil.rmtree(data_dir / name, ignore_errors=True)
    return 2 * one / two


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Persistent Ray render workers vs one render process per shard.")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md",
                        help="markdown file whose '## Distributed rendering' section is rewritten")
    parser.add_argument("--no_write", action="store_true", help="print the section only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import ray

    load_before = os.getloadavg()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    data_dir = Path(tempfile.mkdtemp(prefix="nsd-bench-dist-"))
    rows = []
    t0 = time.perf_counter()
    try:
        run_one(Case("warm-up", "render_single", 1, 1, 1), 1, True, data_dir, "warmup")
        ceilings = {case.gin: [machine_ceiling(case, data_dir)] for case in CASES}
        for case in CASES:
            for workers in (1, 2):
                for persistent in (True, False):
                    tag = f"{case.gin}-w{workers}-{'persistent' if persistent else 'process'}"
                    stats = run_one(case, workers, persistent, data_dir, tag)
                    frames = stats.rendered * case.views
                    rows.append((case, workers, persistent, stats, frames))
                    print(f"{tag}: {frames} frames in {stats.seconds:.1f} s = {frames / stats.seconds:.1f} frames/s",
                          flush=True)
        for case in CASES:
            ceilings[case.gin].append(machine_ceiling(case, data_dir))
        # throughput once start-up and the last shard's tail are small against the run: persistent workers only
        long_case = Case("GQN rooms scene (10 views) per shard, long run", CASES[0].gin, 10, 1, LONG_SCENES)
        # each twice, with one shard at a time per worker (the default) and with a second one queued on it,
        # alternating the order (the VM's speed drifts between runs)
        long_runs: dict[int, dict[int, list[Throughput]]] = {1: {1: [], 2: []}, 2: {1: [], 2: []}}
        for rep in range(LONG_REPEATS):
            for workers in (1, 2):
                for depth in (1, 2) if rep % 2 == 0 else (2, 1):
                    long_runs[depth][workers].append(run_one(long_case, workers, True, data_dir,
                                                             f"long-w{workers}-q{depth}-{rep}", queue_depth=depth))
        # the same persistent selfstudy runs with Blender's task scheduler sized to every CPU (the way before
        # render/blender_threads.py); the variable must reach the Ray workers, hence a fresh Ray session
        ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {UNLIMITED_ENV: "1"}})
        unlimited = {workers: run_one(CASES[1], workers, True, data_dir, f"unlimited-w{workers}") for workers in (1, 2)}
    finally:
        ray.shutdown()
        shutil.rmtree(data_dir, ignore_errors=True)
    total = time.perf_counter() - t0
    load_after = os.getloadavg()

    fps = {(r[0].gin, r[1], r[2]): r[4] / r[3].seconds for r in rows}
    lines = [
        f"64x64 frames, single-threaded workers on an embedded Ray with 2 CPUs, {len(rows)} runs interleaved; "
        f"load average {load_before[0]:.1f} before and {load_after[0]:.1f} after ({total:.0f} s; the machine is "
        f"shared with other engineers, so absolute figures are noisy). Each run renders a fresh dataset: "
        f"{CASES[0].shards} GQN rooms scenes (config/gqn_rooms_ring_camera.gin as configured: 1 sample + Cycles' OIDN, "
        f"10 views each) in shards of 1 scene, or {CASES[1].shards} shards of 40 selfstudy samples "
        "(config/render_single.gin: 32 samples, PNG). Wall time includes starting the workers.",
        "",
        "| shard | workers | design | frames | wall s | frames/s | persistent / per-process | 2 vs 1 worker "
        "| outside Cycles' render calls | outside all per-frame renderer work | outside render calls, within shards "
        "| worker's wait between shards |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case, workers, persistent, stats, frames in rows:
        key = (case.gin, workers, persistent)
        ratio = f"{fps[key] / fps[(case.gin, workers, False)]:.2f}x" if persistent else ""
        speedup = f"{fps[key] / fps[(case.gin, 1, persistent)]:.2f}x" if workers == 2 else ""
        if persistent:
            inside = stats.timings.get("render_call", 0.0)
            capacity = workers * stats.seconds
            outside = [f"{100 * (1 - inside / capacity):.1f}%",
                       f"{100 * (1 - sum(stats.timings.values()) / capacity):.1f}%",
                       f"{100 * (1 - inside / stats.worker_seconds):.1f}%"]
        else:
            outside = ["n/a"] * 3
        outside.append(f"{1000 * stats.between_shards_seconds / max(1, stats.between_shards):.1f} ms")
        lines.append(f"| {case.label} | {workers} | {'persistent workers' if persistent else 'process per shard'} "
                     f"| {frames} | {stats.seconds:.1f} | {fps[key]:.2f} | {ratio} | {speedup} | {' | '.join(outside)} |")
    lines.append("")
    lines.append("Where persistent workers spend their shard time (ms per frame, summed over workers):")
    lines.append("")
    lines.append("| shard | workers | Cycles render call (with its denoiser) | scene build | write | clear "
                 "| worker start-up (s) |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for case, workers, persistent, stats, frames in rows:
        if not persistent:
            continue
        ms = {k: 1000 * v / frames for k, v in stats.timings.items()}
        lines.append(f"| {case.label} | {workers} | {ms.get('render_call', 0):.0f} | {ms.get('build', 0):.1f} "
                     f"| {ms.get('write', 0):.1f} | {ms.get('clear', 0):.1f} "
                     f"| {stats.setup_seconds:.1f} |")
    by_key = {(r[0].gin, r[1], r[2]): r for r in rows}
    lines.append("")
    for case in CASES:
        one, two = by_key[(case.gin, 1, True)], by_key[(case.gin, 2, True)]
        ms1 = 1000 * one[3].timings.get("render_call", 0.0) / one[4]
        ms2 = 1000 * two[3].timings.get("render_call", 0.0) / two[4]
        lines.append(
            f"- {case.label}: persistent workers give {fps[(case.gin, 1, True)] / fps[(case.gin, 1, False)]:.2f}x the "
            f"frame rate of a process per shard with 1 worker, {fps[(case.gin, 2, True)] / fps[(case.gin, 2, False)]:.2f}x "
            f"with 2. Going from 1 to 2 persistent workers, one frame's time inside Cycles went from {ms1:.0f} to "
            f"{ms2:.0f} ms ({100 * (ms2 / ms1 - 1):+.0f}%)"
            + (": the same single-threaded work got slower with both cores busy (shared caches and memory, and any "
               "other tenant of this VM), which limits the 2-worker speed-up here." if ms2 > 1.1 * ms1 else "."))
    for case in CASES:
        low, high = sorted(ceilings[case.gin])
        two_vs_one = fps[(case.gin, 2, True)] / fps[(case.gin, 1, True)]
        lines.append(
            f"- Machine ceiling, {case.label}: two independent `render.py` processes (no Ray, "
            f"{case.shard_size * case.shards // 2} samples each, start-up included) ran {low:.2f}-{high:.2f}x as fast "
            f"as one (measured at the start and the end of the benchmark); 2 persistent workers reached "
            f"{two_vs_one:.2f}x, {100 * two_vs_one / high:.0f}-{100 * two_vs_one / low:.0f}% of that.")
    def long_figures(runs: dict[int, list[Throughput]]) -> tuple[str, str, str, str]:
        def mean(values: list[float]) -> float:
            return sum(values) / len(values)

        fps_ = {w: [10 * r.rendered / r.seconds for r in runs[w]] for w in (1, 2)}
        outside = [mean([100 * (1 - r.render_call_seconds / (w * r.seconds)) for r in runs[w]]) for w in (1, 2)]
        within = [mean([100 * (1 - r.render_call_seconds / r.worker_seconds) for r in runs[w]]) for w in (1, 2)]
        wait = [1000 * sum(r.between_shards_seconds for r in runs[w]) / max(1, sum(r.between_shards for r in runs[w]))
                for w in (1, 2)]
        each = {w: " and ".join(f"{v:.1f}" for v in fps_[w]) for w in (1, 2)}
        return (f"{mean(fps_[1]):.1f} frames/s with 1 worker ({each[1]}), {mean(fps_[2]):.1f} with 2 ({each[2]}): "
                f"{mean(fps_[2]) / mean(fps_[1]):.2f}x",
                f"{outside[0]:.1f}% and {outside[1]:.1f}%", f"{within[0]:.1f}% and {within[1]:.1f}%",
                f"{wait[0]:.1f} and {wait[1]:.1f} ms")

    ours, queued = long_figures(long_runs[1]), long_figures(long_runs[2])
    lines.append(
        f"- Long runs ({LONG_SCENES} GQN rooms scenes in shards of 1, persistent workers, start-up included, "
        f"{LONG_REPEATS} runs each): {ours[0]}; outside Cycles' render calls {ours[1]} of the workers' wall time "
        f"({ours[2]} within shards); a worker waited {ours[3]} between two shards. With a second shard queued on "
        f"each worker (`--queue_depth 2`): {queued[0]}; outside the render calls {queued[1]}; {queued[3]} between "
        "two shards.")
    frames = CASES[1].shards * CASES[1].shard_size
    old_fps = {w: frames / unlimited[w].seconds for w in (1, 2)}
    per_frame = {w: 1000 * unlimited[w].timings.get("render_call", 0.0) / frames for w in (1, 2)}
    lines.append(
        f"- Task scheduler: workers import Blender with its TBB scheduler sized to their Cycles threads "
        f"(render/blender_threads.py). Run the old way (`{UNLIMITED_ENV}=1`: a scheduler for every CPU, whose idle "
        f"threads spin in `sched_yield` around each render call), the 40-sample selfstudy shards reached "
        f"{old_fps[1]:.2f} frames/s with 1 worker and {old_fps[2]:.2f} with 2 ({old_fps[2] / old_fps[1]:.2f}x), "
        f"one frame's render call taking {per_frame[1]:.0f} and {per_frame[2]:.0f} ms.")
    lines += [
        "",
        "\"Outside Cycles' render calls\" is 1 - (time inside `bpy.ops.render.render`, summed over workers) / "
        "(workers x wall time): it counts worker start-up, scene building, file writing, idle workers "
        "and the driver's scheduling. \"Outside all per-frame renderer work\" also counts the rest of BlenderScene's "
        "timed per-frame work as rendering (scene build, EXR/PNG output, clearing): "
        "what is left is orchestration (worker start-up, scheduling, idle workers, sidecars). \"Within shards\" leaves out start-up and scheduling (it divides by the summed shard times). "
        "The per-process design's render calls happen in child processes and are not measured (n/a). "
        "\"Wait between shards\" is, per pair of consecutive shards on one worker, the time from the end of the first to "
        "the start of the second on the worker's clock.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section(SECTION, lines, ".venv/bin/python bench/bench_distributed.py", path=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
