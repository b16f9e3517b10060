"""A stock Blender binary (Debian's 3.4 in CI) renders the same sample as the bpy wheel."""

import json
import shutil

import numpy as np
import pytest

from tests.render.helpers import TINY, load_sample, run_render, sample_dirs

pytestmark = [pytest.mark.blender, pytest.mark.stock_blender]
BLENDER = shutil.which("blender")


@pytest.mark.skipif(BLENDER is None, reason="no stock `blender` on PATH (`make stock-blender` installs Debian's)")
def test_stock_blender_renders_the_same_sample_as_the_wheel(tmp_path):
    args = ["-g", "render_multi", *TINY, "--count", "2"]
    run_render(tmp_path / "wheel", "ds", *args)
    run_render(tmp_path / "stock", "ds", *args, blender=BLENDER)
    info = json.loads((tmp_path / "stock" / "ds" / "dataset.json").read_text())
    assert not info["blender_version"].startswith("5.")
    for sw, ss in zip(sample_dirs(tmp_path / "wheel" / "ds"), sample_dirs(tmp_path / "stock" / "ds"), strict=True):
        (cw, (vw,)), (cs, (vs,)) = load_sample(sw), load_sample(ss)
        assert sorted(cw) == sorted(cs)
        assert {k: v for k, v in cw.items() if k != "blender_version"} == {
            k: v for k, v in cs.items() if k != "blender_version"}
        assert sorted(vw) == sorted(vs)
        # same geometry and ids; colour differs only by each Cycles version's sampling noise
        assert (vw["instance"] == vs["instance"]).mean() > 0.97
        assert (vw["semantic"] == vs["semantic"]).mean() > 0.97
        both = np.isfinite(vw["depth"]) & np.isfinite(vs["depth"])
        assert np.abs(vw["depth"][both] - vs["depth"][both]).max() < 1e-3
        rgb_w = np.stack([vw[c] for c in "RGB"], -1)
        rgb_s = np.stack([vs[c] for c in "RGB"], -1)
        assert np.abs(rgb_w - rgb_s).mean() < 0.05


@pytest.mark.skipif(BLENDER is None, reason="no stock `blender` on PATH")
def test_stock_blender_reports_bad_bindings_with_a_nonzero_exit(tmp_path):
    proc = run_render(tmp_path, "bad", "-p", "rendering.resolutoin = 32", blender=BLENDER, check=False)
    assert proc.returncode != 0
    assert "rendering.resolutoin" in proc.stderr + proc.stdout
    assert not (tmp_path / "bad").exists()
