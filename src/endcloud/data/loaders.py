"""Streaming corpus loaders, one per format, all yielding `Dialogue`s.

    from endcloud.data.loaders import iter_dialogues, LoadStats
    stats = LoadStats()
    for dlg in iter_dialogues("jddc2019", "jddc/jddc2019_chat_sample_v1.tsv.gz", stats=stats):
        print(dlg.id, [(t.role, t.text) for t in dlg.turns])

Every loader reads line by line (gzip or plain, detected by magic bytes), so memory does not grow
with the corpus. Malformed input raises `DataFormatError(path, line, problem)`, or with
`on_error="skip"` is counted in `stats.skipped[reason]` and left out; a dialogue is yielded whole
or not at all. Dialogue ids are `<source>:<session id or line number>`, stable and unique within
one source file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endcloud.data.readers import (
    ErrorPolicy,
    LineReader,
    LoadStats,
    OnError,
    RawLine,
    decode,
    iter_csv_records,
    iter_text_lines,
)
from endcloud.errors import DataFormatError
from endcloud.records import Dialogue, Turn

__all__ = ["LOADERS", "LoadContext", "LoadStats", "iter_dialogues", "rejoin_segmented"]


@dataclass
class LoadContext:
    """What a loader needs besides the path: options, counters and the error policy."""

    path: Path
    source: str
    policy: ErrorPolicy
    max_line_bytes: int = 1_000_000
    keep_negatives: bool = False

    @property
    def stats(self) -> LoadStats:
        return self.policy.stats

    def reader(self, path: Path | None = None) -> LineReader:
        return LineReader(path or self.path, self.policy, self.max_line_bytes)

    def error(self, line: int | None, reason: str, problem: str) -> None:
        self.policy.error(line, reason, problem)


Loader = Callable[[LoadContext], Iterator[Dialogue]]
LOADERS: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    def add(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn

    return add


def iter_dialogues(fmt: str, path: str | Path, *, stats: LoadStats | None = None,
                   on_error: OnError = "fail", max_line_bytes: int = 1_000_000,
                   keep_negatives: bool = False, source_name: str | None = None
                   ) -> Iterator[Dialogue]:
    """Yield the dialogues of one corpus file of format `fmt` (a key of `LOADERS`)."""
    if fmt not in LOADERS:
        raise ValueError(f"unknown corpus format {fmt!r}; known: {', '.join(sorted(LOADERS))}")
    policy = ErrorPolicy(Path(path), on_error, stats if stats is not None else LoadStats())
    ctx = LoadContext(Path(path), source_name or fmt, policy, max_line_bytes, keep_negatives)
    for dialogue in LOADERS[fmt](ctx):
        ctx.stats.dialogues += 1
        ctx.stats.turns += len(dialogue.turns)
        yield dialogue


# --- JDDC 2019: session TSV ------------------------------------------------------------------

JDDC2019_COLUMNS = 7
_FLAGS = {"0": False, "1": True}


@register("jddc2019")
def load_jddc2019(ctx: LoadContext) -> Iterator[Dialogue]:
    """Consecutive rows with one session_id form a Dialogue; one Turn per row, text as-is.

    A malformed row is skipped alone (skip mode); its session is still yielded without it.
    """
    reader = ctx.reader()
    session: Dialogue | None = None
    for lineno, text in iter_text_lines(reader):
        if not text.strip():
            continue
        row = _jddc2019_row(ctx, lineno, text)
        if row is None:
            continue
        ctx.stats.records += 1
        session_id, user_id, turn = row
        if session is None or session.meta["session_id"] != session_id:
            if session is not None:
                yield session
            session = Dialogue(f"{ctx.source}:{session_id}", [], ctx.source,
                               {"session_id": session_id, "user_id": user_id,
                                "is_transfer": False, "line": lineno})
        session.turns.append(turn)
        session.meta["is_transfer"] |= turn.meta["is_transfer"]
    if session is not None and not reader.truncated:  # a cut-off session may be incomplete
        yield session


def _jddc2019_row(ctx: LoadContext, lineno: int, text: str) -> tuple[str, str, Turn] | None:
    cols = text.split("\t")
    if len(cols) != JDDC2019_COLUMNS:
        ctx.error(lineno, "columns",
                  f"expected {JDDC2019_COLUMNS} tab-separated columns, got {len(cols)}")
        return None
    session_id, user_id, waiter_send, is_transfer, is_repeat, sku, content = cols
    for name, value in (("waiter_send", waiter_send), ("is_transfer", is_transfer),
                        ("is_repeat", is_repeat)):
        if value not in _FLAGS:
            ctx.error(lineno, "value", f"column {name} must be 0 or 1, got {value[:20]!r}")
            return None
    if not session_id:
        ctx.error(lineno, "value", "empty session_id")
        return None
    meta = {"is_transfer": _FLAGS[is_transfer], "is_repeat": _FLAGS[is_repeat],
            "sku": None if sku in ("", "nan") else sku, "line": lineno}
    role = "assistant" if _FLAGS[waiter_send] else "user"
    return session_id, user_id, Turn(role, content, meta)


# --- JDDC 2018 baseline: .enc (context) / .dec (reply) line pairs ------------------------------

_PUNCT_ONLY = re.compile(r"^[\s\W_]*$")


@register("jddc2018")
def load_jddc2018(ctx: LoadContext) -> Iterator[Dialogue]:
    """Line i of X.enc is the context, line i of X.dec the agent reply; `path` is the .enc file.

    Speakers in the context are unknown (turns were joined by ','), so roles are inferred:
    the last comma-piece is the customer's query (with any punctuation-only pieces after the
    last real one, e.g. a lone '?'), everything before it is one context turn of mixed speakers
    (role "user", meta speakers="mixed"). `context + "," + query` restores the original line.
    """
    dec_path = _dec_path(ctx.path)
    dec_policy = ErrorPolicy(dec_path, ctx.policy.on_error, ctx.stats)
    readers = ctx.reader(), LineReader(dec_path, dec_policy, ctx.max_line_bytes)
    enc_lines, dec_lines = iter(readers[0]), iter(readers[1])
    while True:
        enc, dec = next(enc_lines, None), next(dec_lines, None)
        if enc is None or dec is None:
            if enc is not dec and not (readers[0].truncated or readers[1].truncated):
                longer, rest = (ctx.path, enc_lines) if dec is None else (dec_path, dec_lines)
                _unpaired(ctx, longer, dec_path if dec is None else ctx.path, enc or dec, rest)
            return
        enc_text = None if enc.data is None else decode(enc, ctx.policy)
        dec_text = None if dec.data is None else decode(dec, dec_policy)
        if enc_text is None or dec_text is None:
            continue
        ctx.stats.records += 1
        context, reply = _strip_comma(enc_text), _strip_comma(dec_text)
        if not context.strip() or not reply.strip():
            ctx.stats.filtered["empty"] += 1
            continue
        turns = [*_jddc2018_turns(context), Turn("assistant", reply)]
        yield Dialogue(f"{ctx.source}:{enc.lineno}", turns, ctx.source,  # type: ignore[arg-type]
                       {"line": enc.lineno, "roles_inferred": True})


def _dec_path(enc_path: Path) -> Path:
    name = enc_path.name
    if ".enc" not in name:
        raise DataFormatError(enc_path, None, "jddc2018 expects the path of the .enc file "
                              "(e.g. train.enc.gz), with its .dec file beside it")
    stem = name[:name.rindex(".enc")]
    candidates = [enc_path.with_name(name.replace(".enc", ".dec")),
                  enc_path.with_name(stem + ".dec"), enc_path.with_name(stem + ".dec.gz")]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise DataFormatError(candidates[0], None, f"file not found (the replies for {name})")


def _unpaired(ctx: LoadContext, longer: Path, shorter: Path, first: RawLine,
              rest: Iterator[RawLine]) -> None:
    """One file of the pair goes on after the other ended: report, then count the rest."""
    problem = (f"line counts differ: {longer.name} has line {first.lineno} "
               f"but {shorter.name} ends after line {first.lineno - 1}")
    ErrorPolicy(longer, ctx.policy.on_error, ctx.stats).error(first.lineno, "unpaired", problem)
    ctx.stats.skipped["unpaired"] += sum(1 for _ in rest)


def _strip_comma(text: str) -> str:
    return text[:-1] if text.endswith(",") else text


def _jddc2018_turns(context: str) -> list[Turn]:
    pieces = context.split(",")
    cut = len(pieces) - 1
    while cut > 0 and _PUNCT_ONLY.match(pieces[cut]):
        cut -= 1  # "...吃饭呢,?" -> the query is "吃饭呢,?", not "?"
    query = Turn("user", ",".join(pieces[cut:]), {"pieces": len(pieces) - cut})
    if cut == 0:
        return [query]
    return [Turn("user", ",".join(pieces[:cut]), {"pieces": cut, "speakers": "mixed"}), query]


# --- ECD (Taobao): label \t utt_1 ... utt_n \t response, words segmented ----------------------

_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\u3000-\u303f]")


def rejoin_segmented(text: str) -> str:
    """Undo word segmentation: no space next to CJK or punctuation, one between Latin words.

    >>> rejoin_segmented("发 邮政 EMS 随机 发 , ok 3 天")
    '发邮政EMS随机发,ok 3天'
    """
    tokens = text.split()
    if not tokens:
        return ""
    out = [tokens[0]]
    for token in tokens[1:]:
        if _is_word_char(out[-1][-1]) and _is_word_char(token[0]):
            out.append(" ")
        out.append(token)
    return "".join(out)


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() and not _CJK.match(ch)


@register("ecd")
def load_ecd(ctx: LoadContext) -> Iterator[Dialogue]:
    """One Dialogue per line; roles from the end (response = assistant, utt_n = user, ...).

    Label-0 lines (wrong candidate replies) are left out unless `keep_negatives`. Consecutive
    lines with the same context share `meta["context_id"]` (the test set: 10 candidates each).
    """
    context_id, previous = "", None
    for lineno, text in iter_text_lines(ctx.reader()):
        if not text.strip():
            continue
        cols = text.split("\t")
        if len(cols) < 3:
            ctx.error(lineno, "columns", "expected label, utterances and a response "
                      f"(at least 3 tab-separated columns), got {len(cols)}")
            continue
        if cols[0] not in ("0", "1"):
            ctx.error(lineno, "value", f"label must be 0 or 1, got {cols[0][:20]!r}")
            continue
        ctx.stats.records += 1
        if cols[1:-1] != previous:
            context_id, previous = f"{ctx.source}:{lineno}", cols[1:-1]
        label = int(cols[0])
        if label == 0 and not ctx.keep_negatives:
            ctx.stats.filtered["negative"] += 1
            continue
        n = len(cols) - 1  # utterances + response; the last one is the agent's
        turns = [Turn("assistant" if (n - 1 - i) % 2 == 0 else "user", rejoin_segmented(u))
                 for i, u in enumerate(cols[1:])]
        yield Dialogue(f"{ctx.source}:{lineno}", turns, ctx.source,
                       {"line": lineno, "label": label, "context_id": context_id})


# --- CSV: Bitext and generic question/answer ------------------------------------------------

BITEXT_REQUIRED = ("instruction", "response", "intent", "category")
BITEXT_META = ("intent", "category", "tags")


def _csv_rows(ctx: LoadContext, required: tuple[str, ...], fold_case: bool
              ) -> Iterator[tuple[int, dict[str, str]]]:
    """(start line, {column: value}) per CSV row, after checking the header."""
    records = iter_csv_records(ctx.reader())
    first = next(records, None)
    if first is None:
        return
    header = [h.strip().lower() if fold_case else h.strip() for h in first[1]]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(ctx.path, first[0], f"missing CSV column(s) {', '.join(missing)} "
                              f"(header: {','.join(header)[:200]})")
    for lineno, fields in records:
        if len(fields) != len(header):
            ctx.error(lineno, "columns",
                      f"expected {len(header)} CSV columns as in the header, got {len(fields)}")
            continue
        ctx.stats.records += 1
        yield lineno, dict(zip(header, fields, strict=True))


def _qa_dialogue(ctx: LoadContext, lineno: int, question: str, answer: str,
                 meta: dict[str, Any]) -> Dialogue | None:
    if not question.strip() or not answer.strip():
        ctx.stats.filtered["empty"] += 1
        return None
    return Dialogue(f"{ctx.source}:{lineno}", [Turn("user", question), Turn("assistant", answer)],
                    ctx.source, {"line": lineno, **meta})


@register("bitext")
def load_bitext(ctx: LoadContext) -> Iterator[Dialogue]:
    """One Dialogue per row: instruction -> response; {{placeholders}} kept verbatim."""
    for lineno, row in _csv_rows(ctx, BITEXT_REQUIRED, fold_case=False):
        meta = {k: row[k] for k in BITEXT_META if k in row}
        dialogue = _qa_dialogue(ctx, lineno, row["instruction"], row["response"], meta)
        if dialogue is not None:
            yield dialogue


@register("qa_csv")
def load_qa_csv(ctx: LoadContext) -> Iterator[Dialogue]:
    """One Dialogue per row of a CSV with `question` and `answer` columns; others go to meta."""
    for lineno, row in _csv_rows(ctx, ("question", "answer"), fold_case=True):
        meta = {k: v for k, v in row.items() if k not in ("question", "answer")}
        dialogue = _qa_dialogue(ctx, lineno, row["question"], row["answer"], meta)
        if dialogue is not None:
            yield dialogue


# --- JSON Lines: OpenAI messages and ShareGPT -------------------------------------------------

OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user",
                "assistant": "assistant"}
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant"}


class _BadRecord(Exception):
    def __init__(self, reason: str, problem: str) -> None:
        super().__init__(problem)
        self.reason = reason


def _iter_json_objects(ctx: LoadContext) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, text in iter_text_lines(ctx.reader()):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            hint = " (expected JSON Lines, one object per line)" if text.strip() in "[]" else ""
            ctx.error(lineno, "json", f"invalid JSON: {e.msg} at column {e.colno}{hint}")
            continue
        if not isinstance(obj, dict):
            ctx.error(lineno, "json", f"expected a JSON object, got {type(obj).__name__}")
            continue
        yield lineno, obj


def _json_dialogues(ctx: LoadContext, key: str,
                    to_turn: Callable[[Any, int], Turn]) -> Iterator[Dialogue]:
    for lineno, obj in _iter_json_objects(ctx):
        try:
            items = obj.get(key)
            if not isinstance(items, list) or not items:
                raise _BadRecord("missing_key", f'expected a non-empty list under "{key}"')
            turns = [to_turn(item, i) for i, item in enumerate(items)]
        except _BadRecord as e:
            ctx.error(lineno, e.reason, f"{key}: {e}")
            continue
        ctx.stats.records += 1
        meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
        if "id" in obj:
            meta = {**meta, "orig_id": obj["id"]}
        yield Dialogue(f"{ctx.source}:{lineno}", turns, ctx.source, {"line": lineno, **meta})


def _field(item: Any, i: int, name: str) -> Any:
    if not isinstance(item, dict):
        raise _BadRecord("missing_key", f"item {i} is not an object")
    if name not in item:
        raise _BadRecord("missing_key", f'item {i} has no "{name}"')
    return item[name]


def _role(value: Any, i: int, roles: dict[str, str]) -> str:
    if value not in roles:
        raise _BadRecord("role", f"item {i} has unknown role {str(value)[:30]!r} "
                         f"(expected one of {', '.join(roles)})")
    return roles[value]


def _openai_content(content: Any, i: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]; other parts dropped
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(t, str) for t in texts) and texts:
            return "".join(texts)
    raise _BadRecord("content", f"item {i} content is neither a string nor a list of text parts")


@register("openai")
def load_openai(ctx: LoadContext) -> Iterator[Dialogue]:
    """JSONL `{"messages": [{"role", "content"}, ...]}`; system messages kept as "system"."""

    def to_turn(item: Any, i: int) -> Turn:
        role = _role(_field(item, i, "role"), i, OPENAI_ROLES)
        return Turn(role, _openai_content(_field(item, i, "content"), i))  # type: ignore[arg-type]

    return _json_dialogues(ctx, "messages", to_turn)


@register("sharegpt")
def load_sharegpt(ctx: LoadContext) -> Iterator[Dialogue]:
    """JSONL `{"conversations": [{"from": "human"|"gpt"|"system"|..., "value"}, ...]}`."""

    def to_turn(item: Any, i: int) -> Turn:
        role = _role(_field(item, i, "from"), i, SHAREGPT_ROLES)
        value = _field(item, i, "value")
        if not isinstance(value, str):
            raise _BadRecord("content", f"item {i} value is not a string")
        return Turn(role, value)  # type: ignore[arg-type]

    return _json_dialogues(ctx, "conversations", to_turn)
