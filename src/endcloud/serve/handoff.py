"""Hand-off to a person, the service's side: how long the customer is told to wait, whether
staff are on duty, and what the customer is told. The queue, claims, messages and staff replies
live in the store (`endcloud.store.handoffs`).
"""

from __future__ import annotations

import statistics
from datetime import datetime, timezone
from typing import Any

from endcloud.serve.config import HandoffConfig
from endcloud.store import handoffs


def expected_wait_min(conn: Any, cfg: HandoffConfig, recent: int = 20) -> int:
    """The median wait of the last answered hand-offs (minutes, at least 1), else the default."""
    waits = handoffs.recent_waits(conn, recent)
    return max(1, round(statistics.median(waits) / 60)) if waits else cfg.expected_wait_min


def on_duty(cfg: HandoffConfig, now: datetime | None = None) -> bool:
    if not cfg.hours:
        return True
    from zoneinfo import ZoneInfo

    local = (now or datetime.now(timezone.utc)).astimezone(ZoneInfo(cfg.timezone)).strftime("%H:%M")
    start, stop = cfg.hours.split("-")
    return start <= local < stop if start <= stop else (local >= start or local < stop)


def customer_message(cfg: HandoffConfig, lang: str, wait_min: int, now: datetime | None = None) -> str:
    """What the customer is told when the conversation goes to a person."""
    en = lang == "en"
    if not on_duty(cfg, now):
        return (cfg.off_hours_message_en if en else cfg.off_hours_message).format(hours=cfg.hours)
    return (cfg.waiting_message_en if en else cfg.waiting_message).format(wait=wait_min)


