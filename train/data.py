"""Scene-major HDF5 dataset with context/query view sampling (docs/formats.md section 3).

One item is one scene: `n_context` context views plus one query view, drawn without replacement from the scene's
V views. Which scenes, how many context views and which views are decided by `SceneBatchSampler` from
(seed, step, position in the global batch) alone, so a run can resume at any step and a DDP run of W processes
sees exactly the global batches of a single process.

The HDF5 file is opened lazily, once per process (DataLoader workers included), and every item reads one
scene row (one chunk). This module is the one place that turns uint8 sRGB into float32 in [0, 1].
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gin
import h5py
import numpy as np
import torch
from core.camera import VIEWPOINT_ORDER

logger = logging.getLogger(__name__)

#: Viewpoint layout every file must declare or imply (docs/formats.md).
SPLITS = ("train", "val", "test")

#: A batch as the models see it. Shapes: B items, K context views, image C=3 x H x W.
#:   context_images (B, K, 3, H, W) float32 in [0, 1];  context_viewpoints (B, K, 7) float32;
#:   query_image (B, 3, H, W) float32 in [0, 1];        query_viewpoint (B, 7) float32;
#:   scene (B,) int64 row in the file;                   noise_seed (B,) int64 seed for the item's latent noise.
Batch = dict[str, torch.Tensor]


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or not in the scene-major layout; the message names file and fix."""


@dataclass(frozen=True)
class ItemKey:
    """What one item is: scene row, number of context views, the seed of its view choice and noise, and which
    dataset the row is in (0: the training data, 1: the mixed-in data of `fit.mix_data`, see `MixedDataset`)."""

    scene: int
    n_context: int
    seed: int
    source: int = 0


