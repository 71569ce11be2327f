"""Corpus loaders: a fixture per format, every error in fail and skip mode, the real corpora."""

from __future__ import annotations

import gzip
import json
import random
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from endcloud.data.loaders import LOADERS, LoadStats, iter_dialogues, rejoin_segmented
from endcloud.errors import DataFormatError

MB = 1_000_000


def write(path: Path, text: str | bytes, gz: bool = False) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def load(fmt: str, path: Path, **kw):
    stats = kw.pop("stats", None) or LoadStats()
    return list(iter_dialogues(fmt, path, stats=stats, **kw)), stats


def fail_message(fmt: str, path: Path, **kw) -> str:
    with pytest.raises(DataFormatError) as info:
        load(fmt, path, **kw)
    return str(info.value)


def jddc_row(session: str, speaker: int, content: str, transfer: int = 0, sku: str = "nan") -> str:
    return f"{session}\tUSERID_{session}\t{speaker}\t{transfer}\t0\t{sku}\t{content}\n"


JDDC = (jddc_row("s1", 0, "白条分期") + jddc_row("s1", 1, "您好  请问有什么可以帮您?")
        + jddc_row("s1", 0, "退货") + jddc_row("s2", 0, "发票", transfer=1, sku="123")
        + jddc_row("s2", 1, "好的"))


def test_registry_has_every_format():
    assert {"jddc2019", "jddc2018", "ecd", "bitext", "openai", "sharegpt", "qa_csv"} <= set(LOADERS)
    with pytest.raises(ValueError, match="unknown corpus format"):
        load("nope", Path("x"))


# --- JDDC 2019 --------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_jddc2019_sessions_turns_meta(tmp_path, gz):
    dialogues, stats = load("jddc2019", write(tmp_path / "chat.tsv", JDDC, gz=gz))
    assert [d.id for d in dialogues] == ["jddc2019:s1", "jddc2019:s2"]
    s1, s2 = dialogues
    assert [(t.role, t.text) for t in s1.turns] == [
        ("user", "白条分期"), ("assistant", "您好  请问有什么可以帮您?"), ("user", "退货")]
    assert s1.turns[0].meta == {"is_transfer": False, "is_repeat": False, "sku": None, "line": 1}
    assert s1.meta == {"session_id": "s1", "user_id": "USERID_s1", "is_transfer": False, "line": 1}
    assert s2.meta["is_transfer"] is True and s2.turns[0].meta["sku"] == "123"
    assert s1.source == "jddc2019"
    assert (stats.records, stats.dialogues, stats.turns, stats.files) == (5, 2, 5, 1)


def test_gzip_detected_by_magic_bytes_not_name(tmp_path):
    gz_named_plain = write(tmp_path / "a.tsv.gz", JDDC)
    plain_named_gz = write(tmp_path / "b.tsv", JDDC, gz=True)
    assert load("jddc2019", gz_named_plain)[0] == load("jddc2019", plain_named_gz)[0]


def test_source_name_prefixes_ids(tmp_path):
    dialogues, _ = load("jddc2019", write(tmp_path / "c.tsv", JDDC), source_name="jd_v1")
    assert dialogues[0].id == "jd_v1:s1" and dialogues[0].source == "jd_v1"


def test_wrong_column_count_fail_and_skip(tmp_path):
    bad = JDDC.replace(jddc_row("s1", 0, "退货"), "s1\tUSERID_s1\t0\t0\t退货\n")
    path = write(tmp_path / "bad.tsv", bad)
    assert fail_message("jddc2019", path) == f"{path}:3: expected 7 tab-separated columns, got 5"
    dialogues, stats = load("jddc2019", path, on_error="skip")
    assert stats.skipped == Counter({"columns": 1})
    assert [len(d.turns) for d in dialogues] == [2, 2]  # only the bad row left out


def test_bad_flag_value(tmp_path):
    path = write(tmp_path / "flag.tsv", JDDC.replace("s2\tUSERID_s2\t1", "s2\tUSERID_s2\tx"))
    assert "column waiter_send must be 0 or 1" in fail_message("jddc2019", path)


