"""Limits and bad input against the real server: 413 before parsing, 422 for overlong or
ill-typed requests, 4xx (never 5xx) for broken bytes and JSON, 429/503 with Retry-After at once
(a full queue, a session's turns, the creation of customers), 401/403 on staff routes, every
route public by an explicit list or behind auth, and a Hypothesis fuzz over the API's bodies
that must never produce a 5xx."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

pytest.importorskip("fastapi")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from serve_helpers import ask, count, fake_cfg, new_customer  # noqa: E402
from wait_helpers import wait_until_async  # noqa: E402

from endcloud.serve.app import create_app, fastapi_app, route_table  # noqa: E402
from endcloud.serve.server import running  # noqa: E402

ADMIN = "staff-token-for-tests"
# (method, path) of every route that anyone may call; all others need a customer or staff token
PUBLIC = {("GET", "/health"), ("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/v1/models"),
          ("POST", "/v1/customers"), ("GET", "/"), ("GET", "/review"), ("GET", "/openapi.json"),
          ("GET", "/static")}
# staff only (the review console and its report); every other route needs a customer token
STAFF = {("GET", "/admin/exchanges"), ("POST", "/admin/reviews"), ("GET", "/admin/report"),
         ("GET", "/admin/report.png"), ("GET", "/admin/handoffs"),
         ("POST", "/admin/handoffs/{handoff_id}/claim"), ("POST", "/admin/handoffs/{handoff_id}/reply"),
         ("POST", "/admin/handoffs/{handoff_id}/release"), ("POST", "/admin/handoffs/{handoff_id}/close"),
         ("POST", "/admin/conversations/{conversation_id}/takeover"), ("GET", "/metrics")}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-limits")
    cfg = fake_cfg(tmp, limits={"max_message_chars": 500, "max_messages": 10,
                                "session_rate_per_minute": 0})
    app = create_app(cfg, admin_token=ADMIN)
    with running(app) as url:
        _, headers = new_customer(url)
        yield url, headers, app


def post(url: str, headers: dict, **kw) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=10, **kw)


def test_oversized_bodies_get_413_before_parsing(live):
    url, headers, _ = live
    r = post(url, headers, content=b"{" + b" " * 65536 + b"}")
    assert r.status_code == 413
    # chunked (no Content-Length): refused as soon as it goes over
    chunks = (b"x" * 8192 for _ in range(20))
    assert post(url, headers, content=chunks).status_code == 413
    # just under the cap but not JSON: parsed, and refused as bad input, not as too large
    assert post(url, headers, content=b"x" * 60000).status_code == 422


@pytest.mark.parametrize("body", [
    b"\xff\xfe\x00{not utf-8", b'{"messages": [{"role": "user", "content": "\xc3\x28"}]}',
    b"{", b"[]", b"null", b'"text"', b"{}", b'{"messages": []}', b'{"messages": "hi"}',
    b'{"messages": [{"role": "user"}]}', b'{"messages": [{"role": "robot", "content": "x"}]}',
    b'{"messages": [{"role": "user", "content": 5}]}', b'{"messages": [{"role": "user", "content": null}]}',
    b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
    b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "10"}',
    b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
    b'{"messages": [{"role": "user", "content": "x"}], "temperature": 9}',
    b'{"messages": [{"role": "assistant", "content": "x"}]}',
    b'{"messages": [{"role": "user", "content": "   "}]}',
    b'{"messages": [{"role": "user", "content": "x"}], "conversation_id": 7}',
])
def test_bad_input_is_4xx_never_5xx(live, body):
    url, headers, _ = live
    r = post(url, {**headers, "content-type": "application/json"}, content=body)
    assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
    assert "error" in r.json()


def test_overlong_messages_are_422(live):
    url, headers, _ = live
    assert post(url, headers, json=ask("好" * 501)).status_code == 422
    many = {"messages": [{"role": "user", "content": "x"}] * 11}
    assert post(url, headers, json=many).status_code == 422


def test_validation_errors_do_not_echo_the_input(live):
    url, headers, _ = live
    secret = "13800138000-my-phone"
    r = post(url, headers, json={"messages": [{"role": "robot", "content": secret}]})
    assert r.status_code == 422 and secret not in r.text


def test_staff_routes_need_the_right_token(live, tmp_path):
    url, headers, _ = live
    assert httpx.get(f"{url}/admin/exchanges").status_code == 401
    assert httpx.get(f"{url}/admin/exchanges", headers=headers).status_code == 403  # a customer
    assert httpx.get(f"{url}/admin/exchanges", headers={"authorization": "Bearer nope"}).status_code == 403
    assert httpx.get(f"{url}/admin/exchanges", headers={"authorization": f"Bearer {ADMIN}"}).status_code == 200
    assert httpx.post(f"{url}/admin/reviews", json={"exchange_id": "x", "rating": 1}).status_code == 401
    # no staff token configured: the staff routes are closed, not open
    with running(create_app(fake_cfg(tmp_path), admin_token="")) as other:
        r = httpx.get(f"{other}/admin/exchanges", headers={"authorization": "Bearer anything"})
        assert r.status_code == 403 and "ENDCLOUD_ADMIN_TOKEN" in r.text


def test_every_route_is_public_by_list_or_requires_auth(live):
    url, customer, app = live
    seen = set(route_table(app))
    assert len(seen) >= 14
    for method, route in sorted(seen - PUBLIC):
        path = route.replace("{conversation_id}", "conv-x").replace("{handoff_id}", "1")
        r = httpx.request(method, f"{url}{path}", json={})
        assert r.status_code == 401, f"{method} {route} answers {r.status_code} without auth"
        if (method, route) in STAFF or route.startswith("/admin") or route == "/metrics":  # not for customers
            r = httpx.request(method, f"{url}{path}", json={}, headers=customer)
            assert r.status_code == 403, f"{method} {route} answers {r.status_code} to a customer"
    assert PUBLIC <= seen, f"listed as public but gone: {PUBLIC - seen}"
    assert STAFF <= seen, f"listed as staff but gone: {STAFF - seen}"
    assert {r for r in seen if r[1].startswith("/admin") or r[1] == "/metrics"} == STAFF, \
        "a staff route not listed"
    assert httpx.get(f"{url}/docs").status_code == 404  # no interactive docs on a shop's server


def test_pages_are_served_with_a_strict_policy(live):
    url, _, _ = live
    for path in ("/", "/review"):
        r = httpx.get(f"{url}{path}")
        assert r.status_code == 200 and "<html" in r.text
        assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert httpx.get(f"{url}/static/chat.js").status_code == 200


def test_full_queue_answers_503_with_retry_after_at_once(tmp_path):
    cfg = fake_cfg(tmp_path, backend={"fake_token_delay_s": 0.05},
                   limits={"queue_size": 1, "session_rate_per_minute": 0, "retry_after_s": 3})
    app = create_app(cfg)

    async def scenario(url: str, headers: dict) -> None:
        adm = fastapi_app(app).state.services.admission
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as c:
            slow = [asyncio.create_task(c.post("/v1/chat/completions", json=ask("慢一点")))
                    for _ in range(2)]  # one generating, one waiting: the queue is full
            assert await wait_until_async(lambda: adm.inside == adm.capacity, 5)
            t0 = time.monotonic()
            r = await c.post("/v1/chat/completions", json=ask("还有我"))
            took = time.monotonic() - t0
            assert r.status_code == 503 and r.headers["retry-after"] == "3"
            assert took < 0.1, f"refusal took {took * 1000:.0f} ms"
            assert [t.status_code for t in await asyncio.gather(*slow)] == [200, 200]

    with running(app) as url:
        _, headers = new_customer(url)
        asyncio.run(scenario(url, headers))


def test_session_rate_limit_is_429_with_retry_after(tmp_path):
    cfg = fake_cfg(tmp_path, limits={"session_rate_per_minute": 6, "session_burst": 2})
    with running(create_app(cfg)) as url:
        _, a = new_customer(url)
        _, b = new_customer(url)
        codes = [post(url, a, json=ask("在吗")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = post(url, a, json=ask("在吗"))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert post(url, b, json=ask("在吗")).status_code == 200  # per session, not global


def test_creating_customers_is_rate_limited(tmp_path):
    cfg = fake_cfg(tmp_path, limits={"customer_rate_per_minute": 6, "customer_burst": 2})
    with running(create_app(cfg)) as url:
        codes = [httpx.post(f"{url}/v1/customers").status_code for _ in range(3)]
        assert codes == [201, 201, 429]
        r = httpx.post(f"{url}/v1/customers")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["type"] == "rate_limit_error"
        assert count(cfg.store, "serve_customers") == 2  # nothing written for a refusal
    unlimited = fake_cfg(tmp_path / "b", limits={"customer_rate_per_minute": 0})
    (tmp_path / "b").mkdir()
    with running(create_app(unlimited)) as url:
        assert {httpx.post(f"{url}/v1/customers").status_code for _ in range(15)} == {201}


# -- fuzzing: arbitrary JSON and schema-shaped bodies, never a 5xx ------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "x"]) | json_values,
                                 "content": st.text(max_size=40) | json_values})
chat_body = st.fixed_dictionaries({"messages": st.lists(message, max_size=4) | json_values},
                                  optional={"stream": st.booleans() | json_values,
                                            "max_tokens": st.integers() | json_values,
                                            "temperature": st.floats(allow_nan=False, allow_infinity=False) | json_values,
                                            "model": st.sampled_from(["end", ""]) | json_values,
                                            "conversation_id": st.text(max_size=10) | json_values})
feedback_body = st.fixed_dictionaries({"reply_id": st.text(max_size=10) | json_values},
                                      optional={"thumb": st.sampled_from(["up", "down"]) | json_values,
                                                "rating": st.integers() | json_values,
                                                "comment": st.text(max_size=20) | json_values})
review_body = st.fixed_dictionaries({"exchange_id": st.text(max_size=10) | json_values},
                                    optional={"rating": st.integers() | json_values,
                                              "verdict": st.sampled_from(["approve", "x"]) | json_values,
                                              "corrected_reply": st.text(max_size=20) | json_values})
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(body=chat_body | json_values, raw=st.binary(max_size=64), as_raw=st.booleans())
def test_fuzz_chat_never_5xx(live, body, raw, as_raw):
    url, headers, _ = live
    kw = {"content": raw} if as_raw else {"content": json.dumps(body).encode()}
    r = post(url, {**headers, "content-type": "application/json"}, **kw)
    assert r.status_code < 500, r.text


@FUZZ
@given(body=feedback_body | json_values)
def test_fuzz_feedback_never_5xx(live, body):
    url, headers, _ = live
    r = httpx.post(f"{url}/v1/feedback", headers=headers, json=body)
    assert r.status_code < 500, r.text


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=review_body | json_values, which=st.text(max_size=12), limit=st.integers() | st.text(max_size=5))
def test_fuzz_staff_routes_never_5xx(live, body, which, limit):
    url, _, _ = live
    staff = {"authorization": f"Bearer {ADMIN}"}
    assert httpx.post(f"{url}/admin/reviews", headers=staff, json=body).status_code < 500
    r = httpx.get(f"{url}/admin/exchanges", headers=staff, params={"filter": which, "limit": limit})
    assert r.status_code < 500, r.text
