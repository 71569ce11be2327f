"""The SQLite store: one file, WAL, named forward-only migrations.

    store = Store.open("endcloud.db")
    run_id = store.start_run("data", run_dir, config_dict)
"""

from endcloud.store.db import Store, default_db_path
from endcloud.store.migrations import MIGRATIONS

__all__ = ["Store", "default_db_path", "MIGRATIONS"]
