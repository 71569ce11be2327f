"""The OpenAI chat-completions protocol, in one place: what goes on the wire and how to read it.

Every client and server in endcloud speaks through this module: the teacher client
(`cloud/client.py`), the service's `openai` backend (`end/runtime.py`), the service's own API
(`serve/routes.py`), the local teacher server (`cloud/server.py`), the demo, the benchmarks and the
test fakes. A provider quirk is handled here once.

    body = request_body("qwen", messages, max_tokens=256, temperature=0.6, top_p=0.8, stream=True)
    for event in sse_events(response_lines):            # parsed `data:` events, up to [DONE]
        piece = stream.feed(event)                      # stream = Stream(); piece = the delta text
    stream.completion()                                 # -> Completion(text, finish_reason, usage...)
    sse_event(chunk_body(...)) / SSE_DONE               # the bytes a server writes

The retry policy (which failures may be tried again, how long to wait) is here too, so the
teacher client and the `openai` backend retry the same way.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping

from endcloud.errors import (AuthError, CloudError, MalformedReplyError, RequestRejectedError,
                             TransientError)

SSE_DONE = b"data: [DONE]\n\n"
RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx


# -- requests -----------------------------------------------------------------------------------
def request_body(model: str, messages: list[dict[str, str]], *, max_tokens: int,
                 temperature: float | None = None, top_p: float | None = None,
                 stream: bool = False) -> dict[str, Any]:
    """A chat.completions request; a stream asks for the usage chunk at its end."""
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens,
                            "stream": stream}
    if temperature is not None:
        body["temperature"] = temperature
    if top_p is not None:
        body["top_p"] = top_p
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


@dataclass
class Request:
    """A chat.completions request as a server reads it (unknown fields ignored, as OpenAI does)."""

    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float
    top_p: float
    stream: bool
    include_usage: bool


def read_request(raw: bytes, default_max_tokens: int = 256) -> Request:
    """Parse a request body; ValueError (with the reason) when it is not a usable request."""
    try:
        obj = json.loads(raw)
        messages = [{"role": str(m["role"]), "content": content_text(m.get("content"))}
                    for m in obj["messages"]]
        max_tokens = int(obj.get("max_tokens") or obj.get("max_completion_tokens") or default_max_tokens)
        temperature = float(obj.get("temperature", 0.7))
        top_p = float(obj.get("top_p", 1.0))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    if not messages:
        raise ValueError("messages is empty")
    return Request(messages, max_tokens, temperature, top_p, bool(obj.get("stream")),
                   bool((obj.get("stream_options") or {}).get("include_usage")))


# -- replies ------------------------------------------------------------------------------------
@dataclass
class Completion:
    """What one chat completion said, however it arrived (one JSON body or a stream)."""

    text: str
    finish_reason: str
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    refusal: str | None = None


def parse_completion(text: str) -> Completion:
    """A non-streaming chat.completion body; MalformedReplyError (kind says why) when unusable."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        raise MalformedReplyError("invalid_json", "the body is not JSON") from None
    if not isinstance(obj, dict):
        raise MalformedReplyError("bad_schema", "the body is not a JSON object")
    if "error" in obj and "choices" not in obj:
        raise MalformedReplyError("error_body", "HTTP 200 with an error object")
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise MalformedReplyError("bad_schema", "no choices list")
    if not choices:
        raise MalformedReplyError("empty_choices", "choices is empty")
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    usage = obj.get("usage") or {}
    return Completion(content_text(message.get("content")), choice.get("finish_reason") or "",
                      obj.get("model", ""), int(usage.get("prompt_tokens") or 0),
                      int(usage.get("completion_tokens") or 0), message.get("refusal"))


def _event(line: str) -> dict[str, Any] | None | bool:
    """One SSE line -> its JSON event; None for a line that is not an event; False at [DONE]."""
    if not line.startswith("data:"):
        return None  # comments (": keep-alive"), `event:` / `id:` lines, blank separators
    data = line[5:].strip()
    if data == "[DONE]":
        return False
    try:
        obj = json.loads(data)
    except json.JSONDecodeError:
        raise MalformedReplyError("invalid_json", "a stream event is not JSON") from None
    if not isinstance(obj, dict):
        raise MalformedReplyError("bad_schema", "a stream event is not an object")
    return obj


