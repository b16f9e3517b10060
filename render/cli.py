"""Command line of render.py: renders samples of a gin-configured dataset into DATA_DIR/NAME."""

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

import paths
from core import samples as sample_rules
from core.lock import DatasetLock, DatasetLockedError

from render import generators  # noqa: F401  (registers the generators with gin)
from render.blender_threads import load_blender
from render.catalogue import AssetError
from render.gin_setup import ConfigError, parse_gin
from render.settings import BatchSettings

logger = logging.getLogger("render")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="render.py",
        description="Render samples of a dataset with Blender. Run as `python render.py -- ARGS` (bpy wheel) or "
                    "`blender --background --python render.py -- ARGS` (a stock Blender).",
    )
    parser.add_argument("-d", "--dataset_name", required=True,
                        help="output folder name; samples go to DATA_DIR/NAME/samples/")
    parser.add_argument("-g", "--gin_config", action="append", default=None,
                        help="gin file name in config/ or a path (repeatable; default: render_single)")
    parser.add_argument("-p", "--gin_param", action="append", default=[],
                        help="gin binding overriding the files, e.g. \"rendering.resolution = 64\" (repeatable)")
    parser.add_argument("--start", type=int, default=None, help="first sample index (default: batch.idx_offset)")
    parser.add_argument("--count", type=int, default=None, help="number of samples (default: batch.num_samples)")
    parser.add_argument("--threads", type=int, default=1,
                        help="Cycles threads; pixels are bit-identical across runs only at the same count (default 1)")
    parser.add_argument("--data_dir", type=Path, default=None, help="root of datasets (default: paths.DATA_DIR)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show Blender's own console output")
    return parser


def script_args(argv: list[str]) -> list[str]:
    """The arguments meant for the script: everything after `--` when present (Blender's convention)."""
    return argv[argv.index("--") + 1:] if "--" in argv else argv


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(script_args(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        dataset_dir = sample_rules.dataset_dir(args.data_dir or paths.DATA_DIR, args.dataset_name)
    except ValueError as err:
        print(f"render.py: error: -d: {err}", file=sys.stderr)
        return 2
    created = not dataset_dir.exists()
    try:
        parse_gin(args.gin_config or ["render_single"], args.gin_param, paths.CONFIG_DIR)
        start, count = _sample_range(args, BatchSettings())
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        load_blender(args.threads)  # only once the config is known good
        from render.dataset import DatasetRenderer

        with DatasetLock(dataset_dir, "render.py"):
            renderer = DatasetRenderer(dataset_dir, threads=args.threads,
                                       log_path=None if not args.verbose else Path("/dev/stderr"))
            try:
                renderer.prepare()
                t0 = time.perf_counter()
                for k, index in enumerate(range(start, start + count)):
                    renderer.render_sample(index)
                    if (k + 1) % 10 == 0 or k + 1 == count:
                        logger.info("%d/%d samples (%.1f samples/s)", k + 1, count,
                                    (k + 1) / (time.perf_counter() - t0))
            finally:
                renderer.close()
    except (ConfigError, AssetError, ValueError, DatasetLockedError) as err:
        _drop_if_empty(dataset_dir, created)
        print(f"render.py: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # one clear line instead of a Blender traceback; details with -v
        _drop_if_empty(dataset_dir, created)
        if args.verbose:
            logger.exception("render failed")
        print(f"render.py: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    logger.info("rendered %d new samples into %s", renderer.rendered, dataset_dir)
    return 0


def _sample_range(args: argparse.Namespace, batch: BatchSettings) -> tuple[int, int]:
    """(first index, count) from --start/--count or the batch.* bindings, naming whichever was given.

    Raises:
        ConfigError: a negative start or a count below 1.
    """
    start, start_from = (batch.idx_offset, "batch.idx_offset") if args.start is None else (args.start, "--start")
    count, count_from = (batch.num_samples, "batch.num_samples") if args.count is None else (args.count, "--count")
    if start < 0:
        raise ConfigError(f"{start_from} must be >= 0, got {start}")
    if count < 1:
        raise ConfigError(f"{count_from} must be >= 1, got {count} (nothing to render)")
    return start, count


def _drop_if_empty(dataset_dir: Path, created: bool) -> None:
    """Removes a dataset folder this run created if no sample got published into it."""
    samples = dataset_dir / "samples"
    if created and dataset_dir.exists() and not any(p.name.isdigit() for p in samples.glob("*")):
        shutil.rmtree(dataset_dir, ignore_errors=True)
