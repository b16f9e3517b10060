"""Training while a dataset renders (train/growing.py, fit.grow_every): a fit started after the first shards sees
more scenes as the farm lists more, only ever whole listed shards, and a scene keeps its split as the set grows.

The farm side is played by the functions the render driver calls (pipeline.layouts.farm_rows, .virtual) on raw
samples of the test fixture, paced by the fit's own progress, so the growth lands mid-run whatever the machine's
speed; tests/pipeline/test_farm*.py run the real driver."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import h5py
import pytest

from pipeline.layouts.farm_rows import write_shard_rows
from pipeline.layouts.virtual import publish_virtual
from tests.fixtures_raw import make_raw_dataset
from train import checkpoint as ckpt
from train.cli import main
from train.data import SceneDataset
from train.growing import GrowingBatchSampler, GrowingScenes

SHARD = 4
SHARDS = 5


def _steps(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


class Farm(threading.Thread):
    """Publishes shard k (and the virtual files over shards 0..k) once the fit has logged 8 k steps; between two
    shards a killed worker's complete-but-unpublished rows file of the next shard lies in rows/."""

    def __init__(self, dataset: Path, run: Path) -> None:
        super().__init__(daemon=True)
        self.dataset, self.run_dir, self.rows, self.error = dataset, run, [], None

    def publish(self, shard: int) -> None:
        indices = list(range(shard * SHARD, (shard + 1) * SHARD))
        self.rows.append(write_shard_rows(self.dataset, shard, indices))
        publish_virtual(self.dataset, self.rows)
        if shard + 1 < SHARDS:
            try:
                write_shard_rows(self.dataset, shard + 1, [i + SHARD for i in indices], before_publish=_die)
            except KeyboardInterrupt:
                pass

    def run(self) -> None:
        try:
            for shard in range(1, SHARDS):
                deadline = time.monotonic() + 120
                while _steps(self.run_dir) < 8 * shard and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.publish(shard)
        except Exception as err:  # reported by the test
            self.error = err


def _die(tmp: Path) -> None:
    tmp.with_name(tmp.name + ".half").write_bytes(tmp.read_bytes()[:1000])  # what a SIGKILL mid-write leaves
    raise KeyboardInterrupt


@pytest.mark.parametrize("workers", [0, 1])
def test_fit_started_after_the_first_shard_sees_more_scenes_later(tmp_path: Path, tiny_gin: Path, workers: int):
    dataset = make_raw_dataset(tmp_path / "data", "ds", SHARD * SHARDS, n_views=4, resolution=(32, 32))
    farm = Farm(dataset, tmp_path / "run")
    farm.publish(0)
    first = SceneDataset(dataset / "scenes_train.h5", image_size=16)
    assert len(first) == 4  # samples 0-3 are all train
    farm.start()
    code = main(["fit", "-g", str(tiny_gin), "--data", str(dataset), "--run", str(tmp_path / "run"),
                 "-p", "fit.max_steps=48", "-p", "fit.grow_every=2", "-p", f"fit.num_workers={workers}"])
    farm.join(timeout=60)
    assert code == 0 and farm.error is None and not farm.is_alive()
    sizes = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "run"))["sampler"]["sizes"]
    # train scenes of whole shards only: 4, 8, 12 (sample 10 is val, 11 test), 16, 20 (22, 23: val, test)
    whole = {4, 8, 10, 14, 18}
    seen = [n for _, n in sizes]
    assert seen[0] == 4 and seen[-1] > 10 and set(seen) <= whole and seen == sorted(seen)
    with h5py.File(dataset / "scenes_train.h5", "r") as fh:  # every train scene by its index rule, in order
        assert fh["scene_index"][:].tolist() == [i for i in range(20) if i % 12 < 10]
    with h5py.File(dataset / "scenes_val.h5", "r") as fh:
        assert fh["scene_index"][:].tolist() == [10]
    assert sorted(p.name for p in (dataset / "rows").iterdir() if not p.name.startswith(".")) == [
        f"shard-{s:05d}.h5" for s in range(SHARDS)]


def test_a_reader_keeps_its_file_while_the_farm_replaces_it(tmp_path: Path):
    dataset = make_raw_dataset(tmp_path / "data", "ds", 8, n_views=3, resolution=(16, 16))
    rows = [write_shard_rows(dataset, 0, range(4))]
    publish_virtual(dataset, rows)
    source = GrowingScenes(SceneDataset(dataset / "scenes_train.h5", image_size=16))
    old = source.base.read_scene(3)
    assert len(source) == 4 and source.refresh() == 4
    rows.append(write_shard_rows(dataset, 1, range(4, 8)))
    publish_virtual(dataset, rows)
    assert len(source) == 4  # nothing looked yet
    assert source.refresh() == 8
    assert all((a == b).all() for a, b in zip(source.base.read_scene(3), old, strict=True))
    sampler = GrowingBatchSampler(source, every=1, num_views=3, global_batch=2, min_context=1, max_context=2, seed=0)
    assert max(k.scene for step in range(8) for k in sampler.batch(step)) < 8
    with pytest.raises(ValueError, match="grow_every must be >= 1"):
        GrowingBatchSampler(source, every=0, num_views=3, global_batch=2, min_context=1, max_context=2, seed=0)
    assert json.loads((dataset / "consolidation.json").read_text())["shards"] == 2
