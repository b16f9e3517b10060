"""Consolidate, preprocess, validate and look at a rendered dataset: ``python preprocess_data.py -d NAME ...``.

Steps (any combination; they run in this order):

    --validate   check the raw render output, write DATA_DIR/NAME/validation.json   (pipeline/quality/validate.py)
    -f           consolidate into HDF5, as dataset.json's layout declares: imgs_XX.h5 buckets (sample-major,
                 docs/formats.md §2) or scenes_{train,val,test}.h5 (scene-major, §3)    (pipeline/layouts/consolidate.py)
    --compact    rewrite the render farm's virtual split files as classic single files (pipeline/layouts/compact.py)
    -p           build data_{res}[_lab].h5 from the buckets (§4)                        (pipeline/layouts/preprocess.py)
    --show N     write a contact sheet of N samples                                    (pipeline/quality/contact_sheet.py)

Exit status: 0 when every step succeeded; 1 when validation failed or consolidation skipped bad samples
(unless --allow-bad); 2 for usage errors and missing inputs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import paths
from core.lock import DatasetLockedError
from core.samples import N_BUCKETS
from pipeline.formats.hdf5 import DiskFullError
from pipeline.layouts.compact import compact
from pipeline.layouts.consolidate import consolidate, default_jobs
from pipeline.layouts.preprocess import preprocess
from pipeline.quality.contact_sheet import make_contact_sheet
from pipeline.quality.validate import log_report, validate_raw, write_report

logger = logging.getLogger("preprocess_data")


def parse_buckets(spec: str) -> list[int]:
    """Parses a bucket list such as ``0-9``, ``10``, ``0,3,11`` or ``0-4,11`` into sorted bucket numbers."""
    out: set[int] = set()
    try:
        for part in spec.split(","):
            lo, _, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if hi else int(lo)
            out.update(range(first, last + 1))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad bucket list {spec!r}; use e.g. 0-9 or 0,3,11") from exc
    if not out or any(not 0 <= b < N_BUCKETS for b in out):
        raise argparse.ArgumentTypeError(f"buckets must be in 0..{N_BUCKETS - 1}, got {spec!r}")
    return sorted(out)


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    parser = argparse.ArgumentParser(
        description="Consolidate a rendered dataset (DATA_DIR/NAME/samples) into HDF5, preprocess it for "
        "training, validate it and draw a contact sheet. Formats: docs/formats.md §2-§4.",
        epilog="Examples: -d toy -f -e   |   -d toy -p -r 64 -l -c   |   -d toy --validate --show 8",
    )
    parser.add_argument("-d", "--dataset_name", required=True, help="dataset folder under DATA_DIR")
    step = parser.add_argument_group("steps")
    step.add_argument("-f", "--to_hdf5", action="store_true",
                      help="consolidate as dataset.json's layout declares: sample-major datasets into imgs_XX.h5 "
                      "buckets (bucket = index %% 12; 0-9 train, 10 val, 11 test unless samples declare their split), "
                      "scene-major ones into scenes_{train,val,test}.h5")
    step.add_argument("--compact", action="store_true",
                      help="rewrite the virtual split files distributed_render.py keeps over its shard rows (rows/) "
                      "as classic single files, e.g. before moving the dataset without rows/ (docs/distributed.md)")
    step.add_argument("-p", "--preprocess", action="store_true",
                      help="build data_{res}[_lab].h5 (resized float16 NCHW images + dense targets) from the buckets")
    step.add_argument("--validate", action="store_true",
                      help="check the raw render output (counts vs manifest, empty views, NaN/saturated depth, id "
                      "consistency, objects outside the frame); report to DATA_DIR/NAME/validation.json")
    step.add_argument("--show", type=int, metavar="N",
                      help="write a contact sheet PNG of the first N samples (colour, depth, instance, semantic)")
    opt = parser.add_argument_group("options")
    opt.add_argument("-e", "--exr", action="store_true",
                     help="require EXR views (the original -e). Targets (png_targets + png_depth / depth, instance, semantic) "
                     "are stored whenever the views are EXR; PNG views give images only")
    opt.add_argument("-r", "--resolution", type=int, default=64, help="-p: output height in pixels (default 64)")
    opt.add_argument("-l", "--lab", action="store_true", help="-p: store CIE-LAB (L/100, a/128, b/128)")
    opt.add_argument("-b", "--buckets", type=parse_buckets, metavar="LIST",
                     help="buckets to consolidate (-f, sample-major) and to include (-p), e.g. 0-9 or 0,3,11 "
                     "(default all 12)")
    opt.add_argument("-c", "--compute_stats", action="store_true",
                     help="-p: store per-channel mean/std of the train rows in data_{res}.h5")
    opt.add_argument("-j", "--jobs", type=int, default=default_jobs(),
                     help="worker processes for decoding/encoding (default: the CPUs available)")
    opt.add_argument("--allow-bad", action="store_true",
                     help="exit 0 even when -f skipped bad samples (they are still reported and listed in "
                     "consolidation.json)")
    opt.add_argument("--report", type=Path, help="--validate: report path (default DATA_DIR/NAME/validation.json)")
    opt.add_argument("--show-out", type=Path, help="--show: PNG path (default DATA_DIR/NAME/contact_sheet.png)")
    opt.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only, no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the requested steps; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not (args.to_hdf5 or args.compact or args.preprocess or args.validate or args.show):
        parser.error("nothing to do: give at least one of -f, --compact, -p, --validate, --show N")
    if args.to_hdf5 and args.compact:
        parser.error("-f consolidates the raw samples into single files and --compact rewrites the farm's virtual "
                     "files as single files: give one of them")
    if args.jobs < 1:
        parser.error(f"-j/--jobs must be >= 1, got {args.jobs}")
    dataset_dir = paths.DATA_DIR / args.dataset_name
    if not dataset_dir.is_dir():
        logger.error("%s does not exist (DATA_DIR=%s); render it first: python render.py -d %s",
                     dataset_dir, paths.DATA_DIR, args.dataset_name)
        return 2
    logger.info("arguments: %s", vars(args))
    progress = not args.quiet
    status = 0
    try:
        if args.validate:
            report = validate_raw(dataset_dir, jobs=args.jobs, progress=progress)
            out = args.report or dataset_dir / "validation.json"
            write_report(report, out)
            log_report(report)
            logger.info("validation report: %s", out)
            status = max(status, 0 if report["ok"] else 1)
        if args.to_hdf5:
            result = consolidate(dataset_dir, jobs=args.jobs, buckets=args.buckets, require_exr=args.exr,
                                 progress=progress)
            if result.bad:
                logger.error("%d bad sample(s) skipped: %s%s", len(result.bad),
                             ", ".join(b.name for b in result.bad[:20]), " ..." if len(result.bad) > 20 else "")
                status = max(status, 0 if args.allow_bad else 1)
        if args.compact:
            compact(dataset_dir)
        if args.preprocess:
            preprocess(dataset_dir, res=args.resolution, lab=args.lab, buckets=args.buckets,
                       compute_stats=args.compute_stats, jobs=args.jobs, progress=progress)
        if args.show:
            out = args.show_out or dataset_dir / "contact_sheet.png"
            make_contact_sheet(dataset_dir, args.show, out)
    except (FileNotFoundError, ValueError, DiskFullError, DatasetLockedError) as exc:
        logger.error("%s", exc)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
