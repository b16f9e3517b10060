"""OFF meshes of every header variant core.off_mesh reads (OFF, COFF, NOFF) render through render.py."""

import numpy as np
import pytest

from tests.render.helpers import TINY, load_sample, run_render, sample_dirs

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

_CUBE = [(x, y, z) for x in (0, 2) for y in (0, 2) for z in (0, 2)]  # 2 m cube, normalised to 1 m on import
_FACES = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]


def _off(header: str, extra: str) -> str:
    """A cube in OFF text; `extra` is appended to every vertex line (colour or normal)."""
    lines = [header, "# a comment", f"{len(_CUBE)} {len(_FACES)} 0"]
    lines += [f"{x} {y} {z} {extra}".strip() for x, y, z in _CUBE]
    lines += [f"4 {' '.join(map(str, f))}" for f in _FACES]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("header, extra", [("OFF", ""), ("COFF", "0.8 0.2 0.1 1.0"), ("NOFF", "0.0 0.0 1.0")])
def test_off_variant_renders_as_the_cube_it_describes(tmp_path, header, extra):
    mesh = tmp_path / f"cube_{header.lower()}.off"
    mesh.write_text(_off(header, extra))
    run_render(tmp_path, "off", *TINY, "-p", f"selfstudy_scene.mesh_override = '{mesh}'", "--count", "1")
    (sample,) = sample_dirs(tmp_path / "off")
    sidecar, (view,) = load_sample(sample)
    (obj,) = sidecar["objects"]
    assert obj["source"] == str(mesh)
    assert np.allclose(obj["bbox"], [[-0.5] * 3, [0.5] * 3])  # normalised: largest side 1, centred
    hit = view["instance"] == obj["instance_id"]
    assert 0.05 < hit.mean() < 0.9  # the cube is in view and does not fill it
