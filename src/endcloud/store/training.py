"""The end model's training log (a row per logged step) and the adapters it wrote."""

from __future__ import annotations

from typing import Any

from endcloud.store.db import utcnow


def log_step(conn: Any, run_id: int, step: int, loss: float, lr: float, tokens: int,
             tokens_per_s: float) -> None:
    conn.execute("INSERT INTO end_train_log (run_id, step, loss, lr, tokens, tokens_per_s, "
                 "logged_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (run_id, step, loss, lr, tokens, tokens_per_s, utcnow()))


def add_adapter(conn: Any, run_id: int, path: str, method: str, step: int, base_id: str,
                base_sha256: str, data_sha256: str) -> None:
    conn.execute("INSERT INTO end_adapters (run_id, path, method, step, base_id, base_sha256, "
                 "data_sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (run_id, path, method, step, base_id, base_sha256, data_sha256, utcnow()))
