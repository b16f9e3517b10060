"""GQN building blocks, loss facts, and a tiny GQN overfitting a tiny dataset."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from train.cli import parse_gin
from train.losses import gaussian_nll, kl_normal, linear_anneal, nll_floor
from train.models import build_model, model_names
from train.models.blocks import ConvLSTMCell, TowerRepresentation, Upsampler
from train.models.gqn import item_noise
from train.toydata import make_toy_dataset
from train.trainer import fit


def _batch(b: int = 3, k: int = 2, size: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "context_images": torch.rand(b, k, 3, size, size, generator=g),
        "context_viewpoints": torch.randn(b, k, 7, generator=g),
        "query_image": torch.rand(b, 3, size, size, generator=g),
        "query_viewpoint": torch.randn(b, 7, generator=g),
        "noise_seed": torch.arange(b, dtype=torch.int64),
    }


@pytest.mark.parametrize("pool", [False, True])
def test_blocks_report_their_output_shape(pool: bool):
    tower = TowerRepresentation((3, 16, 16), 7, 12, pool=pool)
    out = tower(torch.rand(2, 3, 16, 16), torch.rand(2, 7))
    assert tuple(out.shape[1:]) == tower.output_shape == ((12, 1, 1) if pool else (12, 4, 4))
    cell = ConvLSTMCell((5, 4, 4), 6, 3)
    h, c = cell(torch.rand(2, 5, 4, 4), cell.initial_state(2, torch.zeros(1)))
    assert tuple(h.shape[1:]) == tuple(c.shape[1:]) == cell.output_shape == (6, 4, 4)
    for mode in ("bilinear", "pixel_shuffle", "transposed"):
        up = Upsampler((6, 4, 4), 3, 4, mode=mode)
        assert tuple(up(torch.rand(2, 6, 4, 4)).shape[1:]) == up.output_shape == (3, 16, 16)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in Upsampler((6, 4, 4), 3, 4).modules())
    with pytest.raises(ValueError, match="unknown upsampling mode 'nearest'"):
        Upsampler((6, 4, 4), 3, 4, mode="nearest")


def test_nll_floor_at_sigma_07_is_6909_nats():
    target = torch.rand(2, 3, 64, 64)
    nll = gaussian_nll(target, target.clone(), 0.7)
    assert nll.shape == (2,)
    assert nll[0].item() == pytest.approx(nll_floor(64 * 64 * 3, 0.7), rel=1e-6)
    assert nll_floor(64 * 64 * 3, 0.7) == pytest.approx(6909.2, abs=0.5)


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mq, lq, mp, lp = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(4))
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mq, (0.5 * lq).exp()), torch.distributions.Normal(mp, (0.5 * lp).exp())
    ).flatten(1).sum(1)
    torch.testing.assert_close(kl_normal(mq, lq, mp, lp), ref, rtol=1e-5, atol=1e-5)
    assert kl_normal(mq, lq, mq, lq).abs().max() < 1e-5


def test_paper_annealing_schedule():
    assert linear_anneal(0, 2.0, 0.7, 200_000) == 2.0
    assert linear_anneal(100_000, 2.0, 0.7, 200_000) == pytest.approx(1.35)
    assert linear_anneal(10**7, 2.0, 0.7, 200_000) == 0.7


def test_noise_depends_only_on_item_seed():
    a = item_noise(torch.tensor([5, 9]), (2, 3), torch.device("cpu"))
    b = item_noise(torch.tensor([9]), (2, 3), torch.device("cpu"))
    torch.testing.assert_close(a[1], b[0], rtol=0, atol=0)


def test_gqn_interface_and_modes():
    assert "gqn" in model_names()
    model = build_model("gqn", image_size=16, r_channels=8, h_channels=8, z_channels=2, canvas_channels=8, steps=2,
                        representation="pool")
    batch = _batch()
    out = model(batch)
    assert set(out["losses"]) == {"nll", "kl"} and out["prediction"].shape == (3, 3, 16, 16)
    assert out["losses"]["kl"].item() >= 0
    model.set_step(0)
    assert model.schedule_state()["pixel_sigma"] == 2.0
    for mode in model.predict_modes:
        pred = model.predict(batch, mode)
        assert pred.shape == (3, 3, 16, 16) and 0 <= pred.min() and pred.max() <= 1
    torch.testing.assert_close(model.predict(batch, "prior_sample"), model.predict(batch, "prior_sample"))
    with pytest.raises(ValueError, match="unknown model 'nerf'"):
        build_model("nerf")


def test_tiny_gqn_overfits_tiny_dataset(tmp_path: Path, tiny_gin: Path):
    """100 steps on 2 toy scenes (5 views each): reconstruction MSE falls >= 3x, loss above its floor >= 2.5x.

    Measured: MSE ~0.050 over the first 5 steps -> ~0.014 over the last 10; loss - floor ~40 -> ~11 nats.
    """
    data = make_toy_dataset(tmp_path / "two", num_train=2, num_val=0, num_test=0, num_views=5, size=32)
    parse_gin([tiny_gin], ["fit.max_steps = 100", "fit.checkpoint_every = 0", "make_optimizer.lr_initial = 5e-3",
                           "make_optimizer.lr_final = 5e-3"])
    hist = fit(data, tmp_path / "run")["history"]
    assert [h["step"] for h in hist] == list(range(1, 101))
    floor = nll_floor(3 * 16 * 16, 0.7)
    first_mse = sum(h["mse"] for h in hist[:5]) / 5
    last_mse = sum(h["mse"] for h in hist[-10:]) / 10
    first_excess = sum(h["loss"] - floor for h in hist[:5]) / 5
    last_excess = sum(h["loss"] - floor for h in hist[-10:]) / 10
    assert last_mse < first_mse / 3, (first_mse, last_mse)
    assert last_excess < first_excess / 2.5, (first_excess, last_excess)
    assert all(math.isfinite(h["loss"]) for h in hist)
