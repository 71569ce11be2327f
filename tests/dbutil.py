"""Reading the store from a test, whichever backend $ENDCLOUD_DB (or a config's `store`) names."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from endcloud.store import Store


@contextlib.contextmanager
def connect(location: Any = None) -> Iterator[Any]:
    """A connection to the store at `location` (default $ENDCLOUD_DB), closed afterwards."""
    store = Store.open(str(location) if location else os.environ["ENDCLOUD_DB"])
    try:
        yield store.conn
    finally:
        store.close()


def rows(location: Any, sql: str, *args: Any) -> list[Any]:
    with connect(location) as conn:
        return conn.execute(sql, args).fetchall()


def count(location: Any, table: str) -> int:
    with connect(location) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def open_conn(location: Any = None) -> Any:
    """A connection to the store (rows by name and position, autocommit); the caller closes it."""
    return Store.open(str(location) if location else os.environ["ENDCLOUD_DB"]).conn