def test_invalid_utf8_fail_and_skip(tmp_path):
    raw = JDDC.encode()
    cut = raw.index("退货".encode())
    path = write(tmp_path / "u.tsv", raw[:cut] + b"\xff\xfe" + raw[cut:], gz=True)
    assert fail_message("jddc2019", path) == f"{path}:3: invalid UTF-8 at byte offset {cut}"
    dialogues, stats = load("jddc2019", path, on_error="skip")
    assert stats.skipped == Counter({"utf8": 1}) and len(dialogues) == 2


def test_bom_stripped(tmp_path):
    dialogues, _ = load("jddc2019", write(tmp_path / "bom.tsv", "\ufeff" + JDDC))
    assert dialogues[0].id == "jddc2019:s1"


@pytest.mark.parametrize("gz", [False, True])
def test_empty_file(tmp_path, gz):
    path = write(tmp_path / "empty.tsv", b"", gz=gz)
    assert fail_message("jddc2019", path) == f"{path}: file is empty"
    assert load("jddc2019", path, on_error="skip")[1].skipped == Counter({"empty_file": 1})


def test_missing_file(tmp_path):
    path = tmp_path / "nope.tsv.gz"
    assert fail_message("jddc2019", path) == f"{path}: file not found"
    with pytest.raises(DataFormatError, match="file not found"):  # not a bad record: always fails
        load("jddc2019", path, on_error="skip")


def test_truncated_gzip_keeps_whole_sessions_before_the_cut(tmp_path):
    rng = random.Random(0)
    rows = [jddc_row(f"s{i // 10}", i % 2, "".join(rng.choices("退货发票物流", k=40)))
            for i in range(2000)]
    data = gzip.compress("".join(rows).encode())
    path = write(tmp_path / "cut.tsv.gz", data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"truncated or corrupt gzip after line \d+") as info:
        load("jddc2019", path)
    assert str(info.value).startswith(str(path))
    dialogues, stats = load("jddc2019", path, on_error="skip")
    assert stats.skipped == Counter({"truncated_gzip": 1})
    assert 10 < len(dialogues) < 200
    assert all(len(d.turns) == 10 for d in dialogues)  # the session cut in half is not yielded


def test_long_line_memory_flat_fail_and_skip(tmp_path):
    path = tmp_path / "long.tsv"
    with open(path, "wb") as f:
        f.write(jddc_row("s0", 0, "你好").encode())
        f.write(b"s1\tu\t0\t0\t0\tnan\t")
        for _ in range(10):
            f.write(b"x" * MB)
        f.write(b"\n" + jddc_row("s2", 1, "好的").encode())
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError) as info:
            load("jddc2019", path, max_line_bytes=MB)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        dialogues, stats = load("jddc2019", path, max_line_bytes=MB, on_error="skip")
        _, peak_skip = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(info.value) == f"{path}:2: line longer than 1000000 bytes"
    assert peak < 3 * MB and peak_skip < 3 * MB
    assert stats.skipped == Counter({"line_too_long": 1})
    assert [d.id for d in dialogues] == ["jddc2019:s0", "jddc2019:s2"]


# --- JDDC 2018 --------------------------------------------------------------------------------

def test_jddc2018_pairs_and_roles(tmp_path):
    enc = write(tmp_path / "train.enc.gz", "要发货,请稍等,吃饭呢,?,\n你好,\n,\n", gz=True)
    write(tmp_path / "train.dec.gz", "马上发,\n您好,\n空,\n", gz=True)
    dialogues, stats = load("jddc2018", enc)
    first, second = dialogues
    assert [(t.role, t.text) for t in first.turns] == [
        ("user", "要发货,请稍等"), ("user", "吃饭呢,?"), ("assistant", "马上发")]
    assert first.turns[0].meta == {"pieces": 2, "speakers": "mixed"}
    assert first.meta == {"line": 1, "roles_inferred": True} and first.id == "jddc2018:1"
    assert [(t.role, t.text) for t in second.turns] == [("user", "你好"), ("assistant", "您好")]
    assert stats.records == 3 and stats.filtered == Counter({"empty": 1})


