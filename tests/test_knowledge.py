"""The shop's knowledge base: documents -> chunks -> hybrid index (BM25 + dense), rebuilt
incrementally and swapped atomically; the prompt block, history fitting and placeholder guard."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bm25s")
pytest.importorskip("usearch")

from endcloud.cli import main  # noqa: E402
from endcloud.knowledge.build import run  # noqa: E402
from endcloud.knowledge.config import KBConfig  # noqa: E402
from endcloud.knowledge.context import (fit_messages, knowledge_block, lang_of,  # noqa: E402
                                        placeholder_guard, with_knowledge)
from endcloud.errors import KnowledgeError  # noqa: E402
from endcloud.knowledge.index import open_index, tokens  # noqa: E402
from endcloud.knowledge.sources import markdown_chunks, split_text  # noqa: E402

POLICY = """# 小店政策
## 发货
### 截单时间
每天16:30前付款的订单当天发出，16:30以后付款的次日发出。
### 周末
周六正常发货，周日休息。
## Returns
You can return any item within 11 days of delivery. The return label costs $4.50.
"""
FAQ = 'question,answer\n运费多少？,满139元包邮，不满收8元运费。\n"Do you ship to Canada?","Yes, for a flat $19."\n'
CATALOG = json.dumps({"sku": "TS-1", "title": "纯棉T恤", "price": 129, "currency": "CNY",
                      "attributes": {"材质": "100%精梳棉", "克重": "220g"}}, ensure_ascii=False) + "\n"


def shop(tmp_path: Path) -> Path:
    d = tmp_path / "shop"
    d.mkdir()
    (d / "policy.md").write_text(POLICY, encoding="utf-8")
    (d / "faq.csv").write_text(FAQ, encoding="utf-8")
    (d / "catalog.jsonl").write_text(CATALOG, encoding="utf-8")
    return d


def build(docs: Path, out: Path, **kw) -> object:
    return run(KBConfig(input=[str(docs)], output=str(out), encoder="ngram", **kw))


def test_markdown_sections_keep_their_heading_path():
    chunks = markdown_chunks(POLICY, "policy.md", 600)
    titles = [c.title for c in chunks]
    assert titles == ["小店政策 > 发货 > 截单时间", "小店政策 > 发货 > 周末", "小店政策 > Returns"]
    assert chunks[0].text.startswith("每天16:30前付款")
    assert "截单时间" in chunks[0].search_text()  # the heading helps both rankings
    # the same source, title and text give the same id (provenance survives a rebuild)
    assert [c.id for c in markdown_chunks(POLICY, "policy.md", 600)] == [c.id for c in chunks]


def test_long_sections_split_at_paragraphs_and_sentences():
    text = "\n\n".join(["第一段。" * 30, "第二段很长。" * 80])
    pieces = split_text(text, 100)
    assert all(len(p) <= 100 for p in pieces) and "".join(pieces).replace("\n", "") == text.replace("\n", "")


def test_tokens_cjk_bigrams_and_words():
    assert tokens("退货运费") == ["退", "货", "运", "费", "退货", "货运", "运费"]
    assert tokens("How long is the Return window? 11 days") == ["long", "return", "window", "11", "days"]
    assert "16:30" in tokens("16:30前")


def test_build_search_and_manifest(tmp_path):
    result = build(shop(tmp_path), tmp_path / "kb")
    assert result.chunks == 6 and result.embedded == 6 and not result.skipped
    index = open_index(tmp_path / "kb")
    top = index.search("几点之前付款能当天发货？", 3)
    assert top[0].chunk.title.endswith("截单时间") and top[0].lexical > 0 and top[0].dense > 0
    assert index.search("how many days can I return it", 1)[0].chunk.title.endswith("Returns")
    faq = index.search("运费是多少钱", 1)[0].chunk
    assert faq.kind == "faq" and "139" in faq.text
    product = index.search("T恤是什么材质", 1)[0].chunk
    assert product.kind == "product" and "100%精梳棉" in product.text and "129" in product.text
    manifest = json.loads((result.version / "manifest.json").read_text())
    assert manifest["encoder"] == "ngram" and manifest["chunks"] == 6
    assert {s["path"] for s in manifest["sources"]} == {"shop/policy.md", "shop/faq.csv", "shop/catalog.jsonl"}
    assert all(len(s["sha256"]) == 64 for s in manifest["sources"])


def test_rebuild_embeds_only_changed_sources_and_swaps_atomically(tmp_path):
    docs = shop(tmp_path)
    first = build(docs, tmp_path / "kb")
    old = open_index(tmp_path / "kb")
    (docs / "faq.csv").write_text(FAQ + "发票怎么开？,签收后3个工作日内开电子发票。\n", encoding="utf-8")
    second = build(docs, tmp_path / "kb")
    assert second.chunks == 7 and second.embedded == 3  # the FAQ's 3 rows, nothing else
    assert (tmp_path / "kb" / "CURRENT").read_text().strip() == second.version.name
    assert first.version.exists()  # the previous version stays for readers still on it
    assert len(old) == 6 and len(old.search("发票", 7)) == 6  # the old index in hand is whole
    assert open_index(tmp_path / "kb").search("电子发票几天开", 1)[0].chunk.text.startswith("签收后3个")
    third = build(docs, tmp_path / "kb")
    assert third.embedded == 0 and not first.version.exists()  # only live + previous are kept


def test_bad_files_are_skipped_and_reported(tmp_path):
    docs = shop(tmp_path)
    (docs / "big.md").write_text("x" * 5000)
    (docs / "image.md").write_bytes(b"\x89PNG\x00\x00" + os.urandom(100))
    (docs / "gbk.txt").write_bytes("退货政策".encode("gb18030"))
    (docs / "notes.docx").write_bytes(b"PK")
    (docs / "bad.csv").write_text("question,answer\na,b,c\n")
    (docs / "empty.md").write_text("   \n")
    result = build(docs, tmp_path / "kb", max_file_bytes=4096)
    reasons = {s.path.split("/")[-1]: s.reason for s in result.skipped}
    assert set(reasons) == {"big.md", "image.md", "gbk.txt", "notes.docx", "bad.csv", "empty.md"}
    assert "larger than" in reasons["big.md"] and reasons["image.md"] == "binary file"
    assert "not UTF-8" in reasons["gbk.txt"] and "unsupported" in reasons["notes.docx"]
    report = json.loads((result.version / "report.json").read_text())
    assert len(report["skipped"]) == 6 and report["chunks"] == 6


def test_missing_empty_and_corrupt_indexes_name_the_path(tmp_path):
    with pytest.raises(KnowledgeError, match=str(tmp_path / "nope")):
        open_index(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(KnowledgeError, match="no CURRENT"):
        open_index(tmp_path / "plain")
    empty = tmp_path / "emptydocs"
    empty.mkdir()
    (empty / "x.md").write_text("")
    build(empty, tmp_path / "kb0")
    with pytest.raises(KnowledgeError, match="empty"):
        open_index(tmp_path / "kb0")
    result = build(shop(tmp_path), tmp_path / "kb")
    (result.version / "vectors.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(KnowledgeError, match="corrupt"):
        open_index(tmp_path / "kb")


def test_cli_build_and_search_json(tmp_path, capsys):
    docs = shop(tmp_path)
    assert main(["kb", "build", "--input", str(docs), "--output", str(tmp_path / "kb"), "encoder=ngram"]) == 0
    assert "6 chunks" in capsys.readouterr().out
    assert main(["kb", "search", "退货要几天内", "--index", str(tmp_path / "kb"), "--k", "2", "--json"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(hits) == 2 and {"id", "source", "title", "text", "score", "dense", "bm25"} <= set(hits[0])
    assert main(["kb", "search", "x", "--index", str(tmp_path / "none")]) == KnowledgeError.exit_code


def test_memory_build_masks_and_adds_at_once(tmp_path):
    samples = tmp_path / "train.jsonl"
    samples.write_text("\n".join(json.dumps({"messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]}, ensure_ascii=False)
        for q, a in [("我叫张伟，电话13800138000，什么时候发货", "16:30前付款当天发"),
                     ("可以开发票吗", "可以，签收后3天内开")]) + "\n", encoding="utf-8")
    result = run(KBConfig(memory=[str(samples)], output=str(tmp_path / "mem"), encoder="ngram"))
    assert result.chunks == 2
    memory = open_index(tmp_path / "mem")
    text = " ".join(c.title + c.text for c in memory.chunks)
    assert "13800138000" not in text and "张伟" not in text and "[PHONE_1]" in text
    from endcloud.knowledge.sources import make_chunk

    memory.add([make_chunk("serve", "memory", "周日发货吗", "周日不发货，周一一早发出", {"origin": "correction"})])
    hit = memory.search("周日会发货吗", 1)[0]
    assert hit.chunk.text.startswith("周日不发货") and hit.dense > 0.5  # dense at once, before BM25


def test_knowledge_block_budget_and_fit_messages():
    class H:  # a hit as the index returns it
        def __init__(self, title, text, kind="policy"):
            from endcloud.knowledge.sources import make_chunk
            self.chunk = make_chunk("s", kind, title, text)

    hits = [H("发货", "16:30前付款当天发出。"), H("长文", "很长的内容。" * 200), H("退货", "签收后11天内可退。")]
    block, ids = knowledge_block(hits, 160, "zh")
    assert "16:30" in block and "11天" in block and "很长" not in block and len(ids) == 2
    assert block.startswith("店铺资料") and knowledge_block(hits, 160, "en")[0].startswith("Shop information")
    msgs = [{"role": "system", "content": "你是客服"}] + [
        {"role": r, "content": f"第{i}轮" + "内容" * 20} for i in range(6) for r in ("user", "assistant")]
    msgs.append({"role": "user", "content": "最后的问题"})
    fitted = fit_messages(with_knowledge(msgs, block), 400)
    assert fitted[0]["role"] == "system" and block in fitted[0]["content"]
    assert fitted[-1]["content"] == "最后的问题" and fitted[1]["role"] == "user"
    assert 2 < len(fitted) < len(msgs)  # oldest turns went first
    assert lang_of("How long does shipping take?") == "en" and lang_of("发货要多久") == "zh"


def test_evidence_units_and_ranking():
    from endcloud.evaluate.encoders import get_encoder
    from endcloud.knowledge.evidence import evidence, units_of
    from endcloud.knowledge.sources import make_chunk, table_chunks

    section = make_chunk("p.md", "policy", "发货 > 配送时效", "出库后的参考时效：\n\n| 区域 | 范围 | 时效 |\n"
                         "|---|---|---|\n| 一区 | 江浙沪 | 1–2天 |\n| 三区 | 新疆、西藏 | 6–9天 |\n"
                         "- 周日不发货。\n- 大促期间可能延迟。")
    units = units_of(section)
    # a table row keeps its header; each unit is led by its section's name
    assert "配送时效: 区域: 三区; 范围: 新疆、西藏; 时效: 6–9天" in units
    assert "配送时效: 周日不发货。" in units and not any("---" in u for u in units)
    faq = make_chunk("f.csv", "faq", "运费多少？", "满139元包邮。")
    assert units_of(faq) == ["Q: 运费多少？\nA: 满139元包邮。"]  # a FAQ row stays whole
    product = table_chunks([{"sku": "TS-1", "title": "纯棉T恤", "price": 129, "attributes": {"克重": "220g"}}],
                           "c.jsonl")[0]
    assert "纯棉T恤: 克重: 220g" in units_of(product)
    long = make_chunk("p.md", "policy", "退款", "退款原路退回，一般2–4个工作日到账。" * 5 + "信用卡以银行为准。")
    assert len(units_of(long)) == 6  # a long line is cut at its sentence ends

    class H:
        def __init__(self, chunk):
            self.chunk = chunk

    best = evidence("寄到新疆要几天", [H(faq), H(section)], get_encoder("ngram"), 2)
    assert len(best) == 2 and "新疆" in best[0].text and best[0].chunk is section
    assert best[0].score >= best[1].score
    block, ids = knowledge_block(best, 160, "zh")
    assert block.count("[") == 2 and "6–9天" in block and ids[0] == section.id
    assert evidence("运费", [], get_encoder("ngram"), 4) == []

    class Prefers:  # a reranker that scores one sentence high: it moves up, its score stays the cosine
        def score(self, queries, replies):
            return [1.0 if "周日" in r else 0.0 for r in replies]

    plain = evidence("寄到新疆要几天", [H(section)], get_encoder("ngram"), 5)
    moved = evidence("寄到新疆要几天", [H(section)], get_encoder("ngram"), 5, Prefers(), 10.0)
    assert "周日" not in plain[0].text and "周日" in moved[0].text
    assert {u.text: u.score for u in plain} == {u.text: u.score for u in moved}


def test_units_holding_the_asked_kind_of_value_rank_first():
    """"多少钱" asks for a price: the price field outranks the silk weight the encoder puts first;
    a draft must state the best unit's value of the asked kind (misses_asked)."""
    from endcloud.evaluate.encoders import get_encoder
    from endcloud.knowledge.evidence import asked, evidence, misses_asked
    from endcloud.knowledge.sources import table_chunks

    mask = table_chunks([{"sku": "EM-1", "title": "真丝眼罩", "price": 89,
                          "attributes": {"真丝眼罩面料": "22姆米真丝眼罩"}}], "c.jsonl")[0]

    class H:
        def __init__(self, chunk):
            self.chunk = chunk

    q = "真丝眼罩多少钱"
    plain = evidence(q, [H(mask)], get_encoder("ngram"), 2)
    typed = evidence(q, [H(mask)], get_encoder("ngram"), 2, answer_type=1.0)
    assert "姆米" in plain[0].text and "89" in typed[0].text  # the test is able to fail
    assert asked("几点前付款当天发?") and asked("How much is it?") and not asked("你好呀")
    assert misses_asked(q, "亲，是22姆米的真丝哦", typed)  # a number, but not a price
    assert misses_asked(q, "亲，这款是真丝的", typed)
    assert not misses_asked(q, "亲，这款89元哦", typed)
    assert not misses_asked("你好呀", "您好", typed)


