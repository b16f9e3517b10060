"""The one writer of scene-major files (docs/formats.md §3): one row per scene, all its views together.

It takes arrays, not sidecars, so consolidation, the capture/TFRecord importers and the ENR/RenderNet exporters
share it. Two steps, so that the costly one can run in worker processes:

- :func:`encode_scene` (pure numpy + zlib, picklable result, no HDF5 handle) checks one scene's arrays against a
  :class:`SceneSpec` and deflates every per-scene chunk exactly as HDF5's gzip filter would;
- :meth:`SceneFileWriter.add_encoded` stores the deflated chunks with ``write_direct_chunk`` and the small rows.

:meth:`SceneFileWriter.add` does both in one call.

    spec = SceneSpec(views=10, height=64, width=64, channels=("depth", "normal"), view_records={"azimuth": ()})
    with SceneFileWriter(path, spec, attrs={"split": "train"}) as writer:
        writer.add(0, images, K, cam_to_world, depth=depth, normal=normal, view_records={"azimuth": az})
        writer.publish()
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from core.camera import VIEWPOINT_ORDER, gqn_viewpoint, xyzyp_viewpoint
from pipeline.formats import hdf5 as h5_out

logger = logging.getLogger(__name__)

#: Level of the gzip (deflate) filter of the image-sized datasets; level 1 compresses these images about as well
#: as 6 at a fraction of the time.
GZIP_LEVEL = 1
#: Rows per chunk of the small per-scene datasets (cameras, records).
CHUNK_ROWS = 64
#: Optional per-view image datasets: name -> (dtype, per-view trailing shape after (H, W)).
IMAGE_CHANNELS: dict[str, tuple[str, tuple[int, ...]]] = {
    "depth": ("uint16", ()),  # depth code, pipeline.formats.depth
    "instance": ("uint8", ()),
    "semantic": ("uint8", ()),
    "mask": ("uint8", ()),  # coverage: 0 background .. 255 foreground
    "normal": ("float16", (3,)),  # world-frame unit normal, 0 where nothing was hit
    "albedo": ("uint8", (3,)),  # sRGB-encoded base colour
}
#: Datasets every scene file has.
BASE_FIELDS = ("images", "viewpoints", "viewpoints_xyzyp", "K", "cam_to_world", "scene_index")


class SceneFileError(ValueError):
    """Arrays that do not fit the file's :class:`SceneSpec`; the message names the array and the fix."""