def test_jddc2018_line_count_mismatch_names_both_files(tmp_path):
    enc = write(tmp_path / "t.enc", "a,\nb,\nc,\n")
    dec = write(tmp_path / "t.dec", "x,\n")
    msg = fail_message("jddc2018", enc)
    assert msg == f"{enc}:2: line counts differ: t.enc has line 2 but t.dec ends after line 1"
    dialogues, stats = load("jddc2018", enc, on_error="skip")
    assert len(dialogues) == 1 and stats.skipped == Counter({"unpaired": 2})
    write(dec, "x,\ny,\nz,\nw,\n")
    assert "t.dec has line 4 but t.enc ends after line 3" in fail_message("jddc2018", enc)


def test_jddc2018_needs_enc_and_dec(tmp_path):
    assert "expects the path of the .enc file" in fail_message(
        "jddc2018", write(tmp_path / "t.txt", "a\n"))
    enc = write(tmp_path / "only.enc", "a,\n")
    assert fail_message("jddc2018", enc).startswith(f"{tmp_path / 'only.dec'}: file not found")


# --- ECD --------------------------------------------------------------------------------------

ECD = ("1\t我 去 不 早 说\t韵达 不发 的 哦\t发 EMS 吗 ?\t发 邮政 的 哦\n"
       "0\t我 去 不 早 说\t韵达 不发 的 哦\t发 EMS 吗 ?\t那 不会 的 哦\n"
       "1\tiphone 7 plus 有货 吗\t有 的 亲\n")


def test_rejoin_segmented():
    assert rejoin_segmented("发 邮政 EMS 随机 发 , ok 3 天") == "发邮政EMS随机发,ok 3天"
    assert rejoin_segmented("iphone 7 plus 有货 吗 ？") == "iphone 7 plus有货吗？"
    assert rejoin_segmented("  ") == ""


def test_ecd_roles_from_the_end_and_negatives(tmp_path):
    path = write(tmp_path / "test.txt.gz", ECD, gz=True)
    dialogues, stats = load("ecd", path)
    assert [d.id for d in dialogues] == ["ecd:1", "ecd:3"]
    assert [(t.role, t.text) for t in dialogues[0].turns] == [
        ("user", "我去不早说"), ("assistant", "韵达不发的哦"), ("user", "发EMS吗?"),
        ("assistant", "发邮政的哦")]
    assert [t.role for t in dialogues[1].turns] == ["user", "assistant"]
    assert stats.filtered == Counter({"negative": 1}) and stats.records == 3
    kept, _ = load("ecd", path, keep_negatives=True)
    assert [d.meta["label"] for d in kept] == [1, 0, 1]
    assert [d.meta["context_id"] for d in kept] == ["ecd:1", "ecd:1", "ecd:3"]


def test_ecd_bad_lines(tmp_path):
    path = write(tmp_path / "e.txt", ECD + "1\tonly one\n" + "2\ta\tb\n")
    assert fail_message("ecd", path).startswith(f"{path}:4: expected label, utterances")
    dialogues, stats = load("ecd", path, on_error="skip")
    assert len(dialogues) == 2 and stats.skipped == Counter({"columns": 1, "value": 1})


# --- CSV: Bitext and qa_csv ---------------------------------------------------------------------

BITEXT_HEADER = ("context,role,instruction,intent,entity_type,entity_value,start_offset,"
                 "end_offset,category,tags,response\r\n")
BITEXT = BITEXT_HEADER + (
    'cs,va,cancel order 123?,cancel_order,order_id,123,13,16,ORDER,BIL,'
    '"Sure, order {{Order Number}}:\r\n\r\n1. Log in.\r\n2. Click ""Cancel""."\r\n'
    'cs,va,refund please,get_refund,,,,,REFUND,BL,Done.\r\n')


@pytest.mark.parametrize("gz", [False, True])
def test_bitext_rows_multiline_and_placeholders(tmp_path, gz):
    dialogues, stats = load("bitext", write(tmp_path / "b.csv", BITEXT, gz=gz))
    first, second = dialogues
    assert first.id == "bitext:2" and second.id == "bitext:6"  # ids = the row's first line
    assert [(t.role, t.text) for t in first.turns] == [
        ("user", "cancel order 123?"),
        ("assistant", 'Sure, order {{Order Number}}:\n\n1. Log in.\n2. Click "Cancel".')]
    assert first.meta == {"line": 2, "intent": "cancel_order", "category": "ORDER", "tags": "BIL"}
    assert stats.records == 2


