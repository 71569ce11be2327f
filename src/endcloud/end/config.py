"""Configuration of the end-model stage: `configs/train.yaml` and `configs/generate.yaml`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from endcloud.config import check

# The end model's system prompt, in training and in service (a config can set its own).
DEFAULT_SYSTEM = "你是一名电商客服，请礼貌、简洁地回答顾客的问题。"

MethodName = Literal["lora", "prefix-tuning", "p-tuning-v2"]


@dataclass
class ModelConfig:
    """A base model: a packaged default name (see `endcloud models list`), a HF folder or a .gguf."""

    name: str = "qwen2.5-coder-0.5b"
    dtype: Literal["float32", "bfloat16"] = "float32"  # bfloat16 ~halves step time on AVX512-BF16
    cache_dir: str = ""  # default: $ENDCLOUD_CACHE or ~/.cache/endcloud

    def __post_init__(self) -> None:
        check(bool(self.name), "model.name", "name a packaged model, a model folder or a .gguf file")


@dataclass
class MethodConfig:
    """A PEFT method and its hyper-parameters (defaults: the paper's Table IV)."""

    name: MethodName = "lora"
    r: int = 8
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=list)  # empty: chosen per architecture
    init_lora_weights: bool = True  # False: B random too (tests need a non-zero gradient on A)
    num_virtual_tokens: int = 128
    prefix_hidden: int = 0  # prefix-tuning MLP width; 0 = the model's hidden size
    init_prefix_from_text: bool = True  # p-tuning-v2: start the prompts from real key/values

    def __post_init__(self) -> None:
        check(self.r > 0, "method.r", "must be > 0")
        check(self.alpha > 0, "method.alpha", "must be > 0")
        check(0.0 <= self.dropout < 1.0, "method.dropout", "must be in [0, 1)")
        check(self.num_virtual_tokens > 0, "method.num_virtual_tokens", "must be > 0")
        check(self.prefix_hidden >= 0, "method.prefix_hidden", "must be >= 0")


@dataclass
class DataConfig:
    """Training data: natural dialogues and/or cloud labels, both `messages` JSONL."""

    natural: str = ""  # e.g. runs/data-.../train.jsonl
    labels: str = ""  # e.g. runs/cloud-label-.../labels.jsonl
    label_ratio: float = 0.5  # share of training examples drawn from `labels` when both are given
    system: str = ""  # system prompt put before every sample that has none
    max_input_tokens: int = 256  # context + query, truncated from the left
    max_output_tokens: int = 512  # the reply, truncated from the right
    limit: int = 0  # use only the first N lines of each file (0 = all)

    def __post_init__(self) -> None:
        check(0.0 <= self.label_ratio <= 1.0, "data.label_ratio", "must be in [0, 1]")
        check(self.max_input_tokens > 0, "data.max_input_tokens", "must be > 0")
        check(self.max_output_tokens > 0, "data.max_output_tokens", "must be > 0")
        check(self.limit >= 0, "data.limit", "must be >= 0")


@dataclass
class TrainConfig:
    """`endcloud end train`: one SFT run of one method on one base model."""

    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    steps: int = 30000  # optimizer steps (Table IV)
    lr: float = 5e-5  # Table IV, one lr for all methods
    lr_per_method: dict[str, float] = field(default_factory=dict)  # e.g. {p-tuning-v2: 1.0e-2}
    scheduler: Literal["constant", "linear", "cosine"] = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    batch_size: int = 1  # examples per micro-batch (Table IV); shared by the processes of a DDP launch
    grad_accum: int = 8
    save_steps: list[int] = field(default_factory=lambda: [3000, 5000, 15000])  # Table V/VI
    save_every: int = 1000  # also checkpoint every N steps, for --resume (0 = never)
    keep_last: int = 2  # periodic checkpoints kept; `save_steps` ones are always kept
    log_every: int = 10
    seed: int = 42
    out_dir: str = "runs"
    run_dir: str = ""  # a fixed run folder (needed for --resume); default: runs/end-train-<time>
    resume: bool = False
    store: bool = True  # log the run and its losses to the SQLite store ($ENDCLOUD_DB)
    # continue training this adapter folder (verified against the base; its own method and
    # shape are kept, `method.*` is ignored) instead of a fresh one: the online loop's warm start
    init_adapter: str = ""

    def __post_init__(self) -> None:
        check(bool(self.data.natural or self.data.labels), "data.natural",
              "give a messages JSONL file: data.natural=... and/or data.labels=...")
        check(self.steps > 0, "steps", "must be > 0")
        check(self.lr > 0, "lr", "must be > 0")
        for name, lr in self.lr_per_method.items():
            check(name in get_args(MethodName), f"lr_per_method.{name}",
                  f"unknown method ({', '.join(get_args(MethodName))})")
            check(lr > 0, f"lr_per_method.{name}", "must be > 0")
        check(self.batch_size > 0, "batch_size", "must be > 0")
        check(self.grad_accum > 0, "grad_accum", "must be > 0")
        check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        check(all(s > 0 for s in self.save_steps), "save_steps", "steps must be > 0")
        check(self.save_every >= 0, "save_every", "must be >= 0")
        check(self.keep_last >= 1, "keep_last", "must be >= 1")
        check(self.log_every > 0, "log_every", "must be > 0")
        check(not (self.resume and self.init_adapter), "init_adapter",
              "use either --resume (same run) or init_adapter (a new run from an adapter)")
        check(not self.resume or bool(self.run_dir), "run_dir",
              "--resume needs the run folder to continue: run_dir=runs/end-train-...")

    @property
    def method_lr(self) -> float:
        """The learning rate of this run's method."""
        return self.lr_per_method.get(self.method.name, self.lr)