@dataclass(frozen=True)
class SceneSpec:
    """What every row of one scene file holds.

    Attributes:
        views: V, views per scene.
        height: H, pixels.
        width: W, pixels.
        channels: optional per-view image datasets, names from IMAGE_CHANNELS.
        view_records: per-view number name -> shape (() for a scalar); stored float32 (S, V, *shape).
        sample_records: per-scene number name -> shape; stored float32 (S, *shape).
        scene_arrays: per-scene array name -> (shape, dtype name), e.g. {"voxels": ((32, 32, 32), "uint8")};
            stored (S, *shape), gzip, one scene per chunk.
    """

    views: int
    height: int
    width: int
    channels: tuple[str, ...] = ()
    view_records: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    sample_records: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    scene_arrays: Mapping[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, n in (("views", self.views), ("height", self.height), ("width", self.width)):
            if not isinstance(n, int | np.integer) or n < 1:
                raise SceneFileError(f"SceneSpec.{name} must be a positive int, got {n!r}")
        unknown = [c for c in self.channels if c not in IMAGE_CHANNELS]
        if unknown:
            raise SceneFileError(f"SceneSpec.channels {unknown} are not among {sorted(IMAGE_CHANNELS)}")
        names = [*BASE_FIELDS, *self.channels, *self.view_records, *self.sample_records, *self.scene_arrays]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise SceneFileError(f"SceneSpec names {clashes} twice (records and arrays need names of their own)")

    @property
    def fields(self) -> list[str]:
        """Names of the datasets a file of this spec holds, sorted (the file attribute `fields`)."""
        return sorted([*BASE_FIELDS, *self.channels, *self.view_records, *self.sample_records, *self.scene_arrays])

    def _image_shape(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """(per-scene shape, dtype) of an image-sized dataset."""
        if name == "images":
            return (self.views, self.height, self.width, 3), np.dtype(np.uint8)
        dtype, tail = IMAGE_CHANNELS[name]
        return (self.views, self.height, self.width, *tail), np.dtype(dtype)

    def chunked(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Datasets stored one deflated chunk per scene: name -> (per-scene shape, dtype)."""
        out = {name: self._image_shape(name) for name in ("images", *self.channels)}
        for name, (shape, dtype) in self.scene_arrays.items():
            out[name] = (tuple(shape), np.dtype(dtype))
        return out

    def rows(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Small datasets stored CHUNK_ROWS scenes per chunk: name -> (per-scene shape, dtype)."""
        v = self.views
        out = {
            "viewpoints": ((v, 7), np.dtype(np.float32)),
            "viewpoints_xyzyp": ((v, 5), np.dtype(np.float32)),
            "K": ((v, 3, 3), np.dtype(np.float32)),
            "cam_to_world": ((v, 4, 4), np.dtype(np.float32)),
            "scene_index": ((), np.dtype(np.int64)),
        }
        for name, shape in self.view_records.items():
            out[name] = ((v, *shape), np.dtype(np.float32))
        for name, shape in self.sample_records.items():
            out[name] = (tuple(shape), np.dtype(np.float32))
        return out


@dataclass
class EncodedScene:
    """One scene ready for :meth:`SceneFileWriter.add_encoded` (picklable, cheap to send between processes).

    Attributes:
        chunks: dataset name -> (deflated chunk bytes, HDF5 filter mask: 0 = the gzip filter applied).
        rows: dataset name -> the scene's row of a small dataset, in its final dtype.
    """

    chunks: dict[str, tuple[bytes, int]]
    rows: dict[str, np.ndarray]


def deflate_chunk(array: np.ndarray) -> tuple[bytes, int]:
    """The bytes HDF5's gzip filter (level GZIP_LEVEL) stores for a chunk holding `array`, and the filter mask.

    HDF5's deflate filter is zlib's compress2 at that level over the chunk's C-order bytes, kept even when it is
    larger than the raw chunk (seen with HDF5 2.0.0: filter mask 0 on incompressible data), so the file holds the
    bytes the filter would have written (tests/pipeline/test_scene_file.py compares them).
    """
    return zlib.compress(np.ascontiguousarray(array).tobytes(), GZIP_LEVEL), 0


def _viewpoints(cam_to_world: np.ndarray, look_at: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """GQN 7-number and 5-number viewpoints from OpenCV camera-to-world (and the look-at points, if known)."""
    gqn, xyzyp = [], []
    for v, c2w in enumerate(cam_to_world):
        location = c2w[:3, 3]
        # Without a look-at point the optical axis (OpenCV +z) is the viewing direction.
        target = look_at[v] if look_at is not None else location + c2w[:3, 2]
        gqn.append(gqn_viewpoint(location, target))
        xyzyp.append(xyzyp_viewpoint(location, target))
    return np.asarray(gqn, np.float32), np.asarray(xyzyp, np.float32)


def _checked(name: str, value: Any, shape: tuple[int, ...], dtype: np.dtype, exact_dtype: bool) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != shape:
        raise SceneFileError(f"{name} has shape {arr.shape}, the file's rows need {shape}")
    if exact_dtype and arr.dtype != dtype:
        raise SceneFileError(f"{name} is {arr.dtype}, the file stores {dtype}: convert it first (docs/formats.md §3)")
    if not exact_dtype and not np.all(np.isfinite(arr)):
        raise SceneFileError(f"{name} has NaN or infinite values")
    return np.asarray(arr, dtype=dtype, order="C")  # (ascontiguousarray would make a scalar 1-D)


def encode_scene(
    spec: SceneSpec,
    scene_index: int,
    images: np.ndarray,
    K: np.ndarray,
    cam_to_world: np.ndarray,
    *,
    viewpoints: np.ndarray | None = None,
    viewpoints_xyzyp: np.ndarray | None = None,
    look_at: np.ndarray | None = None,
    channels: Mapping[str, np.ndarray] | None = None,
    view_records: Mapping[str, Any] | None = None,
    sample_records: Mapping[str, Any] | None = None,
    scene_arrays: Mapping[str, np.ndarray] | None = None,
) -> EncodedScene:
    """Checks one scene against `spec` and deflates it.

    Args:
        spec: what the file's rows hold.
        scene_index: the scene's index in its source (int64 `scene_index`).
        images: uint8 (V, H, W, 3), sRGB.
        K: (V, 3, 3) intrinsics, pixels.
        cam_to_world: (V, 4, 4) OpenCV camera-to-world (x right, y down, z forward).
        viewpoints: (V, 7) GQN viewpoints; derived from `cam_to_world` and `look_at` when None.
        viewpoints_xyzyp: (V, 5) [x, y, z, yaw, pitch]; derived likewise when None.
        look_at: (V, 3) points the cameras look at; None: along each optical axis.
        channels: exactly `spec.channels`: depth uint16 (V, H, W) depth code; instance, semantic, mask uint8
            (V, H, W); normal float16 (V, H, W, 3) world frame; albedo uint8 (V, H, W, 3).
        view_records: exactly `spec.view_records`: name -> (V, *shape) numbers.
        sample_records: exactly `spec.sample_records`: name -> numbers of that shape.
        scene_arrays: exactly `spec.scene_arrays`: name -> array of its shape and dtype (e.g. voxels uint8 (D, D, D)).

    Returns:
        The scene's deflated chunks and rows.

    Raises:
        SceneFileError: a missing, extra or mis-shaped array, naming it.
    """
    v = spec.views
    given = {"channels": dict(channels or {}), "view_records": dict(view_records or {}),
             "sample_records": dict(sample_records or {}), "scene_arrays": dict(scene_arrays or {})}
    for group, declared in (("channels", spec.channels), ("view_records", spec.view_records),
                            ("sample_records", spec.sample_records), ("scene_arrays", spec.scene_arrays)):
        if sorted(given[group]) != sorted(declared):
            raise SceneFileError(f"{group} given {sorted(given[group])}, the file's spec has {sorted(declared)}")
    cam_to_world = _checked("cam_to_world", cam_to_world, (v, 4, 4), np.dtype(np.float64), False)
    if viewpoints is None or viewpoints_xyzyp is None:
        if look_at is not None:
            look_at = _checked("look_at", look_at, (v, 3), np.dtype(np.float64), False)
        derived = _viewpoints(cam_to_world, look_at)
        viewpoints = derived[0] if viewpoints is None else viewpoints
        viewpoints_xyzyp = derived[1] if viewpoints_xyzyp is None else viewpoints_xyzyp
    rows_spec = spec.rows()
    values = {"viewpoints": viewpoints, "viewpoints_xyzyp": viewpoints_xyzyp, "K": K, "cam_to_world": cam_to_world,
              "scene_index": np.int64(scene_index), **given["view_records"], **given["sample_records"]}
    rows = {name: _checked(name, values[name], shape, dtype, False) for name, (shape, dtype) in rows_spec.items()}
    arrays = {"images": images, **given["channels"], **given["scene_arrays"]}
    chunks = {}
    for name, (shape, dtype) in spec.chunked().items():
        chunks[name] = deflate_chunk(_checked(name, arrays[name], shape, dtype, True))
    return EncodedScene(chunks=chunks, rows=rows)


class SceneFileWriter:
    """Appends scenes to one scene file, written under its temporary name until :meth:`publish`.

    Used as a context manager, the temporary file is removed when the block raises or ends unpublished.

    Args:
        path: the final `scenes_*.h5` path.
        spec: what every row holds.
        attrs: extra file attributes (e.g. `split`, `dataset`, `classes`); `views`, `viewpoint_order`,
            `layout` and `fields` are set here.
    """

    def __init__(self, path: str | Path, spec: SceneSpec, attrs: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.spec = spec
        self.fh: h5py.File = h5_out.create_h5(self.path)
        self._published = False
        try:
            for key, value in (attrs or {}).items():
                self.fh.attrs[key] = value
            self.fh.attrs["layout"] = "scene-major"
            self.fh.attrs["views"] = spec.views
            self.fh.attrs["viewpoint_order"] = VIEWPOINT_ORDER
            self.fh.attrs["fields"] = json.dumps(spec.fields)
            self._chunked = {
                name: h5_out.new_dataset(self.fh, name, (0, *shape), dtype, 1, compression="gzip")
                for name, (shape, dtype) in spec.chunked().items()
            }
            self._rows = {
                name: h5_out.new_dataset(self.fh, name, (0, *shape), dtype, CHUNK_ROWS)
                for name, (shape, dtype) in spec.rows().items()
            }
        except BaseException:
            self.discard()
            raise
        self._buffer: dict[str, list[np.ndarray]] = {name: [] for name in self._rows}
        self._count = 0

    def add(self, scene_index: int, images: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray,
            **optional: Any) -> None:
        """Appends one scene; arguments as for :func:`encode_scene`."""
        self.add_encoded(encode_scene(self.spec, scene_index, images, K, cam_to_world, **optional))

    def add_encoded(self, scene: EncodedScene) -> None:
        """Appends one scene encoded by :func:`encode_scene` with this writer's spec."""
        if sorted(scene.chunks) != sorted(self._chunked) or sorted(scene.rows) != sorted(self._rows):
            raise SceneFileError(f"{self.path.name}: the scene was encoded for another spec")
        row = self._count
        for name, ds in self._chunked.items():
            data, mask = scene.chunks[name]
            ds.resize(row + 1, axis=0)
            ds.id.write_direct_chunk((row,) + (0,) * (ds.ndim - 1), data, filter_mask=mask)
        for name, value in scene.rows.items():
            self._buffer[name].append(value)
        self._count += 1
        if self._count % CHUNK_ROWS == 0:
            self._flush()

    def _flush(self) -> None:
        for name, rows in self._buffer.items():
            h5_out.append_rows(self._rows[name], rows)
            rows.clear()

    @property
    def rows(self) -> int:
        """Scenes added so far."""
        return self._count

    def publish(self) -> None:
        """Writes what is buffered, closes the file and renames it to its final path."""
        try:
            h5_out.publish_all([self.close_for_publish()])
        except BaseException:
            self.discard()
            raise

    def close_for_publish(self) -> tuple[h5py.File, Path]:
        """Writes what is buffered; the (file, final path) to publish with others (:func:`h5_out.publish_all`)."""
        self._flush()
        self._published = True  # the caller publishes or discards it from here on
        return self.fh, self.path

    def discard(self) -> None:
        """Closes and deletes the temporary file (nothing is published)."""
        h5_out.discard(self.fh, self.path)

    def __enter__(self) -> SceneFileWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._published:
            self.discard()
