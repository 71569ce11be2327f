"""Run the app with uvicorn: in the foreground (`endcloud serve`) or in a thread (tests, benches).

    with running(create_app(cfg)) as url:     # http://127.0.0.1:<free port>
        OpenAI(base_url=url + "/v1", api_key=token).chat.completions.create(...)

Readiness is uvicorn's own `started` flag (after the lifespan loaded the model and the socket
listens) - never a sleep.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        from endcloud.errors import MissingExtraError

        raise MissingExtraError("uvicorn", "serve") from None
    return uvicorn


def _server(app: Any, host: str, access_log: bool) -> Any:
    uvicorn = _uvicorn()
    from endcloud.config import json_logs

    config = uvicorn.Config(app, host=host, port=0, log_level="warning", access_log=access_log,
                            lifespan="on", timeout_graceful_shutdown=2, server_header=False,
                            **({"log_config": None} if json_logs() else {}))  # to the root's JSON handler
    return uvicorn.Server(config)


def bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says TCP; with proto 0, Nagle + delayed ACK add ~40 ms to every response.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(app: Any, host: str, port: int, access_log: bool = False,
          port_file: str | None = None) -> None:
    """Serve until interrupted; write the bound port to `port_file` once ready."""
    server = _server(app, host, access_log)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    if port_file:
        def announce() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.02)
            if server.started:  # written last and atomically: its presence means "ready"
                Path(f"{port_file}.tmp").write_text(str(bound), encoding="utf-8")
                os.replace(f"{port_file}.tmp", port_file)

        threading.Thread(target=announce, daemon=True).start()
    print(f"endcloud serve: http://{host}:{bound}/ (chat page), /review (staff), /v1 (API)",
          flush=True)
    server.run(sockets=[sock])


@contextlib.contextmanager
def running(app: Any, host: str = "127.0.0.1", timeout_s: float = 60.0) -> Iterator[str]:
    """Serve `app` in a background thread on a free port; yield its base URL."""
    server = _server(app, host, False)
    sock = bind(host, 0)
    url = f"http://{host}:{sock.getsockname()[1]}"
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > end:
            server.should_exit = True
            raise RuntimeError("the server did not start (see the log above)")
        time.sleep(0.01)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
