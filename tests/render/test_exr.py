"""The Blender-side EXR codec round-trips, and other EXR readers agree with it."""

import numpy as np
import OpenEXR
import pytest

from render import exr


def _channels(h=37, w=23):
    rng = np.random.default_rng(1)
    return {
        "R": rng.random((h, w), dtype=np.float32),
        "depth": np.where(rng.random((h, w)) > 0.3, rng.random((h, w)) * 50, np.inf).astype(np.float32),
        "instance": rng.integers(0, 9, (h, w)).astype(np.uint32),
        "half": rng.random((h, w)).astype(np.float16),
    }


@pytest.mark.parametrize("compression", ["none", "zips", "zip"])
def test_round_trip_is_exact_and_readable_by_openexr(tmp_path, compression):
    channels = _channels()
    path = tmp_path / "a.exr"
    exr.write_exr(path, channels, compression=compression)
    back = exr.read_exr(path)
    assert sorted(back) == sorted(channels)
    for name, a in channels.items():
        assert back[name].dtype == a.dtype and np.array_equal(back[name], a)
    with OpenEXR.File(str(path), separate_channels=True) as f:
        for name, a in channels.items():
            assert np.array_equal(f.channels()[name].pixels, a)


def test_openexr_files_are_read_and_equal_pixels_give_equal_bytes(tmp_path):
    channels = _channels(16, 40)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, dict(channels)) as f:  # the library replaces the dict values
        f.write(str(tmp_path / "lib.exr"))
    back = exr.read_exr(tmp_path / "lib.exr")
    assert all(np.array_equal(back[k], v) for k, v in channels.items())
    exr.write_exr(tmp_path / "x.exr", channels)
    exr.write_exr(tmp_path / "y.exr", channels)
    assert (tmp_path / "x.exr").read_bytes() == (tmp_path / "y.exr").read_bytes()


def test_corrupt_files_fail_with_the_file_name(tmp_path):
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"not an exr at all")
    with pytest.raises(exr.ExrError, match="bad.exr"):
        exr.read_exr(bad)
    exr.write_exr(tmp_path / "cut.exr", _channels())
    data = (tmp_path / "cut.exr").read_bytes()
    (tmp_path / "cut.exr").write_bytes(data[: len(data) // 2])
    with pytest.raises(exr.ExrError, match="cut.exr"):
        exr.read_exr(tmp_path / "cut.exr")
