"""Validation of a rendered dataset (docs/formats.md §1): ``python -m pipeline.quality.validate -d NAME``.

Checks, per dataset:
- counts: every sample the render manifest (``manifest.jsonl``) promises is present; without a manifest the
  indices must run 0..N-1 without gaps (N from ``dataset.json``'s ``num_samples`` when it has one);
- every sidecar parses and holds the fields of §1, and its ``dataset_seed`` matches ``dataset.json``.

Per view (EXR input):
- the file reads and has the sidecar's resolution; colour has no NaN/inf;
- not empty: some pixel carries an instance id (an all-background view is a failed render);
- depth: no NaN, no negative values, nothing beyond the 65.534 m the depth code can store (saturated), and
  depth is finite exactly where an instance id is;
- ids: every instance id in the image belongs to an object of the sidecar and all its pixels carry that object's
  semantic id (``class_index + 1``); background is 0 in both;
- framing: each object's ``centroid`` projected with the view's ``K`` and ``cam_to_world_opencv`` lies in front
  of the camera and inside the image. For single-view datasets an object outside the frame is a failure; for
  multi-view scenes only an object outside *every* view is (one view missing it is normal on a camera ring).
  Structural classes (wall, floor, ceiling) are exempt.

PNG input (``render_exr = False``) gets the checks that need no labels: readable, right size, not blank.

The JSON report (``validation.json`` in the dataset folder unless ``-o`` says otherwise) lists missing samples,
bad samples with one message per problem, and warnings. The exit status is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from core.camera import project
from core.publish import TMP_PREFIX, write_json
from core.samples import samples_dir
from pipeline.formats.depth import MAX_DEPTH_M
from pipeline.formats.exr import ExrReadError, read_view_exr
from pipeline.formats.png import PngError, decode_png
from pipeline.layouts.consolidate import map_ordered
from pipeline.quality.raw_samples import (
    Sample,
    SidecarError,
    list_sample_dirs,
    load_sample,
    read_dataset_json,
    read_manifest,
)

logger = logging.getLogger(__name__)

#: Classes whose centroid may lie outside every view (room structure).
STRUCTURE_CLASSES = frozenset({"wall", "floor", "ceiling"})


@dataclass
class SampleCheck:
    """Outcome of checking one sample.

    Attributes:
        name: folder name.
        errors: one message per failed check.
        warnings: one message per suspicious but acceptable finding.
        stats: counters (views, empty_views, nan_depth_pixels, ...).
    """

    name: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


def project_point(point: Sequence[float], k: np.ndarray, c2w_opencv: np.ndarray) -> tuple[float, float, float]:
    """Projects a world point into a view (:func:`core.camera.project`): (u, v, z), z the planar depth.

    A point behind the camera (z <= 0) gives u = v = NaN.
    """
    uv, z = project(np.asarray(point, np.float64)[None], np.asarray(k), np.asarray(c2w_opencv, np.float64))
    if z[0] <= 1e-9:
        return math.nan, math.nan, float(z[0])
    return float(uv[0, 0]), float(uv[0, 1]), float(z[0])


def _in_frame(point: Sequence[float], view: dict, width: int, height: int) -> str | None:
    """None when the point projects inside the image, else why not."""
    u, v, z = project_point(point, np.asarray(view["K"]), np.asarray(view["cam_to_world_opencv"]))
    if z <= 1e-9:
        return "behind the camera"
    if not (0 <= u < width and 0 <= v < height):
        return f"projects to ({u:.1f}, {v:.1f}), outside {width}x{height}"
    return None


def _check_exr_view(check: SampleCheck, sample: Sample, vi: int, path: Path) -> None:
    view = read_view_exr(path)
    w, h = sample.resolution
    stats = check.stats
    if view.shape != (h, w):
        check.errors.append(f"{path.name}: image is {view.shape[1]}x{view.shape[0]}, sidecar says {w}x{h}")
        return
    if not np.all(np.isfinite(view.rgb)):
        check.errors.append(f"{path.name}: colour has {int((~np.isfinite(view.rgb)).sum())} NaN/inf values")
    hit = view.instance > 0
    if not hit.any():
        stats["empty_views"] = stats.get("empty_views", 0) + 1
        check.errors.append(f"{path.name}: empty view (no pixel carries an instance id)")
    depth = view.depth
    nan = np.isnan(depth)
    if nan.any():
        stats["nan_depth_pixels"] = stats.get("nan_depth_pixels", 0) + int(nan.sum())
        check.errors.append(f"{path.name}: {int(nan.sum())} NaN depth pixel(s)")
    if np.any(depth[~nan] < 0):
        check.errors.append(f"{path.name}: negative depth (min {float(depth[~nan].min()):.4g} m)")
    finite = np.isfinite(depth)
    saturated = finite & (depth > MAX_DEPTH_M)
    if saturated.any():
        stats["saturated_depth_pixels"] = stats.get("saturated_depth_pixels", 0) + int(saturated.sum())
        check.errors.append(
            f"{path.name}: {int(saturated.sum())} depth pixel(s) beyond {MAX_DEPTH_M} m (saturate the depth code)"
        )
    if np.any(hit & np.isposinf(depth)):
        check.errors.append(f"{path.name}: {int((hit & np.isposinf(depth)).sum())} hit pixel(s) with infinite depth")
    if np.any(~hit & finite):
        check.errors.append(f"{path.name}: {int((~hit & finite).sum())} pixel(s) with depth but no instance id")
    if np.any((view.semantic > 0) != hit):
        check.errors.append(f"{path.name}: background differs between instance and semantic channels")
    sem_of = {o["instance_id"]: o["class_index"] + 1 for o in sample.sidecar["objects"]}
    for iid in np.unique(view.instance[hit]).tolist():
        if iid not in sem_of:
            check.errors.append(f"{path.name}: instance id {iid} is not an object of the sidecar")
            continue
        wrong = int(np.count_nonzero(view.semantic[view.instance == iid] != sem_of[iid]))
        if wrong:
            check.errors.append(
                f"{path.name}: {wrong} pixel(s) of instance {iid} do not carry its semantic id {sem_of[iid]}"
            )


def _check_png_view(check: SampleCheck, sample: Sample, path: Path) -> None:
    try:
        rgb = decode_png(path.read_bytes())
    except FileNotFoundError:
        check.errors.append(f"{path.name}: missing view file")
        return
    w, h = sample.resolution
    if rgb.shape[:2] != (h, w):
        check.errors.append(f"{path.name}: image is {rgb.shape[1]}x{rgb.shape[0]}, sidecar says {w}x{h}")
    elif np.all(rgb == rgb[:1, :1]):
        check.stats["empty_views"] = check.stats.get("empty_views", 0) + 1
        check.errors.append(f"{path.name}: blank view (every pixel has the same colour)")


def check_sample(sample: Sample) -> SampleCheck:
    """Runs the per-view and framing checks of one sample (module docstring)."""
    check = SampleCheck(sample.name)
    check.stats["views"] = len(sample.views)
    for vi in range(len(sample.views)):
        path = sample.view_path(vi)
        try:
            if path.suffix.lower() == ".exr":
                _check_exr_view(check, sample, vi, path)
            else:
                _check_png_view(check, sample, path)
        except (ExrReadError, PngError, OSError) as exc:
            check.errors.append(str(exc) if path.name in str(exc) else f"{path.name}: {exc}")
    w, h = sample.resolution
    multi = len(sample.views) > 1
    for obj in sample.sidecar["objects"]:
        if obj.get("class") in STRUCTURE_CLASSES:
            continue
        reasons = [_in_frame(obj["centroid"], view, w, h) for view in sample.views]
        label = f"object {obj['instance_id']} ({obj.get('name', obj.get('class', '?'))})"
        outside = [(i, r) for i, r in enumerate(reasons) if r is not None]
        check.stats["objects_outside_view"] = check.stats.get("objects_outside_view", 0) + len(outside)
        if multi and len(outside) == len(reasons):
            check.errors.append(f"{label}: centroid outside every view")
        elif not multi and outside:
            check.errors.append(f"{label}: centroid {outside[0][1]} in {sample.views[0]['file']}")
    return check


def _check_path(path: Path) -> SampleCheck:
    try:
        sample = load_sample(path)
    except SidecarError as exc:
        return SampleCheck(path.name, errors=[str(exc)])
    return check_sample(sample)


def validate_raw(dataset_dir: Path, jobs: int = 1, progress: bool = False) -> dict[str, Any]:
    """Validates the raw render output of ``dataset_dir``.

    Args:
        dataset_dir: ``DATA_DIR/NAME``.
        jobs: processes reading EXRs.
        progress: show a tqdm bar.

    Returns:
        The report (see module docstring); ``report["ok"]`` is False when anything failed.
    """
    dataset_dir = Path(dataset_dir)
    report: dict[str, Any] = {"dataset": dataset_dir.name, "source": "raw", "errors": []}
    dirs = list_sample_dirs(dataset_dir)
    present = [int(p.name) for p in dirs]
    manifest = read_manifest(dataset_dir)
    meta = read_dataset_json(dataset_dir)
    if meta is None:
        report["errors"].append("dataset.json is missing (docs/formats.md §1)")
    if manifest is not None:
        expected, report["expected_from"] = manifest, "manifest.jsonl"
    elif meta is not None and isinstance(meta.get("num_samples"), int):
        expected, report["expected_from"] = list(range(meta["num_samples"])), "dataset.json num_samples"
    else:
        expected = list(range(max(present) + 1)) if present else []
        report["expected_from"] = "sample folders (0..max index)"
    missing = sorted(set(expected) - set(present))
    unexpected = sorted(set(present) - set(expected))
    report["samples_expected"] = len(expected)
    report["samples_present"] = len(present)
    report["missing_samples"] = [f"{i:06d}" for i in missing]
    report["unexpected_samples"] = [f"{i:06d}" for i in unexpected]
    debris = sorted(p.name for p in samples_dir(dataset_dir).iterdir() if p.name.startswith(TMP_PREFIX))
    warnings: dict[str, list[str]] = {}
    if debris:
        warnings["samples/"] = [f"unpublished folder {d} (debris of a killed render)" for d in debris]
    if unexpected:
        warnings["samples/"] = warnings.get("samples/", []) + [f"{len(unexpected)} sample(s) not in the manifest"]
    bad: dict[str, list[str]] = {}
    totals: dict[str, int] = {}
    checks = map_ordered(_check_path, dirs, jobs)
    for check in tqdm(checks, total=len(dirs), disable=not progress, unit="sample", desc="validate"):
        for key, value in check.stats.items():
            totals[key] = totals.get(key, 0) + value
        if check.errors:
            bad[check.name] = check.errors
        if check.warnings:
            warnings[check.name] = check.warnings
    if meta is not None:
        seed = meta.get("seed")
        for path in dirs:
            if path.name in bad:
                continue
            sidecar_seed = load_sample(path).sidecar.get("dataset_seed")
            if seed is not None and sidecar_seed != seed:
                bad[path.name] = [f"dataset_seed {sidecar_seed} differs from dataset.json seed {seed}"]
    report["samples_checked"] = len(dirs)
    report["bad_samples"] = bad
    report["warnings"] = warnings
    report["stats"] = totals
    report["ok"] = not (bad or missing or report["errors"])
    return report


def write_report(report: dict[str, Any], path: Path) -> None:
    """Writes the report atomically as JSON."""
    write_json(Path(path), report, indent=2)


def log_report(report: dict[str, Any]) -> None:
    """Logs one line per failure and a summary."""
    for msg in report["errors"]:
        logger.error("%s: %s", report["dataset"], msg)
    for name in report["missing_samples"]:
        logger.error("missing sample %s (expected from %s)", name, report["expected_from"])
    for name, errors in report["bad_samples"].items():
        for msg in errors:
            logger.error("bad sample %s: %s", name, msg)
    for name, msgs in report["warnings"].items():
        for msg in msgs:
            logger.warning("%s: %s", name, msg)
    logger.info(
        "validation of %s %s: %d sample(s) checked, %d missing, %d bad",
        report["dataset"], "passed" if report["ok"] else "FAILED", report["samples_checked"],
        len(report["missing_samples"]), len(report["bad_samples"]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pipeline.quality.validate``: validate a rendered dataset and write the JSON report."""
    import paths  # the repo-root module; imported here so that tests can point DATA_DIR elsewhere first

    parser = argparse.ArgumentParser(
        prog="python -m pipeline.quality.validate",
        description="Check a rendered dataset (DATA_DIR/NAME/samples) for missing samples, empty views, bad depth, "
        "inconsistent ids and objects outside the frame; write a JSON report; exit 1 on failure.",
    )
    parser.add_argument("-d", "--dataset_name", required=True, help="dataset folder under DATA_DIR")
    parser.add_argument("-o", "--output", type=Path, help="report path (default DATA_DIR/NAME/validation.json)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="processes reading views (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    dataset_dir = paths.DATA_DIR / args.dataset_name
    if not dataset_dir.is_dir():
        logger.error("%s does not exist; render it first or check DATA_DIR", dataset_dir)
        return 2
    report = validate_raw(dataset_dir, jobs=args.jobs, progress=True)
    out = args.output or dataset_dir / "validation.json"
    write_report(report, out)
    log_report(report)
    logger.info("report written to %s", out)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
