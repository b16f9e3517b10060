"""render/denoise.py: the OIDN filter kept alive across frames removes noise and keeps edges the albedo shows."""

import numpy as np
import pytest

from render import denoise

pytest.importorskip("pyoidn")


def _scene(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A clean two-colour image with a sharp vertical edge, its noisy version, albedo and normals."""
    clean = np.zeros((size, size, 3), np.float32)
    clean[:, : size // 2] = (0.8, 0.3, 0.2)
    clean[:, size // 2:] = (0.1, 0.4, 0.7)
    noisy = (clean * rng.exponential(1.0, size=clean.shape)).astype(np.float32)  # 1-sample-like noise, unbiased
    normal = np.zeros_like(clean)
    normal[..., 2] = 1.0
    return clean, noisy, clean.copy(), normal


@pytest.mark.parametrize("quality", ["high", "fast"])
def test_denoising_brings_a_noisy_frame_close_to_the_clean_one(quality):
    clean, noisy, albedo, normal = _scene(np.random.default_rng(0))
    out = denoise.denoise(noisy, albedo, normal, threads=1, quality=quality)
    assert out.shape == clean.shape and out.dtype == np.float32
    before, after = np.mean((noisy - clean) ** 2), np.mean((out - clean) ** 2)
    assert after < 0.05 * before
    assert np.abs(out[:, 31] - clean[:, 31]).mean() < 0.2 and np.abs(out[:, 32] - clean[:, 32]).mean() < 0.2


def test_the_filter_is_reused_across_frames_and_sizes():
    rng = np.random.default_rng(1)
    first = denoise.shared_denoiser(1, "fast")
    for size in (16, 32, 16):
        clean, noisy, albedo, normal = _scene(rng, size)
        out = denoise.denoise(noisy, albedo, normal, threads=1, quality="fast")
        assert out.shape == (size, size, 3)
        assert np.mean((out - clean) ** 2) < np.mean((noisy - clean) ** 2)
    assert denoise.shared_denoiser(1, "fast") is first
    clean, noisy, _, _ = _scene(rng, 16)  # colour only works too
    assert np.mean((denoise.denoise(noisy, threads=1) - clean) ** 2) < np.mean((noisy - clean) ** 2)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="albedo has shape"):
        denoise.denoise(np.zeros((8, 8, 3), np.float32), np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        denoise.denoise(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="quality"):
        denoise.Denoiser(1, "best")