@dataclass
class GenerateConfig:
    """`endcloud end generate` / `chat`: sampling from the base model with or without an adapter."""

    model: ModelConfig = field(default_factory=ModelConfig)
    adapter: str = ""  # an adapter folder; empty = the original model (Table VI baseline)
    input: str = ""  # messages JSONL (the last assistant message, if any, is dropped) or text lines
    output: str = ""  # JSONL of replies; default: stdout
    system: str = ""
    max_new_tokens: int = 256
    max_input_tokens: int = 256
    temperature: float = 0.6  # Table IV; 0 = greedy
    top_p: float = 0.8  # Table IV
    batch_size: int = 4
    seed: int = 42
    stream: bool = True  # print tokens as they come (chat, and generate with batch_size 1)

    def __post_init__(self) -> None:
        check(self.max_new_tokens > 0, "max_new_tokens", "must be > 0")
        check(self.max_input_tokens > 0, "max_input_tokens", "must be > 0")
        check(self.temperature >= 0, "temperature", "must be >= 0 (0 = greedy)")
        check(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        check(self.batch_size > 0, "batch_size", "must be > 0")


@dataclass
class BackendConfig:
    """Which end model answers: in process (llama.cpp on a GGUF, or transformers), an
    OpenAI-compatible upstream, or fake."""

    kind: Literal["llama-cpp", "transformers", "openai", "fake"] = "transformers"
    model: ModelConfig = field(default_factory=ModelConfig)  # the base model (llama-cpp: a GGUF)
    served_name: str = "end"  # the base model's name in /v1/models
    # in process: promoted adapters, served under their own model name (name -> adapter folder;
    # llama-cpp also takes a GGUF LoRA file, and exports a LoRA folder to one)
    adapters: dict[str, str] = field(default_factory=dict)
    n_threads: int = 0  # llama-cpp: 0 = $ENDCLOUD_N_THREADS or every core
    n_ctx: int = 2048  # llama-cpp: context window (prompt + reply tokens)
    # openai: e.g. llama.cpp `llama-server`, or vLLM `--enable-lora --lora-modules name=path`
    base_url: str = ""
    upstream_models: list[str] = field(default_factory=list)  # names to offer; [] = served_name
    upstream_max_attempts: int = 3  # openai: tries before the first piece (timeouts, 429, 5xx)
    upstream_deadline_s: float = 30.0  # openai: the most one request may take, retries included
    # openai: who loads the champion's LoRA on a promotion (end/upstream.py): "" = nobody (the
    # upstream serves what it was started with), "vllm" (POST /v1/load_lora_adapter, a new name
    # each time; needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), "llama-server" (switches among the
    # adapters it was started with: --lora FILE.gguf ... --lora-init-without-apply)
    upstream_adapters: Literal["", "vllm", "llama-server"] = ""
    temperature: float = 0.6
    top_p: float = 0.8
    max_input_tokens: int = 512
    slots: int = 1  # generations at once (1 for an in-process CPU model)
    seed: int = 0
    fake_reply: str = "亲，您好！您的问题我们已经收到，会尽快为您处理哦~"
    fake_token_delay_s: float = 0.0
    fake_delay_s: float = 0.0  # fake: seconds before the first piece (a slow teacher)
    # transformers: answer as `served_name` with the champion of this evolve registry, and follow
    # its promotions and rollbacks without a restart (serve/hotswap.py); "" = the base model;
    # "store" = the champion pointer in the service's store (replicas: evolve's `store` is the
    # same), its adapters unpacked into `registry_cache` (default ~/.cache/endcloud/champions)
    registry: str = ""
    registry_poll_s: float = 1.0
    registry_cache: str = ""

    def __post_init__(self) -> None:
        check(bool(self.served_name), "backend.served_name", "must not be empty")
        check(not self.registry or self.kind in ("transformers", "llama-cpp", "fake")
              or (self.kind == "openai" and bool(self.upstream_adapters)), "backend.registry",
              "hot swap needs kind=transformers or llama-cpp, or kind=openai with "
              "upstream_adapters=vllm|llama-server (the engine then loads the champion)")
        check(self.n_threads >= 0, "backend.n_threads", "must be >= 0 (0 = every core)")
        check(self.n_ctx >= 64, "backend.n_ctx", "must be >= 64")
        check(self.registry_poll_s > 0, "backend.registry_poll_s", "must be > 0")
        check(self.kind != "openai" or self.base_url.startswith(("http://", "https://")),
              "backend.base_url", "kind=openai needs base_url=http://host:port/v1")
        check(self.slots >= 1, "backend.slots", "must be >= 1")
        check(self.upstream_max_attempts >= 1, "backend.upstream_max_attempts", "must be >= 1")
        check(self.upstream_deadline_s > 0, "backend.upstream_deadline_s", "must be > 0")
        check(self.temperature >= 0, "backend.temperature", "must be >= 0 (0 = greedy)")
        check(0 < self.top_p <= 1, "backend.top_p", "must be in (0, 1]")
        check(self.fake_token_delay_s >= 0, "backend.fake_token_delay_s", "must be >= 0")
        check(self.fake_delay_s >= 0, "backend.fake_delay_s", "must be >= 0")
