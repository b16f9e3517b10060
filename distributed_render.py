"""Render datasets on Ray with long-lived Blender workers: `python distributed_render.py [ARGS]`.

With no arguments it renders small versions of the 12 selfstudy variants (selfstudy_T0_C0_V0_L0, ...);
`--is_multi`, `-g` and `-p` select other datasets. Every shard is finished exactly once and recorded in
`DATA_DIR/NAME/manifest.jsonl`; `-c` resumes an interrupted dataset. Each worker also writes its shards' HDF5
rows (`rows/`), and the split files (`imgs_XX.h5`, `scenes_{split}.h5`) are virtual datasets over them, kept up
to date while the dataset renders (`--no_rows` turns this off). See docs/distributed.md.
"""

import argparse
import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import paths
from core.layout import LayoutError
from core.lock import DatasetLockedError, check_unlocked
from core.samples import dataset_dir
from pipeline.distribution.driver import is_nonempty_dir, render_dataset
from pipeline.distribution.faults import FAULT_ENV, parse_faults
from pipeline.distribution.job import DatasetExistsError, FatalRenderError, RenderJob, RunOptions
from pipeline.distribution.manifest import ManifestError
from pipeline.distribution.progress import Throughput
from pipeline.distribution.ray_session import ray_session

logger = logging.getLogger("distributed_render")

