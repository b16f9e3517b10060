"""DeepMind gqn-datasets import throughput: ours (per-file workers, ISA-L chunks) beside a one-record-at-a-time
conversion, on TFRecords in DeepMind's schema whose frames are real photographs.

The source files are written here with tfrecord.TFRecordWriter: rooms_ring_camera's shape (10 views of 64x64
JPEG, 5 cameras numbers a view), each frame a random crop of one of opencv-doc's example photos (cached by
apt like the tests), resized to 64 px (`--frames photos`), or a flat colour gradient with a disc
(`--frames flat`). Real GQN rooms lie between the two: flatter than photographs, busier than one disc.
Then, side by side in one run:

- `import_gqn` with `--jobs 1` and `--jobs N` (pool start-up and the final chunk copy included);
- a one-record-at-a-time conversion as common converters do it: each record parsed, its frames decoded with
  Pillow, and the scene appended as one row through h5py's gzip filter (level 1) before the next record is read.

Wall time depends on what else the machine runs; CPU time (this process and its workers) does not, so both are
printed: on an idle machine with N cores the parallel run approaches N times the scenes per CPU-second.

    .venv/bin/python bench/bench_captures.py [--files 8] [--scenes 1000] [--jobs 2] [--frames photos|flat]

Prints a Markdown table (docs/captures.md quotes it).
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import h5py  # noqa: E402
from PIL import Image  # noqa: E402
from tfrecord import example_pb2  # noqa: E402
from tfrecord.reader import tfrecord_iterator  # noqa: E402

from pipeline.captures import gqn  # noqa: E402
from pipeline.captures.scene import assumed_intrinsics, scene_from_xyzyp  # noqa: E402
from tests.pipeline.captures_helpers import encode_jpeg, opencv_doc_data, smooth_image  # noqa: E402


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the pool's workers), seconds."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def make_source(root: Path, files: int, scenes: int, frames_kind: str, seed: int = 0) -> int:
    """Writes `files` train files of `scenes` records each; returns the bytes written."""
    from tfrecord import TFRecordWriter

    rng = np.random.default_rng(seed)
    photos = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(opencv_doc_data().glob("*.jpg"))]
    photos = [p for p in photos if min(p.shape[:2]) >= 128]
    flat = [smooth_image(rng, 64) for _ in range(500)]
    (root / "train").mkdir(parents=True)
    total = 0
    for n in range(1, files + 1):
        path = root / "train" / f"{n:04d}-of-2160.tfrecord"
        writer = TFRecordWriter(str(path))
        for _ in range(scenes):
            frames = []
            for _ in range(10):
                if frames_kind == "flat":
                    frames.append(encode_jpeg(flat[int(rng.integers(len(flat)))]))
                    continue
                photo = photos[int(rng.integers(len(photos)))]
                side = int(rng.integers(96, min(photo.shape[:2]) + 1))
                y, x = (int(rng.integers(0, photo.shape[i] - side + 1)) for i in (0, 1))
                frames.append(encode_jpeg(cv2.resize(photo[y:y + side, x:x + side], (64, 64),
                                                     interpolation=cv2.INTER_AREA)))
            cameras = rng.uniform(-1, 1, (10, 5)).astype(np.float32)
            writer.write({"frames": (frames, "byte"), "cameras": (cameras.reshape(-1), "float")})
        writer.close()
        total += path.stat().st_size
    return total


def one_record_at_a_time(src: Path, out: Path) -> int:
    """The plain way: read a record, decode it, append it as one row, repeat. Returns scenes written."""
    K = assumed_intrinsics(64, 64, 60.0)
    rows = 0
    with h5py.File(out, "w") as f:
        images = f.create_dataset("images", (0, 10, 64, 64, 3), np.uint8, maxshape=(None, 10, 64, 64, 3),
                                  chunks=(1, 10, 64, 64, 3), compression="gzip", compression_opts=1)
        small = {k: f.create_dataset(k, (0, 10, *s), np.float32, maxshape=(None, 10, *s))
                 for k, s in (("viewpoints", (7,)), ("viewpoints_xyzyp", (5,)), ("K", (3, 3)),
                              ("cam_to_world", (4, 4)))}
        for path in sorted((src / "train").glob("*.tfrecord")):
            for r, raw in enumerate(tfrecord_iterator(str(path))):
                feature = example_pb2.Example.FromString(bytes(raw)).features.feature
                frames = np.stack([np.asarray(Image.open(io.BytesIO(j)).convert("RGB"))
                                   for j in feature["frames"].bytes_list.value])
                cameras = np.asarray(feature["cameras"].float_list.value, np.float64).reshape(10, 5)
                scene = scene_from_xyzyp(r, frames, cameras, K)
                rows += 1
                images.resize(rows, axis=0)
                images[rows - 1] = scene.images
                for key, ds in small.items():
                    ds.resize(rows, axis=0)
                    ds[rows - 1] = getattr(scene, key)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=8, help="TFRecord files to convert")
    parser.add_argument("--scenes", type=int, default=1000, help="scenes (records) per file")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="workers of the parallel run")
    parser.add_argument("--frames", choices=["photos", "flat"], default="photos",
                        help="photos: crops of opencv-doc's photographs; flat: a colour gradient and a disc per "
                             "frame (closer to GQN's rooms)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-captures-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        size = make_source(root / "src", args.files, args.scenes, args.frames)
        total = args.files * args.scenes
        print(f"source: {args.files} files x {args.scenes} scenes of {args.frames} frames, {size / 1e6:.1f} MB "
              f"(made in {time.perf_counter() - t:.1f} s)", flush=True)
        results = []
        for jobs in (1, args.jobs):
            t, cpu = time.perf_counter(), _cpu_seconds()
            gqn.import_gqn(root / "src", root / f"ours{jobs}", "rooms_ring_camera", jobs=jobs)
            results.append((f"ours, --jobs {jobs}", time.perf_counter() - t, _cpu_seconds() - cpu))
            print(results[-1], flush=True)
        t, cpu = time.perf_counter(), _cpu_seconds()
        assert one_record_at_a_time(root / "src", root / "plain.h5") == total
        results.append(("one record at a time (Pillow decode, h5py gzip row by row)", time.perf_counter() - t,
                        _cpu_seconds() - cpu))
        out_bytes = sum(p.stat().st_size for p in (root / f"ours{args.jobs}").glob("scenes_*.h5"))
        worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"\n{total} scenes of 10 views (64x64) in {args.files} files, {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f} at the end; output {out_bytes / 1e6:.1f} MB; peak worker memory "
              f"{worker_mb:.0f} MB\n")
        print("| conversion | wall s | scenes/s (wall) | CPU s (all processes) | scenes per CPU-second |\n"
              "| --- | --- | --- | --- | --- |")
        for name, seconds, cpu in results:
            print(f"| {name} | {seconds:.2f} | {total / seconds:.0f} | {cpu:.2f} | {total / cpu:.0f} |")


if __name__ == "__main__":
    main()
