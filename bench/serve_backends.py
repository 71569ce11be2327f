"""End-model backends on the default end model: decode tokens/s and time to first token (TTFT) of
bare llama.cpp, of our service with the llama-cpp backend (HTTP streaming through the real app
on loopback), and of the in-process transformers backend (bf16, fp32); with and without a LoRA
adapter. Printed as ratios to bare llama.cpp measured in the same run. Goal: ours within 1.5x.

    python bench/serve_backends.py | tee bench/results/serve_backends.txt
    python bench/serve_backends.py --repeats 3 --max-tokens 48 --skip-transformers

- bare: `llama_cpp.Llama.create_chat_completion(stream=True)`, the same GGUF, messages and params.
- ours: `endcloud serve` in its own process (backend.kind=llama-cpp, escalation off so no cloud
  call or reply scoring is timed), driven by httpx streaming SSE from this process.
- transformers: `TransformersBackend.stream` in process (dequantized weights), no HTTP.
Every request is greedy and single-threaded (ENDCLOUD_N_THREADS, default 1). Each repeat asks a
different question (the shared system prompt stays cached, as in service), after one warm-up.
TTFT = request sent -> first text; decode tok/s = (tokens - 1) / (last text - first text).
The adapter: a LoRA folder (`--adapter`, default the 300-step JDDC run of bench/end_curves.py if
present) exported to GGUF, else a random r-8 LoRA on all seven projections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

from endcloud import wire

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_durability import start  # noqa: E402

SYSTEM = "你是一名电商客服，请礼貌、简洁地回答顾客的问题。"
QUESTIONS = ["请详细介绍一下你们的退换货政策，分点说明。", "我买的衣服尺码不合适，应该怎么换货？请一步一步告诉我。",
             "快递一直没有更新物流信息，我该怎么办？请给出几个建议。", "你们店的会员积分怎么获得和使用？详细说说。",
             "商品收到后发现有质量问题，怎么申请售后？", "请介绍一下你们支持的付款方式和各自的优缺点。"]
DEFAULT_ADAPTER = "runs/bench-curves/lora-lr5e-05-300/adapter"
CONFIG = """\
store: {store}
system: "{system}"
backend: {{kind: llama-cpp, model: {{name: "{model}"}}, adapters: {adapters}, temperature: 0.0,
          n_threads: {threads}, n_ctx: 1024}}
