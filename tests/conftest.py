"""Shared fixtures: a tiny local model for every test that needs one, and the shared data path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ENDCLOUD_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _quiet_and_isolated(monkeypatch, tmp_path):
    """No progress bars in test output; the default store lives in the test's tmp folder."""
    monkeypatch.setenv("ENDCLOUD_PROGRESS", "0")
    monkeypatch.setenv("ENDCLOUD_DB", str(tmp_path / "endcloud.db"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A Llama model with hidden size 8 and 2 layers plus a byte-level BPE tokenizer, built locally."""
    from endcloud.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; tests that need it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared corpora not found at {SHARED_DATA} (set ENDCLOUD_DATA_DIR)")
    return SHARED_DATA
