"""Intel Open Image Denoise (the `pyoidn` package) kept alive across frames: `rendering.denoise = 'oidn'`.

Cycles' own denoiser pays ~150 ms of set-up on every frame (and Debian's Blender 3.4 has none); an OIDN device and
filter made once per process and reused cost ~6 ms a 64x64 frame on 2 cores. The filter is fed the noisy colour
plus the albedo and normal passes of the same render, which keeps texture and edges sharp.
"""

import functools
import logging
import sys

import numpy as np

logger = logging.getLogger(__name__)


def _import_pyoidn():
    """Imports pyoidn without its optional torch support: torch would cost a render worker ~1 s and ~200 MB."""
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None  # makes `import torch` raise ImportError, which pyoidn treats as "no torch"
    try:
        import pyoidn
    finally:
        if blocked:
            del sys.modules["torch"]
    return pyoidn


class DenoiserError(RuntimeError):
    """OIDN could not be loaded or failed on a frame; the message says why."""


class Denoiser:
    """One OIDN CPU device and "RT" filter, reused for every frame.

    Args:
        threads: CPU threads OIDN may use (0 = all); pin it to the renderer's count so timings are per core.
        quality: "high", "balanced" or "fast" (OIDN's speed/quality trade-off).
    """

    def __init__(self, threads: int = 0, quality: str = "high") -> None:
        try:
            pyoidn = _import_pyoidn()
        except ImportError as err:
            raise DenoiserError(f"rendering.denoise = 'oidn' needs the pyoidn package ({err}); "
                                "install the project's dependencies or set rendering.denoise = 'none'") from err
        qualities = {"high": pyoidn.OIDN_QUALITY_HIGH, "balanced": pyoidn.OIDN_QUALITY_BALANCED,
                     "fast": pyoidn.OIDN_QUALITY_FAST}
        if quality not in qualities:
            raise ValueError(f"OIDN quality {quality!r}; use one of {sorted(qualities)}")
        self._oidn = pyoidn
        self.device = pyoidn.Device(pyoidn.OIDN_DEVICE_TYPE_CPU)
        if threads > 0:
            self.device.set_int("numThreads", threads)
        self.device.commit()
        self._check("device creation")
        self.filter = pyoidn.Filter(self.device, pyoidn.OIDN_FILTER_TYPE_RT)
        self.filter.set_bool("hdr", True)
        self.filter.set_quality(qualities[quality])
        self._bound: tuple | None = None
        self._buffers: dict[str, np.ndarray] = {}

    def _check(self, what: str) -> None:
        error = self.device.get_error()
        if error:
            raise DenoiserError(f"OIDN {what} failed: {error}")

    def __call__(self, color: np.ndarray, albedo: np.ndarray | None = None,
                 normal: np.ndarray | None = None) -> np.ndarray:
        """Denoised copy of `color`.

        Args:
            color: (H, W, 3) linear, noisy colour (values above 1 allowed).
            albedo: (H, W, 3) albedo in [0, 1] of the same render, or None.
            normal: (H, W, 3) normals in [-1, 1] of the same render, or None.
        Returns:
            (H, W, 3) float32 denoised colour (negative values clipped to 0).
        """
        shape = color.shape
        if color.ndim != 3 or shape[2] != 3:
            raise ValueError(f"denoise expects (H, W, 3) colour, got shape {shape}")
        inputs = {"color": color, "albedo": albedo, "normal": normal}
        for name, image in inputs.items():
            if image is not None and image.shape != shape:
                raise ValueError(f"denoise: {name} has shape {image.shape}, colour has {shape}")
        if normal is not None and albedo is None:
            normal = None  # OIDN takes a normal only together with an albedo
        layout = (shape, albedo is not None, normal is not None)
        if layout != self._bound:  # (re)bind buffers only when the frame layout changes
            self._buffers = {"color": np.zeros(shape, np.float32), "output": np.zeros(shape, np.float32)}
            if albedo is not None:
                self._buffers["albedo"] = np.zeros(shape, np.float32)
            if normal is not None:
                self._buffers["normal"] = np.zeros(shape, np.float32)
            for name in ("albedo", "normal"):
                if name not in self._buffers:
                    self.filter.unset_image(name)
            for name, buffer in self._buffers.items():
                self.filter.set_image(name, buffer, self._oidn.OIDN_FORMAT_FLOAT3)
            self._bound = layout
        self._buffers["color"][...] = np.maximum(color, 0.0)
        if albedo is not None:
            self._buffers["albedo"][...] = np.clip(albedo, 0.0, 1.0)
        if normal is not None:
            self._buffers["normal"][...] = np.clip(normal, -1.0, 1.0)
        self.filter.commit()
        self.filter.execute()
        self._check("filtering")
        return np.maximum(self._buffers["output"], 0.0).copy()

    def close(self) -> None:
        self.filter.release()
        self.device.release()


@functools.lru_cache(maxsize=4)
def shared_denoiser(threads: int = 0, quality: str = "high") -> Denoiser:
    """The process's denoiser for a thread count and quality, made on first use and then reused."""
    logger.debug("creating an OIDN denoiser (threads=%d, quality=%s)", threads, quality)
    return Denoiser(threads, quality)


def denoise(rgb: np.ndarray, albedo: np.ndarray | None = None, normal: np.ndarray | None = None,
            threads: int = 0, quality: str = "high") -> np.ndarray:
    """Denoises one frame with the process's shared OIDN filter (see `Denoiser.__call__` for shapes)."""
    return shared_denoiser(threads, quality)(rgb, albedo, normal)
