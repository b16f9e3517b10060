"""Turns what Blender writes into the project's view files: the canonical view EXR (docs/formats.md §1) and PNG.

Blender's own file carries render dates and timings in its header and names its passes differently in
each version; the canonical file has fixed channel names and no timestamps, so the same render gives the
same bytes on every run.
"""

import struct
from pathlib import Path

import numpy as np

from render import exr

#: Cycles writes this depth (and larger) where a ray hit nothing.
NO_HIT_DEPTH = 1e9
_COMPONENTS = "RGBAXYZ"


def read_blender_exr(path: Path, pass_names: dict[str, tuple[str, ...]]) -> dict[str, np.ndarray]:
    """Reads every part of a Blender multilayer EXR into canonical passes.

    Args:
        path: the EXR Blender wrote.
        pass_names: canonical pass -> Blender pass names (render.compat.PASS_NAMES).
    Returns:
        Canonical pass name -> float32 array, (H, W) or (H, W, C): "combined" (4), "depth", "instance",
        "semantic", "normal" (3) and "albedo" (3) where present.
    """
    channels = exr.read_exr(path)
    wanted = {alias: canonical for canonical, aliases in pass_names.items() for alias in aliases}
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for name, pixels in channels.items():
        # "<view layer>.<pass>.<component>"; view layer and pass names may contain spaces but not dots
        parts = name.split(".")
        if len(parts) < 3:
            continue
        canonical = wanted.get(parts[-2])
        if canonical is not None:
            grouped.setdefault(canonical, {})[parts[-1]] = pixels
    out: dict[str, np.ndarray] = {}
    for canonical, comps in grouped.items():
        if len(comps) == 1:
            out[canonical] = next(iter(comps.values())).astype(np.float32)
        else:
            order = sorted(comps, key=_COMPONENTS.find)
            out[canonical] = np.stack([comps[c] for c in order], axis=-1).astype(np.float32)
    return out


def canonical_channels(passes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical channel dict from Blender's passes (the output of `read_blender_exr`)."""
    missing = {"combined", "depth", "instance", "semantic", "normal"} - set(passes)
    if missing:
        raise RuntimeError(f"Blender's EXR lacks the passes {sorted(missing)}; were they enabled on the view layer?")
    combined = passes["combined"]
    color = combined[..., :3]
    depth = passes["depth"].copy()
    hit = depth < NO_HIT_DEPTH
    depth[~hit] = np.inf
    # the normal pass is filtered like colour: edge pixels average in the background's zero, so renormalise
    normal = passes["normal"]
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    normal = np.where(hit[..., None] & (length > 1e-6), normal / np.maximum(length, 1e-6), 0.0).astype(np.float32)
    return {
        "R": color[..., 0], "G": color[..., 1], "B": color[..., 2], "A": combined[..., 3],
        "depth": depth,
        "instance": np.where(hit, np.rint(passes["instance"]), 0).astype(np.uint32),
        "semantic": np.where(hit, np.rint(passes["semantic"]), 0).astype(np.uint32),
        "normal.X": normal[..., 0], "normal.Y": normal[..., 1], "normal.Z": normal[..., 2],
        **_albedo(passes, hit),
    }


def _albedo(passes: dict[str, np.ndarray], hit: np.ndarray) -> dict[str, np.ndarray]:
    """`albedo.R/G/B` when Blender wrote the Diffuse Color pass (rendering.albedo_pass), else nothing, so views
    rendered without it keep their channels and bytes. Linear, like the colour; 0 where nothing was hit."""
    if "albedo" not in passes:
        return {}
    albedo = np.where(hit[..., None], passes["albedo"][..., :3], 0.0).astype(np.float32)
    return {"albedo.R": albedo[..., 0], "albedo.G": albedo[..., 1], "albedo.B": albedo[..., 2]}


def write_canonical_exr(path: Path, channels: dict[str, np.ndarray]) -> None:
    """Writes one-part, ZIP-compressed EXR with exactly `channels` and no other metadata."""
    exr.write_exr(path, {name: a.astype(np.uint32 if a.dtype == np.uint32 else np.float32, copy=False)
                         for name, a in channels.items()}, compression="zip")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: chunks that carry text and time: Cycles stores each frame's render time in tEXt, which stamps can't turn off
_PNG_DROPPED = {b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def write_png_without_text(src: Path, dst: Path) -> None:
    """Copies the PNG Blender wrote to `dst` without its text and time chunks, so equal pixels give equal bytes.

    Raises:
        ValueError: `src` is not a PNG.
    """
    data = Path(src).read_bytes()
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError(f"{src} is not a PNG file")
    kept, pos = [_PNG_SIGNATURE], len(_PNG_SIGNATURE)
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        end = pos + 12 + length  # length, type, data, CRC
        if data[pos + 4:pos + 8] not in _PNG_DROPPED:
            kept.append(data[pos:end])
        pos = end
    Path(dst).write_bytes(b"".join(kept))
