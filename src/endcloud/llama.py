"""One way to open a GGUF with llama-cpp-python, for the embedded teacher and the end-model
service alike: the model, and a formatter for the chat template the GGUF carries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter


def open_gguf(path: str | Path, *, n_ctx: int, n_threads: int = 0, seed: int | None = None,
              what: str = "model") -> tuple[Llama, Jinja2ChatFormatter]:
    """(llama_cpp.Llama, Jinja2ChatFormatter) for `path`. `n_threads` 0: $ENDCLOUD_N_THREADS, else
    every CPU. `what` names the setting in errors (e.g. "backend.model")."""
    try:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    except ImportError:
        from endcloud.errors import MissingExtraError

        raise MissingExtraError("llama-cpp-python", "cloud-local") from None
    threads = n_threads or int(os.environ.get("ENDCLOUD_N_THREADS") or os.cpu_count() or 1)
    extra = {} if seed is None else {"seed": seed + 1}  # llama-cpp-python reads seed 0 as "random"
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads,
                          n_threads_batch=threads, verbose=False, **extra)
    meta = llm.metadata
    if "tokenizer.chat_template" not in meta:
        from endcloud.errors import ConfigError

        llm.close()
        raise ConfigError(f"{what}: {path} carries no chat template (tokenizer.chat_template)")

    def special(key: str) -> str:  # the template's bos/eos text, e.g. <|im_end|>
        tid = int(meta.get(key, -1))
        return llm.detokenize([tid], special=True).decode("utf-8", "replace") if tid >= 0 else ""

    formatter = Jinja2ChatFormatter(template=meta["tokenizer.chat_template"],
                                    eos_token=special("tokenizer.ggml.eos_token_id"),
                                    bos_token=special("tokenizer.ggml.bos_token_id"))
    return llm, formatter
