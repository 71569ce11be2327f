"""`endcloud cloud serve-local` as a real process on loopback, serving the tiny model; reached
through our client (streaming and not) and through the official `openai` SDK."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from endcloud.cloud.client import CloudClient
from endcloud.cloud.config import CloudConfig
from endcloud.errors import MalformedReplyError
from endcloud.cloud.server import server_process

pytestmark = pytest.mark.slow

MSGS = [{"role": "system", "content": "你是一名电商客服。"},
        {"role": "user", "content": "我叫张伟，我的订单什么时候发货？"}]


@pytest.fixture(scope="module")
def base_url(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with server_process(str(tiny_model_dir), served_name="tiny", log_path=str(log)) as url:
        yield url


def client(base_url: str, **kw) -> CloudClient:
    return CloudClient(CloudConfig(base_url=base_url, model="tiny", max_tokens=6, temperature=0.0,
                                   reject_truncated=False, deadline_s=60, **kw))


def test_health_and_models(base_url):
    root = base_url.removesuffix("/v1")
    assert httpx.get(f"{root}/health").json()["status"] == "ok"
    assert httpx.get(f"{base_url}/models").json()["data"][0]["id"] == "tiny"


@pytest.mark.parametrize("stream", [False, True])
def test_our_client_gets_a_completion(base_url, stream):
    with client(base_url, stream=stream) as c:
        reply = c.chat(MSGS)
    assert reply.text and reply.finish_reason in ("stop", "length")
    assert reply.completion_tokens <= 6 and reply.prompt_tokens > 0 and reply.model == "tiny"


def test_stream_and_non_stream_agree_under_greedy_decoding(base_url):
    with client(base_url) as plain, client(base_url, stream=True) as streamed:
        assert plain.chat(MSGS).text == streamed.chat(MSGS).text


def test_truncation_is_reported_when_labels_must_be_complete(base_url):
    c = CloudClient(CloudConfig(base_url=base_url, model="tiny", max_tokens=2, temperature=0.0,
                                max_attempts=1, deadline_s=60))
    with c, pytest.raises(MalformedReplyError) as err:
        c.chat(MSGS)
    assert err.value.kind == "truncated"


def test_official_openai_sdk(base_url):
    openai = pytest.importorskip("openai")
    sdk = openai.OpenAI(base_url=base_url, api_key="unused-local", max_retries=0, timeout=60)
    out = sdk.chat.completions.create(model="tiny", messages=MSGS, max_tokens=5, temperature=0)
    assert out.choices[0].message.content and out.usage.completion_tokens <= 5
    pieces = [c.choices[0].delta.content or "" for c in sdk.chat.completions.create(
        model="tiny", messages=MSGS, max_tokens=5, temperature=0, stream=True) if c.choices]
    assert "".join(pieces) == out.choices[0].message.content


def test_bad_requests_get_openai_style_errors(base_url):
    r = httpx.post(f"{base_url}/chat/completions", content=b"{not json")
    assert r.status_code == 400 and "error" in r.json()
    assert httpx.post(f"{base_url}/nope", json={}).status_code == 404


def test_cli_help_lists_serve_local():
    out = subprocess.run([sys.executable, "-m", "endcloud", "cloud", "--help"], capture_output=True, text=True)
    assert "serve-local" in out.stdout and "label" in out.stdout
