"""A kind's size limit bounds what is read; it is not allocated up front (a 64 GiB limit on a small file)."""
from __future__ import annotations

import json

from edgebranchy.util import readers


def test_a_small_file_of_a_kind_with_a_huge_limit_is_read(tmp_path):
    assert readers.kind_of("plan-cache").max_bytes >= 64 << 30  # larger than this machine's memory
    p = tmp_path / "costs.json"
    doc = {"kind": "measured", "prefix": {"layer1": 1.5}}
    p.write_text(json.dumps(doc))
    assert readers.load_json(p, "plan-cache") == doc
    assert readers.read_bytes(p, "plan-cache") == p.read_bytes()


def test_a_file_read_in_chunks_comes_back_whole_and_stops_at_the_limit(tmp_path):
    p = tmp_path / "blob"
    p.write_bytes(bytes(range(256)) * 1000)
    with open(p, "rb") as f:
        assert readers._read_at_most(f, 10 ** 12, chunk=4096) == p.read_bytes()
    with open(p, "rb") as f:
        assert readers._read_at_most(f, 5000, chunk=4096) == p.read_bytes()[:5000]
