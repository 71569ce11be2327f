"""Token counting for the length filters: the target tokenizer, or a fast estimate."""

from __future__ import annotations

import re
from pathlib import Path

from endcloud.errors import ConfigError, MissingExtraError

# One token per CJK character (what Qwen/ChatGLM tokenizers roughly do for Chinese), per Latin
# word or number, per other symbol. Used when no tokenizer is configured.
_ESTIMATE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z]+|\d+|[^\sA-Za-z\d]")


class TokenCounter:
    """`count(text) -> int` in tokens of `tokenizer` ("" = estimate)."""

    def __init__(self, tokenizer: str = "") -> None:
        self.name = tokenizer or "estimate"
        self._tok = _load(tokenizer) if tokenizer else None

    def count(self, text: str) -> int:
        if self._tok is None:
            return len(_ESTIMATE.findall(text))
        return len(self._tok.encode(text, add_special_tokens=False).ids)


def _load(spec: str):  # -> tokenizers.Tokenizer
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"length.tokenizer: no tokenizer.json at {spec!r} "
                          "(give a tokenizer.json, a model folder, or \"\" for the estimate)")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise MissingExtraError("tokenizers", "tokenize") from None
    return Tokenizer.from_file(str(path))