#: The 12 selfstudy variants, bits Texture-Color-Viewpoint-Lighting.
SELFSTUDY_VARIANTS: tuple[tuple[int, int, int, int], ...] = (
    (0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1), (1, 1, 0, 0),
    (0, 1, 1, 0), (0, 1, 0, 1), (0, 1, 1, 1), (1, 1, 1, 0), (1, 0, 1, 1), (1, 1, 1, 1),
)


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset of a run: its name, gin files and bindings."""

    name: str
    gin_files: tuple[str, ...]
    bindings: tuple[str, ...]


def variant_bindings(texture: int, color: int, viewpoint: int, lighting: int) -> list[str]:
    """The gin bindings of one selfstudy variant (on top of config/render_single.gin)."""
    return [
        f"material.use_texture = {bool(texture)}",
        f"material.color_variation = {float(color)}",
        f"object.random_viewpoint = {float(viewpoint)}",
        f"lighting.r = {float(lighting)}",
    ]


def variant_name(prefix: str, bits: tuple[int, int, int, int]) -> str:
    """`selfstudy_T0_C1_V0_L1` for prefix `selfstudy` and bits (0, 1, 0, 1)."""
    t, c, v, light = bits
    return f"{prefix}_T{t}_C{c}_V{v}_L{light}"


def plan_datasets(args: argparse.Namespace) -> list[DatasetPlan]:
    """The datasets this command line asks for, in order."""
    extra = list(args.gin_param)
    if args.num_classes is not None:
        if args.num_classes < 1:
            raise ValueError(f"--num_classes must be >= 1, got {args.num_classes}")
        extra.insert(0, f"sample.class_idxs = {tuple(range(args.num_classes))!r}")
    if args.gin_config or args.is_multi:
        files = (["render_multi"] if args.is_multi else []) + list(args.gin_config or [])
        name = args.dataset_name or ("selfstudy_multi" if args.is_multi else Path(files[-1]).stem)
        return [DatasetPlan(name, tuple(files), tuple(extra))]
    prefix = args.dataset_name or "selfstudy"
    return [DatasetPlan(variant_name(prefix, bits), ("render_single",), tuple(variant_bindings(*bits) + extra))
            for bits in SELFSTUDY_VARIANTS]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distributed_render.py",
        description="Render datasets with long-lived Blender workers on Ray (or in this process with -l). "
                    "Shards of -b samples are finished exactly once and listed in DATA_DIR/NAME/manifest.jsonl; "
                    "failed shards are retried on fresh workers and their Blender output kept in DATA_DIR/NAME/logs/. "
                    "With no dataset arguments it renders the 12 selfstudy variants selfstudy_T?_C?_V?_L?.",
    )
    parser.add_argument("-d", "--dataset_name", default=None,
                        help="dataset name (with -g/--is_multi), or the name prefix of the 12 selfstudy variants "
                             "(default: selfstudy, selfstudy_multi with --is_multi, the gin file's name with -g)")
    parser.add_argument("-n", "--num_samples", type=int, default=120,
                        help="samples per dataset, indices 0..N-1 (default 120)")
    parser.add_argument("-b", "--batch_size", type=int, default=10,
                        help="shard size: samples one worker call renders; keep it when continuing (default 10)")
    parser.add_argument("--is_multi", action="store_true",
                        help="render the multi-object dataset of config/render_multi.gin instead of the 12 variants")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="use only the first N classes (binds sample.class_idxs)")
    parser.add_argument("-c", "--continue", dest="resume", action="store_true",
                        help="continue interrupted datasets: skip shards in the manifest, render only missing samples "
                             "(without -c an existing non-empty dataset folder is refused)")
    parser.add_argument("-l", "--local", action="store_true",
                        help="render in this process with one worker, without Ray (debugging)")
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                        help="address of a running Ray cluster, e.g. 127.0.0.1:6379 (default: $RAY_ADDRESS; "
                             "none starts an embedded Ray on every core of this machine)")
    parser.add_argument("--workers", type=int, default=None,
                        help="render workers at once (default: the cluster's CPUs divided by --threads)")
    parser.add_argument("--threads", type=int, default=1,
                        help="Cycles threads per worker; pixels are bit-identical only at the same count (default 1)")
    parser.add_argument("--data_dir", type=Path, default=None, help="root of datasets (default: paths.DATA_DIR)")
    parser.add_argument("-g", "--gin_config", action="append", default=None,
                        help="gin file in config/ or a path (repeatable); selects a dataset other than the variants")
    parser.add_argument("-p", "--gin_param", action="append", default=[],
                        help="gin binding, e.g. \"rendering.resolution = 64\" (repeatable; applied to every dataset)")
    parser.add_argument("--blender", type=Path, default=None,
                        help="run each shard in this stock Blender binary (`blender --background --python render.py "
                             "-- ... --start I --count N`) instead of in-process bpy")
    parser.add_argument("--retries", type=int, default=2,
                        help="extra attempts of a failed shard, each on a fresh worker (default 2)")
    parser.add_argument("--recycle_after", type=int, default=1000,
                        help="replace a worker after it rendered this many samples (default 1000)")
    parser.add_argument("--max_rss_mb", type=float, default=4096.0,
                        help="replace a worker whose resident memory exceeds this many MiB (default 4096)")
    parser.add_argument("--queue_depth", type=int, choices=(1, 2), default=1,
                        help="shards a worker holds at once; 2 hides the driver's round trip between shards where it "
                             "is slow, e.g. a manifest on network storage (default 1)")
    parser.add_argument("--no_rows", action="store_true",
                        help="do not write each shard's HDF5 rows (rows/shard-XXXXX.h5) nor the virtual split files "
                             "over them; consolidate afterwards with preprocess_data.py -f")
    parser.add_argument("--drop_raw", action="store_true",
                        help="delete a shard's view files (EXR/PNG) once its rows are published and listed in the "
                             "manifest, keeping each sample.json: disk use is then the HDF5 alone (default: keep them)")
    parser.add_argument("--publish_every", type=float, default=10.0,
                        help="seconds between rewrites of the virtual split files while shards finish; 0 rewrites "
                             "them after every shard (default 10; always rewritten at the end)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    """Refuses bad numbers before Ray or Blender start.

    Raises:
        ValueError: naming the option, the value given and what it must be.
    """
    for option, value, least in (("-n/--num_samples", args.num_samples, 1), ("-b/--batch_size", args.batch_size, 1),
                                 ("--threads", args.threads, 1), ("--retries", args.retries, 0),
                                 ("--workers", args.workers, 1), ("--recycle_after", args.recycle_after, 1)):
        if value is not None and value < least:
            raise ValueError(f"{option} must be >= {least}, got {value}")
    if args.max_rss_mb <= 0:
        raise ValueError(f"--max_rss_mb must be > 0, got {args.max_rss_mb}")
    if args.publish_every < 0:
        raise ValueError(f"--publish_every must be >= 0, got {args.publish_every}")
    if args.drop_raw and args.no_rows:
        raise ValueError("--drop_raw deletes views once their HDF5 rows are published, and --no_rows writes none: "
                         "drop one of them")


def validate_gin(plan: DatasetPlan) -> tuple[tuple[str, ...], dict]:
    """Parses the dataset's gin in the driver (no Blender needed); returns the gin files as absolute paths and
    the identity every shard of the dataset must carry (generator, seed, config hash).

    Raises:
        render.gin_setup.ConfigError: unknown file or binding.
    """
    import gin

    from render import generators  # noqa: F401  (registers the generators with gin)
    from render.gin_setup import parse_gin
    from render.identity import config_hash
    from render.settings import DatasetSettings

    files = tuple(str(p) for p in parse_gin(list(plan.gin_files), list(plan.bindings), paths.CONFIG_DIR))
    settings = DatasetSettings()
    return files, {"generator": settings.name, "seed": settings.seed, "config_hash": config_hash(gin.config_str())}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from render.gin_setup import ConfigError

    try:
        check_arguments(args)
        fault = os.environ.get(FAULT_ENV) or None
        parse_faults(fault)
        plans = plan_datasets(args)
        launcher = None
        if args.blender is not None:
            if not os.access(args.blender, os.X_OK):
                raise ValueError(f"--blender {args.blender} is not an executable file")
            # -t sizes Blender's task scheduler like render.blender_threads does for the bpy module
            launcher = (str(args.blender.resolve()), "-t", str(args.threads), "--background", "--factory-startup",
                        "--python")
        jobs = []
        for plan in plans:
            gin_files, identity = validate_gin(plan)
            jobs.append(RenderJob(dataset_dir=dataset_dir((args.data_dir or paths.DATA_DIR).resolve(), plan.name),
                                  gin_files=gin_files, bindings=plan.bindings, config_dir=paths.CONFIG_DIR,
                                  threads=args.threads, launcher=launcher, fault=fault, identity=identity,
                                  rows=not args.no_rows, drop_raw=args.drop_raw))
        for job in jobs:  # a dataset another writer holds is refused naming it, whatever else is wrong
            check_unlocked(job.dataset_dir, "distributed_render.py")
        if not args.resume:
            taken = [str(job.dataset_dir) for job in jobs if is_nonempty_dir(job.dataset_dir)]
            if taken:
                raise DatasetExistsError(f"{', '.join(taken)} already hold files; pass -c to continue, or pick "
                                         "another -d NAME (or delete the folders)")
    except (ConfigError, ValueError, DatasetExistsError, DatasetLockedError) as err:
        print(f"distributed_render.py: error: {err}", file=sys.stderr)
        return 2
    options = RunOptions(workers=args.workers, retries=args.retries, local=args.local, resume=args.resume,
                         recycle_after=args.recycle_after, max_rss_mb=args.max_rss_mb, progress=not args.no_progress,
                         queue_depth=args.queue_depth, publish_every=args.publish_every)
    if args.local and args.workers not in (None, 1):
        logger.warning("-l renders with one in-process worker; --workers %d ignored", args.workers)
    results: list[Throughput] = []
    try:
        with contextlib.nullcontext() if args.local else ray_session(args.address):
            for job in jobs:
                logger.info("rendering %s: %d samples in shards of %d -> %s", job.name, args.num_samples,
                            args.batch_size, job.dataset_dir)
                stats = render_dataset(job, args.num_samples, args.batch_size, options)
                print(stats.line(), flush=True)
                results.append(stats)
    except (FatalRenderError, ManifestError, DatasetExistsError, DatasetLockedError, LayoutError) as err:
        print(f"distributed_render.py: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("distributed_render.py: interrupted; finished shards are in the manifest, re-run with -c to continue",
              file=sys.stderr)
        return 130
    failures = [f"{stats.name}: {line}" for stats in results for line in stats.failures]
    if len(results) > 1:
        rendered, seconds = sum(s.rendered for s in results), sum(s.seconds for s in results)
        print(f"total: {len(results)} datasets, {rendered} samples rendered in {seconds:.1f} s "
              f"({rendered / seconds if seconds else 0:.2f} samples/s), {len(failures)} failed shards", flush=True)
    if failures:
        print("FAILED shards (see the logs):", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