def test_a_quote_holds_the_asked_kind_of_value():
    from endcloud.knowledge.evidence import Unit, quotable
    from endcloud.knowledge.sources import make_chunk

    c = make_chunk("c.jsonl", "product", "Canvas Tote", "")
    units = [Unit(c, t, s) for t, s in (("Canvas Tote: fits: a 15-inch laptop", 0.92),
                                        ("Canvas Tote: description: roomy for a 15-inch laptop", 0.90),
                                        ("Canvas Tote: pockets: one zip pocket", 0.86),
                                        ("Canvas Tote: price: 17 USD", 0.85))]
    q = "What does the canvas tote cost, and will a 15-inch laptop fit?"
    assert [u.text for u in quotable(units, 2, 0.83, q)] == [units[0].text, units[3].text]
    assert quotable(units, 2, 0.83) == units[:2]  # no question: the two best
    assert quotable(units, 2, 0.88, q) == units[:2]  # the price is not close enough to quote


def test_placeholder_guard_restores_ours_and_flags_the_rest():
    from endcloud.data.privacy import Masker

    masker = Masker()
    conv = masker.new_conversation()
    masker.mask("我的电话是13800138000", conv)
    g = placeholder_guard("好的，会联系[PHONE_1]", conv)
    assert g.text == "好的，会联系13800138000" and g.restored == 1 and not g.missing
    g = placeholder_guard("[数字x]点前下单当天发，订单[ORDER_1]已发出，{{Order Number}}", conv)
    assert g.missing == ["[ORDER_1]", "[数字x]", "{{Order Number}}"]
    assert placeholder_guard("16:30前下单当天发", conv).missing == []


