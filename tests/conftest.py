"""Shared fixtures: a tiny local model for every test that needs one, the shared data path, and
the store backends (a SQLite file; a real PostgreSQL server started once per session)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

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


STORE_BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL cluster on loopback. Without the server binaries the PostgreSQL
    cases skip, unless $ENDCLOUD_REQUIRE_POSTGRES is set (CI sets it: there they must run)."""
    from pg import PostgresServer, binaries

    if binaries() is None:
        if os.environ.get("ENDCLOUD_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required ($ENDCLOUD_REQUIRE_POSTGRES) but initdb/pg_ctl are missing")
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    server = PostgresServer().start()
    yield server
    from endcloud.store.postgres import close_pools

    close_pools()
    server.stop()


@pytest.fixture(params=STORE_BACKENDS)
def store_backend(request, monkeypatch, tmp_path) -> Iterator[str]:
    """Run the test once per store backend: $ENDCLOUD_DB is a fresh SQLite file or a fresh
    PostgreSQL database. Modules that touch the store use it for every test:
    `pytestmark = pytest.mark.usefixtures("store_backend")`."""
    if request.param == "postgresql":
        location = request.getfixturevalue("pg_server").new_database()
    else:
        location = str(tmp_path / "endcloud.db")
    monkeypatch.setenv("ENDCLOUD_DB", location)
    yield location
    if request.param == "postgresql":
        from endcloud.store.postgres import close_pool

        close_pool(location)
