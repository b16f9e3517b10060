"""The CLI end to end (fit, evaluate, render), evaluate's numbers checked independently, gin configs parse."""

from __future__ import annotations

import json
from pathlib import Path

import gin
import h5py
import numpy as np
import pytest
from PIL import Image

import paths
from train.cli import main, parse_gin
from train.models import build_model


def test_fit_evaluate_render_end_to_end(toy_data: Path, tiny_gin: Path, tmp_path: Path):
    run = tmp_path / "run"
    assert main(["fit", "-g", str(tiny_gin), "--data", str(toy_data), "--run", str(run),
                 "-p", "fit.max_steps=6", "-p", "fit.image_every=3"]) == 0
    assert (run / "operative_config.gin").is_file()

    # evaluate (data folder taken from the checkpoint), with predictions saved
    assert main(["evaluate", "--run", str(run), "--split", "val", "--save-predictions"]) == 0
    result = json.loads((run / "eval_val.json").read_text())
    assert result["num_scenes"] == 4 and result["headline"] == "prior_mean"
    assert set(result["metrics"]) == {"prior_mean", "posterior", "prior_sample", "prior_samples"}
    assert set(result["baselines"]) == {"mean_train_image", "nearest_context_view"}
    lik = result["likelihood"]
    assert lik["nll"] >= lik["nll_floor"] == pytest.approx(3 * 16 * 16 * 0.5 * np.log(2 * np.pi * 0.49))
    assert lik["elbo"] == pytest.approx(lik["nll"] + lik["kl"], rel=1e-5)

    # the PSNR in the JSON equals an independent numpy computation on the same predictions
    saved = np.load(run / "eval_val_predictions.npz")
    pred, target = saved["prior_mean"].astype(np.float64), saved["target"].astype(np.float64)
    assert pred.shape == target.shape == (4, 16, 16, 3)
    with h5py.File(toy_data / "scenes_val.h5") as f:  # targets really are the file's views (2x2 block means)
        rows = f["images"][:].astype(np.float64) / 255
    small = rows.reshape(4, 5, 16, 2, 16, 2, 3).mean(axis=(3, 5))
    for i, scene in enumerate(saved["scene"]):
        assert min(np.abs(small[scene] - target[i]).max(axis=(1, 2, 3))) < 1e-6
    own = np.mean([10 * np.log10(1 / np.mean((p - t) ** 2)) for p, t in zip(pred, target, strict=True)])
    assert result["metrics"]["prior_mean"]["psnr"] == pytest.approx(own, abs=1e-9)
    # the picture beside it: one 64 px row per array (truth, 3 modes, 2 baselines), its first column the truth
    with Image.open(run / "eval_val_predictions.png") as sheet:
        assert sheet.height == 6 * (64 + 4) + 4
        first = np.asarray(sheet.convert("RGB"))[4:68, 114:178].astype(np.float64) / 255
    assert np.abs(first[::4, ::4] - target[0]).max() < 1 / 255 + 1e-9
    own_mse = np.mean((pred - target) ** 2)
    assert result["metrics"]["prior_mean"]["mse"] == pytest.approx(own_mse, rel=1e-9)

    # render: PNG grid and GIF along the ring
    assert main(["render", "--run", str(run), "--data", str(toy_data), "--scene", "1", "--frames", "6"]) == 0
    png, gif = run / "render" / "scene_0001.png", run / "render" / "scene_0001.gif"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 4 * 96 and im.height == 4 * (96 + 4) + 4
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 6
    assert not list((run / "render").glob(".*tmp*"))


def test_typo_in_binding_fails_naming_it(toy_data: Path, tiny_gin: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture):
    code = main(["fit", "-g", str(tiny_gin), "--data", str(toy_data), "--run", str(tmp_path / "r"),
                 "-p", "fit.max_stepz=3"])
    assert code == 2
    assert "max_stepz" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main(["fit", "--data", str(toy_data), "--run", str(tmp_path / "r"), "-g", "nope.gin"]) == 2
    assert "nope.gin" in capsys.readouterr().err


def test_bad_option_value_fails_in_one_line(toy_data: Path, tiny_gin: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture):
    code = main(["fit", "-g", str(tiny_gin), "--data", str(toy_data), "--run", str(tmp_path / "r"),
                 "-p", "GQN.representation='towr'"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown GQN representation 'towr'" in err and "Traceback" not in err


def test_missing_dataset_fails_naming_the_file(tmp_path: Path, tiny_gin: Path, capsys: pytest.CaptureFixture):
    (tmp_path / "empty").mkdir()
    assert main(["fit", "-g", str(tiny_gin), "--data", str(tmp_path / "empty"), "--run", str(tmp_path / "r")]) == 2
    assert f"{tmp_path / 'empty' / 'scenes_train.h5'}: no such file" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path / "nothing")]) == 2
    assert "no checkpoints" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["fit", "evaluate", "render"])
def test_help_describes_every_command(command: str, capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--run" in capsys.readouterr().out


GIN_FILES = sorted((Path(paths.REPO_DIR) / "config" / "train").glob("*.gin"))


@pytest.mark.parametrize("gin_file", GIN_FILES, ids=[p.name for p in GIN_FILES])
def test_every_train_gin_file_parses_and_builds(gin_file: Path):
    """skip_unknown=False: a renamed configurable or parameter makes this fail."""
    parse_gin([gin_file], [])
    model = build_model(gin.query_parameter("fit.model_name"))
    assert model.config["image_size"] == gin.query_parameter("%IMAGE_SIZE")
    if gin_file.name.endswith("_cpu.gin"):
        assert sum(p.numel() for p in model.parameters()) < 500_000


def test_gin_file_list_is_not_empty():
    assert {f"{m}_{size}.gin" for m in ("gqn", "enr", "rendernet") for size in ("cpu", "paper")} <= {
        p.name for p in GIN_FILES}


@pytest.mark.parametrize("family", ["enr", "rendernet"])
def test_each_family_trains_with_pictures_and_evaluates(family: str, enr_data: Path, object_data: Path,
                                                        tiny_enr_gin: Path, tiny_rendernet_gin: Path, tmp_path: Path):
    data, gin_file = (enr_data, tiny_enr_gin) if family == "enr" else (object_data, tiny_rendernet_gin)
    run = tmp_path / family
    assert main(["fit", "-g", str(gin_file), "--data", str(data), "--run", str(run), "-p", "fit.max_steps=2",
                 "-p", "fit.image_every=1"]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    assert len(tags["images"]) == 1 and len(events.Images(tags["images"][0])) == 2
    assert {"enr": "train/psnr_swapped", "rendernet": "train/psnr_shaded"}[family] in tags["scalars"]
    assert main(["evaluate", "--run", str(run), "--split", "val", "-p", "evaluate.max_scenes=1"]) == 0
    assert json.loads((run / "eval_val.json").read_text())["model"] == family
