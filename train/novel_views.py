"""`python -m train render`: novel views of one held-out scene along a ring of cameras, as a PNG grid and a GIF.

The ring runs around the scene centre (the point nearest to all context cameras' viewing rays) at the context
cameras' mean height and mean horizontal distance, every camera looking at the centre. The PNG shows, row by
row: the context views; the scene's other views (ground truth); the model's headline prediction at those
viewpoints; and frames along the ring. The GIF loops over the ring.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import gin
import numpy as np
import torch
from core import publish
from core.camera import on_sphere
from PIL import Image, ImageDraw

from train.evaluation import load_trained_model

logger = logging.getLogger(__name__)


def viewpoint(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """GQN viewpoint [x, y, z, sin yaw, cos yaw, sin pitch, cos pitch] of a camera at `position` looking at `target`."""
    d = target - position
    d = d / np.linalg.norm(d)
    yaw, pitch = math.atan2(d[1], d[0]), math.asin(float(np.clip(d[2], -1, 1)))
    return np.array([*position, math.sin(yaw), math.cos(yaw), math.sin(pitch), math.cos(pitch)], np.float32)


def scene_centre(viewpoints: np.ndarray) -> np.ndarray:
    """Least-squares point nearest to the viewing rays of (N, 7) viewpoints; the origin if they are parallel."""
    a, b = np.zeros((3, 3)), np.zeros(3)
    for v in viewpoints.astype(np.float64):
        p = v[:3]
        d = np.array([v[4] * v[6], v[3] * v[6], v[5]])  # (cos yaw cos pitch, sin yaw cos pitch, sin pitch)
        proj = np.eye(3) - np.outer(d, d)
        a += proj
        b += proj @ p
    if len(viewpoints) < 2 or np.linalg.cond(a) > 1e6:
        logger.info("context rays do not meet (fewer than 2 views or parallel); ring centred on the origin")
        return np.zeros(3)
    return np.linalg.solve(a, b)


def ring_path(context_viewpoints: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames, 7) viewpoints on a ring around the scene centre at the context cameras' height and radius,
    starting at the first context camera's azimuth."""
    centre = scene_centre(context_viewpoints)
    offsets = context_viewpoints[:, :3].astype(np.float64) - centre
    radius = float(np.mean(np.linalg.norm(offsets[:, :2], axis=1))) or 1.0
    height = float(np.mean(context_viewpoints[:, 2]))
    start = math.atan2(offsets[0, 1], offsets[0, 0])
    frames = []
    for i in range(num_frames):
        a = start + 2 * math.pi * i / num_frames
        pos = on_sphere(np.array([centre[0], centre[1], height]), radius, a, 0.0)
        frames.append(viewpoint(pos, centre))
    return np.stack(frames)


def _tiles(images: np.ndarray, tile: int) -> list[Image.Image]:
    """(N, H, W, 3) float in [0, 1] -> PIL tiles scaled (nearest) to `tile` px."""
    out = []
    for im in images:
        pil = Image.fromarray(np.clip(np.round(im * 255), 0, 255).astype(np.uint8))
        out.append(pil.resize((tile, tile), Image.Resampling.NEAREST))
    return out


