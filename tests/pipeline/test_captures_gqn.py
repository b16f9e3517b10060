"""DeepMind gqn-datasets import on TFRecords written by a real writer (tfrecord.TFRecordWriter) in their schema."""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from PIL import Image

import paths
from core import camera
from pipeline.captures import cli, gqn
from pipeline.captures.scene import CaptureError, cameras_from_xyzyp, viewpoints_from_xyzyp
from tests.pipeline.captures_helpers import random_scene, write_gqn_file

REPO = Path(__file__).resolve().parents[2]
SPEC = gqn.DATASETS["rooms_ring_camera"]


def make_source(root: Path, files: dict[str, list[int]], seed: int = 0) -> dict[str, list]:
    """Writes `root/{split}/NNNN-of-MMMM.tfrecord` with the given scene counts; returns what was written."""
    rng = np.random.default_rng(seed)
    written = {}
    for rel, counts in files.items():
        split, number = rel.split("/")
        scenes = [random_scene(rng, SPEC.views, SPEC.size) for _ in range(counts[0])]
        of = SPEC.files(split)
        path = root / split / f"{int(number):04d}-of-{of:04d}.tfrecord"
        jpegs = write_gqn_file(path, scenes)
        written[f"{split}/{int(number)}"] = [(imgs, cams, j) for (imgs, cams), j in zip(scenes, jpegs, strict=True)]
    return written


def read_all(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in f}
        out["attrs"] = dict(f.attrs)  # type: ignore[assignment]
    return out


def test_import_matches_what_was_written(tmp_path: Path) -> None:
    written = make_source(tmp_path / "src", {"train/3": [4], "train/1": [3], "test/2": [2]})
    out = tmp_path / "data" / "rooms"
    result = gqn.import_gqn(tmp_path / "src", out, "rooms_ring_camera", jobs=2)
    assert result.rows == {"train": 7, "val": 0, "test": 2}
    assert result.converted == ["0001-of-2160.tfrecord", "0002-of-0240.tfrecord", "0003-of-2160.tfrecord"]
    for split, keys in (("train", ["train/1", "train/3"]), ("test", ["test/2"])):
        f = read_all(out / f"scenes_{split}.h5")
        expected = [(int(k.split("/")[1]), r, s) for k in keys for r, s in enumerate(written[k])]
        # scene order: file number, then record order; the index says which record it was
        assert f["scene_index"].tolist() == [n * gqn.FILE_STRIDE + r for n, r, _ in expected]
        assert f["images"].shape == (len(expected), 10, 64, 64, 3) and f["images"].dtype == np.uint8
        for row, (_, _, (images, cameras, jpegs)) in enumerate(expected):
            decoded = np.stack([np.asarray(Image.open(io.BytesIO(j)).convert("RGB")) for j in jpegs])
            np.testing.assert_array_equal(f["images"][row], decoded)  # the JPEGs' pixels, by another decoder
            assert np.abs(f["images"][row].astype(int) - images).mean() < 3.0  # and close to what was encoded
            np.testing.assert_array_equal(f["viewpoints_xyzyp"][row], cameras)
            yaw, pitch = cameras[:, 3].astype(np.float64), cameras[:, 4].astype(np.float64)
            np.testing.assert_allclose(f["viewpoints"][row], np.concatenate(
                [cameras[:, :3], np.stack([np.sin(yaw), np.cos(yaw), np.sin(pitch), np.cos(pitch)], 1)], 1),
                atol=1e-6)
            c2w = f["cam_to_world"][row]
            np.testing.assert_allclose(c2w[:, :3, 3], cameras[:, :3], atol=1e-6)
            direction = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], 1)
            np.testing.assert_allclose(c2w[:, :3, 2], direction, atol=1e-6)  # OpenCV z = viewing direction
            assert np.all(np.abs(c2w[:, 2, 0]) < 1e-6)  # no roll: camera x stays horizontal
            assert np.all(c2w[:, 2, 1] <= 1e-6)  # y points down (never up) in the world
        np.testing.assert_allclose(f["K"], np.broadcast_to(camera.intrinsics(64, 64, 60.0), (len(expected), 10, 3, 3)),
                                   rtol=1e-6)
        attrs = f["attrs"]
        assert attrs["layout"] == "scene-major" and attrs["views"] == 10 and attrs["split"] == split
        assert attrs["viewpoint_order"] == camera.VIEWPOINT_ORDER and bool(attrs["K_assumed"])
        assert [e["file"] for e in json.loads(attrs["source_files"])] == [
            f"{int(k.split('/')[1]):04d}-of-{SPEC.files(split):04d}.tfrecord" for k in keys]
    val = read_all(out / "scenes_val.h5")
    assert val["images"].shape == (0, 10, 64, 64, 3)
    report = json.loads((out / "import.json").read_text())
    assert report["rows"] == result.rows and len(report["files"]) == 3
    assert not (out / gqn.PARTS).exists()
    with h5py.File(out / "scenes_train.h5", "r") as f:
        assert f["images"].compression == "gzip" and f["images"].chunks == (1, 10, 64, 64, 3)


