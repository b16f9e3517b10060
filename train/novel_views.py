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
from PIL import Image, ImageDraw

from train.data import SceneDataset, split_path
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
        pos = np.array([centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a), height])
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
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    image.save(tmp, format=path.suffix.lstrip(".").upper(), **kwargs)
    os.replace(tmp, path)


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
) -> dict[str, str]:
    """Render one scene's novel views with a trained run; write `scene_XXXX.png` and `scene_XXXX.gif`.

    Args:
        run_dir: the run folder.
        data_dir: dataset folder with `scenes_{split}.h5`.
        split: split to take the scene from.
        scene: row of the scene in that split.
        n_context: context views (0 = the most the run trained with); the rest are shown as ground truth.
        num_frames: frames on the ring (GIF length; the PNG shows up to 8 of them).
        tile: size in pixels of each picture in the PNG (nearest-neighbour upscaling).
        seed: seed of which views are context.
        out_dir: output folder (default `RUN/render`).
        checkpoint: checkpoint file (default the run's newest).
        device: "auto", "cpu" or "cuda".
    Returns:
        {"png": path, "gif": path}.
    """
    model, state, _ = load_trained_model(run_dir, checkpoint, device)
    mode = model.predict_modes[0]
    dataset = SceneDataset(split_path(data_dir, split), image_size=state["data"]["image_size"])
    if not 0 <= scene < len(dataset):
        raise ValueError(f"scene {scene} out of range: {dataset.path} holds {len(dataset)} scenes")
    images, views = dataset.read_scene(scene)
    k = n_context or min(state["data"]["max_context"], dataset.num_views - 1)
    k = min(k, dataset.num_views - 1)
    order = np.random.default_rng([seed, scene]).permutation(dataset.num_views)
    ctx, rest = order[:k], np.sort(order[k:])[:8]
    ctx_images = torch.from_numpy(np.ascontiguousarray(images[ctx].transpose(0, 3, 1, 2)))
    ctx_views = torch.from_numpy(views[ctx])
    truth_pred = _predict(model, ctx_images, ctx_views, views[rest], mode, seed)
    path = ring_path(views[ctx], num_frames)
    ring = _predict(model, ctx_images, ctx_views, path, mode, seed)
    show = np.linspace(0, num_frames - 1, min(8, num_frames)).round().astype(int)
    grid = labelled_grid([
        ("context views", images[ctx]),
        ("ground truth", images[rest]),
        (f"predicted\n({mode})", truth_pred),
        ("novel views\n(ring path)", ring[show]),
    ], tile=tile)
    folder = Path(out_dir) if out_dir else Path(run_dir) / "render"
    folder.mkdir(parents=True, exist_ok=True)
    png, gif = folder / f"scene_{scene:04d}.png", folder / f"scene_{scene:04d}.gif"
    save_image_atomic(grid, png)
    big = 2 * tile
    ctx_strip = labelled_grid([("context", images[ctx])], tile=tile // 2, label_width=60)
    frames = []
    for i, im in enumerate(_tiles(ring, big)):
        frame = Image.new("RGB", (max(big, ctx_strip.width), big + ctx_strip.height + 16), "white")
        frame.paste(im, ((frame.width - big) // 2, 0))
        ImageDraw.Draw(frame).text((4, big + 2), f"novel view {i + 1}/{num_frames} ({mode})", fill="black")
        frame.paste(ctx_strip, (0, big + 16))
        frames.append(frame)
    tmp = gif.with_name(f".{gif.stem}.tmp-{os.getpid()}.gif")
    frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=120, loop=0)
    os.replace(tmp, gif)
    logger.info("wrote %s and %s", png, gif)
    return {"png": str(png), "gif": str(gif)}