def split_path(data_dir: str | os.PathLike, split: str) -> Path:
    """Path of `scenes_{split}.h5` inside a dataset folder, checked to exist.

    Raises:
        DatasetError: unknown split, or the file is missing (the message lists what the folder holds).
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {SPLITS}")
    folder = Path(data_dir)
    path = folder / f"scenes_{split}.h5"
    if not path.is_file():
        present = sorted(p.name for p in folder.glob("scenes_*.h5")) if folder.is_dir() else []
        raise DatasetError(
            f"{path}: no such file (the folder holds {present or 'no scenes_*.h5 files'}). Pass --data DIR with the "
            "dataset folder that the consolidation step wrote (docs/formats.md section 3), e.g. data/demo_rooms."
        )
    return path


def _describe(path: Path, exc: BaseException) -> DatasetError:
    return DatasetError(
        f"{path}: cannot read it as HDF5 ({type(exc).__name__}: {exc}). The file is corrupt or truncated, e.g. by "
        "an interrupted copy or consolidation; delete it and re-run the consolidation step that writes it."
    )


@dataclass(frozen=True)
class SceneFileInfo:
    """Shape of a scene-major file: S scenes, V views, H x W images."""

    path: Path
    num_scenes: int
    num_views: int
    height: int
    width: int


#: Scenes whose images are checked for being one flat value when a file is opened (all would read every pixel).
CHECKED_SCENES = 32


def _check_values(path: Path, f: h5py.File) -> None:
    """Refuses cameras that are not finite (every scene) and scenes whose images are all one value (a spread of
    up to CHECKED_SCENES scenes), naming the scene: such data trains into NaNs or into nothing, silently."""
    scene_index = f["scene_index"][:] if "scene_index" in f else np.arange(f["images"].shape[0])
    for name in ("viewpoints", "cam_to_world", "K"):
        if name in f:
            values = f[name][:]
            bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
            if bad.any():
                row = int(np.argmax(bad))
                raise DatasetError(f"{path}: `{name}` of scene {int(scene_index[row])} (row {row}) is not finite; "
                                   "re-render or re-import that scene, or drop it and consolidate again")
    images = f["images"]
    for row in np.unique(np.linspace(0, images.shape[0] - 1, min(CHECKED_SCENES, images.shape[0])).astype(int)):
        scene = images[row]
        if scene.size and scene.min() == scene.max():
            raise DatasetError(f"{path}: every image of scene {int(scene_index[row])} (row {row}) is the single "
                               f"value {int(scene.min())}; the renders or the import are broken: check that scene")


def inspect_scene_file(path: str | os.PathLike) -> SceneFileInfo:
    """Open a scene-major file once, check its datasets, shapes and dtypes, and describe it.

    Raises:
        DatasetError: the file is unreadable or lacks/mis-shapes `images` or `viewpoints`.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; pass --data DIR with a folder holding scenes_{{split}}.h5")
    try:
        with h5py.File(path, "r") as f:
            missing = [name for name in ("images", "viewpoints") if name not in f]
            if missing:
                raise DatasetError(
                    f"{path}: lacks dataset(s) {missing}; it holds {sorted(f.keys())}. A scene-major file needs "
                    "`images` uint8 (S, V, H, W, 3) and `viewpoints` float32 (S, V, 7) (docs/formats.md section 3); "
                    "re-run the consolidation step for multi-view data."
                )
            images, viewpoints = f["images"], f["viewpoints"]
            if images.ndim != 5 or images.shape[-1] != 3 or images.dtype != np.uint8:
                raise DatasetError(
                    f"{path}: `images` is {images.dtype} {images.shape}, expected uint8 (S, V, H, W, 3)"
                )
            s, v, h, w, _ = images.shape
            if viewpoints.shape != (s, v, 7):
                raise DatasetError(
                    f"{path}: `viewpoints` has shape {viewpoints.shape}, expected {(s, v, 7)} in the order "
                    f"{VIEWPOINT_ORDER}"
                )
            order = f.attrs.get("viewpoint_order")
            if order is not None and re.sub(r"[^a-z]", "", str(order).lower()).startswith("xyzcos"):
                raise DatasetError(f"{path}: viewpoint_order is {order!r}; this trainer reads {VIEWPOINT_ORDER}")
            _check_values(path, f)
    except DatasetError:
        raise
    except OSError as exc:
        raise _describe(path, exc) from exc
    if s == 0:
        raise DatasetError(f"{path}: holds no scenes. Consolidation puts scene i in val when i % 12 == 10 and in "
                           "test when i % 12 == 11: render at least 12 scenes, or pick another --split")
    return SceneFileInfo(path=path, num_scenes=s, num_views=v, height=h, width=w)


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool images by an integer factor.

    Args:
        images: float32 (..., H, W, C) with H and W divisible by `factor`.
    Returns:
        float32 (..., H // factor, W // factor, C).
    """
    if factor == 1:
        return images
    *lead, h, w, c = images.shape
    return images.reshape(*lead, h // factor, factor, w // factor, factor, c).mean(axis=(-4, -2))


def to_unit_range(raw: np.ndarray, factor: int) -> np.ndarray:
    """uint8 sRGB (N, H, W, 3) -> float32 (N, H / factor, W / factor, 3) in [0, 1], block-averaged.

    The one place where stored 8-bit images become model input. Block sums are taken in integers, so the
    result is the exact block mean up to a single float rounding.
    """
    if factor == 1:
        return raw.astype(np.float32) / np.float32(255.0)
    wide = raw.astype(np.uint16 if factor <= 16 else np.uint32)
    sums = wide[:, ::factor, ::factor].copy()
    for i in range(factor):  # strided adds: ~6x faster than a reshape + sum over two axes
        for j in range(factor):
            if i or j:
                sums += wide[:, i::factor, j::factor]
    return sums.astype(np.float32) / np.float32(255.0 * factor * factor)


@gin.configurable(denylist=["path"])
class SceneDataset(torch.utils.data.Dataset):
    """Items of one scene-major file, addressed by `ItemKey` (from `SceneBatchSampler`).

    Args:
        path: the `scenes_{split}.h5` file.
        image_size: side of the square images handed to the model; the stored size must be an integer multiple
            (images are average-pooled on load, e.g. 64 -> 32 for CPU training).
    """

    def __init__(self, path: str | os.PathLike, image_size: int = 32) -> None:
        self.info = inspect_scene_file(path)
        self.path = self.info.path
        if self.info.height != self.info.width:
            raise DatasetError(f"{self.path}: images are {self.info.height}x{self.info.width}; expected square images")
        if image_size <= 0 or self.info.height % image_size:
            raise DatasetError(
                f"{self.path}: stored images are {self.info.height} px, not a multiple of image_size={image_size}; "
                f"set SceneDataset.image_size to a divisor of {self.info.height}"
            )
        self.image_size = image_size
        self.factor = self.info.height // image_size
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._viewpoints: np.ndarray | None = None  # all viewpoints, read at first use if small

    def __len__(self) -> int:
        return self.info.num_scenes

    @property
    def num_views(self) -> int:
        return self.info.num_views

    def _h5(self) -> h5py.File:
        """The file handle of this process: opened on first use, reopened after a fork (DataLoader workers)."""
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise _describe(self.path, exc) from exc
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"], state["_pid"] = None, None  # handles never travel to worker processes
        state["_viewpoints"] = None
        state.pop("_scalar_cache", None)  # caches are rebuilt in each process
        state.pop("_grid_cache", None)
        state.pop("_dset_cache", None)
        return state

    def close(self) -> None:
        """Close this process's handle (it reopens on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._pid = None, None

    def _read_raw(self, scene: int) -> tuple[np.ndarray, np.ndarray]:
        """One scene row as stored: uint8 (V, H, W, 3) and float32 (V, 7). Reads one chunk."""
        f = self._h5()
        try:
            raw = f["images"][scene]
            if self._viewpoints is None and f["viewpoints"].size * 4 <= 64 * 2**20:
                self._viewpoints = np.asarray(f["viewpoints"][:], dtype=np.float32)
            if self._viewpoints is not None:
                viewpoints = self._viewpoints[scene]
            else:
                viewpoints = np.asarray(f["viewpoints"][scene], dtype=np.float32)
        except (OSError, KeyError) as exc:
            raise DatasetError(
                f"{self.path}: reading scene row {scene} failed ({exc}); the file is corrupt or truncated, "
                "re-run the consolidation step"
            ) from exc
        return raw, viewpoints

    def read_scene(self, scene: int) -> tuple[np.ndarray, np.ndarray]:
        """All views of one scene.

        Returns:
            images float32 (V, H', W', 3) in [0, 1] at `image_size`, viewpoints float32 (V, 7).
        """
        raw, viewpoints = self._read_raw(scene)
        return to_unit_range(raw, self.factor), viewpoints.copy()

    def views(self, scene: int, view_indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Chosen views of one scene: images (N, 3, H, W) float32 in [0, 1] and viewpoints (N, 7)."""
        raw, viewpoints = self._read_raw(scene)
        images = to_unit_range(raw[view_indices], self.factor)
        return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), torch.from_numpy(
            viewpoints[view_indices].copy())

    def _view_order(self, key: ItemKey) -> np.ndarray:
        """The item's K + 1 distinct views (context first, query last), drawn from its seed."""
        return np.random.default_rng(key.seed).choice(self.num_views, size=key.n_context + 1, replace=False)

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        images, viewpoints = self.views(key.scene, self._view_order(key))
        return {
            "context_images": images[:-1],
            "context_viewpoints": viewpoints[:-1],
            "query_image": images[-1],
            "query_viewpoint": viewpoints[-1],
            "scene": torch.tensor(key.scene, dtype=torch.int64),
            "noise_seed": torch.tensor(key.seed, dtype=torch.int64),
        }

    def __getitems__(self, keys: list[ItemKey]) -> Batch:
        """A whole batch at once (DataLoader calls this with a batch sampler): one HDF5 read of all its scene
        rows and one uint8 -> float conversion, faster than item by item. Same values as `__getitem__`.

        Returns:
            An already collated `Batch` (see `make_loader`'s collate function); keys with different context
            counts cannot share a batch and come back as a list of items.
        """
        if len({k.n_context for k in keys}) != 1:
            return [self[k] for k in keys]  # type: ignore[return-value]  # cannot be stacked; items as they are
        scenes = np.array([k.scene for k in keys])
        unique, row = np.unique(scenes, return_inverse=True)
        f = self._h5()
        try:
            dset = f["images"]
            raw = np.stack([dset[int(i)] for i in unique])  # row by row: h5py's list indexing is ~20x slower
            if self._viewpoints is None:
                self._read_raw(int(unique[0]))  # loads the viewpoint cache when it is small
            vps = (self._viewpoints[unique] if self._viewpoints is not None
                   else np.asarray(f["viewpoints"][unique.tolist()], np.float32))
        except (OSError, KeyError) as exc:
            raise DatasetError(
                f"{self.path}: reading scene rows {unique.tolist()} failed ({exc}); the file is corrupt or "
                "truncated, re-run the consolidation step"
            ) from exc
        order = np.stack([self._view_order(k) for k in keys])  # (B, K + 1)
        picked = raw[row[:, None], order]  # (B, K + 1, H, W, 3) uint8
        b, n = order.shape
        images = to_unit_range(picked.reshape(b * n, *picked.shape[2:]), self.factor)
        images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).view(b, n, 3, *images.shape[1:3])
        views = torch.from_numpy(np.ascontiguousarray(vps[row[:, None], order]))
        return {
            "context_images": images[:, :-1],
            "context_viewpoints": views[:, :-1],
            "query_image": images[:, -1],
            "query_viewpoint": views[:, -1],
            "scene": torch.from_numpy(scenes.astype(np.int64)),
            "noise_seed": torch.tensor([k.seed for k in keys], dtype=torch.int64),
        }


def _collate(items: list[dict[str, torch.Tensor]] | Batch) -> Batch:
    """Stack items into a batch; a batch that `SceneDataset.__getitems__` already built passes through."""
    if isinstance(items, dict):
        return items
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


class MixedDataset(torch.utils.data.Dataset):
    """The training data and a second dataset read by the same family, side by side (`fit.mix_data`).

    An `ItemKey` with `source` 0 is a row of `main`, with `source` 1 a row of `mixed`; batches keep the keys'
    order. Both must hand the model images of the same size (each pools its own stored size to it), e.g. real
    captures mixed with the synthetic scenes a model was pretrained on.

    Args:
        main: the training data (its length is what epochs count).
        mixed: the data mixed in.
    Raises:
        DatasetError: the two give images of different sizes.
    """

    def __init__(self, main: SceneDataset, mixed: SceneDataset) -> None:
        if main.image_size != mixed.image_size:
            raise DatasetError(f"{mixed.path} gives {mixed.image_size} px images, {main.path} {main.image_size} px; "
                               "mixed data must pool to the same SceneDataset.image_size")
        self.parts = (main, mixed)

    def __len__(self) -> int:
        return len(self.parts[0])

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        return self.parts[key.source][key]

    def __getitems__(self, keys: list[ItemKey]) -> Batch:
        """Each source's items read as that dataset batches them, then put back in the keys' order."""
        groups = [[i for i, k in enumerate(keys) if k.source == src] for src in (0, 1)]
        if not all(groups):
            return self.parts[keys[0].source].__getitems__(keys)
        parts = [self.parts[src].__getitems__([keys[i] for i in idx]) for src, idx in enumerate(groups)]
        if not all(isinstance(p, dict) for p in parts):  # context counts differ: items as they are
            return [self[k] for k in keys]  # type: ignore[return-value]
        order = torch.from_numpy(np.argsort(np.concatenate(groups), kind="stable"))
        return {name: torch.cat([parts[0][name], parts[1][name]])[order] for name in parts[0]}


class SceneBatchSampler:
    """Deterministic batches of `ItemKey`s for global steps `start_step, start_step + 1, ...`.

    Step s belongs to epoch `s // steps_per_epoch`; each epoch visits the scenes in a permutation drawn from
    (seed, epoch). The number of context views of step s is drawn from (seed, step), uniform in
    [min_context, max_context]; the views of each item from (seed, step, position in the global batch).
    Model families pick the range: GQN K in [1, 5] context views plus a query, ENR 1 (a source and a target
    view of one scene), RenderNet 0 (one posed view).
    With W processes, rank r takes positions [r * B / W, (r + 1) * B / W) of each global batch of B.

    Mixing (`mix_scenes`, `mix_items` > 0): M = `mix_items` positions of every global batch hold scenes of a
    second dataset (`ItemKey.source` = 1), the other B - M the training data's. Which positions are mixed is
    drawn per step from (seed, step), so DDP ranks see mixed items too; each source walks its own
    permutation per epoch (the mixed data's from a separate stream), so epochs count the training data's scenes.
    Without mixing every draw is the same as before mixing existed (resumed runs keep their batches).
    """

    def __init__(
        self,
        num_scenes: int,
        num_views: int,
        global_batch: int,
        min_context: int,
        max_context: int,
        seed: int,
        start_step: int = 0,
        max_steps: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        mix_scenes: int = 0,
        mix_items: int = 0,
    ) -> None:
        if not 0 <= min_context <= max_context <= num_views - 1:
            raise ValueError(
                f"context views must satisfy 0 <= min_context ({min_context}) <= max_context ({max_context}) "
                f"<= views per scene - 1 ({num_views - 1})"
            )
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by the {world_size} processes")
        self.num_scenes, self.num_views = num_scenes, num_views
        self.global_batch, self.min_context, self.max_context = global_batch, min_context, max_context
        self.seed, self.start_step, self.max_steps = seed, start_step, max_steps
        self.rank, self.world_size = rank, world_size
        if mix_items and not (mix_scenes > 0 and 0 < mix_items < global_batch):
            raise ValueError(f"mixing {mix_items} items of {mix_scenes} scenes into batches of {global_batch}: "
                             "need at least one mixed scene and 1 <= mixed items <= batch - 1 (fit.mix_ratio)")
        self.mix_scenes, self.mix_items = (mix_scenes, mix_items) if mix_items else (0, 0)
        self.main_items = global_batch - self.mix_items
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def _permutation(self, stream: int, epoch: int, num_scenes: int, items: int) -> np.ndarray:
        """Scenes of one epoch of a source, tiled when the source has fewer scenes than its items per batch."""
        key = (stream, epoch)
        if key not in self._perms:
            if len(self._perms) > 4:  # a step needs the current epoch of each source only
                self._perms.clear()
            rng = np.random.default_rng([self.seed, stream, epoch])
            reps = -(-items // num_scenes)
            self._perms[key] = np.concatenate([rng.permutation(num_scenes) for _ in range(reps)])
        return self._perms[key]

    def _scenes(self, step: int, stream: int, num_scenes: int, items: int) -> np.ndarray:
        steps_per_epoch = max(1, num_scenes // items)
        epoch, pos = divmod(step, steps_per_epoch)
        perm = self._permutation(stream, epoch, num_scenes, items)
        if num_scenes < items:
            return perm[:items]
        return perm[pos * items : (pos + 1) * items]

    def _global_keys(self, step: int) -> list[tuple[int, int]]:
        """(source, scene) of every position of the global batch of `step`."""
        main = self._scenes(step, 0, self.num_scenes, self.main_items)
        if not self.mix_items:
            return [(0, int(s)) for s in main]
        mixed = self._scenes(step, 5, self.mix_scenes, self.mix_items)
        is_mixed = np.zeros(self.global_batch, bool)
        is_mixed[np.random.default_rng([self.seed, 4, step]).permutation(self.global_batch)[: self.mix_items]] = True
        main_it, mixed_it = iter(main.tolist()), iter(mixed.tolist())
        return [(1, next(mixed_it)) if m else (0, next(main_it)) for m in is_mixed]

    def batch(self, step: int) -> list[ItemKey]:
        """This rank's items of global step `step`."""
        keys = self._global_keys(step)
        n_context = int(np.random.default_rng([self.seed, 1, step]).integers(self.min_context, self.max_context + 1))
        local = self.global_batch // self.world_size
        positions = range(self.rank * local, (self.rank + 1) * local)
        return [
            ItemKey(keys[p][1], n_context, int(np.random.SeedSequence([self.seed, 2, step, p]).generate_state(1)[0]),
                    keys[p][0])
            for p in positions
        ]

    def state_dict(self) -> dict:
        return {"seed": self.seed, "global_batch": self.global_batch, "min_context": self.min_context,
                "max_context": self.max_context, "num_scenes": self.num_scenes, "mix_scenes": self.mix_scenes,
                "mix_items": self.mix_items}

    def __iter__(self) -> Iterator[list[ItemKey]]:
        step = self.start_step
        while self.max_steps is None or step < self.max_steps:
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:
        if self.max_steps is None:
            raise TypeError("an endless sampler has no length")
        return max(0, self.max_steps - self.start_step)


def make_loader(
    dataset: SceneDataset | MixedDataset, sampler: SceneBatchSampler, num_workers: int = 0, pin_memory: bool = False
) -> torch.utils.data.DataLoader:
    """A DataLoader over `sampler`'s batches; order is preserved, so results do not depend on `num_workers`."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=_collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
        multiprocessing_context="fork" if num_workers > 0 and os.name == "posix" else None,
    )


def fixed_batch(dataset: SceneDataset, scenes: list[int], n_context: int, seed: int) -> Batch:
    """A reproducible batch for evaluation and pictures: the views of scene i come from (seed, scene)."""
    items = [
        dataset[ItemKey(s, n_context, int(np.random.SeedSequence([seed, 3, s]).generate_state(1)[0]))]
        for s in scenes
    ]
    return _collate(items)


def mean_image(dataset: SceneDataset, max_scenes: int = 2000) -> np.ndarray:
    """Mean of all views of the first `max_scenes` scenes: float32 (H, W, 3) in [0, 1] (a trivial baseline)."""
    n = min(len(dataset), max_scenes)
    total = None
    for s in range(n):
        images, _ = dataset.read_scene(s)
        part = images.sum(axis=0, dtype=np.float64)
        total = part if total is None else total + part
    return (total / (n * dataset.num_views)).astype(np.float32)


# --- posed views (ENR, RenderNet) -----------------------------------------------------------------------------

#: How each optional field of docs/formats.md §3 becomes model input: per view, per scene, and its conversion.
VIEW_FIELDS = ("K", "cam_to_world", "depth", "normal", "albedo", "mask", "azimuth", "elevation", "radius", "offset",
               "light_azimuth", "light_elevation")
SCENE_FIELDS = ("voxels",)


def check_fields(path: str | os.PathLike, fields: tuple[str, ...], model: str) -> None:
    """Raise `DatasetError` naming the file, each missing field and the fix, if `path` lacks any of `fields`.

    A field counts as present when the file holds the dataset (the `fields` attribute lists what the generator
    recorded; the datasets themselves are what is read); `mask` also counts when the file holds `instance`, whose
    non-zero ids are a rendered file's mask.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            missing = [name for name in fields if name not in f and not (name == "mask" and "instance" in f)]
            listed = f.attrs.get("fields")
    except OSError as exc:
        raise _describe(path, exc) from exc
    if missing:
        raise DatasetError(
            f"{path}: the {model} model needs field(s) {missing}, which this file lacks (its `fields` attribute: "
            f"{listed or 'absent'}). Regenerate the dataset with a generator that records them (docs/formats.md "
            f"section 3), or pick a model whose fields it has."
        )


def _pool_views(name: str, raw: np.ndarray, factor: int) -> np.ndarray:
    """One per-view field (N, ...) as stored -> float32 model input at the image size (block means)."""
    if name in ("normal", "albedo", "mask", "depth"):
        x = raw.astype(np.float32)
        if x.ndim == 3:
            x = x[..., None]
        if factor > 1:  # block mean by strided adds (~4x faster than a reshape + mean over two axes)
            total = x[:, ::factor, ::factor].copy()
            for i in range(factor):
                for j in range(factor):
                    if i or j:
                        total += x[:, i::factor, j::factor]
            x = total * np.float32(1.0 / (factor * factor))
        if name in ("albedo", "mask"):  # sRGB code / coverage 0..255 -> [0, 1]
            x = x / np.float32(255.0)
        elif name == "depth":
            x = x / np.float32(1000.0)  # millimetres -> metres (0 = no hit; block means mix hits and misses)
        elif name == "normal":  # unit again after averaging; background stays 0
            norm = np.linalg.norm(x, axis=-1, keepdims=True)
            x = np.where(norm > 1e-6, x / np.maximum(norm, 1e-6), 0.0).astype(np.float32)
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))  # (N, C, H, W)
        return x
    return np.asarray(raw, np.float32)


def pool_voxels(voxels: np.ndarray, size: int) -> np.ndarray:
    """uint8 occupancy (D, D, D) -> float32 (size, size, size) occupancy fractions (block means)."""
    d = voxels.shape[0]
    if d % size:
        raise DatasetError(f"voxel grid of {d}^3 is not a multiple of the model's voxel_size={size}")
    f = d // size
    return voxels.astype(np.float32).reshape(size, f, size, f, size, f).mean(axis=(1, 3, 5))


class PosedViewDataset(SceneDataset):
    """Items of a scene-major file for models that read posed views (ENR pairs, RenderNet single views).

    An item (scene, n, seed) is n + 1 distinct views of one scene drawn from the seed (n = 1: ENR's source and
    target; n = 0: one posed view). Batch keys, with N = n + 1 views:
    `images` (B, N, 3, H, W) float32 in [0, 1]; each requested per-view field (B, N, ...) float32 (`normal`,
    `albedo` (B, N, 3, H, W), `mask`, `depth` (B, N, 1, H, W); angles in degrees (B, N); `offset` (B, N, 3));
    each requested per-scene field (`voxels` (B, G, G, G) occupancy in [0, 1], indexed [x, y, z]);
    `view_index` (B, N) int64; `scene` (B,); `noise_seed` (B,).

    Args:
        path: the `scenes_{split}.h5` file.
        image_size: side of the model's images (a divisor of the stored size).
        fields: the optional datasets the model reads; missing ones raise `DatasetError` naming them.
        model: model name for error messages.
        voxel_size: side G of the voxel grid handed to the model (a divisor of the stored one).
        grid_cache_size: pooled per-scene grids kept per process (2048 of 32^3 in float16: 128 MiB).
    """

    def __init__(self, path: str | os.PathLike, image_size: int, fields: tuple[str, ...], model: str,
                 voxel_size: int | None = None, grid_cache_size: int = 2048) -> None:
        super().__init__(path, image_size=image_size)
        unknown = [f for f in fields if f not in VIEW_FIELDS + SCENE_FIELDS]
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; known: {VIEW_FIELDS + SCENE_FIELDS}")
        check_fields(self.path, fields, model)
        self.view_fields = tuple(f for f in fields if f in VIEW_FIELDS)
        self.scene_fields = tuple(f for f in fields if f in SCENE_FIELDS)
        # decided once: a name lookup in the file costs more than a view's read (see `_dset`)
        with h5py.File(self.path, "r") as f:
            self.mask_from_instance = "mask" in fields and "mask" not in f
        self.voxel_size = voxel_size
        self.grid_cache_size = grid_cache_size

    def _dset(self, name: str) -> h5py.Dataset:
        """This process's handle of one dataset: looking a name up in the file costs ~0.4 ms, more than a read."""
        f = self._h5()
        cache = self.__dict__.setdefault("_dset_cache", {})
        if cache.get("_file") is not f:
            cache.clear()
            cache["_file"] = f
        if name not in cache:
            cache[name] = f[name]
            cache[name, "shape"] = cache[name].shape  # h5py's shape/ndim properties cost ~70 us a call
        return cache[name]

    def _shape(self, name: str) -> tuple[int, ...]:
        self._dset(name)
        return self.__dict__["_dset_cache"][name, "shape"]

    def _scalars(self, name: str) -> np.ndarray:
        """A small per-view field (S, V[, 3]) (angles, radius, offset) read whole once per process."""
        cache = self.__dict__.setdefault("_scalar_cache", {})
        if name not in cache:
            cache[name] = np.asarray(self._dset(name)[:], np.float32)
        return cache[name]

    def _scene_field(self, name: str, scene: int) -> np.ndarray:
        """A per-scene grid pooled to `voxel_size`, kept (float16 holds the block means exactly) for the next
        epoch: pooling 64^3 each time a scene is drawn cost more than the model's step at 32 px."""
        cache = self.__dict__.setdefault("_grid_cache", {})
        key = (name, scene)
        if key not in cache:
            grid = self._dset(name)[scene]
            if len(cache) >= self.grid_cache_size:
                cache.pop(next(iter(cache)))
            cache[key] = pool_voxels(grid, self.voxel_size or grid.shape[0]).astype(np.float16)
        return cache[key].astype(np.float32)

    def read_views(self, scene: int, view_indices: np.ndarray) -> dict[str, torch.Tensor]:
        """Chosen views of one scene with the requested fields (no batch dimension; see the class docstring)."""
        idx = np.asarray(view_indices, np.int64)

        def views_of(name: str) -> np.ndarray:
            dset = self._dset(name)
            if len(idx) * 4 >= self._shape(name)[1]:  # many views: one read of the row (one chunk), then pick
                return dset[scene][idx]
            # few views (ENR's pair, RenderNet's one): a plain read per view; h5py's list selection is ~20x
            # slower and a whole row of 50 normal maps is 25x more bytes than one
            return np.stack([dset[scene, int(v)] for v in idx])

        try:
            raw = views_of("images")
            out = {"images": torch.from_numpy(np.ascontiguousarray(to_unit_range(raw, self.factor).transpose(0, 3, 1, 2)))}
            for name in self.view_fields:
                if name == "mask" and self.mask_from_instance:
                    # rendered files carry instance ids (0 = nothing hit), not a coverage mask
                    out[name] = torch.from_numpy(_pool_views(name, (views_of("instance") > 0) * np.uint8(255),
                                                             self.factor))
                elif len(self._shape(name)) <= 3:  # (S, V) angles and radius, (S, V, 3) offsets
                    out[name] = torch.from_numpy(self._scalars(name)[scene][idx].copy())
                else:
                    out[name] = torch.from_numpy(_pool_views(name, views_of(name), self.factor))
            for name in self.scene_fields:
                out[name] = torch.from_numpy(self._scene_field(name, scene))
        except (OSError, KeyError) as exc:
            raise DatasetError(
                f"{self.path}: reading scene row {scene} failed ({exc}); the file is corrupt or truncated, "
                "re-run the consolidation step"
            ) from exc
        out["view_index"] = torch.from_numpy(idx)
        out["scene"] = torch.tensor(scene, dtype=torch.int64)
        return out

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        item = self.read_views(key.scene, self._view_order(key))
        item["noise_seed"] = torch.tensor(key.seed, dtype=torch.int64)
        return item

    def __getitems__(self, keys: list[ItemKey]) -> Batch:
        """The batch of `keys`, collated (item by item: each item reads one scene row of each field)."""
        return _collate([self[k] for k in keys])
