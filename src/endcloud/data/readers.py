"""Low-level streaming readers: bounded physical lines and CSV records, with precise errors.

Everything here reads a binary stream with `readline(limit)`, so memory stays flat in the size of
the corpus *and* of its longest line: a 10 MB line with a 1 MB limit is never held whole.
Gzip is detected by its magic bytes, not by the file name.

Errors go through `ErrorPolicy`: in "fail" mode they raise `DataFormatError(path, line, problem)`,
in "skip" mode they are counted under a short reason key and the caller skips the record.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from endcloud.errors import DataFormatError

OnError = Literal["fail", "skip"]
GZIP_MAGIC = b"\x1f\x8b"
_DISCARD_CHUNK = 1 << 16  # bytes per read while skipping the rest of an over-long line


@dataclass
class LoadStats:
    """Counters of one or more loads; pass the same object to several calls to sum them."""

    files: int = 0
    bytes: int = 0  # uncompressed bytes read
    records: int = 0  # input records parsed (TSV rows, JSON lines, CSV rows, enc/dec pairs)
    dialogues: int = 0  # dialogues yielded
    turns: int = 0  # turns in the dialogues yielded
    skipped: Counter[str] = field(default_factory=Counter)  # malformed input, by reason (skip mode)
    filtered: Counter[str] = field(default_factory=Counter)  # well-formed but left out on purpose


@dataclass
class ErrorPolicy:
    """Where a malformed record goes: an exception ("fail") or a counter ("skip")."""

    path: Path
    on_error: OnError
    stats: LoadStats

    def __post_init__(self) -> None:
        if self.on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', not {self.on_error!r}")

    def error(self, line: int | None, reason: str, problem: str, count: int = 1) -> None:
        """Raise in fail mode; else count `reason` and return, so the caller skips the record."""
        if self.on_error == "fail":
            raise DataFormatError(self.path, line, problem)
        self.stats.skipped[reason] += count


@dataclass
class RawLine:
    """One physical line. `data` is None when the line was longer than the limit (and discarded)."""

    lineno: int  # 1-based
    offset: int  # byte offset of the line's start in the uncompressed stream
    data: bytes | None  # without the trailing "\n" / "\r\n"
    quotes: int = 0  # number of '"' bytes in the line (kept for discarded lines, for CSV parity)


def open_binary(path: Path) -> BinaryIO:
    """Open a file for binary reading, through gzip when it starts with the gzip magic bytes."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except FileNotFoundError:
        raise DataFormatError(path, None, "file not found") from None
    except IsADirectoryError:
        raise DataFormatError(path, None, "is a directory, expected a file") from None
    except OSError as e:
        raise DataFormatError(path, None, f"cannot open: {e.strerror or e}") from None
    with raw:
        is_gzip = raw.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if is_gzip else open(path, "rb")  # type: ignore[return-value]


class LineReader:
    """Physical lines of a (gzipped) file, each at most `max_line_bytes` long.

    Over-long lines are reported through the policy and yielded with `data=None` in skip mode.
    A truncated or corrupt gzip stream is reported once and ends the iteration; `truncated`
    then tells the caller not to emit a record that was still being assembled.
    """

    def __init__(self, path: Path, policy: ErrorPolicy, max_line_bytes: int) -> None:
        self.path = path
        self.policy = policy
        self.max_line_bytes = max_line_bytes
        self.truncated = False
        self.lines = 0

    def __iter__(self) -> Iterator[RawLine]:
        stream = open_binary(self.path)
        self.policy.stats.files += 1
        offset = 0
        try:
            with stream:
                while True:
                    try:
                        line = self._next_line(stream, offset)
                    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
                        self.truncated = True
                        self.policy.error(self.lines or None, "truncated_gzip",
                                          f"truncated or corrupt gzip after line {self.lines} "
                                          f"({type(e).__name__}: {e})")
                        return
                    if line is None:
                        break
                    offset, raw = line
                    yield raw
        finally:
            self.policy.stats.bytes += offset
        if self.lines == 0:
            self.policy.error(None, "empty_file", "file is empty")

    def _next_line(self, stream: BinaryIO, offset: int) -> tuple[int, RawLine] | None:
        """Read one line; return (offset after it, the line) or None at the end of the file."""
        limit = self.max_line_bytes
        chunk = stream.readline(limit + 1)
        if not chunk:
            return None
        self.lines += 1
        start, lineno = offset, self.lines
        if len(chunk) > limit and not chunk.endswith(b"\n"):
            # Over-long: drop the chunk, then report before reading on (fail mode raises here).
            size, quotes, chunk = len(chunk), chunk.count(b'"'), b""
            self.policy.error(lineno, "line_too_long", f"line longer than {limit} bytes")
            while not chunk.endswith(b"\n"):
                chunk = stream.readline(_DISCARD_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                quotes += chunk.count(b'"')
            return start + size, RawLine(lineno, start, None, quotes)
        data = chunk[:-1] if chunk.endswith(b"\n") else chunk
        if data.endswith(b"\r"):
            data = data[:-1]
        return start + len(chunk), RawLine(lineno, start, data, data.count(b'"'))


def decode(raw: RawLine, policy: ErrorPolicy) -> str | None:
    """UTF-8 text of a line (BOM stripped on line 1), or None after reporting invalid bytes."""
    assert raw.data is not None
    try:
        text = raw.data.decode("utf-8")
    except UnicodeDecodeError as e:
        policy.error(raw.lineno, "utf8", f"invalid UTF-8 at byte offset {raw.offset + e.start}")
        return None
    if raw.lineno == 1 and text.startswith("\ufeff"):
        text = text[1:]
    return text


def iter_text_lines(reader: LineReader) -> Iterator[tuple[int, str]]:
    """(line number, text) of each decodable, in-limit line; bad lines are reported and skipped."""
    for raw in reader:
        if raw.data is None:
            continue  # over-long, already reported
        text = decode(raw, reader.policy)
        if text is not None:
            yield raw.lineno, text


def iter_csv_records(reader: LineReader) -> Iterator[tuple[int, list[str]]]:
    """(starting line number, fields) of each CSV record (RFC 4180, comma, '"' quoting).

    Quoted fields may span lines: physical lines are gathered until the number of '"' is even
    (an escaped quote "" adds two, so parity is exact). CRLF inside fields becomes "\\n".
    A record, not only a line, is bounded by `max_line_bytes`; errors name the record's first line.
    """
    policy, limit = reader.policy, reader.max_line_bytes
    parts: list[str] = []
    start, size, parity, bad = 0, 0, 0, False  # bad: the record being gathered is dropped
    for raw in reader:
        if not parts and not bad:
            start, size = raw.lineno, 0
        parity = (parity + raw.quotes) % 2
        if not bad:
            text = None if raw.data is None else decode(raw, policy)  # both already reported
            size += len(raw.data or b"") + 1
            if text is not None and size > limit:
                policy.error(start, "record_too_long", f"CSV record longer than {limit} bytes")
                text = None
            if text is None:
                bad, parts = True, []
            else:
                parts.append(text)
        if parity:
            continue  # inside a quoted field: the record goes on
        if bad:
            bad = False
            continue
        record, parts = "\n".join(parts), []
        if not record.strip():
            continue
        try:
            fields = next(csv.reader([record], strict=True), [])
        except csv.Error as e:
            policy.error(start, "csv", f"malformed CSV record: {e}")
            continue
        yield start, fields
    if (parts or bad) and not reader.truncated:
        policy.error(start, "csv", f"unterminated quoted field starting at line {start}")
