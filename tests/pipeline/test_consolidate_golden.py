"""Same bytes: consolidating fixed raw datasets gives the HDF5 datasets and attributes the committed digests
record (tests/data/consolidate_golden.json, made by the code before issue 12), apart from the changes listed
here on purpose."""

from __future__ import annotations

import json

from tests.pipeline.consolidate_golden import GOLDEN, outputs


def test_outputs_match_golden_digests(tmp_path):
    golden = json.loads(GOLDEN.read_text())
    now = outputs(tmp_path)
    assert sorted(now) == sorted(golden)
    for name, want in golden.items():
        assert now[name] == want, name
