"""Bad input: one clear message naming the problem, a non-zero exit, and nothing half-written."""

import json

import pytest

from tests.render.helpers import TINY, run_render

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


def test_unknown_gin_binding_names_the_binding(tmp_path):
    proc = run_render(tmp_path, "typo", *TINY, "-p", "rendering.resolutoin = 32", check=False)
    assert proc.returncode == 2
    assert "rendering.resolutoin" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "typo").exists()


def test_unknown_gin_file_lists_the_available_ones(tmp_path):
    proc = run_render(tmp_path, "nofile", "-g", "render_singel", check=False)
    assert proc.returncode == 2 and "render_singel" in proc.stderr and "render_single" in proc.stderr


def test_missing_asset_folder_says_how_to_fetch(tmp_path):
    proc = run_render(tmp_path, "noassets", *TINY, "-p", "object.mesh_source = 'sweethome3d'", check=False,
                      env={"CACHE_DIR": str(tmp_path / "empty_cache")})
    assert proc.returncode == 2
    assert "pipeline.assets fetch" in proc.stderr
    assert not (tmp_path / "noassets").exists()


def test_mesh_that_fails_to_import_is_named_and_leaves_no_sample(tmp_path):
    broken = tmp_path / "meshes" / "junk" / "broken.off"
    broken.parent.mkdir(parents=True)
    broken.write_text("OFF\n8 12 0\n0 0 0\n1 0 0\n")  # promises 8 vertices, holds 2
    gin = tmp_path / "broken.gin"
    gin.write_text("include 'render_single.gin'\nobject.mesh_source = 'primitives'\n")
    override = ["-g", str(gin), "-p", f"selfstudy_scene.mesh_override = '{broken}'"]
    proc = run_render(tmp_path, "broken", *TINY, *override, "-p", "batch.bad_mesh = 'fail'", check=False)
    assert proc.returncode != 0
    assert "broken.off" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "broken").exists()
    # by default the sample is published as skipped, naming the mesh, so its neighbours are kept
    proc = run_render(tmp_path, "skipping", *TINY, *override, "--count", "2", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "sample 0 skipped" in proc.stderr and "broken.off" in proc.stderr
    for index in (0, 1):
        folder = tmp_path / "skipping" / "samples" / f"{index:06d}"
        sidecar = json.loads((folder / "sample.json").read_text())
        assert sidecar["views"] == [] and "broken.off" in sidecar["skipped"]["reason"]
        assert sorted(p.name for p in folder.iterdir()) == ["sample.json"]


def test_a_dataset_folder_made_with_another_config_is_refused(tmp_path):
    run_render(tmp_path, "ds", *TINY, "--count", "1")
    proc = run_render(tmp_path, "ds", *TINY, "-p", "lighting.r = 1.0", "--count", "1", check=False)
    assert proc.returncode != 0 and "made differently (config_hash " in proc.stderr
    assert sorted(p.name for p in (tmp_path / "ds" / "samples").iterdir()) == ["000000"]


@pytest.mark.parametrize("args, message", [
    (["--count", "0"], "--count must be >= 1, got 0 (nothing to render)"),
    (["-p", "batch.num_samples = -2"], "batch.num_samples must be >= 1, got -2"),
    (["-p", "rendering.resolution = 'big'"], "rendering.resolution = 'big' has type str; it must be int"),
    (["-p", "rendering.render_exr = 'yes'"], "rendering.render_exr = 'yes' has type str; it must be bool"),
    (["-p", "batch.bad_mesh = 'ignore'"], "batch.bad_mesh = 'ignore'; use 'skip', 'redraw' or 'fail'"),
    (["-d", "../escaped"], "must be a plain name inside DATA_DIR"),
])
def test_bad_values_are_refused_in_one_line_naming_what_was_given(tmp_path, args, message):
    name, args = (args[1], []) if args[0] == "-d" else ("bad", args)
    proc = run_render(tmp_path, name, *TINY, *args, check=False)
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "escaped").exists()
