"""Hot swap: the service follows the evolve registry's champion pointer without a restart.

    watcher = ChampionWatcher(backend, "runs/evolve/registry", poll_s=1.0)
    await watcher.check()          # at start: load the current champion
    task = asyncio.create_task(watcher.run())

Every `poll_s` the pointer file is stat-ed (cheap); when it changed, the new champion (or the
base model, after a rollback past the first promotion) is loaded in a worker thread *beside* the
one serving, and only then swapped in with one reference assignment. A request that already
started finishes on the model it started with; the next one gets the new model; none fails or
waits for the load. A champion that fails to load (verification, memory) is logged and the
current model stays.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from endcloud.end.registry import POINTER, read_pointer

log = logging.getLogger(__name__)


class ChampionWatcher:
    def __init__(self, backend: Any, registry: str | Path, poll_s: float = 1.0) -> None:
        self.backend, self.root, self.poll_s = backend, Path(registry), poll_s
        self.seen: tuple[int, int, int] | None = None
        self.champion: str | None = None
        self.swaps = 0

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.root / POINTER)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    async def check(self) -> bool:
        """Swap in the pointer's champion if the pointer changed; True when a swap happened."""
        stamp = self._stamp()
        if stamp == self.seen:
            return False
        champion = read_pointer(self.root)["champion"]
        self.seen = stamp
        if champion == self.champion:
            return False
        folder = None if champion is None else self.root / "adapters" / champion
        try:
            await asyncio.to_thread(self.backend.use_adapter, folder, champion)
        except Exception:
            log.exception("could not load champion %s; still serving %s", champion, self.champion)
            return False
        log.info("now serving champion %s (was %s)", champion or "base", self.champion or "base")
        self.champion = champion
        self.swaps += 1
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.check()
            except Exception:  # a bad pointer file must not end the watching
                log.exception("champion check failed")
