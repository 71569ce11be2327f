"""The end model's adapter registry, written by evolve and followed by the service (hot swap):
adapters with aliases, `champion` (what the service answers with) and the previous champions.

    reg = Registry("runs/evolve/registry")
    aid = reg.add("runs/evolve/round-0003/train/adapter", round_id=3)   # copied, verified
    reg.promote(aid, "round 3: +0.041 mean Final")                      # atomic pointer switch
    reg.rollback("bad replies")                                         # the previous champion

With `store` (a SQLite file or a postgresql:// URL), every promotion and rollback is also written
to the store's champion pointer (`store/champion.py`), with the adapter as an archive: service
replicas on other boxes follow it from there (`backend.registry: store`). The store is written
first and is then the authority (`champion()` reads it); the file pointer follows it.

Layout: `adapters/<id>/` (complete, verified copies, written under a temporary name and renamed)
and `champion.json`, the pointer: {"champion": id | null (the base model), "previous": [...]}.
The pointer is replaced atomically (temp file + fsync + os.replace + fsync of the folder) and only
ever names an adapter that is already complete, so a kill -9 at any point leaves the old pointer
or the new one, never a dangling or half-written one. Every change is appended to `events.jsonl`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import signal
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from endcloud.errors import RegistryError

POINTER = "champion.json"
KILL_ENV = "ENDCLOUD_EVOLVE_KILL_AT"  # crash tests: SIGKILL ourselves at this named point


def kill_point(name: str) -> None:
    """Die here (SIGKILL, no cleanup) when $ENDCLOUD_EVOLVE_KILL_AT names this point."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def read_pointer(root: str | Path) -> dict[str, Any]:
    """The pointer as stored ({"champion": None, "previous": []} before the first promotion)."""
    try:
        return dict(json.loads((Path(root) / POINTER).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {"champion": None, "previous": [], "seq": 0}


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pack_adapter(folder: str | Path) -> tuple[bytes, str]:
    """A gzipped tar of the adapter folder's files and its sha256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted(Path(folder).iterdir()):
            if p.is_file():
                tar.add(p, arcname=p.name)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def unpack_adapter(archive: bytes, sha256: str, dest: str | Path) -> Path:
    """Check the archive's sha256, unpack it under a temporary name, verify the adapter, and
    rename it to `dest` (kept when it is there already: `dest` is named by id and sha256)."""
    from endcloud.end.adapters import verify

    dest = Path(dest)
    if dest.is_dir():
        return dest
    if hashlib.sha256(archive).hexdigest() != sha256:
        raise RegistryError(f"adapter archive for {dest.name}: sha256 mismatch (corrupt in the store)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")  # plain files only, inside tmp
        verify(tmp)
        try:
            os.rename(tmp, dest)  # never over a folder another replica finished meanwhile
        except OSError:
            if not dest.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


class Registry:
    def __init__(self, root: str | Path, store: str | None = None) -> None:
        self.root = Path(root)
        self.store = store or None
        (self.root / "adapters").mkdir(parents=True, exist_ok=True)

    @property
    def store_location(self) -> str:
        from endcloud.store.postgres import redact

        return redact(self.store or "")

    # -- reading ------------------------------------------------------------------------------
    def pointer(self) -> dict[str, Any]:
        if self.store:
            from endcloud.store import Store, champion

            with Store.open(self.store) as st:
                version, aid, previous = champion.current(st.conn)
            if version:
                return {"champion": aid, "previous": previous, "seq": version}
        return read_pointer(self.root)

    def champion(self) -> str | None:
        return self.pointer()["champion"]

    def path(self, adapter_id: str | None) -> Path | None:
        return None if adapter_id is None else self.root / "adapters" / adapter_id

    def champion_path(self) -> Path | None:
        return self.path(self.champion())

    def adapters(self) -> list[str]:
        return sorted(p.name for p in (self.root / "adapters").iterdir() if not p.name.startswith("."))

    def events(self) -> list[dict[str, Any]]:
        path = self.root / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]

    # -- writing ------------------------------------------------------------------------------
    def add(self, folder: str | Path, round_id: int | None = None) -> str:
        """Copy a verified adapter folder in under a new id; return the id."""
        from endcloud.end.adapters import verify, write_folder_atomically

        manifest = verify(folder)
        with self._lock():
            n = len(self.adapters()) + 1
            aid = f"a{n:04d}" + (f"-r{round_id}" if round_id is not None else "")

            def fill(tmp: Path) -> None:
                for p in Path(folder).iterdir():
                    if p.is_file():
                        shutil.copy2(p, tmp / p.name)

            write_folder_atomically(self.root / "adapters" / aid, fill)
        verify(self.root / "adapters" / aid, manifest.get("base", {}).get("sha256"))
        self._event("add", aid, round_id=round_id, source=str(folder))
        return aid

    def promote(self, adapter_id: str, reason: str = "", round_id: int | None = None) -> None:
        """Make `adapter_id` the champion; the old champion goes on the `previous` stack."""
        if not (self.root / "adapters" / adapter_id).is_dir():
            raise RegistryError(f"no adapter {adapter_id!r} in {self.root}; `endcloud evolve "
                                "status` lists them")
        with self._lock():
            old = self.pointer()
            new = {"champion": adapter_id, "previous": [*old["previous"], old["champion"]],
                   "seq": int(old.get("seq", 0)) + 1, "updated_at": time.time(), "reason": reason}
            self._publish(new)
            self._switch(new)
        self._event("promote", adapter_id, previous=old["champion"], reason=reason,
                    round_id=round_id)

    def rollback(self, reason: str = "") -> str | None:
        """Restore the previous champion (None = the base model); return it."""
        with self._lock():
            old = self.pointer()
            if not old["previous"]:
                raise RegistryError("nothing to roll back to: no earlier champion was recorded")
            back = old["previous"][-1]
            new = {"champion": back, "previous": old["previous"][:-1],
                   "seq": int(old.get("seq", 0)) + 1, "updated_at": time.time(),
                   "reason": reason or "rollback"}
            self._publish(new)
            self._switch(new)
        self._event("rollback", back, previous=old["champion"], reason=reason)
        return back

    def _publish(self, pointer: dict[str, Any]) -> None:
        """Write the new pointer (and its adapter, once) to the store, when there is one."""
        if not self.store:
            return
        from endcloud.store import Store, champion

        aid = pointer["champion"]
        with Store.open(self.store) as st:
            archive = None
            if aid is not None:
                archive = pack_adapter(self.root / "adapters" / aid)
                stored = champion.adapter_sha(st.conn, aid)
                if stored is not None and stored != archive[1]:
                    raise RegistryError(
                        f"{self.store_location}: adapter id {aid} is in the store with other weights "
                        "(another registry folder made it): promote from the registry that made it")
                if stored is not None:
                    archive = None  # there already
            pointer["seq"] = champion.switch(st.conn, aid, pointer["previous"],
                                             pointer.get("reason", ""), archive)

    def _switch(self, pointer: dict[str, Any]) -> None:
        """Write the pointer atomically: temp + fsync, os.replace, fsync the folder."""
        kill_point("before_switch")
        fd, tmp = tempfile.mkstemp(prefix=".champion.", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(pointer, fh, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            kill_point("mid_switch")
            os.replace(tmp, self.root / POINTER)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        kill_point("after_switch")
        fsync_dir(self.root)

    def _event(self, action: str, adapter_id: str | None, **fields: Any) -> None:
        row = {"ts": time.time(), "action": action, "adapter": adapter_id, **fields}
        with open(self.root / "events.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One writer at a time across processes (a round and a manual rollback)."""
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
