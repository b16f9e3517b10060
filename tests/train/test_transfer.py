"""Mixing a second dataset into every batch (`fit --mix DATASET --mix-ratio R`): the share, determinism, DDP
ranks, the batches' contents and the command line's refusals. The transfer itself (rendered rooms -> real
photographs) is tested in tests/pipeline/test_captures_transfer.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import gin
import numpy as np
import pytest
import torch

import paths
from train import checkpoint as ckpt
from train.cli import main
from train.data import ItemKey, MixedDataset, SceneBatchSampler, SceneDataset
from train.toydata import make_scene_file, make_toy_dataset


def test_mixed_batches_hold_the_share_and_are_a_function_of_step() -> None:
    sampler = SceneBatchSampler(10, 5, 8, 1, 3, seed=3, max_steps=9, mix_scenes=6, mix_items=2)
    batches = list(sampler)
    for batch in batches:
        assert sum(k.source == 1 for k in batch) == 2
        assert all(0 <= k.scene < (6 if k.source else 10) for k in batch)
    positions = {tuple(i for i, k in enumerate(b) if k.source) for b in batches}
    assert len(positions) > 1  # the mixed positions move from step to step (DDP ranks all get some)
    # an epoch is 10 // 6 = 1 step of the main data; within a step scenes of each source are distinct
    assert all(len({k.scene for k in b if k.source == 0}) == 6 for b in batches)
    resumed = list(SceneBatchSampler(10, 5, 8, 1, 3, seed=3, start_step=5, max_steps=9, mix_scenes=6, mix_items=2))
    assert resumed == batches[5:]
    ranks = [list(SceneBatchSampler(10, 5, 8, 1, 3, seed=3, max_steps=9, rank=r, world_size=2, mix_scenes=6,
                                    mix_items=2)) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks, strict=True)] == batches
    # no mixing: the batches of a run without fit.mix_data, whatever mix_scenes says
    plain = list(SceneBatchSampler(10, 5, 8, 1, 3, seed=3, max_steps=9))
    assert list(SceneBatchSampler(10, 5, 8, 1, 3, seed=3, max_steps=9, mix_scenes=6, mix_items=0)) == plain
    assert all(k.source == 0 for b in plain for k in b)
    with pytest.raises(ValueError, match="1 <= mixed items <= batch - 1"):
        SceneBatchSampler(10, 5, 8, 1, 3, seed=3, mix_scenes=6, mix_items=8)


def test_mixed_dataset_reads_each_source_in_key_order(tmp_path: Path) -> None:
    main_ds = SceneDataset(make_scene_file(tmp_path / "a" / "scenes_train.h5", 4, 5, 16, seed=1), image_size=16)
    other = SceneDataset(make_scene_file(tmp_path / "b" / "scenes_train.h5", 3, 4, 32, seed=2), image_size=16)
    mixed = MixedDataset(main_ds, other)
    keys = [ItemKey(2, 2, 11), ItemKey(0, 2, 12, source=1), ItemKey(3, 2, 13), ItemKey(2, 2, 14, source=1)]
    batch = mixed.__getitems__(keys)
    for i, key in enumerate(keys):
        item = (other if key.source else main_ds)[key]
        for name, value in item.items():
            torch.testing.assert_close(batch[name][i], value, rtol=0, atol=0)
    assert len(mixed) == 4
    with pytest.raises(ValueError, match="same SceneDataset.image_size"):
        MixedDataset(main_ds, SceneDataset(tmp_path / "b" / "scenes_train.h5", image_size=32))


@pytest.fixture()
def two_sets(tmp_path: Path) -> tuple[Path, Path]:
    real = make_toy_dataset(tmp_path / "real", num_train=6, num_val=0, num_test=2, num_views=4, size=16, seed=1)
    synthetic = make_toy_dataset(tmp_path / "synthetic", num_train=8, num_val=0, num_test=0, num_views=6, size=32,
                                 seed=2)
    return real, synthetic


def test_fit_mix_records_itself_and_resumes(two_sets: tuple[Path, Path], tiny_gin: Path, tmp_path: Path) -> None:
    real, synthetic = two_sets
    run = tmp_path / "run"
    base = ["fit", "-g", str(tiny_gin), "--data", str(real), "--run", str(run)]
    assert main([*base, "--mix", str(synthetic), "--mix-ratio", "0.5", "-p", "fit.max_steps=4"]) == 0
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(run))
    assert state["data"]["mix"] == {"dir": str(synthetic.resolve()), "ratio": 0.5, "items": 2}
    assert state["sampler"]["mix_items"] == 2 and state["sampler"]["mix_scenes"] == 8
    assert state["data"]["max_context"] == 3  # capped by the real scenes' 4 views (the synthetic have 6)
    assert "fit.mix_data" in (run / "operative_config.gin").read_text()
    # --resume without -g re-reads the operative config: still mixing, same batches as one uninterrupted run
    assert main(["fit", "--data", str(real), "--run", str(run), "--resume", "-p", "fit.max_steps=6"]) == 0
    gin.clear_config()
    straight = tmp_path / "straight"
    assert main([*base[:-1], str(straight), "--mix", str(synthetic), "--mix-ratio", "0.5",
                 "-p", "fit.max_steps=6"]) == 0
    resumed = ckpt.load_checkpoint(ckpt.latest_checkpoint(run))
    assert resumed["step"] == 6 and resumed["data"]["mix"]["items"] == 2
    one = ckpt.load_checkpoint(ckpt.latest_checkpoint(straight))["model"]
    for name, value in one.items():
        torch.testing.assert_close(resumed["model"][name], value)


@pytest.mark.parametrize("extra, words", [
    (["--mix-ratio", "0.5"], "--mix-ratio needs --mix"),
    (["--mix", "SYN", "--mix-ratio", "1.5"], "fit.mix_ratio = 1.5 must lie strictly between 0 and 1"),
    (["--mix", "SYN", "--mix-ratio", "0.01"], "gives 0 mixed items a batch"),
    (["--mix", "REAL"], "is the training data itself"),
    (["--mix", "NOWHERE"], "--data NOWHERE: no such folder"),
    (["--mix", "ODD"], "ODD/scenes_train.h5: stored images are 24 px, not a multiple of image_size=16"),
])
def test_bad_mixing_is_refused_naming_the_fix(two_sets: tuple[Path, Path], tiny_gin: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str], extra: list[str],
                                              words: str) -> None:
    real, synthetic = two_sets
    odd = make_toy_dataset(tmp_path / "odd", num_train=2, num_val=0, num_test=0, num_views=4, size=24)
    names = {"SYN": str(synthetic), "REAL": str(real), "NOWHERE": str(tmp_path / "nowhere"), "ODD": str(odd)}
    extra = [names.get(e, e) for e in extra]
    for name, value in names.items():
        words = words.replace(name, value)
    run = tmp_path / "run"
    code = main(["fit", "-g", str(tiny_gin), "--data", str(real), "--run", str(run), "-p", "fit.max_steps=1", *extra])
    assert code == 2
    assert words in capsys.readouterr().err
    assert not ckpt.list_checkpoints(run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_with_mixing_equals_one_process(two_sets: tuple[Path, Path], tiny_gin: Path,
                                                        tmp_path: Path) -> None:
    real, synthetic = two_sets
    args = ["fit", "-g", str(tiny_gin), "--data", str(real), "--mix", str(synthetic), "--mix-ratio", "0.25",
            "-p", "fit.max_steps=4", "-p", "fit.batch_size=4"]
    single, double = tmp_path / "single", tmp_path / "ddp"
    assert main([*args, "--run", str(single)]) == 0
    env = {**os.environ, "PYTHONPATH": str(paths.REPO_DIR), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "train", *args, "--run-dir", str(double)]
    proc = subprocess.run(cmd, cwd=paths.REPO_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = ([json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (single, double))
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b, strict=True):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5), ra["step"]
    wa = ckpt.load_checkpoint(ckpt.latest_checkpoint(single))["model"]
    wb = ckpt.load_checkpoint(ckpt.latest_checkpoint(double))["model"]
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4
    assert np.isfinite([r["loss"] for r in a]).all()



@pytest.mark.parametrize("model", ["enr", "rendernet"])
def test_posed_view_models_fit_with_mixing(model: str, tmp_path: Path) -> None:
    """ENR pairs and RenderNet views mix like GQN scenes: the mixed items carry the same fields (voxels, angles,
    light) from the second dataset, the run records the share, and the loss stays finite."""
    from train.toydata import make_object_dataset

    from .conftest import TINY_ENR_GIN, TINY_RENDERNET_GIN

    kw = {"num_val": 0, "num_test": 0, "num_views": 8, "size": 16, "light_per_view": True, "voxel_size": 16,
          "fov_deg": 15.0}
    main_set = make_object_dataset(tmp_path / "main", num_train=3, seed=1, **kw)
    mixed_set = make_object_dataset(tmp_path / "mixed", num_train=4, seed=2, **kw)
    gin_file = tmp_path / "tiny.gin"
    gin_file.write_text(TINY_ENR_GIN if model == "enr" else TINY_RENDERNET_GIN)
    run = tmp_path / "run"
    assert main(["fit", "-g", str(gin_file), "--data", str(main_set), "--run", str(run), "--mix", str(mixed_set),
                 "--mix-ratio", "0.25", "-p", "fit.max_steps = 3"]) == 0
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(run))
    assert state["data"]["mix"]["items"] == 2 and state["sampler"]["mix_scenes"] == 4  # 0.25 of batch 8
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 3 and all(np.isfinite(h["loss"]) for h in history)