escalation: {{enabled: false}}
limits: {{session_rate_per_minute: 0, max_tokens_cap: {max_tokens}, default_max_tokens: {max_tokens}}}
"""


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]


def timed(pieces: Iterator[Any], tokens: Callable[[], int]) -> dict[str, float]:
    """Consume `pieces` (each a piece of reply text as it arrives); `tokens()` then says how many
    tokens the reply had (streamed pieces are not tokens: a CJK character may take two)."""
    t0 = time.perf_counter()
    first = last = None
    for _ in pieces:
        last = time.perf_counter()
        first = first or last
    n = tokens()
    if first is None or last is None or n < 2 or last <= first:
        return {"ttft_ms": float("nan"), "tok_s": float("nan"), "tokens": n}
    return {"ttft_ms": (first - t0) * 1000, "tok_s": (n - 1) / (last - first), "tokens": n}


def run(name: str, once: Callable[[int], dict[str, float]], repeats: int) -> dict[str, Any]:
    once(len(QUESTIONS) - 1)  # warm-up (allocations, the system prompt into the KV cache)
    rows = [once(i) for i in range(repeats)]
    getattr(once, "close", lambda: None)()  # native models freed now, not at interpreter exit
    out = {"name": name, "ttft_ms": statistics.median(r["ttft_ms"] for r in rows),
           "tok_s": statistics.median(r["tok_s"] for r in rows),
           "tokens": statistics.median(r["tokens"] for r in rows), "repeats": repeats}
    print(f"  {name:<34} ttft {out['ttft_ms']:7.0f} ms   decode {out['tok_s']:6.2f} tok/s   "
          f"({out['tokens']:.0f} tokens, median of {repeats})", flush=True)
    return out


def bare(model: Path, lora: Path | None, threads: int, max_tokens: int) -> Callable:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(model), n_ctx=1024, n_threads=threads,
                          n_threads_batch=threads, verbose=False,
                          lora_path=str(lora) if lora else None)

    def once(i: int) -> dict[str, float]:
        text: list[str] = []

        def pieces() -> Iterator[str]:
            for chunk in llm.create_chat_completion(messages(i), temperature=0.0, max_tokens=max_tokens,
                                                    stream=True):
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    text.append(piece)
                    yield piece

        return timed(pieces(), lambda: len(llm.tokenize("".join(text).encode(), add_bos=False,
                                                             special=False)))

    once.close = llm.close  # type: ignore[attr-defined]
    return once


def ours(url: str, model: str, max_tokens: int) -> Callable:
    token = httpx.post(f"{url}/v1/customers").raise_for_status().json()["token"]
    client = httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=300)

    def once(i: int) -> dict[str, float]:
        usage: dict[str, int] = {}

        def pieces() -> Iterator[str]:
            body = {"model": model, "messages": messages(i)[1:], "max_tokens": max_tokens,
                    "temperature": 0.0, "stream": True, "stream_options": {"include_usage": True}}
            with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                resp.raise_for_status()
                stream = wire.Stream()
                for event in wire.sse_events(resp.iter_lines()):
                    piece = stream.feed(event)
                    usage.update(stream.usage)
                    if piece:
                        yield piece

        return timed(pieces(), lambda: int(usage.get("completion_tokens") or 0))

    return once


def transformers(model: str, dtype: str, max_tokens: int) -> Callable:
    from endcloud.end.config import ModelConfig
    from endcloud.end.backend import Delta, Final, GenParams
    from endcloud.end.runtime import TransformersBackend
    from endcloud.end.config import BackendConfig

    backend = TransformersBackend(BackendConfig(model=ModelConfig(name=model, dtype=dtype),
                                                temperature=0.0))
    asyncio.run(backend.start())

    def once(i: int) -> dict[str, float]:
        async def collect() -> list[tuple[float, Any]]:
            return [(time.perf_counter(), ev) async for ev in
                    backend.stream("end", messages(i), GenParams(max_tokens=max_tokens))]
        t0 = time.perf_counter()
        events = asyncio.run(collect())
        texts = [t for t, ev in events if isinstance(ev, Delta)]
        n = next(ev.completion_tokens for _, ev in events if isinstance(ev, Final))
        if len(texts) < 2:
            return {"ttft_ms": float("nan"), "tok_s": float("nan"), "tokens": n}
        return {"ttft_ms": (texts[0] - t0) * 1000, "tok_s": (n - 1) / (texts[-1] - texts[0]),
                "tokens": n}

    return once


def gguf_adapter(base_gguf: Path, folder: str, work: Path) -> tuple[Path, str]:
    """The adapter as a GGUF LoRA file: exported from `folder`, or random (seeded) if absent."""
    from endcloud.end.export import base_shape, export_lora_gguf, write_gguf_adapter

    if folder and Path(folder).is_dir():
        return export_lora_gguf(folder, work / "adapter.gguf", model=str(base_gguf)), f"LoRA {folder}"
    import torch

    hp, sha = base_shape(str(base_gguf))
    g = torch.Generator().manual_seed(0)
    shapes = {"self_attn.q_proj": (896, 896), "self_attn.k_proj": (128, 896),
              "self_attn.v_proj": (128, 896), "self_attn.o_proj": (896, 896),
              "mlp.gate_proj": (4864, 896), "mlp.up_proj": (4864, 896), "mlp.down_proj": (896, 4864)}
    pairs = {f"model.layers.{i}.{m}.weight": (torch.randn(8, d_in, generator=g) * 0.01,
                                               torch.randn(d_out, 8, generator=g) * 0.001)
             for i in range(hp["n_layer"]) for m, (d_out, d_in) in shapes.items()}
    return write_gguf_adapter(pairs, hp, 32.0, work / "adapter.gguf", sha), "random r-8 LoRA"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", help="packaged end model or .gguf")
    ap.add_argument("--adapter", default=DEFAULT_ADAPTER, help="LoRA folder ('' = random)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--tf-max-tokens", type=int, default=24, help="transformers is slow: fewer")
    ap.add_argument("--dtypes", nargs="*", default=["bfloat16", "float32"])
    ap.add_argument("--skip-transformers", action="store_true")
    args = ap.parse_args()
    threads = int(os.environ.get("ENDCLOUD_N_THREADS") or 1)
    os.environ["ENDCLOUD_N_THREADS"] = str(threads)

    from endcloud.end.runtime import gguf_file

    gguf = gguf_file(args.model)
    work = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    adapter, about = gguf_adapter(gguf, args.adapter, work)
    print(f"serve_backends: {gguf.name}, {threads} thread(s), greedy, max_tokens {args.max_tokens}, "
          f"{args.repeats} repeats (+1 warm-up); adapter: {about}", flush=True)
    results: list[dict[str, Any]] = []
    for lora, suffix in ((None, ""), (adapter, " + LoRA")):
        results.append(run(f"bare llama.cpp{suffix}", bare(gguf, lora, threads, args.max_tokens),
                           args.repeats))
    (work / "serve.yaml").write_text(CONFIG.format(
        store=work / "serve.db", system=SYSTEM, model=gguf, adapters=json.dumps({"shop": str(adapter)}),
        threads=threads, max_tokens=args.max_tokens), encoding="utf-8")
    proc, url = start(work, timeout_s=120)
    try:
        for model, suffix in (("end", ""), ("shop", " + LoRA")):
            results.append(run(f"ours: HTTP + llama-cpp{suffix}", ours(url, model, args.max_tokens),
                               args.repeats))
    finally:
        proc.terminate()
        proc.wait(10)
    if not args.skip_transformers:
        for dtype in args.dtypes:
            results.append(run(f"transformers {dtype} (in process)",
                               transformers(args.model, dtype, args.tf_max_tokens), args.repeats))
    report(results)
    return 0


def report(results: list[dict[str, Any]]) -> None:
    by = {r["name"]: r for r in results}
    print("\nratios to bare llama.cpp in this run (decode: bare tok/s / this tok/s, >1 = slower;"
          " TTFT: this / bare)")
    for r in results:
        ref = by["bare llama.cpp + LoRA" if r["name"].endswith("+ LoRA") else "bare llama.cpp"]
        r["decode_slowdown"] = ref["tok_s"] / r["tok_s"]
        r["ttft_ratio"] = r["ttft_ms"] / ref["ttft_ms"]
        print(f"  {r['name']:<34} decode x{r['decode_slowdown']:5.2f}   ttft x{r['ttft_ratio']:5.2f}")
    ours_rows = [r for r in results if r["name"].startswith("ours")]
    ok = all(r["decode_slowdown"] <= 1.5 and r["ttft_ratio"] <= 1.5 for r in ours_rows)
    print(f"goal (ours within 1.5x of bare llama.cpp, decode and TTFT): {'met' if ok else 'NOT met'}")
    print(json.dumps({"bench": "serve_backends", "results": results}, ensure_ascii=False))


if __name__ == "__main__":
    code = main()
    # torch and llama.cpp both loaded, with their worker threads used: one of their native exit
    # handlers aborts ("terminate called without an active exception") after everything above
    # is printed; leave without running them
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
