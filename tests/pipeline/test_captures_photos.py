"""Capture and fruit still-life imports on real photographs: Debian opencv-doc's chessboard stereo set.

Each photo's pose is recovered from the board with OpenCV's solvePnP (the board frame is the world); the test
lays the photos out as a capture folder and as the seed-000 fruit layout and checks the loader's order, poses,
intrinsics and pixels against the files.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from PIL import Image

import paths
from core import camera
from pipeline.captures import cli, fruit
from pipeline.captures.capture import import_plan, plan_capture
from pipeline.captures.photos import SEED_FRAMING, square_framing
from pipeline.captures.scene import CaptureError, xyzyp_from_cameras
from tests.pipeline.captures_helpers import (
    board_points,
    board_pose,
    calibrate,
    find_corners,
    opencv_doc_data,
    read_left_intrinsics,
)


@pytest.fixture(scope="module")
def chessboard() -> dict[str, dict]:
    """{photo name: {path, camera, K (OpenCV's pixel-centre convention), dist, corners, c2w}} of every board photo."""
    data = opencv_doc_data()
    photos = {}
    for side in ("left", "right"):
        paths_ = sorted(data.glob(f"{side}[0-9][0-9].jpg"))
        found = [find_corners(p) for p in paths_]
        assert all(c is not None for c in found), f"no chessboard found in some of {paths_}"
        K, dist, calib_rms = calibrate(found, (640, 480))  # type: ignore[arg-type]
        assert calib_rms < 0.6
        if side == "left":  # agrees with the calibration opencv-doc ships
            K_doc, _ = read_left_intrinsics(data)
            np.testing.assert_allclose(K[[0, 1], [0, 1]], K_doc[[0, 1], [0, 1]], rtol=0.02)
        for path, corners in zip(paths_, found, strict=True):
            c2w, rms = board_pose(corners, K, dist)
            # (left02 is the set's worst view: 1.18 px in opencv-doc's own calibration)
            assert rms < 1.5, f"{path.name}: solvePnP reprojection error {rms:.2f} px"
            photos[path.name] = {"path": path, "side": side, "K": K, "dist": dist, "corners": corners, "c2w": c2w}
    assert len(photos) == 26  # left01-09, 11-14 and the same for right (no 10 in the set)
    return photos


def ours(K_opencv: np.ndarray) -> np.ndarray:
    """OpenCV's K (pixel centres at integers) in docs/formats.md's convention (centres at i + 0.5)."""
    K = np.array(K_opencv, dtype=np.float64)
    K[0, 2] += 0.5
    K[1, 2] += 0.5
    return K


def layout_capture(root: Path, chessboard: dict[str, dict], form: str) -> Path:
    """`root/{left,right}/` with the photos and a poses.json (K + cam_to_world) or poses.csv (5-number)."""
    for side in ("left", "right"):
        folder = root / side
        folder.mkdir(parents=True)
        names = sorted(n for n, p in chessboard.items() if p["side"] == side)
        for name in reversed(names):  # created in reverse: the loader must sort, not trust directory order
            shutil.copy(chessboard[name]["path"], folder / name)
        if form == "json":
            views = [{"file": n, "cam_to_world": chessboard[n]["c2w"].tolist(), "K": ours(chessboard[n]["K"]).tolist()}
                     for n in names]
            (folder / "poses.json").write_text(json.dumps({"views": views}))
        else:
            with open(folder / "poses.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["file", "x", "y", "z", "yaw", "pitch", "fx", "fy", "cx", "cy"])
                for n in names:
                    K = ours(chessboard[n]["K"])
                    w.writerow([n, *xyzyp_from_cameras(chessboard[n]["c2w"])[0].tolist(),
                                K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
    return root


def framed(path: Path, framing) -> np.ndarray:
    """The test's own framing of a photo: Pillow RGB, Lanczos resize, crop."""
    image = Image.open(path).convert("RGB")
    return np.asarray(image.resize(framing.resize, Image.Resampling.LANCZOS).crop(framing.crop))


def read_h5(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in f}
        out["attrs"] = dict(f.attrs)
    return out


@pytest.mark.parametrize("form", ["json", "csv"])
def test_capture_folder_of_chessboard_photos(tmp_path: Path, chessboard: dict[str, dict], form: str) -> None:
    src = layout_capture(tmp_path / "caps", chessboard, form)
    out = tmp_path / "data" / "board"
    rows = import_plan(plan_capture(src, size=64, split="train"), out)
    assert rows == {"train": 2, "val": 0, "test": 0}
    f = read_h5(out / "scenes_train.h5")
    assert f["images"].shape == (2, 13, 64, 64, 3)
    report = json.loads((out / "import.json").read_text())
    for row, side in enumerate(("left", "right")):  # scene folders in name order
        names = sorted(n for n, p in chessboard.items() if p["side"] == side)
        assert report["scenes"][row]["photos"] == names and report["scenes"][row]["folder"] == side
        for v, name in enumerate(names):
            photo = chessboard[name]
            framing = square_framing(640, 480, 64)
            assert framing.resize == (85, 64) and framing.crop == (10, 0, 74, 64)
            np.testing.assert_array_equal(f["images"][row, v], framed(photo["path"], framing))
            c2w = f["cam_to_world"][row, v].astype(np.float64)
            if form == "json":
                np.testing.assert_allclose(c2w, photo["c2w"], atol=1e-6)  # the board pose as given
            else:  # 5 numbers: centre and optical axis kept, roll dropped
                np.testing.assert_allclose(c2w[:3, 3], photo["c2w"][:3, 3], atol=1e-6)
                np.testing.assert_allclose(c2w[:3, 2], photo["c2w"][:3, 2], atol=1e-6)
            xyzyp = xyzyp_from_cameras(photo["c2w"])[0]
            np.testing.assert_allclose(f["viewpoints_xyzyp"][row, v], xyzyp, atol=1e-6)
            np.testing.assert_allclose(f["viewpoints"][row, v], camera.gqn_viewpoint(
                xyzyp[:3], xyzyp[:3] + photo["c2w"][:3, 2]), atol=1e-6)
            # K follows the framing: board corners projected with the stored K and pose land where the photo's
            # own K and board pose put them in the full photo, mapped through the same resize and crop
            K_stored = f["K"][row, v].astype(np.float64)
            rvec, tvec = cv2.Rodrigues(np.linalg.inv(photo["c2w"])[:3, :3])[0], np.linalg.inv(photo["c2w"])[:3, 3]
            full, _ = cv2.projectPoints(board_points(), rvec, tvec, photo["K"], photo["dist"])
            expected = np.stack([(full[:, 0, 0] + 0.5) * 85 / 640 - 10, (full[:, 0, 1] + 0.5) * 64 / 480], 1)
            w2c = np.linalg.inv(c2w)
            K_cv = K_stored.copy()
            K_cv[:2, 2] -= 0.5  # back to OpenCV's pixel-centre convention for projectPoints
            uv, _ = cv2.projectPoints(board_points(), cv2.Rodrigues(w2c[:3, :3])[0], w2c[:3, 3], K_cv, photo["dist"])
            if form == "json":
                np.testing.assert_allclose(uv.reshape(-1, 2) + 0.5, expected, atol=2e-3)
            # and the detected corners agree with both to the calibration's accuracy (about 1 px at 640 -> 0.2)
            detected = np.stack([(photo["corners"][:, 0] + 0.5) * 85 / 640 - 10, (photo["corners"][:, 1] + 0.5) * 64 / 480], 1)
            assert np.sqrt(np.mean(np.sum((expected - detected) ** 2, 1))) < 0.25
    assert f["attrs"]["K_assumed"] == np.False_ and f["attrs"]["importer"] == "capture"


def test_fruit_layout_of_chessboard_photos(tmp_path: Path, chessboard: dict[str, dict]) -> None:
    src = tmp_path / "fruit_stills"
    lefts = sorted(n for n, p in chessboard.items() if p["side"] == "left")[:12]
    rights = sorted(n for n, p in chessboard.items() if p["side"] == "right")
    scenes = {"Scene1": lefts, "Scene14": rights[:12], "Scene130": rights[:8]}
    for folder, names in scenes.items():
        (src / folder).mkdir(parents=True)
        for i, name in reversed(list(enumerate(names))):  # IMG_<i>: sorted names give the table's order
            shutil.copy(chessboard[name]["path"], src / folder / f"IMG_{i:04d}.jpg")
    (src / "README.txt").write_text("not a scene")
    out = tmp_path / "data" / "fruit12"
    rows = import_plan(fruit.plan_fruit(src, table=12), out)
    assert rows == {"train": 2, "val": 0, "test": 0}  # scenes 1 and 14: 1 % 12 and 14 % 12 are train buckets
    f = read_h5(out / "scenes_train.h5")
    assert f["scene_index"].tolist() == [1, 14]
    table = fruit.table_xyzyp(12)
    for row, folder in enumerate(("Scene1", "Scene14")):
        for v, name in enumerate(scenes[folder]):
            np.testing.assert_array_equal(f["images"][row, v], framed(chessboard[name]["path"], SEED_FRAMING))
        np.testing.assert_allclose(f["viewpoints_xyzyp"][row], table, atol=1e-7)
    # the seed's own 7-number table (its 0.707 is sin 45 degrees, rounded)
    seed_first = [[-1.0, -1.0, 0.0, 0.707, 0.707, 0.0, 1.0], [-0.5, -1.0, 0.0, 1.0, 0.0, 0.0, 1.0],
                  [1.0, -1.0, 0.0, 0.707, -0.707, 0.0, 1.0], [1.0, 1.0, 0.0, -0.707, -0.707, 0.0, 1.0]]
    np.testing.assert_allclose(f["viewpoints"][0, [0, 1, 3, 6]], seed_first, atol=1e-3)
    np.testing.assert_allclose(f["K"][0, 0], camera.intrinsics(64, 64, 46.0), rtol=1e-6)
    assert bool(f["attrs"]["K_assumed"]) and "46.0 degrees" in f["attrs"]["K_source"]
    rows8 = import_plan(fruit.plan_fruit(src, table=8), tmp_path / "data" / "fruit8")
    assert rows8 == {"train": 0, "val": 1, "test": 0}  # scene 130: 130 % 12 = 10, the val bucket
    f8 = read_h5(tmp_path / "data" / "fruit8" / "scenes_val.h5")
    assert f8["images"].shape == (1, 8, 64, 64, 3) and f8["scene_index"].tolist() == [130]
    np.testing.assert_allclose(f8["viewpoints_xyzyp"][0], fruit.table_xyzyp(8), atol=1e-7)
    # every 8-table camera faces the centre of the square
    d = f8["cam_to_world"][0][:, :3, 2]
    np.testing.assert_allclose(d[:, :2], -f8["viewpoints_xyzyp"][0][:, :2] / np.linalg.norm(
        f8["viewpoints_xyzyp"][0][:, :2], axis=1, keepdims=True), atol=1e-6)


def _fruit_src(tmp_path: Path, chessboard: dict[str, dict], n: int) -> Path:
    src = tmp_path / "fruit"
    (src / "Scene3").mkdir(parents=True)
    names = sorted(chessboard)[:n]
    for i, name in enumerate(names):
        shutil.copy(chessboard[name]["path"], src / "Scene3" / f"{i:02d}.jpg")
    return src


@pytest.mark.parametrize("n, words", [(11, "11 photos.*add the missing photo"), (13, "13 photos.*move the extra")])
def test_fruit_scene_with_missing_or_extra_photo(tmp_path: Path, chessboard: dict[str, dict], n: int,
                                                 words: str) -> None:
    src = _fruit_src(tmp_path, chessboard, n)
    with pytest.raises(CaptureError, match=f"Scene3: {words}"):
        fruit.plan_fruit(src)


def test_unreadable_and_truncated_photos_leave_no_output(tmp_path: Path, chessboard: dict[str, dict],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path / "data")
    src = _fruit_src(tmp_path, chessboard, 12)
    bad = src / "Scene3" / "05.jpg"
    bad.write_bytes(b"not a jpeg at all")
    assert cli.main(["import-fruit", str(src), "-d", "f"]) == 1
    with pytest.raises(CaptureError, match=r"Scene3/05\.jpg: cannot read it as an image.*replace it"):
        fruit.plan_fruit(src)
    # a header that reads but data cut short fails while decoding, after the writer started: nothing is left
    bad.write_bytes(chessboard[sorted(chessboard)[5]]["path"].read_bytes()[:3000])
    plan = fruit.plan_fruit(src)
    with pytest.raises(CaptureError, match=r"05\.jpg: cannot read it as an image"):
        import_plan(plan, tmp_path / "data" / "f")
    assert not (tmp_path / "data" / "f").exists()


def test_pose_table_that_does_not_match(tmp_path: Path, chessboard: dict[str, dict]) -> None:
    src = layout_capture(tmp_path / "caps", chessboard, "json")
    (src / "left" / "left01.jpg").unlink()
    with pytest.raises(CaptureError, match=r"poses\.json lists 1 photo\(s\) missing from .*left.*'left01\.jpg'"):
        plan_capture(src)
    shutil.copy(chessboard["left02.jpg"]["path"], src / "left" / "left01.jpg")
    shutil.copy(chessboard["left02.jpg"]["path"], src / "left" / "extra.jpg")
    with pytest.raises(CaptureError, match=r"1 photo\(s\) without a pose in poses\.json: \['extra\.jpg'\]"):
        plan_capture(src)
    (src / "left" / "extra.jpg").unlink()
    (src / "right" / "right01.jpg").unlink()
    poses = json.loads((src / "right" / "poses.json").read_text())
    poses["views"] = [v for v in poses["views"] if v["file"] != "right01.jpg"]
    (src / "right" / "poses.json").write_text(json.dumps(poses))
    with pytest.raises(CaptureError, match=r"right.*12 photos, but left has 13.*one view count"):
        plan_capture(src)
    (src / "left" / "poses.json").write_text(json.dumps({"views": [{"file": "left01.jpg", "viewpoint": [1, 2]}]}))
    with pytest.raises(CaptureError, match=r"views\[0\] viewpoint: a viewpoint is 5 numbers"):
        plan_capture(src)


def test_capture_without_intrinsics_needs_a_field_of_view(tmp_path: Path, chessboard: dict[str, dict]) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(chessboard["left01.jpg"]["path"], folder / "a.jpg")
    (folder / "poses.json").write_text(json.dumps({"views": [{"file": "a.jpg", "viewpoint": [0, 0, 1, 0.5, 0.1]}]}))
    with pytest.raises(CaptureError, match="no intrinsics for a.jpg.*--fov-deg"):
        plan_capture(folder)
    plan = plan_capture(folder, fov_deg=60.0, size=32)
    scene = plan.scenes[0]
    assert scene.split == "train" and scene.index == 0
    framing = plan.framing_of(640, 480)
    assert framing.resize == (43, 32) and framing.crop == (5, 0, 37, 32)
    f = 320.0 / np.tan(np.radians(30.0))
    np.testing.assert_allclose(framing.apply_K(camera.intrinsics(640, 480, 60.0), 640, 480),
                               [[f * 43 / 640, 0, 320 * 43 / 640 - 5], [0, f * 32 / 480, 16], [0, 0, 1]], rtol=1e-12)


def test_fruit_tables_follow_the_twin(tmp_path: Path, chessboard: dict[str, dict]) -> None:
    """Same positions and order as the synthetic twin's tables (in its metres with --position-scale 0.6); the
    twin turns its 12-view edge cameras to the centre where the seed's labels face across the square."""
    from render.generators.fruit import VIEWS_8, VIEWS_12

    for views, twin in ((12, VIEWS_12), (8, VIEWS_8)):
        np.testing.assert_allclose(fruit.table_xyzyp(views)[:, :2], twin)
    src = _fruit_src(tmp_path, chessboard, 12)
    plan = fruit.plan_fruit(src, position_scale=0.6)
    np.testing.assert_allclose(plan.scenes[0].xyzyp[:, :2], 0.6 * np.asarray(VIEWS_12))
    centre_yaw = np.degrees(np.arctan2(-np.asarray(VIEWS_12)[:, 1], -np.asarray(VIEWS_12)[:, 0]))
    gap = np.abs((np.degrees(fruit.table_xyzyp(12)[:, 3]) - centre_yaw + 180) % 360 - 180)
    assert gap[[0, 3, 6, 9]].max() < 1e-9 and abs(gap.max() - 26.565) < 1e-3


def test_cli_import_capture(tmp_path: Path, chessboard: dict[str, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path / "data")
    src = layout_capture(tmp_path / "caps", chessboard, "csv")
    assert cli.main(["import-capture", str(src), "-d", "board", "--split", "test", "--size", "32"]) == 0
    f = read_h5(tmp_path / "data" / "board" / "scenes_test.h5")
    assert f["images"].shape == (2, 13, 32, 32, 3)
    assert cli.main(["import-capture", str(src), "-d", "board"]) == 1  # never overwrites without --overwrite
    assert cli.main(["import-capture", str(src), "-d", "board", "--overwrite"]) == 0
    report = json.loads((tmp_path / "data" / "board" / "import.json").read_text())
    assert report["rows"] == {"train": 2, "val": 0, "test": 0}  # scenes 0 and 1 by the index % 12 rule


def test_fruit_table_that_does_not_match_the_folders(tmp_path: Path, chessboard: dict[str, dict]) -> None:
    src = _fruit_src(tmp_path, chessboard, 12)  # Scene3: a 12-view scene
    with pytest.raises(CaptureError, match=r"no Scene\{k\} folder with k in 130-235 .*pass --table 12"):
        fruit.plan_fruit(src, table=8)
    (src / "Scene300").mkdir()
    with pytest.raises(CaptureError, match=r"Scene300: the fruit captures number their scenes 1-235; rename"):
        fruit.plan_fruit(src)


def _break(src: Path, chessboard: dict[str, dict], case: str) -> tuple[str, list[str]]:
    """Lays out a capture or fruit folder with one kind of bad input; (the words of its one error line, argv)."""
    if case.startswith("fruit"):
        n = {"fruit missing photo": 11, "fruit extra photo": 13}.get(case, 12)
        fruit_src = _fruit_src(src, chessboard, n)
        bad = fruit_src / "Scene3" / "05.jpg"
        if case == "fruit unreadable photo":
            bad.write_bytes(b"not a jpeg")
        elif case == "fruit truncated photo":
            bad.write_bytes(bad.read_bytes()[:3000])
        words = {"fruit missing photo": r"Scene3: 11 photos.*add the missing photo",
                 "fruit extra photo": r"Scene3: 13 photos.*move the extra photos out",
                 "fruit unreadable photo": r"Scene3/05\.jpg: cannot read it as an image.*replace it",
                 "fruit truncated photo": r"Scene3/05\.jpg: cannot read it as an image.*replace it",
                 "fruit wrong table": r"no Scene\{k\} folder with k in 130-235.*pass --table 12"}[case]
        return words, ["import-fruit", str(fruit_src), "-d", "out", *(["--table", "8"] if "table" in case else [])]
    caps = layout_capture(src / "caps", chessboard, "json")
    poses = caps / "left" / "poses.json"
    if case == "capture photo without pose":
        shutil.copy(chessboard["left02.jpg"]["path"], caps / "left" / "extra.jpg")
        words = r"1 photo\(s\) without a pose in poses\.json: \['extra\.jpg'\].*add their poses or move them out"
    elif case == "capture pose without photo":
        (caps / "left" / "left05.jpg").unlink()
        words = r"poses\.json lists 1 photo\(s\) missing from .*left.*add the photos or delete their entries"
    elif case == "capture bad split":
        data = json.loads(poses.read_text())
        poses.write_text(json.dumps({**data, "split": "holdout"}))
        words = r"left/poses\.json: \"split\" is 'holdout'; use one of"
    else:
        raise ValueError(case)
    return words, ["import-capture", str(caps), "-d", "out"]


@pytest.mark.parametrize("case", ["fruit missing photo", "fruit extra photo", "fruit unreadable photo",
                                  "fruit truncated photo", "fruit wrong table", "capture photo without pose",
                                  "capture pose without photo", "capture bad split"])
def test_bad_input_gives_one_message_and_leaves_nothing(tmp_path: Path, chessboard: dict[str, dict],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture, case: str) -> None:
    """Through the command line: exit 1, one error line naming the file and the fix, no DATA_DIR/NAME left."""
    words, argv = _break(tmp_path, chessboard, case)
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path / "data")
    with caplog.at_level("ERROR"):
        assert cli.main(argv) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and len(errors[0].splitlines()) == 1, errors
    assert re.search(words, errors[0]), errors[0]
    assert not (tmp_path / "data" / "out").exists()
