"""Hot swap: the service follows the evolve registry's champion without a restart.

    watcher = ChampionWatcher(backend, "runs/evolve/registry", poll_s=1.0)
    await watcher.check()          # at start: load the current champion
    task = asyncio.create_task(watcher.run())

Two sources. A registry folder (`backend.registry: runs/evolve/registry`): every `poll_s` the
pointer file is stat-ed (cheap). The store (`backend.registry: store`, for replicas): every
`poll_s` the champion row's version is read from the service's own store (one indexed read);
a new champion's adapter is unpacked from the store into `backend.registry_cache` first. Every
replica so follows a promotion or rollback within `poll_s` plus the time to load the adapter.

When the champion changed, it (or the base model, after a rollback past the first promotion) is
loaded in a worker thread *beside* the one serving, and only then swapped in with one reference
assignment. A request that already started finishes on the model it started with; the next one
gets the new model; none fails or waits for the load. A champion that fails to load
(verification, memory, an engine that refuses it) is logged and the current model stays; it is
tried again at every poll (an outage or a full disk passes). The outcome is written to the store (`champion_loads`: this replica, the version, loaded or
failed and why), so `endcloud evolve status` shows which replicas serve which champion.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Any

from endcloud.end.registry import POINTER, read_pointer, unpack_adapter
from endcloud.store import champion as champion_rows

log = logging.getLogger(__name__)

FROM_STORE = "store"  # backend.registry: follow the champion pointer in the service's store


class ChampionWatcher:
    def __init__(self, backend: Any, registry: str | Path, poll_s: float = 1.0,
                 store: Any = None, cache: str | Path | None = None) -> None:
        self.backend, self.poll_s = backend, poll_s
        self.from_store = str(registry) == FROM_STORE
        self.root = None if self.from_store else Path(registry)
        self.store = store  # a ServeStore (reads run in its reader threads)
        self.cache = Path(cache or Path.home() / ".cache" / "endcloud" / "champions").expanduser()
        self.seen: Any = None
        self.failing: Any = None  # the pointer state that failed to load (retried every poll)
        self.champion: str | None = None
        self.swaps = 0
        self.replica = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(2)}"  # one per service

    async def _stamp(self) -> Any:
        if self.from_store:
            return await self.store.read(champion_rows.current)
        try:
            st = os.stat(self.root / POINTER)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    async def _folder(self, champion: str | None) -> Path | None:
        if champion is None:
            return None
        if not self.from_store:
            return self.root / "adapters" / champion
        archive, sha = await self.store.read(lambda conn: champion_rows.adapter_archive(conn, champion))
        # named by content too: an id reused by another registry never serves stale weights
        return await asyncio.to_thread(unpack_adapter, archive, sha, self.cache / f"{champion}-{sha[:12]}")

    async def check(self) -> bool:
        """Swap in the pointer's champion if the pointer changed; True when a swap happened."""
        stamp = await self._stamp()
        if stamp == self.seen:
            return False
        champion = stamp[1] if self.from_store else read_pointer(self.root)["champion"]
        if champion == self.champion:
            self.seen = stamp
            return False
        version = stamp[0] if self.from_store else None
        try:
            folder = await self._folder(champion)
            await asyncio.to_thread(self.backend.use_adapter, folder, champion)
        except Exception as exc:  # tried again at the next poll (an outage, a full disk, an engine
            first = self.failing != stamp  # restarting); reported and logged in full once
            self.failing = stamp
            if first:
                log.exception("could not load champion %s; still serving %s", champion, self.champion)
                await self._report(version, champion, "failed", f"{type(exc).__name__}: {exc}"[:500])
            return False
        log.info("now serving champion %s (was %s)", champion or "base", self.champion or "base")
        self.seen, self.failing = stamp, None
        self.champion = champion
        self.swaps += 1
        await self._report(version, champion, "loaded")
        return True

    async def _report(self, version: int | None, champion: str | None, status: str,
                      error: str | None = None) -> None:
        if self.store is None:
            return
        try:
            await self.store.write(lambda conn: champion_rows.report_load(
                conn, self.replica, version, champion, status, error))
        except Exception:  # the report is for people; serving goes on without it
            log.warning("could not record the champion %s outcome", status)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.check()
            except Exception:  # a bad pointer file must not end the watching
                log.exception("champion check failed")
