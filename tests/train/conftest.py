"""Shared fixtures for trainer tests: tiny toy scene-major datasets, a tiny GQN gin config, isolated roots."""

from __future__ import annotations

import importlib
from pathlib import Path

import gin
import pytest
import torch

from train.toydata import make_object_dataset, make_scene_file, make_toy_dataset

#: A GQN small enough for a few dozen CPU steps in seconds (16 px images from 32 px files).
TINY_GIN = """
IMAGE_SIZE = 16
SceneDataset.image_size = %IMAGE_SIZE
GQN.image_size = %IMAGE_SIZE
GQN.r_channels = 16
GQN.h_channels = 16
GQN.z_channels = 2
GQN.canvas_channels = 16
GQN.steps = 2
GQN.sigma_initial = 0.7
GQN.sigma_final = 0.7
GQN.sigma_anneal_steps = 0
make_optimizer.lr_initial = 3e-3
make_optimizer.lr_final = 3e-3
fit.batch_size = 4
fit.min_context = 1
fit.max_context = 3
fit.log_every = 1
fit.image_every = 0
fit.checkpoint_every = 4
fit.progress = False
fit.device = 'cpu'
"""


#: An ENR small enough for a few hundred CPU steps in ~20 s (16 px images, an 8-channel 8^3 scene tensor).
TINY_ENR_GIN = """
fit.model_name = 'enr'
ENR.image_size = 16
ENR.stages = 1
ENR.scene_channels = 8
ENR.channels_2d = 32
ENR.channels_3d = 8
ENR.ssim_window = 7
make_optimizer.lr_initial = 2e-3
make_optimizer.lr_final = 2e-3
fit.batch_size = 8
fit.log_every = 1
fit.image_every = 0
fit.checkpoint_every = 0
fit.progress = False
fit.device = 'cpu'
"""


#: A RenderNet small enough for a few hundred CPU steps in ~20 s (16 px images, 16^3 voxels and posed grid).
TINY_RENDERNET_GIN = """
fit.model_name = 'rendernet'
RenderNet.image_size = 16
RenderNet.voxel_size = 16
RenderNet.grid_size = 16
RenderNet.fov_deg = 15.0
RenderNet.channels_3d = 8
RenderNet.stages_3d = 1
RenderNet.projection_channels = 64
RenderNet.channels_2d = 32
RenderNet.blocks = 1
make_optimizer.lr_initial = 2e-3
make_optimizer.lr_final = 2e-3
fit.batch_size = 8
fit.log_every = 1
fit.image_every = 0
fit.checkpoint_every = 0
fit.progress = False
fit.device = 'cpu'
"""


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread for the whole session, module-scoped training fixtures included (they are set up before
    any function-scoped fixture): 2 threads on 2 cores busy with other work ran one fixture 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # `--threads 0` (the CLI default) would sample idle cores for 0.3 s at each of ~100 in-process main() calls
    # and could pick 2 threads; tests/train/test_threads.py tests that choice itself.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("train.threads.free_cores", lambda seconds=0.0: 1.0)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point every project root at a temporary folder and start each test with an empty gin config."""
    for name in ("DATA_DIR", "ASSET_DIR", "CONFIG_DIR", "CACHE_DIR", "RUNS_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "roots" / name.lower()))
    import paths

    importlib.reload(paths)
    monkeypatch.setenv("CONFIG_DIR", str(Path(paths.REPO_DIR) / "config"))
    importlib.reload(paths)
    gin.clear_config()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 threads on 2 busy shared cores run ~20x slower (OpenMP spinning)
    yield
    torch.set_num_threads(threads)
    gin.clear_config()


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Toy dataset: 12 train, 4 val, 4 test scenes of 5 views at 32 px."""
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), num_train=12, num_val=4, num_test=4, num_views=5, size=32)


@pytest.fixture()
def tiny_gin(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gin"
    path.write_text(TINY_GIN)
    return path


@pytest.fixture()
def scene_file(tmp_path: Path) -> Path:
    return make_scene_file(tmp_path / "scenes_train.h5", num_scenes=3, num_views=4, size=16, seed=7)


@pytest.fixture(scope="session")
def enr_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Posed toy objects at 16 px lit once per scene (as ENR's sets): 4 train scenes of 20 views, 1 val and 1
    test scene of 251 spiral views."""
    return make_object_dataset(tmp_path_factory.mktemp("enr_objects"), num_train=4, num_val=1, num_test=1,
                               num_views=20, test_views=251, size=16, voxel_size=16)


@pytest.fixture(scope="session")
def object_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Posed toy objects at 16 px as RenderNet's sets (a light per view, 15-degree field of view so that objects
    fill the small images): 6 train scenes of 20 views, 1 val and 1 test scene of 20 spiral views."""
    return make_object_dataset(tmp_path_factory.mktemp("objects"), num_train=6, num_val=1, num_test=1, num_views=20,
                               test_views=20, size=16, light_per_view=True, voxel_size=16, fov_deg=15.0)


@pytest.fixture()
def tiny_rendernet_gin(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_rendernet.gin"
    path.write_text(TINY_RENDERNET_GIN)
    return path


@pytest.fixture()
def tiny_enr_gin(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_enr.gin"
    path.write_text(TINY_ENR_GIN)
    return path