def sse_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON events of a text/event-stream body, in order, up to `data: [DONE]`."""
    for line in lines:
        event = _event(line)
        if event is False:
            return
        if event is not None:
            yield event  # type: ignore[misc]


async def asse_events(lines: AsyncIterable[str]) -> AsyncIterator[dict[str, Any]]:
    """`sse_events` over an async line source (httpx's `aiter_lines`)."""
    async for line in lines:
        event = _event(line)
        if event is False:
            return
        if event is not None:
            yield event  # type: ignore[misc]


@dataclass
class Stream:
    """Folds stream events into one Completion; `feed` returns each event's new text."""

    parts: list[str] = field(default_factory=list)
    finish_reason: str = ""
    model: str = ""
    refusal: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    choices_seen: bool = False

    def feed(self, event: dict[str, Any]) -> str:
        if "error" in event:
            raise MalformedReplyError("error_body", "the stream carried an error event")
        self.model = event.get("model") or self.model
        self.usage = event.get("usage") or self.usage
        new = []
        for choice in event.get("choices") or []:
            self.choices_seen = True
            delta = choice.get("delta") or {}
            new.append(content_text(delta.get("content")))
            self.refusal = self.refusal or delta.get("refusal")
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        text = "".join(new)
        if text:
            self.parts.append(text)
        return text

    def completion(self) -> Completion:
        if not self.choices_seen:
            raise MalformedReplyError("empty_choices", "the stream had no choices")
        return Completion("".join(self.parts), self.finish_reason, self.model,
                          int(self.usage.get("prompt_tokens") or 0),
                          int(self.usage.get("completion_tokens") or 0), self.refusal)


def parse_stream(text: str) -> Completion:
    """A whole streamed body (`data: {...}` lines, `data: [DONE]`) -> the same as parse_completion."""
    stream = Stream()
    for event in sse_events(text.splitlines()):
        stream.feed(event)
    return stream.completion()


def content_text(content: Any) -> str:
    """A message's content: a string, or a list of content parts (their text joined)."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def error_detail(body: bytes, limit: int = 200) -> str:
    """The message of an error body (`{"error": {"message": ...}}` or text), on one short line."""
    text = body.decode("utf-8", errors="replace")
    try:
        obj = json.loads(text)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        text = err.get("message", str(err)) if isinstance(err, dict) else str(err)
    except (json.JSONDecodeError, AttributeError):
        pass
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


# -- what a server writes -----------------------------------------------------------------------
def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_body(id: str, model: str, text: str, finish_reason: str, prompt_tokens: int,
                    completion_tokens: int, created: int | None = None) -> dict[str, Any]:
    return {"id": id, "object": "chat.completion", "created": int(created or time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish_reason}],
            "usage": usage_body(prompt_tokens, completion_tokens)}


def chunk_body(id: str, model: str, delta: dict[str, str] | None, finish_reason: str | None = None,
               usage: dict[str, int] | None = None, created: int | None = None) -> dict[str, Any]:
    """One stream chunk: a delta (or, with `usage` and no delta, the final usage-only chunk)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    body: dict[str, Any] = {"id": id, "object": "chat.completion.chunk",
                            "created": int(created or time.time()), "model": model, "choices": choices}
    if usage is not None:
        body["usage"] = usage
    return body


def sse_event(obj: Mapping[str, Any] | str) -> bytes:
    """One `data:` event; `obj` a JSON-able mapping or JSON text already serialised."""
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    return b"data: " + text.encode("utf-8") + b"\n\n"


def error_body(message: str, type: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type}}


# -- failures and retries -----------------------------------------------------------------------
def http_error(status: int, detail: str, retry_after: str | None = None, key_hint: str = "") -> CloudError:
    """The error an HTTP status means: 401/403 auth, 408/409/429/5xx transient, other 4xx final."""
    if status in (401, 403):
        return AuthError(f"http_{status}", f"the endpoint refused the request{key_hint}. {detail}",
                         status=status)
    if status in RETRY_STATUSES or status >= 500:
        return TransientError(f"http_{status}", detail, status=status,
                              retry_after=parse_retry_after(retry_after))
    return RequestRejectedError(f"http_{status}", detail, status=status)


@dataclass
class Retry:
    """Exponential backoff with full jitter, honouring Retry-After when it fits the deadline."""

    max_attempts: int = 3
    base_s: float = 0.5
    max_s: float = 8.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, exc: CloudError, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up now."""
        if not exc.retryable or attempt >= self.max_attempts:
            return None
        remaining = deadline - time.monotonic()
        cap = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        delay = self.rng.uniform(0, cap)  # full jitter: spreads out a herd of retries
        if exc.retry_after is not None:
            if exc.retry_after >= remaining:
                return None  # the server asks us to wait longer than we may
            delay = max(delay, exc.retry_after)
        return delay if delay < remaining else None


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After: 3` or an HTTP date -> seconds (None when absent or unreadable)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None