def test_bitext_missing_columns(tmp_path):
    path = write(tmp_path / "b.csv", "context,instruction,intent\nx,y,z\n")
    msg = fail_message("bitext", path, on_error="skip")  # a bad header fails in skip mode too
    assert msg.startswith(f"{path}:1: missing CSV column(s) response, category")


def test_csv_errors_report_the_starting_line(tmp_path):
    bad_row = 'cs,va,hi,x,,,,,C,T,"a\r\nb\r\nc",EXTRA\r\n'
    path = write(tmp_path / "b.csv", BITEXT + bad_row + 'cs,va,ok,y,,,,,C,T,fine\r\n')
    assert fail_message("bitext", path) == \
        f"{path}:7: expected 11 CSV columns as in the header, got 12"
    dialogues, stats = load("bitext", path, on_error="skip")
    assert [d.id for d in dialogues] == ["bitext:2", "bitext:6", "bitext:10"]
    assert stats.skipped == Counter({"columns": 1})


def test_csv_unterminated_quote_and_long_record(tmp_path):
    path = write(tmp_path / "u.csv", BITEXT + 'cs,va,hi,x,,,,,C,T,"never closed\r\nmore\r\n')
    assert fail_message("bitext", path) == \
        f"{path}:7: unterminated quoted field starting at line 7"
    many = BITEXT + 'cs,va,hi,x,,,,,C,T,"' + "line\r\n" * 400 + '"\r\ncs,va,ok,y,,,,,C,T,z\r\n'
    path = write(tmp_path / "long.csv", many)
    assert fail_message("bitext", path, max_line_bytes=1024) == \
        f"{path}:7: CSV record longer than 1024 bytes"
    dialogues, stats = load("bitext", path, max_line_bytes=1024, on_error="skip")
    assert [d.id for d in dialogues] == ["bitext:2", "bitext:6", "bitext:408"]
    assert stats.skipped == Counter({"record_too_long": 1})


def test_qa_csv_header_case_and_meta(tmp_path):
    text = '\ufeffQuestion,ANSWER,shop\n"where, exactly?","here\nthere",A\n,empty,B\n'
    dialogues, stats = load("qa_csv", write(tmp_path / "qa.csv", text))
    (d,) = dialogues
    assert [(t.role, t.text) for t in d.turns] == [("user", "where, exactly?"),
                                                   ("assistant", "here\nthere")]
    assert d.meta == {"line": 2, "shop": "A"} and d.id == "qa_csv:2"
    assert stats.filtered == Counter({"empty": 1})
    assert "missing CSV column(s) answer" in fail_message(
        "qa_csv", write(tmp_path / "q2.csv", "question,reply\na,b\n"))


# --- JSON Lines ---------------------------------------------------------------------------------

def jsonl(*objs: object) -> str:
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs)