def test_vectors_are_unit_rows(tmp_path):
    result = build(shop(tmp_path), tmp_path / "kb")
    v = np.load(result.version / "vectors.npy")
    assert v.shape[0] == 6 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


def test_fact_judge():
    from endcloud.evaluate.facts import judge, numbers, summarise

    kb = numbers("签收后11天内可退，运费9元，15:45前付款当天发，满147元包邮，标签$4.50")
    assert {"11", "9", "15", "45", "147", "4.5"} <= kb
    q = {"question": "退货运费多少?", "answerable": True, "facts": [["9元", "九元"]]}
    assert judge(q, "退货运费 9 元哦", kb).correct
    assert not judge(q, "退货运费9元，3天到账", kb).correct  # 3 is invented
    assert not judge(q, "运费要看情况", kb).correct
    u = {"question": "能用花呗分期吗？", "answerable": False, "facts": []}
    assert judge(u, "这个我帮您核实一下哦", kb).honest
    assert not judge(u, "支持的亲，可以分12期", kb).honest and not judge(u, "支持的亲", kb).honest
    s = summarise([q, u], ["运费9元", "支持的亲"], "运费9元")
    assert s["fact_accuracy"] == 1.0 and s["unanswerable_invented"] == 1.0


def test_synth_grounding_samples_follow_the_service_prompt(tmp_path, capsys):
    from endcloud.knowledge.synth import samples

    rows = samples(6, 20, "SYS", seed=1, p_absent=0.25)
    assert len(rows) == 120
    absent = [r for r in rows if r["meta"]["gold_absent"]]
    assert 10 <= len(absent) <= 50
    for r in rows:
        system, _user, answer = (m["content"] for m in r["messages"])
        assert system.startswith("SYS\n\n") and ("店铺资料" in system or "Shop information" in system)
        if not r["meta"]["gold_absent"]:  # every number the answer states is in the chunks shown
            from endcloud.evaluate.facts import numbers
            assert numbers(answer) <= numbers(system), (answer, system)
    assert main(["kb", "synth", "--output", str(tmp_path / "g.jsonl"), "--shops", "2", "--per-shop", "3"]) == 0
    assert len((tmp_path / "g.jsonl").read_text().splitlines()) == 6


def test_claims_tie_numbers_to_their_units():
    from endcloud.evaluate.facts import claims

    assert claims("退货运费9元，¥147包邮，签收后11天内，36个小时发货，2–4个工作日退款，保修18个月") == {
        "9元", "147元", "11天", "36小时", "4工作日", "18月"}
    assert claims("A $4.50 label, within 11 days, 36 hours, 5 business days, 12% off") == {
        "$4.5", "11天", "36小时", "5工作日", "12%"}
    assert claims("运费为1元") - claims("1–2天送达，运费9元") == {"1元"}


def test_fact_questions_are_any_question_but_small_talk():
    import re

    from endcloud.knowledge.config import FACT_PATTERNS

    def fact(q: str) -> bool:
        return any(re.search(p, q) for p in FACT_PATTERNS)

    # questions no keyword list names ("当天", "which state") are fact questions too
    for q in ("今天下午三点多付的款，当天能发走吗？", "Which state do my orders ship out of?",
              "你好，请问退货运费多少？", "Is there a number I can call?", "功率是怎么分的"):
        assert fact(q), q
    for q in ("在吗？", "你好呀", "谢谢", "好的", "Are you a bot?", "hello?", "我很生气！"):
        assert not fact(q), q
