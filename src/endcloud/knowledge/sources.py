"""A shop's documents -> knowledge chunks: policy pages, FAQ rows and catalog products.

    chunks, skipped = read_sources(["shop/"], max_chunk_chars=600, max_file_bytes=10 << 20)

| file                        | read as                                     | one chunk per           |
|-----------------------------|---------------------------------------------|-------------------------|
| `.md`, `.markdown`, `.txt`  | Markdown; `#` headings give the title path  | section (split if long) |
| `.csv`, `.jsonl`            | FAQ when it has `question` and `answer`     | row                     |
| `.csv`, `.jsonl`            | catalog when it has `sku` or `title`        | product                 |

A file that cannot be read (too large, binary, not UTF-8, malformed, unknown type) is skipped
with the reason, never half-read: the build report lists it and the rest of the shop is built.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

TEXT_SUFFIXES = (".md", ".markdown", ".txt")
TABLE_SUFFIXES = (".csv", ".jsonl")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|(?<=[.!?])\s+")


@dataclass
class Chunk:
    id: str  # stable: the same source, title and text give the same id in every rebuild
    source: str  # the file it came from (as given, or relative to the folder given)
    kind: str  # policy | faq | product
    title: str  # heading path ("Returns > Fees"), FAQ question or product title
    text: str  # what the models are shown
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Chunk":
        return cls(d["id"], d["source"], d["kind"], d["title"], d["text"], d.get("meta") or {})

    def search_text(self) -> str:
        """The text both indexes see: the title path carries the topic words a section omits;
        an answer-memory entry is found by its question (title) alone."""
        if self.kind == "memory":  # placeholders say nothing about the question asked
            return re.sub(r"\[[A-Z]+_\d+\]", "", self.title)
        return f"{self.title}\n{self.text}" if self.title and self.title not in self.text else self.text


@dataclass
class Skipped:
    path: str
    reason: str


class SkipFile(Exception):
    """This file is not read; the message is the reason shown in the build report."""


def list_files(inputs: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """(path, name shown in reports) for every file under the inputs, sorted, hidden files left out."""
    out: list[tuple[Path, str]] = []
    for item in inputs:
        root = Path(item)
        if root.is_dir():
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root)
                if p.is_file() and not any(part.startswith(".") for part in rel.parts):
                    out.append((p, str(Path(root.name) / rel)))
        elif root.is_file():
            out.append((root, root.name))
        else:
            raise FileNotFoundError(f"{root}: no such file or folder")
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_file(path: Path, name: str, max_chunk_chars: int, max_file_bytes: int) -> list[Chunk]:
    """The chunks of one file, or SkipFile with the reason."""
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES + TABLE_SUFFIXES:
        raise SkipFile(f"unsupported type {suffix or '(none)'} (use .md, .txt, .csv or .jsonl)")
    size = path.stat().st_size
    if size > max_file_bytes:
        raise SkipFile(f"{size} bytes is larger than max_file_bytes={max_file_bytes}")
    text = decode(path.read_bytes())
    if suffix in TEXT_SUFFIXES:
        chunks = markdown_chunks(text, name, max_chunk_chars)
    else:
        rows = _csv_rows(text) if suffix == ".csv" else _jsonl_rows(text)
        chunks = table_chunks(rows, name)
    if not chunks:
        raise SkipFile("no text in it")
    return chunks


def decode(data: bytes) -> str:
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SkipFile("binary file")
    for encoding in ("utf-8-sig", "utf-16"):
        if encoding == "utf-16" and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            continue
        try:
            return data.decode(encoding).replace("\r\n", "\n")
        except UnicodeDecodeError:
            pass
    raise SkipFile("not UTF-8 (convert it first, e.g. iconv -f GB18030 -t UTF-8)")


# -- policy pages ---------------------------------------------------------------------------------
def markdown_chunks(text: str, source: str, max_chars: int) -> list[Chunk]:
    """One chunk per section under its heading path; long sections split at paragraphs."""
    chunks: list[Chunk] = []
    path: list[str] = []
    body: list[str] = []

    def flush() -> None:
        section = "\n".join(body).strip()
        body.clear()
        if section:
            title = " > ".join(path)
            for piece in split_text(section, max_chars):
                chunks.append(make_chunk(source, "policy", title, piece))

    for line in text.split("\n"):
        m = _HEADING.match(line)
        if m:
            flush()
            level = len(m.group(1))
            del path[level - 1:]
            path.extend([""] * (level - 1 - len(path)))
            path.append(m.group(2).strip())
            path[:] = [p for p in path if p]
        else:
            body.append(line)
    flush()
    return chunks


def split_text(text: str, max_chars: int) -> list[str]:
    """Paragraphs packed up to `max_chars`; a paragraph longer than that is cut at sentence ends."""
    units: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if len(para) <= max_chars:
            units.append(para)
            continue
        for sentence in _SENTENCE_END.split(para):
            sentence = sentence.strip()
            while len(sentence) > max_chars:  # no sentence end: a hard cut
                units.append(sentence[:max_chars])
                sentence = sentence[max_chars:]
            if sentence:
                units.append(sentence)
    out: list[str] = []
    for unit in filter(None, units):
        if out and len(out[-1]) + 1 + len(unit) <= max_chars:
            out[-1] += "\n" + unit
        else:
            out.append(unit)
    return out


# -- FAQ and catalog ------------------------------------------------------------------------------
def _csv_rows(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise SkipFile("empty CSV (no header)")
    rows = []
    for n, row in enumerate(reader, 2):
        if None in row:
            raise SkipFile(f"line {n}: more fields than the header")
        rows.append({k.strip().lower(): v for k, v in row.items() if k})
    return rows


def _jsonl_rows(text: str) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SkipFile(f"line {n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise SkipFile(f"line {n}: not a JSON object")
        rows.append({str(k).lower(): v for k, v in row.items()})
    return rows


def table_chunks(rows: list[dict[str, Any]], source: str) -> list[Chunk]:
    if not rows:
        return []
    keys = set().union(*rows)
    if {"question", "answer"} <= keys:
        return [_faq(r, source, n) for n, r in enumerate(rows, 1)]
    if "sku" in keys or "title" in keys:
        return [_product(r, source) for r in rows]
    raise SkipFile("neither FAQ (question, answer) nor catalog (sku, title) columns")


def _faq(row: dict[str, Any], source: str, n: int) -> Chunk:
    q, a = str(row.get("question") or "").strip(), str(row.get("answer") or "").strip()
    if not q or not a:
        raise SkipFile(f"row {n}: an empty question or answer")
    return make_chunk(source, "faq", q, a, {"question": q, "answer": a})


def _product(row: dict[str, Any], source: str) -> Chunk:
    title = str(row.get("title") or row.get("name") or row.get("sku") or "").strip()
    sku = str(row.get("sku") or "").strip()
    parts = [f"{title} ({sku})" if sku and sku != title else title]
    if row.get("price") not in (None, ""):
        parts.append(f"price: {row['price']} {row.get('currency') or ''}".strip())
    attrs = row.get("attributes")
    if isinstance(attrs, str):
        try:
            attrs = json.loads(attrs)
        except json.JSONDecodeError:
            parts.append(attrs)
            attrs = None
    if isinstance(attrs, dict):
        parts.extend(f"{k}: {v}" for k, v in attrs.items())
    skip = {"title", "name", "sku", "price", "currency", "attributes", "lang"}
    parts.extend(f"{k}: {v}" for k, v in row.items() if k not in skip and v not in (None, ""))
    return make_chunk(source, "product", title, "\n".join(parts), {"sku": sku, "lang": row.get("lang", "")})


def make_chunk(source: str, kind: str, title: str, text: str,
               meta: dict[str, Any] | None = None) -> Chunk:
    """A chunk with its stable id (sha256 of source, title and text)."""
    digest = hashlib.sha256(f"{source}\n{title}\n{text}".encode()).hexdigest()[:12]
    return Chunk(f"{kind}-{digest}", source, kind, title, text, meta or {})