def test_openai_messages(tmp_path):
    text = jsonl(
        {"messages": [{"role": "system", "content": "be kind"},
                      {"role": "user", "content": [{"type": "text", "text": "你好"},
                                                   {"type": "image_url", "image_url": {}}]},
                      {"role": "assistant", "content": "您好"}], "meta": {"id": "x1"}},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
    dialogues, stats = load("openai", write(tmp_path / "m.jsonl", text, gz=True))
    assert [(t.role, t.text) for t in dialogues[0].turns] == [
        ("system", "be kind"), ("user", "你好"), ("assistant", "您好")]
    assert dialogues[0].meta == {"line": 1, "id": "x1"} and dialogues[1].id == "openai:2"
    assert stats.records == 2


@pytest.mark.parametrize("line, reason, problem", [
    ('{"messages": [{"role": "user", "content": "a"}', "json", "invalid JSON: "),
    ('[1, 2]', "json", "expected a JSON object, got list"),
    ('{"msgs": []}', "missing_key", 'messages: expected a non-empty list under "messages"'),
    ('{"messages": [{"role": "user"}]}', "missing_key", 'messages: item 0 has no "content"'),
    ('{"messages": [{"role": "bot", "content": "a"}]}', "role", "item 0 has unknown role 'bot'"),
    ('{"messages": [{"role": "user", "content": 3}]}', "content", "item 0 content is neither"),
])
def test_openai_errors_fail_and_skip(tmp_path, line, reason, problem):
    good = jsonl({"messages": [{"role": "user", "content": "a"}]})
    path = write(tmp_path / "m.jsonl", good + line + "\n" + good)
    msg = fail_message("openai", path)
    assert msg.startswith(f"{path}:2: ") and problem in msg
    dialogues, stats = load("openai", path, on_error="skip")
    assert [d.id for d in dialogues] == ["openai:1", "openai:3"]
    assert stats.skipped == Counter({reason: 1})


def test_sharegpt(tmp_path):
    text = jsonl({"id": "c7", "conversations": [
        {"from": "system", "value": "s"}, {"from": "human", "value": "q"},
        {"from": "gpt", "value": "r"}, {"from": "user", "value": "q2"},
        {"from": "assistant", "value": "r2"}]})
    (d,), _ = load("sharegpt", write(tmp_path / "s.jsonl", text))
    assert [t.role for t in d.turns] == ["system", "user", "assistant", "user", "assistant"]
    assert d.meta == {"line": 1, "orig_id": "c7"} and d.id == "sharegpt:1"
    bad = write(tmp_path / "b.jsonl", jsonl({"conversations": [{"from": "bing", "value": "x"}]}))
    assert "unknown role 'bing'" in fail_message("sharegpt", bad)


# --- The real corpora ---------------------------------------------------------------------------

@pytest.mark.shared_data
@pytest.mark.parametrize("name, sessions, rows", [
    ("jddc2019_chat_sample_v1.tsv.gz", 966, 11_861),
    ("jddc2019_chat_sample_v2.tsv.gz", 994, 12_136)])
def test_real_jddc2019(shared_data, name, sessions, rows):
    dialogues, stats = load("jddc2019", shared_data / "jddc" / name)
    assert (stats.dialogues, stats.records, stats.turns) == (sessions, rows, rows)
    assert len({d.id for d in dialogues}) == sessions and not stats.skipped
    assert {t.role for d in dialogues for t in d.turns} == {"user", "assistant"}


@pytest.mark.shared_data
@pytest.mark.parametrize("split, pairs, empty", [("train", 10_270, 10), ("test", 1_141, 1)])
def test_real_jddc2018(shared_data, split, pairs, empty):
    path = shared_data / "jddc" / "jddc2018_baseline" / f"{split}.enc.gz"
    dialogues, stats = load("jddc2018", path)
    assert stats.records == pairs and stats.filtered == Counter({"empty": empty})
    assert len(dialogues) == pairs - empty and not stats.skipped
    assert all(d.turns[-1].role == "assistant" and d.turns[-2].role == "user" for d in dialogues)


@pytest.mark.shared_data
@pytest.mark.parametrize("split, lines, positives", [("train", 154, 77), ("test", 1_000, 100)])
def test_real_ecd(shared_data, split, lines, positives):
    dialogues, stats = load("ecd", shared_data / "ecd_sample" / f"{split}.txt.gz")
    assert stats.records == lines and len(dialogues) == positives
    assert all(d.turns[-1].role == "assistant" and d.turns[-2].role == "user" for d in dialogues)
    if split == "test":
        assert len({d.meta["context_id"] for d in dialogues}) == 100
        kept, _ = load("ecd", shared_data / "ecd_sample" / "test.txt.gz", keep_negatives=True)
        assert len(kept) == 1_000 and len({d.id for d in kept}) == 1_000


@pytest.mark.shared_data
def test_real_bitext(shared_data):
    path = shared_data / "bitext_customer_support" / "bitext_customer_support.csv.gz"
    dialogues, stats = load("bitext", path)
    assert len(dialogues) == 4_061 and not stats.skipped
    assert len({d.meta["intent"] for d in dialogues}) == 27
    assert len({d.meta["category"] for d in dialogues}) == 11
    replies = [d.turns[1].text for d in dialogues]
    assert not any("\r" in r for r in replies) and any("{{" in r for r in replies)