def labelled_grid(rows: list[tuple[str, np.ndarray]], tile: int = 96, pad: int = 4, label_width: int = 110) -> Image.Image:
    """A white sheet with one labelled row per (label, images (N, H, W, 3) in [0, 1])."""
    cols = max(len(im) for _, im in rows)
    width = label_width + cols * (tile + pad) + pad
    height = len(rows) * (tile + pad) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows):
        y = pad + r * (tile + pad)
        draw.text((pad, y + tile // 2 - 6), label, fill="black")
        for c, t in enumerate(_tiles(images, tile)):
            sheet.paste(t, (label_width + pad + c * (tile + pad), y))
    return sheet


def _predict(model: torch.nn.Module, ctx_images: torch.Tensor, ctx_views: torch.Tensor, query_views: np.ndarray,
             mode: str, seed: int, chunk: int = 16) -> np.ndarray:
    """Predictions for each query viewpoint from one scene's context: (N, H, W, 3) float in [0, 1]."""
    dev = next(model.parameters()).device
    outs = []
    for s in range(0, len(query_views), chunk):
        q = torch.from_numpy(np.asarray(query_views[s : s + chunk], np.float32)).to(dev)
        n = len(q)
        batch = {
            "context_images": ctx_images[None].expand(n, -1, -1, -1, -1).to(dev),
            "context_viewpoints": ctx_views[None].expand(n, -1, -1).to(dev),
            "query_viewpoint": q,
            "noise_seed": torch.arange(seed + s, seed + s + n, dtype=torch.int64),
        }
        outs.append(model.predict(batch, mode).cpu().permute(0, 2, 3, 1).numpy())
    return np.concatenate(outs)


def save_image_atomic(image: Image.Image, path: Path, **kwargs: object) -> None:
    """Writes a PIL image to `path` through a temporary file, so a crash never leaves half a picture."""
    with publish.Staged(path) as staged:
        image.save(staged.path, format=path.suffix.lstrip(".").upper(), **kwargs)


def save_captioned_gif(frames_np: np.ndarray, captions: list[str], tile: int, path: Path) -> None:
    """A GIF of (N, H, W, 3) float [0, 1] frames, each shown at `tile` pixels with its caption underneath."""
    frames = []
    for im, caption in zip(_tiles(frames_np, tile), captions, strict=True):
        frame = Image.new("RGB", (tile, tile + 16), "white")
        frame.paste(im, (0, 0))
        ImageDraw.Draw(frame).text((4, tile + 2), caption, fill="black")
        frames.append(frame)
    save_gif(frames, path)


def save_gif(frames: list[Image.Image], path: Path, duration_ms: int = 120) -> None:
    """Write frames as a looping GIF through a temporary file."""
    with publish.Staged(path) as staged:
        frames[0].save(staged.path, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms,
                       loop=0)


@gin.configurable(denylist=["run_dir", "data_dir"])
def render_views(
    run_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    split: str = "test",
    scene: int = 0,
    n_context: int = 0,
    num_frames: int = 24,
    tile: int = 96,
    seed: int = 1234,
    out_dir: str | None = None,
    checkpoint: str | None = None,
    device: str = "auto",
    rotate: bool = False,
    azimuth: float = 0.0,
    elevation: float = 30.0,
    light_azimuth: float = 45.0,
    light_elevation: float = 45.0,
    radius: float = 3.3,
) -> dict[str, str]:
    """Render with a trained run, as its family does; write `scene_XXXX.png` / `.gif` (or `rotate_XXXX.gif`).

    GQN: one scene's context views, its other views with predictions and a ring of novel views (PNG grid + GIF).
    ENR: the scene turning 360 degrees in azimuth from one source image (view `seed`-free: the scene's view 0,
    or the ENR test protocol's view 64 when the scene has more than 64 views), GIF and a PNG strip.
    RenderNet (`rotate`): the scene's voxels turned 360 degrees from `azimuth` at `elevation`, camera at
    `radius`, lit from (`light_azimuth`, `light_elevation`), as a GIF (the original demo's flags).

    Args:
        run_dir: the run folder.
        data_dir: dataset folder with `scenes_{split}.h5`.
        split: split to take the scene from.
        scene: row of the scene in that split.
        n_context: GQN: context views (0 = the most the run trained with); the rest are shown as ground truth.
        num_frames: frames of the turn (GIF length; the PNG shows up to 8 of them).
        tile: size in pixels of each picture in the PNG (nearest-neighbour upscaling).
        seed: GQN: seed of which views are context.
        out_dir: output folder (default `RUN/render`).
        checkpoint: checkpoint file (default the run's newest).
        device: "auto", "cpu" or "cuda".
        rotate: RenderNet/ENR: turn the object 360 degrees into a GIF (GQN refuses it: its ring already turns).
        azimuth, elevation: RenderNet: start azimuth and elevation of the camera, degrees.
        light_azimuth, light_elevation: RenderNet: direction towards the light, degrees (world frame).
        radius: RenderNet: camera distance in metres (the original's default 3.3).
    Returns:
        {"png": path, "gif": path} (RenderNet: {"gif": path, "png": path}).
    """
    from train.families import RenderOptions, family_for  # the families import this module's helpers

    model, state, _ = load_trained_model(run_dir, checkpoint, device)
    options = RenderOptions(split=split, scene=scene, n_context=n_context, num_frames=num_frames, tile=tile,
                            seed=seed, out_dir=Path(out_dir) if out_dir else Path(run_dir) / "render", rotate=rotate,
                            azimuth=azimuth, elevation=elevation, light_azimuth=light_azimuth,
                            light_elevation=light_elevation, radius=radius)
    with torch.no_grad():
        written = family_for(state["model_name"]).render(model, state, Path(data_dir), options)
    logger.info("wrote %s", written)
    return written
