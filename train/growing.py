"""Training on a dataset that is still rendering (`fit.grow_every`, docs/distributed.md "Training while rendering").

While `distributed_render.py` renders, its driver keeps `scenes_{split}.h5` as a virtual file over the shards
finished so far (each shard's rows are published atomically and listed in the manifest before the virtual file
maps them), and replaces the file by an atomic rename whenever more shards are listed. This module reads only
that file, through h5py:

- :class:`GrowingScenes` wraps the family's dataset; before each batch, in whichever process reads it (DataLoader
  workers included), it looks whether the file on disk was replaced (inode, size, mtime) and if so reopens it and
  takes its new scene count. A file is only ever replaced by a longer one, and a reader holding the old file keeps
  reading the old one, so no read ever sees a shard that is not complete.
- :class:`GrowingBatchSampler` draws batches as :class:`train.data.SceneBatchSampler` does, over the scenes known
  at the start of each epoch; at the end of an epoch, and every `every` steps within one, it looks for more
  scenes and, when there are, starts a new epoch over all of them at that step.

A scene's split is fixed by its index (or its declared split), so a scene never moves between split files as the
dataset grows. Batches are a function of (seed, step) and of the steps at which the dataset was seen to grow,
which depend on the render's timing: a run over a growing dataset is reproducible only once it stopped growing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train.data import SceneBatchSampler, SceneDataset, inspect_scene_file

logger = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


class GrowingScenes(torch.utils.data.Dataset):
    """A family's scene dataset that follows its file as the render farm replaces it with longer ones.

    Args:
        dataset: a :class:`train.data.SceneDataset` (or subclass) over `scenes_{split}.h5`.
    """

    def __init__(self, dataset: SceneDataset) -> None:
        self.base = dataset
        self._stamp = _stamp(dataset.path)

    def __len__(self) -> int:
        return len(self.base)

    def refresh(self) -> int:
        """Reopens the file when it was replaced; returns the scenes it holds now."""
        stamp = _stamp(self.base.path)
        if stamp != self._stamp:
            before = len(self.base)
            self.base.close()
            # what a fresh process gets (the dataset's pickling contract): no handle, no caches
            self.base.__dict__ = self.base.__getstate__()
            self.base.info = inspect_scene_file(self.base.path)
            self._stamp = stamp
            if len(self.base) != before:
                logger.info("%s grew from %d to %d scenes", self.base.path, before, len(self.base))
        return len(self.base)

    def __getitem__(self, key: Any) -> Any:
        self.refresh()
        return self.base[key]

    def __getitems__(self, keys: list[Any]) -> Any:
        self.refresh()
        return self.base.__getitems__(keys)


class GrowingBatchSampler(SceneBatchSampler):
    """Batches over a growing dataset: epochs over the scenes known when they start (see the module docstring).

    Args:
        source: the growing dataset (only the training process's copy is refreshed here).
        every: steps between looks for more scenes within an epoch (>= 1).
        **kwargs: as for :class:`train.data.SceneBatchSampler` (num_scenes is taken from `source`).
    """

    def __init__(self, source: GrowingScenes, every: int, **kwargs: Any) -> None:
        if every < 1:
            raise ValueError(f"fit.grow_every must be >= 1 step to follow a growing dataset, got {every}")
        super().__init__(num_scenes=len(source), **kwargs)
        self.source, self.every = source, every
        self.epoch, self.epoch_start, self.last_look = -1, self.start_step, self.start_step
        self.sizes: list[tuple[int, int]] = []  # (step, scenes) at the start of each epoch

    def _new_epoch(self, step: int) -> None:
        self.epoch += 1
        self.epoch_start = step
        self.num_scenes = self.source.refresh()
        self.steps_per_epoch = max(1, self.num_scenes // self.global_batch)
        # the base sampler's epoch permutation (tiled when there are fewer scenes than a batch); epochs of a growing
        # dataset are counted here, so each has its own
        self._perm = self._permutation(0, self.epoch, self.num_scenes, self.global_batch)
        self.sizes.append((step, self.num_scenes))

    def _global_keys(self, step: int) -> list[tuple[int, int]]:
        """(source 0, scene) of every position of the global batch of `step` (no mixing: fit refuses it)."""
        return [(0, int(s)) for s in self._growing_scenes(step)]

    def _growing_scenes(self, step: int) -> np.ndarray:
        if self.epoch < 0 or step - self.epoch_start >= self.steps_per_epoch:
            self._new_epoch(step)
        elif step - self.last_look >= self.every:
            self.last_look = step
            if self.source.refresh() > self.num_scenes:
                self._new_epoch(step)
        pos = step - self.epoch_start
        if self.num_scenes < self.global_batch:
            return self._perm[: self.global_batch]
        return self._perm[pos * self.global_batch : (pos + 1) * self.global_batch]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "grow_every": self.every, "sizes": self.sizes}


def follow(dataset: SceneDataset, sampler: SceneBatchSampler, every: int) -> tuple[GrowingBatchSampler, GrowingScenes]:
    """The sampler and dataset to hand the DataLoader for a dataset still rendering (the trainer's hook).

    Args:
        dataset: the family's dataset over `scenes_train.h5`.
        sampler: the sampler the trainer would use; its settings are kept.
        every: steps between looks for more scenes (`fit.grow_every`).
    """
    source = GrowingScenes(dataset)
    grown = GrowingBatchSampler(
        source, every, num_views=sampler.num_views, global_batch=sampler.global_batch,
        min_context=sampler.min_context, max_context=sampler.max_context, seed=sampler.seed,
        start_step=sampler.start_step, max_steps=sampler.max_steps, rank=sampler.rank,
        world_size=sampler.world_size)
    return grown, source
