"""The OpenAI protocol module: what a server writes, every reader reads back the same."""

from __future__ import annotations

import json
import random
import time

import pytest

from endcloud import wire
from endcloud.errors import AuthError, MalformedReplyError, RequestRejectedError, TransientError


def test_a_written_stream_reads_back_as_the_completion_it_carries():
    cid = wire.completion_id()
    body = b"".join([
        b": keep-alive\n\n",  # a comment line, as proxies and vLLM send
        wire.sse_event(wire.chunk_body(cid, "m", {"role": "assistant", "content": ""})),
        wire.sse_event(wire.chunk_body(cid, "m", {"content": "亲，"})),
        wire.sse_event(wire.chunk_body(cid, "m", {"content": "已发货"})),
        wire.sse_event(wire.chunk_body(cid, "m", {}, "stop")),
        wire.sse_event(wire.chunk_body(cid, "m", None, usage=wire.usage_body(7, 3))),
        wire.SSE_DONE,
        wire.sse_event(wire.chunk_body(cid, "m", {"content": "after DONE: ignored"})),
    ]).decode()
    reply = wire.parse_stream(body)
    assert (reply.text, reply.finish_reason, reply.model) == ("亲，已发货", "stop", "m")
    assert (reply.prompt_tokens, reply.completion_tokens) == (7, 3)
    whole = wire.completion_body(cid, "m", "亲，已发货", "stop", 7, 3)
    assert wire.parse_completion(json.dumps(whole)) == reply


@pytest.mark.parametrize("body,kind", [
    ("data: {not json}\n\n", "invalid_json"),
    ('data: {"error": {"message": "overloaded"}}\n\n', "error_body"),
    ("data: [DONE]\n\n", "empty_choices"),
    ('data: [1, 2]\n\n', "bad_schema"),
])
def test_a_broken_stream_names_what_is_wrong(body, kind):
    with pytest.raises(MalformedReplyError) as err:
        wire.parse_stream(body)
    assert err.value.kind == kind


def test_request_body_and_read_request_agree():
    msgs = [{"role": "user", "content": "在吗"}]
    raw = json.dumps(wire.request_body("m", msgs, max_tokens=9, temperature=0.0, top_p=0.8,
                                       stream=True)).encode()
    req = wire.read_request(raw)
    assert (req.messages, req.max_tokens, req.temperature, req.top_p) == (msgs, 9, 0.0, 0.8)
    assert req.stream and req.include_usage
    parts = json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                                  {"type": "text", "text": "b"}]}]})
    assert wire.read_request(parts.encode()).messages[0]["content"] == "ab"
    for bad in (b"{}", b"[]", b'{"messages": []}', b"nope"):
        with pytest.raises(ValueError):
            wire.read_request(bad)


def test_statuses_map_to_what_a_retry_can_do():
    assert isinstance(wire.http_error(401, "no"), AuthError)
    assert isinstance(wire.http_error(400, "bad"), RequestRejectedError)
    e = wire.http_error(429, "slow down", retry_after="2")
    assert isinstance(e, TransientError) and e.retryable and e.retry_after == 2.0
    assert isinstance(wire.http_error(503, "x"), TransientError)


def test_retry_gives_up_when_the_server_asks_for_more_than_the_deadline():
    retry = wire.Retry(max_attempts=5, base_s=0.1, max_s=1.0, rng=random.Random(0))
    deadline = time.monotonic() + 1.0
    assert 0 <= retry.delay(TransientError("http_503", "x"), 1, deadline) <= 0.1
    assert retry.delay(TransientError("http_429", "x", retry_after=5.0), 1, deadline) is None
    assert retry.delay(RequestRejectedError("http_400", "x"), 1, deadline) is None
    assert retry.delay(TransientError("http_503", "x"), 5, deadline) is None
