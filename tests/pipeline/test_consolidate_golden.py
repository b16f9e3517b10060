"""Same bytes: consolidating fixed raw datasets gives the HDF5 datasets and attributes the committed digests
record (tests/data/consolidate_golden.json, made by the code before issue 12), apart from what issue 12 changes on
purpose. The fixture datasets now declare their layout and the two real renders do not (their layout is
inferred), so both ways of reading a layout are held to the old output."""

from __future__ import annotations

import json

from tests.pipeline.consolidate_golden import GOLDEN, outputs

#: Datasets issue 12 adds: world normals of scene files, the lossless depth PNG and each row's split of buckets.
ADDED_DATASETS = {"normal", "png_depth", "split"}
#: Datasets whose content changed on purpose: the seed's 8-bit target PNG replaces the 16-bit one.
CHANGED_DATASETS = {"png_targets"}
#: Attributes added (the datasets present, the split rule) or changed (format 1 -> 2 of §2/§3 files).
ADDED_ATTRS = {"fields", "split_rule"}
CHANGED_ATTRS = {"format_version"}


def test_outputs_match_golden_digests(tmp_path):
    golden = json.loads(GOLDEN.read_text())
    now = outputs(tmp_path)
    assert sorted(now) == sorted(golden)
    for name, want in golden.items():
        got = now[name]
        assert set(got["datasets"]) - set(want["datasets"]) <= ADDED_DATASETS, name
        assert set(want["datasets"]) <= set(got["datasets"]), name
        for ds, digest in want["datasets"].items():
            if ds not in CHANGED_DATASETS:
                assert got["datasets"][ds] == digest, (name, ds)
        assert set(got["attrs"]) - set(want["attrs"]) <= ADDED_ATTRS, name
        for attr, value in want["attrs"].items():
            if attr not in CHANGED_ATTRS:
                assert got["attrs"][attr] == value, (name, attr)
        if name.endswith("/data_8.h5"):  # §4 is unchanged: ids and depth now come from png_targets + png_depth
            assert got["attrs"]["format_version"] == want["attrs"]["format_version"] == 1
        else:
            assert got["attrs"]["format_version"] == 2
    # The changes are really there: normals in every EXR scene file, png_depth in every EXR bucket.
    assert all("normal" in now[n]["datasets"] for n in now if "/scenes_" in n)
    assert all("png_depth" in now[n]["datasets"] for n in now if "/imgs_" in n and not n.startswith("fixture_png"))
