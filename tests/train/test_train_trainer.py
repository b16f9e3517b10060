"""Trainer: bit-exact resume, checkpoint contents, interrupt handling, NaN detection, run-folder safety."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from train import checkpoint as ckpt
from train.cli import main
from train.toydata import make_toy_dataset
from train.trainer import Trainer


def _losses(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_reproduces_the_uninterrupted_losses_exactly(toy_data: Path, tiny_gin: Path, tmp_path: Path):
    full, split = tmp_path / "full", tmp_path / "split"
    assert main(["fit", "-g", str(tiny_gin), "--data", str(toy_data), "--run", str(full), "-p", "fit.max_steps=8"]) == 0
    assert main(["fit", "-g", str(tiny_gin), "--data", str(toy_data), "--run", str(split), "-p", "fit.max_steps=4"]) == 0
    assert [p.name for p in ckpt.list_checkpoints(split)] == ["step_00000004.pt"]
    # resume without -g: the run's own operative config, with the new step limit
    assert main(["fit", "--data", str(toy_data), "--run", str(split), "--resume", "-p", "fit.max_steps=8"]) == 0
    a, b = _losses(full), _losses(split)
    assert [r["step"] for r in b] == list(range(1, 9))
    assert a == b  # every logged value, bit for bit
    wa = ckpt.load_checkpoint(ckpt.latest_checkpoint(full))["model"]
    wb = ckpt.load_checkpoint(ckpt.latest_checkpoint(split))["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_checkpoint_holds_everything_needed_to_resume(toy_data: Path, tiny_gin: Path, tmp_path: Path):
    run = tmp_path / "run"
    assert main(["fit", "-g", str(tiny_gin), "--data", str(toy_data), "--run", str(run), "-p", "fit.max_steps=5",
                 "-p", "fit.keep_checkpoints=1"]) == 0
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["step_00000005.pt"]  # at exit; older ones pruned
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(run))
    assert {"step", "model_name", "model_config", "model", "optimizer", "scheduler", "annealer", "rng", "sampler",
            "data", "config"} <= set(state)
    assert state["step"] == 5 and state["model_name"] == "gqn" and state["model_config"]["image_size"] == 16
    assert set(state["rng"]) >= {"torch", "numpy", "python"}
    assert state["annealer"]["pixel_sigma"] == pytest.approx(0.7)
    assert "fit.max_steps = 5" in state["config"]
    assert (run / "operative_config.gin").read_text().count("GQN.h_channels = 16") == 1
    assert any((run / "tensorboard").iterdir())
    # a second fit into the same folder without --resume is refused, naming the fix
    code = main(["fit", "-g", str(tiny_gin), "--data", str(toy_data), "--run", str(run), "-p", "fit.max_steps=5"])
    assert code == 2


def test_keyboard_interrupt_saves_a_checkpoint_and_resume_continues(
    toy_data: Path, tiny_gin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    run = tmp_path / "run"
    original = Trainer._train_iteration

    def interrupted(self, batch):
        if self.step == 3:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Trainer, "_train_iteration", interrupted)
    args = ["fit", "-g", str(tiny_gin), "--data", str(toy_data), "--run", str(run), "-p", "fit.max_steps=6",
            "-p", "fit.checkpoint_every=0"]
    assert main(args) == 130
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["step_00000003.pt"]
    monkeypatch.setattr(Trainer, "_train_iteration", original)
    assert main([*args, "--resume"]) == 0
    assert [r["step"] for r in _losses(run)] == [1, 2, 3, 4, 5, 6]


def test_non_finite_viewpoints_are_refused_at_load_naming_the_scene(tmp_path: Path, tiny_gin: Path,
                                                                     capsys: pytest.CaptureFixture):
    data = make_toy_dataset(tmp_path / "nan", num_train=4, num_val=0, num_test=0, num_views=4, size=16)
    with h5py.File(data / "scenes_train.h5", "a") as f:
        vp = f["viewpoints"][:]
        vp[2, :, 0] = np.nan
        f["viewpoints"][:] = vp
        scene = int(f["scene_index"][2]) if "scene_index" in f else 2
    code = main(["fit", "-g", str(tiny_gin), "--data", str(data), "--run", str(tmp_path / "run"),
                 "-p", "fit.max_steps=3", "-p", "SceneDataset.image_size=8", "-p", "GQN.image_size=8"])
    assert code == 2
    assert f"`viewpoints` of scene {scene} (row 2) is not finite" in capsys.readouterr().err


def test_constant_images_are_refused_at_load(tmp_path: Path, tiny_gin: Path, capsys: pytest.CaptureFixture):
    data = make_toy_dataset(tmp_path / "flat", num_train=4, num_val=0, num_test=0, num_views=4, size=16)
    with h5py.File(data / "scenes_train.h5", "a") as f:
        images = f["images"][:]
        images[1] = 0
        f["images"][:] = images
    code = main(["fit", "-g", str(tiny_gin), "--data", str(data), "--run", str(tmp_path / "run"),
                 "-p", "fit.max_steps=3", "-p", "SceneDataset.image_size=8", "-p", "GQN.image_size=8"])
    assert code == 2 and "is the single value 0" in capsys.readouterr().err


def test_non_finite_loss_stops_with_a_clear_message(tmp_path: Path, tiny_gin: Path, toy_data: Path,
                                                    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    from train.models import gqn

    monkeypatch.setattr(gqn, "gaussian_nll", lambda target, mean, sigma: (target - mean).sum((1, 2, 3)) * float("nan"))
    code = main(["fit", "-g", str(tiny_gin), "--data", str(toy_data), "--run", str(tmp_path / "run"),
                 "-p", "fit.max_steps=3"])
    assert code == 1
    err = capsys.readouterr().err
    assert "step 0: loss is not finite" in err and "lr_initial" in err and "no checkpoint was written yet" in err
    assert ckpt.list_checkpoints(tmp_path / "run") == []


def test_bf16_autocast_trains_on_cpu(toy_data: Path, tiny_gin: Path, tmp_path: Path):
    run = tmp_path / "bf16"
    assert main(["fit", "-g", str(tiny_gin), "--data", str(toy_data), "--run", str(run), "-p", "fit.max_steps=3",
                 "-p", "fit.precision='bf16'"]) == 0
    losses = _losses(run)
    assert len(losses) == 3 and all(np.isfinite(r["loss"]) for r in losses)
    # a bad precision name is refused, naming the option
    with pytest.raises(ValueError, match="fit.precision must be 'fp32' or 'bf16'"):
        from train.cli import parse_gin
        from train.trainer import fit

        parse_gin([tiny_gin], ["fit.max_steps=1", "fit.precision='fp16'"])
        fit(toy_data, tmp_path / "fp16")
    assert not (tmp_path / "fp16").exists()


def test_init_from_takes_weights_only_and_refuses_other_models(toy_data: Path, tiny_gin: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture):
    source, tuned = tmp_path / "source", tmp_path / "tuned"
    base = ["fit", "-g", str(tiny_gin), "--data", str(toy_data)]
    assert main([*base, "--run", str(source), "-p", "fit.max_steps=4"]) == 0
    src = ckpt.latest_checkpoint(source)
    # zero steps of fine-tuning: the saved weights are the source's, the step count and optimiser start afresh
    assert main([*base, "--run", str(tuned), "--init-from", str(src), "-p", "fit.max_steps=2"]) == 0
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tuned))
    assert state["step"] == 2 and [r["step"] for r in _losses(tuned)] == [1, 2]
    assert all(s["step"] == 2 for s in state["optimizer"]["state"].values())  # Adam's count restarted
    fresh = tmp_path / "fresh"
    assert main([*base, "--run", str(fresh), "-p", "fit.max_steps=2"]) == 0
    assert _losses(tuned)[0]["loss"] < _losses(fresh)[0]["loss"]  # it starts from the trained weights
    # another size of GQN is refused, naming the checkpoint and the mismatch
    code = main([*base, "--run", str(tmp_path / "bad"), "--init-from", str(src), "-p", "GQN.h_channels=8"])
    assert code == 2 and "do not fit this config's model" in capsys.readouterr().err
    assert main([*base, "--run", str(source), "--resume", "--init-from", str(src)]) == 2


def test_checkpoint_of_the_previous_layout_still_evaluates_or_is_refused_by_name(
    toy_data: Path, tiny_gin: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    run = tmp_path / "old"
    assert main(["fit", "-g", str(tiny_gin), "--data", str(toy_data), "--run", str(run), "-p", "fit.max_steps=2"]) == 0
    path = ckpt.latest_checkpoint(run)
    state = torch.load(path, weights_only=False)
    # exactly the keys and `data` fields the trainer wrote before model families existed
    assert set(state["data"]) == {"dir", "image_size", "min_context", "max_context", "num_views"}
    assert main(["evaluate", "--run", str(run), "--split", "val"]) == 0
    state["model_name"] = "gqn_v0"
    torch.save(state, path)
    assert main(["evaluate", "--run", str(run), "--split", "val"]) == 2
    assert "holds a 'gqn_v0' model" in capsys.readouterr().err