def test_vectorised_cameras_equal_core_camera() -> None:
    rng = np.random.default_rng(3)
    xyzyp = np.concatenate([rng.uniform(-2, 2, (50, 3)), rng.uniform(-np.pi, np.pi, (50, 1)),
                            rng.uniform(-1.5, 1.5, (50, 1))], 1)
    xyzyp[:3, 4] = [math.pi / 2, -math.pi / 2, 1.5700]  # straight up/down: look_at's degenerate case
    got = cameras_from_xyzyp(xyzyp)
    vps = viewpoints_from_xyzyp(xyzyp)
    for i, (x, y, z, yaw, pitch) in enumerate(xyzyp):
        location = np.array([x, y, z])
        target = camera.on_sphere(location, 1.0, yaw, pitch)
        np.testing.assert_allclose(got[i], camera.blender_to_opencv(camera.look_at(location, target)), atol=1e-6)
        if abs(math.cos(pitch)) > 1e-3:  # straight up or down, a direction has no yaw left to compare
            np.testing.assert_allclose(vps[i], camera.gqn_viewpoint(location, target), atol=1e-6)


def test_adding_files_later_converts_only_those(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_source(src, {"train/2": [3]}, seed=1)
    first = gqn.import_gqn(src, out, "rooms_ring_camera", jobs=1)
    assert first.converted == ["0002-of-2160.tfrecord"] and first.rows["train"] == 3
    before = read_all(out / "scenes_train.h5")
    make_source(src, {"train/1": [2]}, seed=2)
    second = gqn.import_gqn(src, out, "rooms_ring_camera", jobs=1)
    assert second.converted == ["0001-of-2160.tfrecord"] and second.reused == ["0002-of-2160.tfrecord"]
    after = read_all(out / "scenes_train.h5")
    assert after["scene_index"].tolist() == [1_000_000, 1_000_001, 2_000_000, 2_000_001, 2_000_002]
    np.testing.assert_array_equal(after["images"][2:], before["images"])
    np.testing.assert_array_equal(after["cam_to_world"][2:], before["cam_to_world"])
    stamp = (out / "scenes_train.h5").stat().st_mtime_ns
    third = gqn.import_gqn(src, out, "rooms_ring_camera", jobs=1)
    assert third.converted == [] and third.rows == second.rows
    assert (out / "scenes_train.h5").stat().st_mtime_ns == stamp  # nothing new: the files are left alone
    # a source deleted after its import (to save space) keeps its rows when more files come
    (src / "train" / "0002-of-2160.tfrecord").unlink()
    make_source(src, {"train/4": [1]}, seed=3)
    fourth = gqn.import_gqn(src, out, "rooms_ring_camera", jobs=1)
    assert fourth.converted == ["0004-of-2160.tfrecord"]
    last = read_all(out / "scenes_train.h5")
    assert last["scene_index"].tolist() == [1_000_000, 1_000_001, 2_000_000, 2_000_001, 2_000_002, 4_000_000]
    np.testing.assert_array_equal(last["images"][:5], after["images"])


_KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from pipeline.captures import gqn
    real = gqn.convert_file
    def convert_then_die(task):
        result = real(task)
        parts = list((task.dataset_dir / gqn.PARTS).glob("*/*/scenes_*.h5"))
        if len(parts) >= 2:
            os.killpg(0, signal.SIGKILL)  # the whole import, workers and driver, as a kill -9 would
        return result
    gqn.convert_file = convert_then_die
    gqn.import_gqn(Path(sys.argv[1]), Path(sys.argv[2]), "rooms_ring_camera", jobs=int(sys.argv[3]))
""")


@pytest.mark.parametrize("jobs", [1, 2])
def test_killed_import_resumes_without_duplicates(tmp_path: Path, jobs: int) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    written = make_source(src, {f"train/{n}": [3] for n in range(1, 6)} | {"test/1": [2]}, seed=4)
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(src), str(out), str(jobs)], cwd=REPO,
                          start_new_session=True, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not list(out.glob("scenes_*.h5")), "a killed import must not leave a final file"
    finished = sorted(p.parent.name for p in (out / gqn.PARTS).glob("*/*/scenes_*.h5"))
    assert len(finished) >= 2
    result = gqn.import_gqn(src, out, "rooms_ring_camera", jobs=jobs)
    assert set(result.reused) >= {f"{n}.tfrecord" for n in finished}
    assert not set(result.converted) & {f"{n}.tfrecord" for n in finished}  # never converted twice
    train = read_all(out / "scenes_train.h5")
    assert train["scene_index"].tolist() == [n * gqn.FILE_STRIDE + r for n in range(1, 6) for r in range(3)]
    for row, (n, r) in enumerate((n, r) for n in range(1, 6) for r in range(3)):
        np.testing.assert_array_equal(train["viewpoints_xyzyp"][row], written[f"train/{n}"][r][1])
    assert read_all(out / "scenes_test.h5")["scene_index"].tolist() == [1_000_000, 1_000_001]
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def _assert_no_output(out: Path) -> None:
    assert not list(out.glob("scenes_*.h5")) and not (out / "import.json").exists()


@pytest.mark.parametrize("jobs", [1, 2])
def test_truncated_file_fails_naming_it(tmp_path: Path, jobs: int) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_source(src, {"train/1": [4], "train/2": [3]})
    path = src / "train" / "0001-of-2160.tfrecord"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CaptureError, match=r"0001-of-2160\.tfrecord: truncated .*download it again"):
        gqn.import_gqn(src, out, "rooms_ring_camera", jobs=jobs)
    _assert_no_output(out)
    assert not list((out / gqn.PARTS).rglob("0001-of-2160/*"))  # no part, not even a temporary one


def test_record_of_another_dataset_fails_before_anything_is_written(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_source(src, {"train/1": [2]})
    rng = np.random.default_rng(0)
    write_gqn_file(src / "train" / "0002-of-2160.tfrecord", [random_scene(rng, 15, 64)])  # Shepard-Metzler's 15
    with pytest.raises(CaptureError, match=r"0002-of-2160\.tfrecord record 0: 15 frames .* 10 views.*--dataset"):
        gqn.import_gqn(src, out, "rooms_ring_camera", jobs=1)
    _assert_no_output(out)
    assert not (out / gqn.PARTS).exists()
    (src / "train" / "0002-of-2160.tfrecord").unlink()
    write_gqn_file(src / "train" / "0002-of-2160.tfrecord", [random_scene(rng, 10, 128)])
    with pytest.raises(CaptureError, match=r"frame 0 is 128x128, but this dataset's images are 64x64"):
        gqn.import_gqn(src, out, "rooms_ring_camera", jobs=1)
    _assert_no_output(out)


def test_file_names_of_another_dataset_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_gqn_file(src / "train" / "0001-of-0900.tfrecord", [random_scene(np.random.default_rng(0), 10, 64)])
    with pytest.raises(CaptureError, match=r"rooms_ring_camera has 2160 train files .* another dataset"):
        gqn.import_gqn(src, tmp_path / "out", "rooms_ring_camera", jobs=1)
    with pytest.raises(CaptureError, match="unknown gqn dataset"):
        gqn.import_gqn(src, tmp_path / "out", "rooms", jobs=1)


def test_other_scene_files_are_never_overwritten(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_source(src, {"train/1": [1]})
    out.mkdir()
    (out / "scenes_train.h5").write_bytes(b"a render's scenes")
    with h5py.File(out / "scenes_train.h5", "w") as f:
        f.attrs["generator"] = "gqn_rooms_ring_camera"
    with pytest.raises(CaptureError, match="not made by import-gqn.*pick another -d NAME"):
        gqn.import_gqn(src, out, "rooms_ring_camera", jobs=1)


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    make_source(tmp_path / "src", {"train/1": [2], "test/1": [1]})
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path / "data")
    assert cli.main(["import-gqn", str(tmp_path / "src"), "-d", "rooms", "--dataset", "rooms_ring_camera",
                     "--no-progress"]) == 0
    assert "'train': 2" in capsys.readouterr().out
    assert (tmp_path / "data" / "rooms" / "scenes_test.h5").is_file()
    (tmp_path / "src" / "train" / "0001-of-2160.tfrecord").write_bytes(b"\x05" * 30)
    assert cli.main(["import-gqn", str(tmp_path / "src"), "-d", "other", "--dataset", "rooms_ring_camera"]) == 1
    assert not (tmp_path / "data" / "other" / "scenes_train.h5").exists()


@pytest.mark.parametrize("command", ["import-gqn", "import-capture", "import-fruit"])
def test_help(command: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pipeline.captures", command, "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and "DATA_DIR/NAME" in proc.stdout


def test_decoders_agree() -> None:
    """cv2 (the importer's decoder) and Pillow give the same pixels for the same JPEG."""
    image = random_scene(np.random.default_rng(9), 1, 64)[0][0]
    data = cv2.imencode(".jpg", image)[1].tobytes()
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB),
                                  np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_memory_stays_flat_over_a_long_file(tmp_path: Path) -> None:
    """Peak memory of converting a file does not grow with its length: images are stored scene by scene and the
    writer buffers at most 64 rows of the small datasets."""
    import tracemalloc

    rng = np.random.default_rng(0)
    scene = random_scene(rng, SPEC.views, SPEC.size)
    peaks = {}
    for n in (50, 400):
        write_gqn_file(tmp_path / f"src{n}" / "train" / "0001-of-2160.tfrecord", [scene] * n)
        tracemalloc.start()
        gqn.import_gqn(tmp_path / f"src{n}", tmp_path / f"out{n}", "rooms_ring_camera", jobs=1)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert read_all(tmp_path / f"out{n}" / "scenes_train.h5")["images"].shape[0] == n
    assert peaks[400] < 1.5 * peaks[50], peaks  # 8x the scenes, about the same peak


def test_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    make_source(tmp_path / "src", {"train/1": [3], "train/2": [2], "train/5": [4], "test/1": [2]}, seed=8)
    for jobs in (1, 2):
        gqn.import_gqn(tmp_path / "src", tmp_path / f"j{jobs}" / "rooms", "rooms_ring_camera", jobs=jobs)
    for split in ("train", "val", "test"):
        one, two = (tmp_path / f"j{j}" / "rooms" / f"scenes_{split}.h5" for j in (1, 2))
        assert one.read_bytes() == two.read_bytes(), split


def test_scene_counts_are_checked_per_file(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_source(src, {"train/1": [5], "train/2": [5], "train/3": [2]}, seed=6)
    # a finished part that does not hold its file's records once each is converted again
    source = gqn.list_sources(src, "rooms_ring_camera")[0]
    gqn.convert_file(gqn._Task(source, "rooms_ring_camera", out))
    with h5py.File(gqn.part_file(out, source), "r+") as f:
        f.attrs["records"] = 4
    result = gqn.import_gqn(src, out, "rooms_ring_camera", jobs=1)
    assert result.converted == ["0001-of-2160.tfrecord", "0002-of-2160.tfrecord", "0003-of-2160.tfrecord"]
    report = json.loads((out / "import.json").read_text())
    assert [e["scenes"] for e in report["files"]] == [5, 5, 2]
    assert report["count_warnings"] == ["train/0003-of-2160.tfrecord holds 2 scenes where 2 other train files hold 5: "
                                        "if it was cut short, download it again"]


def _bad_sources(root: Path, case: str) -> str:
    """Writes a source folder with one kind of bad input; returns the words its one error line must hold."""
    rng = np.random.default_rng(2)
    good = [random_scene(rng, SPEC.views, SPEC.size) for _ in range(3)]
    path = root / "train" / "0001-of-2160.tfrecord"
    if case == "truncated":
        write_gqn_file(path, good)
        path.write_bytes(path.read_bytes()[:-50])
        return r"0001-of-2160\.tfrecord: truncated .*download it again"
    if case == "wrong record mid-file":
        write_gqn_file(path, [*good, random_scene(rng, 15, 64)])
        return r"0001-of-2160\.tfrecord record 3: 15 frames .*pass its --dataset"
    if case == "wrong image size":
        write_gqn_file(path, [random_scene(rng, 10, 128)])
        return r"0001-of-2160\.tfrecord record 0: frame 0 is 128x128.*pass its --dataset"
    if case == "wrong file count":
        write_gqn_file(root / "train" / "0001-of-0900.tfrecord", good)
        return r"0001-of-0900\.tfrecord: rooms_ring_camera has 2160 train files.*pass its --dataset or move it out"
    if case == "not a record":
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\x05" * 30)
        return r"0001-of-2160\.tfrecord: .*download it again"
    raise ValueError(case)


@pytest.mark.parametrize("case", ["truncated", "wrong record mid-file", "wrong image size", "wrong file count",
                                  "not a record"])
def test_bad_input_gives_one_message_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture, case: str) -> None:
    """Each bad input through the command line: exit 1, one error line naming the file and the fix, and no
    DATA_DIR/NAME left behind (not even an empty folder or its lock)."""
    words = _bad_sources(tmp_path / "src", case)
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path / "data")
    with caplog.at_level("ERROR"):
        code = cli.main(["import-gqn", str(tmp_path / "src"), "-d", "rooms", "--dataset", "rooms_ring_camera",
                         "--no-progress", "-j", "1"])
    assert code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and len(errors[0].splitlines()) == 1, errors
    assert re.search(words, errors[0]), errors[0]
    assert not (tmp_path / "data" / "rooms").exists()
