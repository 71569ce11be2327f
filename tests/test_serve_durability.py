"""kill -9 the server 10 times during feedback writes: every acknowledged row is there and
`PRAGMA integrity_check` is ok (`bench/serve_durability.py --rounds 100` is the full run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

BENCH = Path(__file__).resolve().parents[1] / "bench" / "serve_durability.py"


@pytest.mark.slow
def test_acknowledged_feedback_survives_kill_9(tmp_path):
    spec = importlib.util.spec_from_file_location("serve_durability", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.kill_rounds(tmp_path, rounds=10, clients=3)
    assert result["integrity_check"] == "ok"
    assert result["acknowledged"] > 0 and result["missing"] == 0, result
    assert result["stored"] >= result["acknowledged"]  # committed-but-unacknowledged rows may exist
