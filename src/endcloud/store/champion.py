"""The champion pointer in the store: which adapter the service answers with, with a version
that grows on every promotion and rollback, and the adapters themselves (gzipped tar archives),
so that service replicas on other boxes follow a promotion with nothing shared but the store.

The evolve registry writes here (`Registry(root, store=...)`); a service with
`backend.registry: store` polls `current()` every `registry_poll_s` and unpacks a new champion
into its local cache before loading it.
"""

from __future__ import annotations

import json
from typing import Any

from endcloud.store.db import utcnow, write_transaction

NAME = "champion"


def current(conn: Any) -> tuple[int, str | None, list[str | None]]:
    """(version, adapter id or None for the base model, previous stack); version 0 before any."""
    row = conn.execute("SELECT version, adapter_id, previous FROM champion_pointer WHERE name = ?",
                       (NAME,)).fetchone()
    return (0, None, []) if row is None else (int(row[0]), row[1], json.loads(row[2]))


def switch(conn: Any, adapter_id: str | None, previous: list[str | None], reason: str,
           archive: tuple[bytes, str] | None = None) -> int:
    """Point at `adapter_id` (storing its (archive, sha256) first when given) in one
    transaction; return the new version."""
    with write_transaction(conn):
        if archive is not None:
            conn.execute("INSERT INTO champion_adapters (id, sha256, archive, created_at) "
                         "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                         (adapter_id, archive[1], archive[0], utcnow()))
        row = conn.execute(
            "INSERT INTO champion_pointer (name, adapter_id, previous, version, reason, updated_at) "
            "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (name) DO UPDATE SET adapter_id = excluded.adapter_id,"
            " previous = excluded.previous, version = champion_pointer.version + 1,"
            " reason = excluded.reason, updated_at = excluded.updated_at RETURNING version",
            (NAME, adapter_id, json.dumps(previous), reason, utcnow())).fetchone()
    return int(row[0])


def adapter_sha(conn: Any, adapter_id: str) -> str | None:
    """The stored archive's sha256 for this id, or None when the store does not have it."""
    row = conn.execute("SELECT sha256 FROM champion_adapters WHERE id = ?", (adapter_id,)).fetchone()
    return None if row is None else row[0]


def adapter_archive(conn: Any, adapter_id: str) -> tuple[bytes, str]:
    """(archive bytes, sha256) of a stored adapter; KeyError when it is not there."""
    row = conn.execute("SELECT archive, sha256 FROM champion_adapters WHERE id = ?",
                       (adapter_id,)).fetchone()
    if row is None:
        raise KeyError(adapter_id)
    return bytes(row[0]), row[1]


def report_load(conn: Any, replica: str, version: int | None, adapter_id: str | None, status: str,
                error: str | None = None) -> None:
    """A replica's outcome for a champion: 'loaded', or 'failed' with the reason."""
    conn.execute("INSERT INTO champion_loads (replica, version, adapter_id, status, error, at) "
                 "VALUES (?, ?, ?, ?, ?, ?)", (replica, version, adapter_id, status, error, utcnow()))


def latest_loads(conn: Any) -> list[dict[str, Any]]:
    """Each replica's last report, newest first (what `evolve status` shows)."""
    rows = conn.execute("SELECT replica, version, adapter_id, status, error, at FROM champion_loads "
                        "ORDER BY id DESC LIMIT 500").fetchall()
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        seen.setdefault(r[0], dict(r))
    return list(seen.values())
