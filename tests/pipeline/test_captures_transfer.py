"""Transfer from synthetic to real: GQN pretrained on rooms rendered by the real render core, fine-tuned on real
photographs (Debian opencv-doc's chessboard stereo set, each photo posed by solvePnP and imported as a capture).

The rendered rooms (consolidated) and the imported capture are files of one schema, so the model pretrained on
one fine-tunes on the other with no conversion. On the held-out real scenes, the fine-tuned model's prior-mean
MSE is below the pretrained checkpoint's (before fine-tuning) and below a model trained on the real scenes alone
for the same steps, batches and seed; mixing rendered scenes into the fine-tuning batches (`fit --mix`) runs
too.

Measured when this test was written (prior-mean MSE on the 4 held-out pairs, images in [0, 1]; 300 steps on 24
rendered rooms, then 120 steps of batch 8 on the 9 real training pairs): before fine-tuning 0.0453, fine-tuned
0.0326, fine-tuned with a quarter of each batch rendered rooms 0.0345, real pairs alone from scratch 0.0371;
baselines: mean training image 0.0355, nearest context view 0.0648. The whole module takes ~35 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.captures.capture import import_plan, plan_capture
from pipeline.layouts.consolidate import consolidate
from tests.pipeline.captures_helpers import board_pose, calibrate, find_corners, opencv_doc_data
from tests.train.conftest import TINY_GIN
from train.cli import main as train_main

REPO = Path(__file__).resolve().parents[2]
SIZE = 16
ROOM_VIEWS = 5
TEST_PAIRS = 4
#: The tiny trainer tests' GQN (16 px, L = 2) at batch 8, logging every 10 steps, no checkpoints between (later
#: bindings win).
GIN = TINY_GIN + """
fit.batch_size = 8
fit.log_every = 10
fit.checkpoint_every = 0
fit.seed = 0
"""
PRETRAIN_STEPS = 300
TUNE_STEPS = 120
#: Board frame (OpenCV: x, y on the board, z into it) -> a world with z up in which the board stands like a
#: wall facing -x: the capture's cameras then look level along +x, as the rooms' cameras look level.
BOARD_TO_WORLD = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def render_rooms(data_dir: Path) -> Path:
    """24 GQN rooms (ring camera, procedural textures: no assets) of ROOM_VIEWS views at SIZE px, consolidated."""
    env = {**os.environ, "DATA_DIR": str(data_dir)}
    cmd = [sys.executable, "render.py", "-d", "rooms", "--count", "24", "-g", "gqn_rooms_ring_camera",
           "-p", f"rendering.resolution = {SIZE}", "-p", "rendering.render_samples = 4",
           "-p", "rendering.denoise = 'none'", "-p", f"gqn_rooms.num_views = {ROOM_VIEWS}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    consolidate(data_dir / "rooms", jobs=1)
    return data_dir / "rooms"


def layout_chessboard(root: Path) -> Path:
    """The chessboard stereo set as a capture: scene `pairNN` holds leftNN.jpg and rightNN.jpg, one moment seen by
    both cameras, each photo posed by solvePnP (its camera's own calibration) in the board's frame; the last
    TEST_PAIRS pairs say `"split": "test"` in their poses.json, the others `"train"`."""
    data = opencv_doc_data()
    posed: dict[str, dict] = {}
    for side in ("left", "right"):
        photos = sorted(data.glob(f"{side}[0-9][0-9].jpg"))
        corners = [find_corners(p) for p in photos]
        K, dist, _ = calibrate(corners, (640, 480))  # type: ignore[arg-type]
        K_ours = K.copy()
        K_ours[:2, 2] += 0.5  # OpenCV puts pixel centres at integers, docs/formats.md at i + 0.5
        for photo, c in zip(photos, corners, strict=True):
            c2w, _ = board_pose(c, K, dist)
            posed[photo.name] = {"path": photo, "c2w": BOARD_TO_WORLD @ c2w, "K": K_ours}
    numbers = sorted(name[4:6] for name in posed if name.startswith("left"))
    for i, nn in enumerate(numbers):
        folder = root / f"pair{nn}"
        folder.mkdir(parents=True)
        views = []
        for name in (f"left{nn}.jpg", f"right{nn}.jpg"):
            shutil.copy(posed[name]["path"], folder / name)
            views.append({"file": name, "cam_to_world": posed[name]["c2w"].tolist(), "K": posed[name]["K"].tolist()})
        split = "test" if i >= len(numbers) - TEST_PAIRS else "train"
        (folder / "poses.json").write_text(json.dumps({"split": split, "views": views}))
    return root


def _schema(path: Path) -> dict[str, tuple[str, int, tuple[int, ...]]]:
    """Per dataset: dtype, rank and the shape after (scenes, views)."""
    with h5py.File(path, "r") as f:
        return {k: (f[k].dtype.str, f[k].ndim, f[k].shape[2:]) for k in f}


def _fit(data: Path, run: Path, gin: Path, steps: int, *extra: str) -> None:
    assert train_main(["fit", "-g", str(gin), "--data", str(data), "--run", str(run), "--threads", "1",
                       "-p", f"fit.max_steps = {steps}", *extra]) == 0


def _evaluate(run: Path, data: Path, *extra: str) -> dict:
    assert train_main(["evaluate", "--run", str(run), "--data", str(data), "--split", "test", "--threads", "1",
                       "-p", "evaluate.num_samples = 0", *extra]) == 0
    return json.loads((run / "eval_test.json").read_text())


def run_transfer(root: Path) -> dict:
    """Renders, imports, pretrains, fine-tunes (plain and mixed), trains real-only and evaluates, under `root`.

    Returns:
        {"rooms", "real", "runs": folders, "seconds": {stage: wall s}, and per run its eval_test.json}.
    """
    seconds = {}
    t = time.perf_counter()
    rooms = render_rooms(root / "data")
    seconds["render and consolidate 24 rooms"] = time.perf_counter() - t
    t = time.perf_counter()
    real = root / "data" / "chessboard"
    rows = import_plan(plan_capture(layout_chessboard(root / "captures"), size=SIZE), real)
    assert rows == {"train": 13 - TEST_PAIRS, "val": 0, "test": TEST_PAIRS}
    seconds["pose (solvePnP) and import 13 photo pairs"] = time.perf_counter() - t
    gin = root / "tiny.gin"
    gin.write_text(GIN)
    runs = root / "runs"
    pretrained = runs / "synthetic" / "checkpoints" / f"step_{PRETRAIN_STEPS:08d}.pt"
    plan = {"synthetic": (rooms, PRETRAIN_STEPS, ()),
            "tuned": (real, TUNE_STEPS, ("--init-from", str(pretrained))),
            "mixed": (real, TUNE_STEPS, ("--init-from", str(pretrained), "--mix", str(rooms), "--mix-ratio", "0.25")),
            "real_only": (real, TUNE_STEPS, ())}
    for name, (data, steps, extra) in plan.items():
        t = time.perf_counter()
        _fit(data, runs / name, gin, steps, *extra)
        seconds[f"fit {name} ({steps} steps)"] = time.perf_counter() - t
    return {"rooms": rooms, "real": real, "runs": runs, "seconds": seconds,
            **{name: _evaluate(runs / name, real) for name in ("tuned", "mixed", "real_only")}}


@pytest.fixture(scope="module")
def transfer(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_transfer(tmp_path_factory.mktemp("transfer"))


def test_rendered_twin_and_capture_share_one_schema(transfer: dict) -> None:
    rendered = _schema(transfer["rooms"] / "scenes_train.h5")
    captured = _schema(transfer["real"] / "scenes_train.h5")
    for name in ("images", "viewpoints", "viewpoints_xyzyp", "K", "cam_to_world", "scene_index"):
        assert captured[name] == rendered[name], name  # same dtype and per-view shape: no conversion
    assert set(captured) <= set(rendered)  # the render adds its label passes (depth, instance, ...)


def test_fine_tuning_from_synthetic_beats_before_and_real_only(transfer: dict) -> None:
    tuned, mixed, alone = transfer["tuned"], transfer["mixed"], transfer["real_only"]
    after = tuned["metrics"]["prior_mean"]["mse"]
    before = tuned["before_fine_tuning"]["metrics"]["prior_mean"]["mse"]
    scratch = alone["metrics"]["prior_mean"]["mse"]
    figures = {"before": before, "after": after, "mixed": mixed["metrics"]["prior_mean"]["mse"], "real_only": scratch,
               "nearest_context_view": tuned["baselines"]["nearest_context_view"]["mse"],
               "mean_train_image": tuned["baselines"]["mean_train_image"]["mse"]}
    print(json.dumps(figures))
    assert tuned["num_scenes"] == TEST_PAIRS and "before_fine_tuning" not in alone
    assert after < before, f"fine-tuning did not lower the held-out real MSE of the pretrained model: {figures}"
    assert after < scratch, f"fine-tuned from synthetic is no better than real scenes alone: {figures}"
    assert figures["mixed"] < before, f"fine-tuning with rendered rooms mixed in did not help: {figures}"
    assert mixed["before_fine_tuning"]["metrics"] == tuned["before_fine_tuning"]["metrics"]  # same items, same seed


def test_before_fine_tuning_is_the_pretrained_checkpoint_on_the_real_scenes(transfer: dict) -> None:
    """`evaluate` of the fine-tuned run reports what the pretrained run itself scores on the real held-out pairs."""
    direct = _evaluate(transfer["runs"] / "synthetic", transfer["real"])
    before = transfer["tuned"]["before_fine_tuning"]
    assert before["step"] == PRETRAIN_STEPS and before["checkpoint"] == direct["checkpoint"]
    for mode in ("prior_mean", "posterior", "prior_sample"):
        assert before["metrics"][mode] == pytest.approx(direct["metrics"][mode], rel=1e-6), mode


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.pipeline.test_captures_transfer DIR`: the same experiment, kept in DIR, as the Markdown
    table of docs/results.md ("Transfer"), with the predictions picture of the fine-tuned run."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("dir", type=Path, help="an empty folder for the data and runs")
    root = parser.parse_args(argv).dir
    result = run_transfer(root)
    _evaluate(result["runs"] / "tuned", result["real"], "--save-predictions")
    tuned = result["tuned"]
    rows = [("pretrained on 24 rendered rooms, before fine-tuning", tuned["before_fine_tuning"]["metrics"]),
            (f"fine-tuned on the 9 real pairs, {TUNE_STEPS} steps", tuned["metrics"]),
            ("fine-tuned, a quarter of each batch rendered rooms (`--mix`)", result["mixed"]["metrics"]),
            (f"real pairs alone, from scratch, {TUNE_STEPS} steps", result["real_only"]["metrics"])]
    print("| held-out real pairs (4 queries) | PSNR dB | SSIM | MSE |\n| --- | --- | --- | --- |")
    for label, metrics in rows:
        m = metrics["prior_mean"]
        print(f"| {label} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['mse']:.4f} |")
    for name, label in (("mean_train_image", "mean real training image"),
                        ("nearest_context_view", "nearest context view (the other camera)")):
        m = tuned["baselines"][name]
        print(f"| baseline: {label} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['mse']:.4f} |")
    print("\n" + "\n".join(f"- {stage}: {s:.1f} s" for stage, s in result["seconds"].items()))
    print(f"\npredictions picture: {result['runs'] / 'tuned' / 'eval_test_predictions.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
