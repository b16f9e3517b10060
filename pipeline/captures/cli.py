"""Command line: `python -m pipeline.captures {import-gqn,import-capture,import-fruit}` (docs/captures.md)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import paths
from core.lock import DatasetLockedError
from pipeline.captures.capture import import_plan, plan_capture
from pipeline.captures.fruit import DEFAULT_FOV_DEG, plan_fruit
from pipeline.captures.gqn import DATASETS, import_gqn
from pipeline.captures.photos import SEED_FRAMING, Framing
from pipeline.captures.scene import CaptureError
from pipeline.formats import hdf5 as h5_out

logger = logging.getLogger(__name__)

def _ints(count: int) -> Any:
    def parse(value: str) -> tuple[int, ...]:
        try:
            numbers = tuple(int(v) for v in value.split(","))
        except ValueError:
            numbers = ()
        if len(numbers) != count:
            raise argparse.ArgumentTypeError(f"expected {count} comma-separated integers, got {value!r}")
        return numbers
    return parse


def _framing(args: argparse.Namespace, default: Framing | None) -> Framing | None:
    if args.resize is None and args.crop is None:
        return default
    return Framing(resize=args.resize, crop=args.crop)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.captures",
        description="Import real captures and DeepMind's gqn-datasets into the scene-major HDF5 the renders use "
                    "(DATA_DIR/NAME/scenes_{train,val,test}.h5, docs/formats.md section 3; docs/captures.md).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("import-gqn", help="convert DeepMind's gqn-datasets TFRecord files",
                       description="Convert SRC/train/*.tfrecord and SRC/test/*.tfrecord of one of DeepMind's "
                                   "gqn-datasets into DATA_DIR/NAME, file by file in parallel. A killed run resumes "
                                   "where it stopped; adding files later converts only those.")
    g.add_argument("src", type=Path, help="folder holding train/ and test/ (as gsutil cp -R leaves it)")
    g.add_argument("-d", "--dataset-name", dest="name", required=True, help="output folder DATA_DIR/NAME")
    g.add_argument("--dataset", required=True, choices=sorted(DATASETS),
                   help="which gqn dataset the files are (sets views, image size and file counts)")
    g.add_argument("-j", "--jobs", type=int, default=None, help="worker processes (default: all cores)")
    g.add_argument("--keep-parts", action="store_true", help="keep the per-file parts (NAME/.gqn-parts) afterwards")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")

    framing_help = "resize W,H first (Lanczos), e.g. 96,72"
    crop_help = "then crop the box LEFT,TOP,RIGHT,BOTTOM of the resized image, e.g. 16,4,80,68"
    c = sub.add_parser("import-capture", help="import folders of photos with a poses.json / poses.csv",
                       description="Import a capture folder (photos plus poses.json or poses.csv; or a folder of "
                                   "such scene folders) into DATA_DIR/NAME. Photos are framed to square images "
                                   "(--size) unless --resize/--crop say otherwise.")
    c.add_argument("src", type=Path, help="a scene folder or a folder of scene folders")
    c.add_argument("-d", "--dataset-name", dest="name", required=True, help="output folder DATA_DIR/NAME")
    c.add_argument("--size", type=int, default=64,
                   help="side of the square images: shorter side resized to it, centre cropped (default 64)")
    c.add_argument("--resize", type=_ints(2), default=None, help=framing_help)
    c.add_argument("--crop", type=_ints(4), default=None, help=crop_help)
    c.add_argument("--fov-deg", type=float, default=None,
                   help="horizontal field of view of photos whose pose file gives no K or fov_deg")
    c.add_argument("--split", choices=["train", "val", "test"], default=None,
                   help="put every scene in this split (default: scene index %% 12: 0-9 train, 10 val, 11 test)")
    c.add_argument("--overwrite", action="store_true", help="replace scene files already in DATA_DIR/NAME")

    f = sub.add_parser("import-fruit", help="import the fruit still-life photos (Scene{k}/ folders of seed 000)",
                       description="Import the fruit still-life captures (Scene1/ ... Scene235/, photos posed by the "
                                   "12- or 8-view table in sorted-name order) into DATA_DIR/NAME, framed as the "
                                   "original did (96x72, then the 64x64 box 16,4,80,68) unless --resize/--crop.")
    f.add_argument("src", type=Path, help="the folder holding the Scene{k}/ folders")
    f.add_argument("-d", "--dataset-name", dest="name", required=True, help="output folder DATA_DIR/NAME")
    f.add_argument("--table", type=int, choices=[12, 8], default=12,
                   help="12: scenes 1-129 (12 views each); 8: scenes 130-235 (8 views). One table per dataset")
    f.add_argument("--resize", type=_ints(2), default=None, help=framing_help)
    f.add_argument("--crop", type=_ints(4), default=None, help=crop_help)
    f.add_argument("--fov-deg", type=float, default=DEFAULT_FOV_DEG,
                   help=f"horizontal field of view assumed for the framed images (default {DEFAULT_FOV_DEG}, "
                        "the synthetic twin's)")
    f.add_argument("--split", choices=["train", "val", "test"], default=None,
                   help="put every scene in this split (default: scene number %% 12)")
    f.add_argument("--position-scale", type=float, default=1.0,
                   help="multiply the table's x, y: 1 keeps the seed's table units (default), 0.6 gives the "
                        "synthetic twin's metres (fruit_still_life.square_half_size)")
    f.add_argument("--overwrite", action="store_true", help="replace scene files already in DATA_DIR/NAME")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (1 with one error line for bad input)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.info("arguments: %s", vars(args))
    dataset_dir = paths.DATA_DIR / args.name
    try:
        if args.command == "import-gqn":
            result = import_gqn(args.src, dataset_dir, args.dataset, jobs=args.jobs,
                                progress=not args.no_progress and sys.stderr.isatty(), keep_parts=args.keep_parts)
            scenes = sum(result.rows.values())
            print(f"{dataset_dir}: {result.rows} ({len(result.converted)} files converted, {len(result.reused)} "
                  f"already done) in {result.seconds:.1f} s")
            logger.debug("%d scenes", scenes)
        elif args.command == "import-capture":
            plan = plan_capture(args.src, framing=_framing(args, None), size=args.size, fov_deg=args.fov_deg,
                                split=args.split)
            print(f"{dataset_dir}: {import_plan(plan, dataset_dir, args.overwrite)}")
        elif args.command == "import-fruit":
            plan = plan_fruit(args.src, table=args.table, framing=_framing(args, SEED_FRAMING) or SEED_FRAMING,
                              fov_deg=args.fov_deg, split=args.split, position_scale=args.position_scale)
            print(f"{dataset_dir}: {import_plan(plan, dataset_dir, args.overwrite)}")
        else:
            raise ValueError(f"unknown command {args.command!r}")
    except (CaptureError, DatasetLockedError, h5_out.DiskFullError) as err:
        logger.error("%s", err)
        return 1
    return 0
