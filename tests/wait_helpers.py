"""Polling instead of sleep-and-hope: wait for a condition, with a deadline, from a thread or a coroutine."""

from __future__ import annotations

import asyncio
import time
from typing import Callable


def wait_until(check: Callable[[], object], timeout_s: float, every_s: float = 0.02) -> bool:
    """True as soon as `check()` is truthy; False if it still is not after `timeout_s`."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(every_s)
    return bool(check())


async def wait_until_async(check: Callable[[], object], timeout_s: float, every_s: float = 0.02) -> bool:
    """`wait_until` inside a coroutine: it yields to the event loop between checks, so the
    loop's other tasks (the requests being waited on) keep running."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if check():
            return True
        await asyncio.sleep(every_s)
    return bool(check())
