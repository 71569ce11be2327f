"""The teacher client against a fault table at the transport (httpx.MockTransport).

Deadlines and backoffs are tiny so the whole table runs in a few seconds.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from endcloud.cloud.client import CircuitBreaker, CloudClient, RateLimiter
from endcloud import wire
from endcloud.wire import parse_retry_after
from endcloud.cloud.config import API_KEY_ENV, CloudConfig
from endcloud.errors import (AuthError, CircuitOpenError, ConfigError, DeadlineError, MalformedReplyError,
                             PrivacyError, RequestRejectedError, TransientError)
from wait_helpers import wait_until

MSGS = [{"role": "user", "content": "我的订单什么时候发货？"}]


def cfg(**kw) -> CloudConfig:
    base = dict(base_url="http://127.0.0.1:9/v1", model="m", deadline_s=1.0, max_attempts=3,
                backoff_base_s=0.01, backoff_max_s=0.02, read_timeout_s=5.0,
                breaker_consecutive=100, breaker_min_calls=50, breaker_window=50)
    base.update(kw)
    return CloudConfig(**base)


def completion(content="亲，已经发货了哦~", finish="stop", **extra) -> dict:
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, **extra},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7}}


class Script:
    """A transport that plays responses in order (the last repeats) and counts the requests."""

    def __init__(self, *steps) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        return step(request) if callable(step) else step

    def client(self, **kw) -> CloudClient:
        return CloudClient(cfg(**kw), transport=httpx.MockTransport(self))


def ok(**kw) -> httpx.Response:
    return httpx.Response(200, json=completion(**kw))


def hang(request: httpx.Request) -> httpx.Response:
    """What a real transport does when the server never answers: wait out the read timeout."""
    time.sleep(request.extensions["timeout"]["read"])
    raise httpx.ReadTimeout("no answer", request=request)


def trickle(request: httpx.Request) -> httpx.Response:
    def body():
        for _ in range(10_000):
            time.sleep(0.02)
            yield b" "
    return httpx.Response(200, content=body(), headers={"content-type": "application/json"})


def test_success_restores_placeholders_and_reports_usage():
    script = Script(lambda r: httpx.Response(200, json=completion(
        json.loads(r.content)["messages"][0]["content"] + " 已为您登记")))
    with script.client() as client:
        reply = client.chat([{"role": "user", "content": "我叫张伟，电话 138 0013 8000"}])
    sent = json.loads(script.requests[0].content)["messages"][0]["content"]
    assert "张伟" not in sent and "138" not in sent and "[PHONE_1]" in sent
    assert reply.text.startswith("我叫张伟，电话 138 0013 8000") and "[PHONE_1]" in reply.masked_text
    assert (reply.attempts, reply.prompt_tokens, reply.completion_tokens) == (1, 11, 7)


@pytest.mark.parametrize("status", [500, 502, 503, 408, 409])
def test_transient_status_is_retried_then_succeeds(status):
    script = Script(httpx.Response(status, json={"error": {"message": "busy"}}), ok())
    with script.client() as client:
        reply = client.chat(MSGS)
    assert reply.attempts == 2 and len(script.requests) == 2


def test_5xx_every_time_gives_up_after_max_attempts():
    script = Script(httpx.Response(503, text="overloaded"))
    with script.client(max_attempts=4) as client, pytest.raises(TransientError) as err:
        client.chat(MSGS)
    assert err.value.kind == "http_503" and err.value.attempts == 4 and len(script.requests) == 4


def test_429_retry_after_is_honoured():
    script = Script(httpx.Response(429, headers={"retry-after": "0.3"}), ok())
    t0 = time.monotonic()
    with script.client() as client:
        reply = client.chat(MSGS)
    assert reply.attempts == 2 and time.monotonic() - t0 >= 0.3


def test_429_retry_after_beyond_the_deadline_gives_up_at_once():
    script = Script(httpx.Response(429, headers={"retry-after": "120"}), ok())
    t0 = time.monotonic()
    with script.client() as client, pytest.raises(TransientError) as err:
        client.chat(MSGS)
    assert err.value.kind == "http_429" and len(script.requests) == 1
    assert time.monotonic() - t0 < 0.5


def test_429_without_retry_after_backs_off():
    script = Script(httpx.Response(429), httpx.Response(429), ok())
    with script.client() as client:
        assert client.chat(MSGS).attempts == 3


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_not_retried(status):
    script = Script(httpx.Response(status, json={"error": {"message": "bad field"}}))
    with script.client() as client, pytest.raises(RequestRejectedError) as err:
        client.chat(MSGS)
    assert len(script.requests) == 1 and err.value.kind == f"http_{status}" and "bad field" in str(err.value)


def test_401_is_not_retried_and_says_how_to_set_the_key():
    script = Script(httpx.Response(401, json={"error": {"message": "invalid key"}}))
    with script.client() as client, pytest.raises(AuthError) as err:
        client.chat(MSGS)
    assert len(script.requests) == 1 and API_KEY_ENV in str(err.value)


def test_hang_stops_at_the_deadline():
    script = Script(hang)
    t0 = time.monotonic()
    with script.client(deadline_s=0.6) as client, pytest.raises(DeadlineError):
        client.chat(MSGS)
    assert time.monotonic() - t0 < 0.6 + 0.3


def test_hang_then_answer_is_retried_within_the_deadline():
    script = Script(hang, ok())
    with script.client(deadline_s=2.0, read_timeout_s=0.2) as client:
        assert client.chat(MSGS).attempts == 2


def test_trickling_server_cannot_hold_the_call():
    script = Script(trickle)
    t0 = time.monotonic()
    with script.client(deadline_s=0.5) as client, pytest.raises(DeadlineError):
        client.chat(MSGS)
    assert time.monotonic() - t0 < 0.5 + 0.3 and len(script.requests) == 1


def test_connection_error_is_retried():
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)
    script = Script(refuse, ok())
    with script.client() as client:
        assert client.chat(MSGS).attempts == 2


@pytest.mark.parametrize("response,kind", [
    (httpx.Response(200, json={"choices": []}), "empty_choices"),
    (httpx.Response(200, json=completion(finish="length")), "truncated"),
    (httpx.Response(200, json=completion(content="")), "empty_content"),
    (httpx.Response(200, json=completion(content=None, refusal="I can't help with that.")), "refusal"),
    (httpx.Response(200, json=completion(content="I'm sorry, but I can't assist with that.")), "refusal"),
    (httpx.Response(200, json=completion(finish="content_filter")), "refusal"),
    (httpx.Response(200, text="<html><body>502 Bad Gateway</body></html>",
                    headers={"content-type": "text/html"}), "html_body"),
    (httpx.Response(200, text="{not json"), "invalid_json"),
    (httpx.Response(200, json={"error": {"message": "oops"}}), "error_body"),
    (httpx.Response(200, json=completion(content="好" * 5000)), "oversize"),
    (httpx.Response(200, content=b"x" * 3_000_000), "oversize"),
])
def test_malformed_replies_are_retried_then_reported(response, kind):
    script = Script(response)
    with script.client() as client, pytest.raises(MalformedReplyError) as err:
        client.chat(MSGS)
    assert err.value.kind == kind and err.value.attempts == 3 and len(script.requests) == 3


def test_malformed_then_good_reply_succeeds():
    script = Script(httpx.Response(200, json={"choices": []}), ok())
    with script.client() as client:
        assert client.chat(MSGS).attempts == 2


def test_streamed_reply_is_assembled():
    chunks = [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in ["亲，", "已发货"]]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
    sse = (b"".join(wire.sse_event(c) for c in chunks) + wire.SSE_DONE).decode()
    script = Script(httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"}))
    with script.client(stream=True) as client:
        reply = client.chat(MSGS)
    assert reply.text == "亲，已发货" and reply.completion_tokens == 2
    assert json.loads(script.requests[0].content)["stream"] is True


# -- circuit breaker ------------------------------------------------------------------------------
def test_breaker_opens_after_three_consecutive_failures_and_probes_half_open():
    script = Script(httpx.Response(503), httpx.Response(503), httpx.Response(503), ok())
    with script.client(max_attempts=1, breaker_consecutive=3, breaker_open_s=0.3) as client:
        for _ in range(3):
            with pytest.raises(TransientError):
                client.chat(MSGS)
        assert client.breaker.state == "open"
        with pytest.raises(CircuitOpenError):
            client.chat(MSGS)
        assert len(script.requests) == 3  # nothing sent while open
        assert wait_until(lambda: client.breaker.state == "half_open", 5)  # once open_s has passed
        assert client.chat(MSGS).attempts == 1  # the probe succeeds
        assert client.breaker.state == "closed"


def test_breaker_reopens_when_the_probe_fails():
    clock = [0.0]
    b = CircuitBreaker(consecutive=3, open_s=5.0, clock=lambda: clock[0])
    for _ in range(3):
        b.record(failed=True)
    assert b.state == "open"
    clock[0] = 5.0
    b.before_call()  # the one probe
    with pytest.raises(CircuitOpenError):
        b.before_call()  # a second caller waits for the probe
    b.record(failed=True)
    assert b.state == "open"


def test_breaker_opens_on_failure_ratio():
    b = CircuitBreaker(consecutive=3, ratio=0.5, min_calls=5, window=20)
    for failed in (True, False, True, False):
        b.record(failed)
    assert b.state == "closed"
    b.record(True)  # 3 of 5 = 60 % > 50 %
    assert b.state == "open"


def test_client_errors_do_not_open_the_breaker():
    script = Script(httpx.Response(400))
    with script.client(max_attempts=1, breaker_consecutive=2) as client:
        for _ in range(4):
            with pytest.raises(RequestRejectedError):
                client.chat(MSGS)
        assert client.breaker.state == "closed"


# -- limits -----------------------------------------------------------------------------------------
def test_rate_limiter_waits_and_refuses_past_the_deadline():
    clock = [100.0]
    rl = RateLimiter(requests_per_minute=2, clock=lambda: clock[0])
    rl.acquire(1, deadline=101.0)
    rl.acquire(1, deadline=101.0)
    with pytest.raises(DeadlineError):
        rl.acquire(1, deadline=101.0)  # the next slot frees in 30 s
    clock[0] += 30
    rl.acquire(1, deadline=131.0)


def test_tokens_per_minute_limit():
    clock = [0.0]
    rl = RateLimiter(tokens_per_minute=1000, clock=lambda: clock[0])
    rl.acquire(800, deadline=1.0)
    with pytest.raises(DeadlineError):
        rl.acquire(800, deadline=1.0)


def test_concurrency_limit_holds():
    live, peak, lock = [0], [0], threading.Lock()

    def slow(request):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1
        return ok()

    script = Script(slow)
    with script.client(concurrency=2) as client:
        threads = [threading.Thread(target=client.chat, args=(MSGS,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(script.requests) == 8 and peak[0] == 2


# -- privacy and the key ------------------------------------------------------------------------------
def test_unsendable_text_is_refused_and_nothing_is_sent():
    script = Script(ok())
    with script.client() as client, pytest.raises(PrivacyError) as err:
        client.chat([{"role": "user", "content": "卡号 6222 0000 1111 2222 333 转账"}])
    assert script.requests == [] and "6222" not in str(err.value)


def test_masker_failure_fails_closed():
    class Broken:
        def new_conversation(self):
            return object()

        def mask(self, text, conv):
            raise RuntimeError(f"boom on {text}")

    script = Script(ok())
    client = CloudClient(cfg(), masker=Broken(), transport=httpx.MockTransport(script))
    with pytest.raises(PrivacyError) as err:
        client.chat([{"role": "user", "content": "我叫张伟"}])
    assert script.requests == [] and "张伟" not in str(err.value)


def test_remote_endpoint_without_key_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(AuthError) as err:
        CloudClient(cfg(base_url="https://api.example.com/v1"))
    assert f"set {API_KEY_ENV}" in str(err.value)


def test_canary_key_is_sent_but_never_in_errors(monkeypatch, caplog):
    canary = "sk-canary-DO-NOT-LEAK-1234567890"
    monkeypatch.setenv(API_KEY_ENV, canary)

    def echo_key(request):  # a hostile server that reflects the header into its error
        return httpx.Response(403, json={"error": {"message": request.headers["authorization"]}})

    script = Script(echo_key)
    client = CloudClient(cfg(base_url="https://api.example.com/v1"), transport=httpx.MockTransport(script))
    with caplog.at_level("DEBUG"), pytest.raises(AuthError) as err:
        client.chat(MSGS)
    assert script.requests[0].headers["authorization"] == f"Bearer {canary}"
    assert canary not in str(err.value) and canary not in repr(err.value) and canary not in caplog.text


def test_key_headers_in_config_are_rejected():
    with pytest.raises(ConfigError, match="ENDCLOUD_CLOUD_API_KEY"):
        cfg(extra_headers={"Authorization": "Bearer x"})


def test_audit_records_every_attempt_without_text():
    records = []
    script = Script(httpx.Response(503), ok())
    client = CloudClient(cfg(), audit=records.append, transport=httpx.MockTransport(script))
    client.chat([{"role": "user", "content": "我叫张伟，电话 138 0013 8000"}])
    assert [r.status for r in records] == ["http_503", "ok"]
    assert records[1].prompt_tokens == 11 and records[0].payload_sha256 == records[1].payload_sha256
    # every text field of the records (a float such as latency_ms may hold the digits 138 by chance)
    text = repr([{k: v for k, v in vars(r).items() if not isinstance(v, float)} for r in records])
    assert "张伟" not in text and "138" not in text


def test_parse_retry_after_forms():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
