"""The app factory: `create_app(cfg)` builds the FastAPI app; its lifespan loads the model once.

    app = create_app(load_config(ServeConfig, "configs/serve.yaml"))
    uvicorn.run(app, host="127.0.0.1", port=8080)

Errors are translated to OpenAI-style bodies here, at the edge: `{"error": {"message", "type",
"code"}}`. A validation error names the field and the problem, never the submitted value (which
may be a customer's personal data); an unexpected error is logged without the request body and
answered with a generic 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any, AsyncIterator

from endcloud.errors import MissingExtraError, StoreUnavailableError
from endcloud.serve.config import ADMIN_TOKEN_ENV, ServeConfig

log = logging.getLogger(__name__)


def create_app(cfg: ServeConfig, *, backend: Any = None, admin_token: str | None = None,
               cloud_client: Any = None, scorer: Any = None, knowledge: Any = None) -> Any:
    """The service. `backend`, `cloud_client`, `scorer` and `knowledge` replace the configured
    ones (tests). A configured knowledge index that is unusable stops the start (one line naming
    the path) unless `knowledge.required` is false."""
    if knowledge is None and cfg.knowledge.index and cfg.knowledge.required:
        from endcloud.knowledge.index import current_version, read_manifest

        read_manifest(current_version(cfg.knowledge.index))  # fail before anything starts
    try:
        from fastapi import FastAPI, HTTPException, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import Response
        from fastapi.staticfiles import StaticFiles
    except ImportError:
        raise MissingExtraError("fastapi", "serve") from None

    from endcloud.serve import handoff_routes, routes
    from endcloud.end.runtime import build_backend
    from endcloud.serve.escalation import Cloud, Policy
    from endcloud.serve.limits import Admission, BodyLimit, Refused, SessionLimiter, error_body
    from endcloud.serve.metrics import Metrics, MetricsMiddleware
    from endcloud.store.writer import ServeStore
    from endcloud.serve.turn import Services
    from endcloud.store import default_location

    token = admin_token if admin_token is not None else os.environ.get(ADMIN_TOKEN_ENV) or None

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        engine = backend if backend is not None else build_backend(cfg.backend)
        await engine.start()  # the model loads once, here
        swap_task = None
        store = ServeStore(cfg.store or default_location())
        if cfg.backend.registry:  # follow the evolve registry's champion (serve/hotswap.py)
            from endcloud.serve.hotswap import ChampionWatcher

            app.state.champion = ChampionWatcher(engine, cfg.backend.registry, cfg.backend.registry_poll_s,
                                                 store, cfg.backend.registry_cache or None)
            await app.state.champion.check()
            swap_task = asyncio.create_task(app.state.champion.run())
        kb = knowledge if knowledge is not None else await _open_knowledge(cfg, store)
        audit = _egress_audit(store)
        lim = cfg.limits
        app.state.services = Services(
            cfg=cfg, backend=engine, store=store, policy=Policy(cfg.escalation, scorer, cfg.handoff),
            cloud=Cloud(cfg.escalation, audit, cloud_client),
            admission=Admission(engine.slots, lim.queue_size, lim.queue_timeout_s, lim.retry_after_s),
            limiter=SessionLimiter(lim.session_rate_per_minute, lim.session_burst), admin_token=token,
            signups=SessionLimiter(lim.customer_rate_per_minute, lim.customer_burst),
            knowledge=kb)
        app.state.token_cache = {}
        services = app.state.services
        watcher = getattr(app.state, "champion", None)
        services.metrics = app.state.metrics = Metrics(
            depth=lambda: services.admission.inside,
            champion=lambda: 0 if watcher is None else watcher.swaps)
        log.info("serving %s (staff console %s)", ", ".join(engine.models()),
                 "enabled" if token else f"disabled: set {ADMIN_TOKEN_ENV}")
        try:
            yield
        finally:
            if swap_task is not None:
                swap_task.cancel()
            app.state.services.cloud.close()
            await engine.close()
            store.close()

    app = FastAPI(title="endcloud", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(routes.router)
    app.include_router(handoff_routes.router)
    app.add_middleware(MetricsMiddleware, metrics=lambda: getattr(app.state, "metrics", None))
    app.mount("/static", StaticFiles(directory=routes.STATIC), name="static")

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return Response(error_body(status, message), status, headers=headers,
                        media_type="application/json")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: Any) -> Response:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request, exc: Any) -> Response:  # 404/405 of unknown routes
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: Any) -> Response:
        problems = []
        for e in exc.errors()[:5]:  # field and problem only: the input may hold personal data
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        return error(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Any) -> Response:
        return error(exc.status, exc.message, {"retry-after": str(exc.retry_after)})

    @app.exception_handler(StoreUnavailableError)
    async def store_down(request: Request, exc: Any) -> Response:  # PostgreSQL restarting or gone
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error(503, "the service cannot store this right now; try again shortly",
                     {"retry-after": "2"})

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path,
                  exc_info=exc)
        return error(500, "internal error")

    # Outermost: an oversized body is refused before any routing or parsing.
    return BodyLimit(app, cfg.limits.max_body_bytes) if cfg.limits.max_body_bytes else app


def fastapi_app(app: Any) -> Any:
    """The FastAPI object inside the middleware (for route listings and the OpenAPI schema)."""
    return getattr(app, "app", app)


def route_table(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) the app answers, flattening included routers (FastAPI >= 0.13x keeps
    them as `_IncludedRouter` entries); a mount counts as GET on its prefix."""
    out: list[tuple[str, str]] = []

    def walk(routes: Any) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes)
                continue
            for method in sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD"}):
                out.append((method, route.path))

    walk(fastapi_app(app).routes)
    return out


async def _open_knowledge(cfg: ServeConfig, store: Any) -> Any:
    """The index and answer memory; the staff approvals already in the store join the memory."""
    from endcloud.knowledge.service import ShopKnowledge
    from endcloud.store.feedback import approved_memory

    kb = await asyncio.to_thread(ShopKnowledge.open, cfg.knowledge)
    if kb is not None:
        rows = await store.read(approved_memory)
        await asyncio.to_thread(kb.remember_all, rows)
        log.info("knowledge: %s chunks, %d memory entries", len(kb.index) if kb.index else "no",
                 len(kb.memory))
    return kb


def _egress_audit(store: Any) -> Any:
    """Every cloud request (hash, sizes, tokens, cost, status, chunk ids; never text) into
    cloud_egress."""
    from endcloud.store.labels import add_egress

    def audit(r: Any) -> None:
        store.write_nowait(lambda conn: add_egress(conn, r, None))

    return audit
