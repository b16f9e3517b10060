"""Preprocessing (``preprocess_data.py -p``): §2 buckets -> one training-ready ``data_{res}[_lab].h5`` (§4).

Per row: decode the sRGB PNG, resize it to ``res`` (bilinear with anti-aliasing), scale it to [0, 1] (or convert it
to CIE-LAB with scikit-image and scale L/100, a/128, b/128), and store float16 NCHW. With targets (``png_targets``
ids and ``png_depth`` millimetres, EXR input), instance and semantic ids are resized with nearest neighbour and depth too (decoded to metres, NaN
where nothing was hit), so that no label is ever blended across an object edge. Intrinsics are scaled to the
new size. Rows are ordered train, val, test by each row's `split` (each sorted by sample index), so a split is one contiguous slice.
With ``-c`` the per-channel mean and standard deviation of the train rows are stored for the trainer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from skimage.color import rgb2lab
from skimage.transform import resize
from tqdm import tqdm

from core.samples import N_BUCKETS, SPLIT_OF_BUCKET, SPLITS
from pipeline.formats import hdf5 as h5_out
from pipeline.formats.depth import decode_depth
from pipeline.formats.png import decode_png
from pipeline.layouts.consolidate import bucket_file, map_ordered, worker_pool
from pipeline.quality.raw_samples import OBJECT_FIELDS

logger = logging.getLogger(__name__)

_BATCH = 64
#: Version of the §4 contract (unchanged by format 2 of the consolidated files it reads).
FORMAT_VERSION = 1
#: Per-row datasets copied from the buckets unchanged.
_COPIED = ("index", "seed", "cam_to_world", "num_objects", "light", "instance_id", "class_index", *OBJECT_FIELDS)


def output_file(dataset_dir: Path, res: int, lab: bool) -> Path:
    """``DATA_DIR/NAME/data_{res}[_lab].h5``."""
    return Path(dataset_dir) / f"data_{res}{'_lab' if lab else ''}.h5"


def _out_size(h: int, w: int, res: int) -> tuple[int, int]:
    """Output (H, W): height ``res``, width keeping the aspect ratio (``res`` x ``res`` for square renders)."""
    return res, max(1, round(res * w / h))


def _process_batch(task: tuple[list[tuple[str, int]], int, bool, bool]) -> dict[str, np.ndarray]:
    """Worker: decode and resize rows ``[(bucket file, row), ...]``."""
    rows, res, lab, targets = task
    handles: dict[str, h5py.File] = {}
    images, inst, sem, depth = [], [], [], []
    try:
        for path, row in rows:
            fh = handles.get(path) or handles.setdefault(path, h5py.File(path, "r"))
            rgb = decode_png(fh["png_images"][row])
            h, w = rgb.shape[:2]
            size = _out_size(h, w, res)
            img = resize(rgb.astype(np.float32) / 255.0, size, order=1, anti_aliasing=(h > size[0]),
                         preserve_range=True)
            img = np.clip(img, 0.0, 1.0)
            if lab:
                img = rgb2lab(img) / np.array([100.0, 128.0, 128.0])
            images.append(img.transpose(2, 0, 1).astype(np.float16))
            if targets:
                # Ids from the seed's 8-bit target PNG (ids above 255 never reach it), depth from the lossless
                # millimetre PNG beside it (the target's channel 2 is the seed's saturating centimetres).
                t = np.concatenate([decode_png(fh["png_targets"][row])[..., :2].astype(np.uint16),
                                    decode_png(fh["png_depth"][row])], axis=-1)
                t = resize(t, size, order=0, anti_aliasing=False, preserve_range=True).astype(np.uint16)
                inst.append(t[..., 0])
                sem.append(t[..., 1])
                depth.append(decode_depth(t[..., 2]))
    finally:
        for fh in handles.values():
            fh.close()
    out = {"images": np.stack(images)}
    if targets:
        out.update(instance=np.stack(inst), semantic=np.stack(sem), depth=np.stack(depth))
    return out


def preprocess(
    dataset_dir: Path,
    res: int = 64,
    lab: bool = False,
    buckets: Iterable[int] | None = None,
    compute_stats: bool = False,
    jobs: int = 1,
    progress: bool = False,
) -> Path:
    """Builds ``data_{res}[_lab].h5`` from the ``imgs_XX.h5`` buckets.

    Args:
        dataset_dir: ``DATA_DIR/NAME`` after ``-f``.
        res: output height (and width for square renders), pixels.
        lab: store CIE-LAB (L/100, a/128, b/128) instead of sRGB in [0, 1].
        buckets: buckets to include; all 12 when None.
        compute_stats: store per-channel ``mean`` / ``std`` of the train rows.
        jobs: processes decoding and resizing.
        progress: show a tqdm bar.

    Returns:
        The written file.

    Raises:
        FileNotFoundError: a requested bucket file is missing (run ``-f`` first).
        ValueError: bad ``res``/buckets, a multi-view dataset, renders of different aspect ratios, no rows.
    """
    dataset_dir = Path(dataset_dir)
    if res < 4:
        raise ValueError(f"-r/--resolution must be >= 4, got {res}")
    keys = sorted(set(range(N_BUCKETS) if buckets is None else buckets))
    if any(not 0 <= b < N_BUCKETS for b in keys) or not keys:
        raise ValueError(f"buckets must be in 0..{N_BUCKETS - 1}, got {keys}")
    files = {b: bucket_file(dataset_dir, b) for b in keys}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        if (dataset_dir / "scenes_train.h5").is_file():
            raise ValueError(
                f"{dataset_dir.name} is a multi-view dataset (scenes_*.h5, docs/formats.md §3): those files are "
                "already training-ready and -p does not apply"
            )
        raise FileNotFoundError(f"missing {missing}; consolidate first: python preprocess_data.py -d NAME -f")
    order: list[tuple[int, int, str, int]] = []  # (split rank, index, file, row)
    meta_src: dict[str, Any] = {}
    m = -1
    targets = True
    for b, path in files.items():
        with h5py.File(path, "r") as fh:
            idx = fh["index"][:]
            targets &= "png_targets" in fh and "png_depth" in fh
            if m < 0:
                meta_src = {k: fh.attrs[k] for k in fh.attrs if k not in ("bucket", "split", "fields")}
                m = fh["class_index"].shape[1]
            elif fh["class_index"].shape[1] != m:
                raise ValueError(f"{path}: objects padded to {fh['class_index'].shape[1]}, others to {m}; re-run -f")
            # Each row's split: its own (a dataset may declare splits per sample), else its bucket's.
            ranks = fh["split"][:] if "split" in fh else np.full(len(idx), SPLITS.index(SPLIT_OF_BUCKET[b]))
        order.extend((int(rank), int(i), str(path), r) for r, (rank, i) in enumerate(zip(ranks, idx, strict=True)))
    order.sort()
    n = len(order)
    if n == 0:
        raise ValueError(f"{dataset_dir}: the selected buckets {keys} hold no rows")
    with h5py.File(order[0][2], "r") as fh:
        h, w = decode_png(fh["png_images"][order[0][3]]).shape[:2]
    oh, ow = _out_size(h, w, res)
    out_path = output_file(dataset_dir, res, lab)
    logger.info("preprocessing %d rows of %s to %s (%dx%d, %s)", n, dataset_dir.name, out_path.name, ow, oh,
                "LAB" if lab else "sRGB")
    chunk = min(_BATCH, n)
    with h5_out.dataset_lock(dataset_dir), worker_pool(min(jobs, (n + _BATCH - 1) // _BATCH)) as pool:
        fh = h5_out.create_h5(out_path)
        try:
            for key, value in meta_src.items():
                fh.attrs[key] = value
            fh.attrs["layout"] = "preprocessed"
            fh.attrs["format_version"] = FORMAT_VERSION
            fh.attrs["resolution"] = (oh, ow)
            fh.attrs["colour_space"] = "lab" if lab else "srgb"
            fh.attrs["colour_scale"] = "L/100, a/128, b/128" if lab else "sRGB / 255, in [0, 1]"
            fh.attrs["buckets"] = np.asarray(keys, np.int32)
            ranks = np.asarray([o[0] for o in order])
            fh.attrs["split_rows"] = json.dumps(
                {s: [int(np.searchsorted(ranks, r)), int(np.searchsorted(ranks, r, "right"))] for r, s in enumerate(SPLITS)}
            )
            opts = {"track_times": False}
            ds = {
                "images": fh.create_dataset("images", (n, 3, oh, ow), np.float16, chunks=(chunk, 3, oh, ow), **opts),
            }
            if targets:
                ds["instance"] = fh.create_dataset("instance", (n, oh, ow), np.uint16, chunks=(chunk, oh, ow), **opts)
                ds["semantic"] = fh.create_dataset("semantic", (n, oh, ow), np.uint16, chunks=(chunk, oh, ow), **opts)
                ds["depth"] = fh.create_dataset("depth", (n, oh, ow), np.float32, chunks=(chunk, oh, ow), **opts)
            fh.create_dataset("split", data=ranks.astype(np.int8), **opts)
            fh.create_dataset("bucket", data=np.asarray([o[1] % N_BUCKETS for o in order], np.int8), **opts)
            # Per-row metadata, gathered from the buckets in output order.
            meta = _gather_meta(order, (*_COPIED, "K"))
            scale = np.array([[ow / w, 0, 0], [0, oh / h, 0], [0, 0, 1]], np.float32)
            meta["K"] = scale @ meta["K"]
            for key, arr in meta.items():
                fh.create_dataset(key, data=arr, **opts)
            tasks = [([(o[2], o[3]) for o in order[i : i + _BATCH]], res, lab, targets) for i in range(0, n, _BATCH)]
            start = 0
            stats = np.zeros((3, 3))  # per channel: count, sum, sum of squares (train rows)
            n_train = int(np.sum(ranks == 0))
            for out in tqdm(map_ordered(_process_batch, tasks, pool=pool), total=len(tasks), disable=not progress,
                            unit="batch", desc="preprocess"):
                stop = start + len(out["images"])
                for key, arr in out.items():
                    ds[key][start:stop] = arr
                if compute_stats and start < n_train:
                    imgs = out["images"][: max(0, n_train - start)].astype(np.float64)
                    stats[:, 0] += imgs.shape[0] * oh * ow
                    stats[:, 1] += imgs.sum(axis=(0, 2, 3))
                    stats[:, 2] += (imgs**2).sum(axis=(0, 2, 3))
                start = stop
            if compute_stats:
                if n_train == 0:
                    raise ValueError("-c needs train rows (buckets 0-9) to compute mean/std")
                mean = stats[:, 1] / stats[:, 0]
                std = np.sqrt(np.maximum(stats[:, 2] / stats[:, 0] - mean**2, 0.0))
                fh.create_dataset("mean", data=mean.astype(np.float32), **opts)
                fh.create_dataset("std", data=std.astype(np.float32), **opts)
                logger.info("train mean %s std %s", np.round(mean, 4).tolist(), np.round(std, 4).tolist())
            h5_out.publish(fh, out_path)
        except BaseException:
            h5_out.discard(fh, out_path)
            raise
    logger.info("wrote %s: %d rows", out_path, n)
    return out_path


def _gather_meta(order: list[tuple[int, int, str, int]], keys: Iterable[str]) -> dict[str, np.ndarray]:
    """Reads per-row metadata of every bucket once and arranges it in output order."""
    cache: dict[str, dict[str, np.ndarray]] = {}
    for _, _, path, _ in order:
        if path not in cache:
            with h5py.File(path, "r") as fh:
                cache[path] = {k: fh[k][:] for k in keys}
    return {k: np.stack([cache[path][k][row] for _, _, path, row in order]) for k in keys}
