"""Operations: `/metrics` in the Prometheus text format (prometheus-client), one registry per app.

    endcloud_requests_total{route, method, status}       every HTTP request, by route template
    endcloud_request_seconds{route}                      latency until the response has been sent
    endcloud_turn_seconds{model, answered_by}            one customer turn, end to end
    endcloud_escalations_total{reason}                   why the end model's reply was not served
    endcloud_cloud_calls_total{status}                   teacher calls while serving (ok, timeout, ...)
    endcloud_cloud_tokens_total{kind}                    prompt | completion
    endcloud_cloud_cost_total                            in the configured price unit
    endcloud_queue_depth                                 turns generating or waiting for a slot
    endcloud_handoffs_total{reason}                      conversations handed to a person
    endcloud_champion_version                            promotions + rollbacks seen (hot swap)

Routes are labelled by their template (`/admin/handoffs/{handoff_id}/claim`), never by the raw path,
so customer ids never become label values and the series stay few.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)


class Metrics:
    """The service's metrics; `depth` and `champion` are read at scrape time."""

    def __init__(self, depth: Callable[[], float], champion: Callable[[], float]) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter("endcloud_requests", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram("endcloud_request_seconds", "HTTP request latency", ["route"],
                                 buckets=BUCKETS, registry=r)
        self.turns = Histogram("endcloud_turn_seconds", "one customer turn, end to end",
                               ["model", "answered_by"], buckets=BUCKETS, registry=r)
        self.escalations = Counter("endcloud_escalations", "turns not served from the end model's draft",
                                   ["reason"], registry=r)
        self.cloud_calls = Counter("endcloud_cloud_calls", "teacher calls while serving", ["status"], registry=r)
        self.cloud_tokens = Counter("endcloud_cloud_tokens", "teacher tokens while serving", ["kind"], registry=r)
        self.cloud_cost = Counter("endcloud_cloud_cost", "teacher cost while serving", registry=r)
        self.handoffs = Counter("endcloud_handoffs", "conversations handed to a person", ["reason"], registry=r)
        Gauge("endcloud_queue_depth", "turns generating or waiting for a model slot",
              registry=r).set_function(depth)
        Gauge("endcloud_champion_version", "champion changes followed (promotions and rollbacks)",
              registry=r).set_function(champion)

    def turn(self, ex: Any, seconds: float, handed_off: str | None) -> None:
        """Count one recorded turn (`ex`: the store's Exchange)."""
        self.turns.labels(ex.model, ex.answered_by).observe(seconds)
        if ex.escalation:
            self.escalations.labels(ex.escalation.split(":")[0]).inc()
        if ex.cloud_status is not None:
            self.cloud_calls.labels(ex.cloud_status).inc()
            self.cloud_tokens.labels("prompt").inc(ex.cloud_prompt_tokens)
            self.cloud_tokens.labels("completion").inc(ex.cloud_completion_tokens)
            self.cloud_cost.inc(ex.cost)
        if handed_off:
            self.handoffs.labels(handed_off).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI: every request's count and latency, labelled by the route that answered it."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics | None]) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.monotonic(), [500]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            m = self.metrics()
            if m is not None:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                method = scope["method"] if scope["method"] in METHODS else "OTHER"  # client-chosen text
                m.requests.labels(route, method, str(status[0])).inc()
                m.latency.labels(route).observe(time.monotonic() - t0)
