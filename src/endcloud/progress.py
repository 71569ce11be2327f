"""Progress bars for long steps: tqdm on stderr, silent when ENDCLOUD_PROGRESS=0."""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator, TypeVar

T = TypeVar("T")


def enabled() -> bool:
    return os.environ.get("ENDCLOUD_PROGRESS", "1") not in ("0", "false", "no")


def progress(it: Iterable[T], desc: str, total: int | None = None, unit: str = "it",
             **kwargs: Any) -> Iterator[T]:
    """Wrap an iterable with a tqdm bar (rate and ETA shown when the total is known)."""
    if not enabled():
        yield from it
        return
    from tqdm import tqdm

    yield from tqdm(it, desc=desc, total=total, unit=unit, dynamic_ncols=True,
                    mininterval=0.5, leave=False, **kwargs)
