"""The label job end to end: a recording teacher process on loopback, privacy at the boundary,
exactly-once under kill -9, quarantine reasons, and the canary API key."""

from __future__ import annotations

from typing import Any
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from endcloud.cloud.config import API_KEY_ENV, CloudConfig, LabelConfig, PromptConfig
from endcloud.cloud.label import run
from endcloud.cloud.server import server_process
from endcloud.config import load_config
from endcloud.records import Sample, Turn
from dbutil import connect

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL

REPO = Path(__file__).resolve().parents[1]

# Personal values spread over queries, context turns and the few-shot examples' text.
PII = ["张伟", "李娜", "13800138000", "138 0013 8000", "+86 139-1234-5678", "zhang.wei@example.com",
       "123456789012", "北京市朝阳区建国路88号", "11010519491231002X", "John Smith",
       "john.smith@example.org", "+1 415 555 0134", "wxid_abc123",
       # found by the trained tagger only (no rule matches them)
       "禤志强", "南苑小区东门菜鸟驿站", "Oluwaseun", "priya sharma"]
PII_TEXTS = ["我叫张伟，电话 13800138000，我的快递到哪了", "收件人李娜，手机 138 0013 8000，麻烦改下地址",
             "邮箱 zhang.wei@example.com 收不到发票", "订单号 123456789012 还没发货",
             "地址是北京市朝阳区建国路88号，能送到吗", "身份证 11010519491231002X 实名认证失败",
             "My name is John Smith, email john.smith@example.org, where is my parcel?",
             "call me at +1 415 555 0134 about the refund", "微信号 wxid_abc123 加我一下",
             "+86 139-1234-5678 是我电话，尽快联系", "让禤志强下楼拿一下快递", "快递放在南苑小区东门菜鸟驿站就行",
             "Please leave it with Oluwaseun at the front desk", "hey its priya sharma, where is my stuff"]


def write_samples(path: Path, n: int, pii: bool = False, split: str = "train") -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            query = PII_TEXTS[i % len(PII_TEXTS)] if pii else f"第{i}个问题：衣服尺码偏大还是偏小？"
            context = [Turn("user", PII_TEXTS[(i + 3) % len(PII_TEXTS)]), Turn("assistant", "亲，请稍等哦")] if pii else []
            s = Sample(f"s{i}", f"sess{i // 2}", context, query, f"亲，这是第{i}条人工回复~", "test", split)
            fh.write(json.dumps(s.to_messages(), ensure_ascii=False) + "\n")
    return path


def label_cfg(tmp_path: Path, base_url: str, **kw) -> LabelConfig:
    cloud = CloudConfig(base_url=base_url, model="teacher", deadline_s=5.0, backoff_base_s=0.01,
                        backoff_max_s=0.02, max_attempts=2, concurrency=2)
    return LabelConfig(output_root=str(tmp_path / "runs"), store=os.environ["ENDCLOUD_DB"], cloud=cloud,
                       prompt=PromptConfig(n_examples=4, n_retrieved=2), **kw)


def recorded(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def test_shipped_config_loads():
    cfg = load_config(LabelConfig, REPO / "configs" / "label.yaml", ["cloud.model=x"])
    assert cfg.cloud.model == "x" and cfg.prompt.n_examples == 8


def test_no_pii_reaches_the_teacher_and_replies_are_restored_locally(tmp_path):
    samples = write_samples(tmp_path / "s.jsonl", 20, pii=True)
    rec = tmp_path / "requests.jsonl"
    with server_process("fake", record=str(rec), warmup=False) as url:
        result = run(label_cfg(tmp_path, url, input=str(samples)))
    bodies = recorded(rec)
    assert result.labelled == 20 and len(bodies) >= 20
    for b in bodies:
        contents = [m["content"] for m in json.loads(b["body"])["messages"]]
        for value in PII:
            assert value not in b["body"] and all(value not in c for c in contents), value
            if len(digits(value)) >= 7:
                assert all(digits(value) not in digits(c) for c in contents), value
    labels = [json.loads(line) for line in result.output.read_text(encoding="utf-8").splitlines()]
    restored = " ".join(m["messages"][-1]["content"] for m in labels)
    assert "张伟" in restored and "13800138000" in restored  # placeholders restored on this side
    with connect() as db:
        audit = db.execute("SELECT payload_sha256, status, request_bytes FROM cloud_egress").fetchall()
    assert len(audit) == len(bodies) and all(len(h) == 64 and s == "ok" for h, s, _ in audit)


def test_pii_test_set_through_the_label_job(tmp_path):
    """The data stage's labelled PII test set, every 30th row with gold spans, as queries."""
    from endcloud.data.pii_testset import generate

    rows = [r for r in generate(seed=0) if r["spans"]][::30]
    values = {r["text"][s["start"]:s["end"]] for r in rows for s in r["spans"]}
    path = tmp_path / "s.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i, r in enumerate(rows):
            s = Sample(f"p{i}", f"ps{i}", [], r["text"], "亲，收到~", "pii", "train")
            fh.write(json.dumps(s.to_messages(), ensure_ascii=False) + "\n")
    rec = tmp_path / "requests.jsonl"
    with server_process("fake", record=str(rec), warmup=False) as url:
        result = run(label_cfg(tmp_path, url, input=str(path)))
    bodies = [json.loads(b["body"]) for b in recorded(rec)]
    contents = [m["content"] for b in bodies for m in b["messages"]]
    assert result.labelled + result.quarantined == len(rows) and result.labelled > 0.8 * len(rows)
    assert set(result.reasons) <= {"privacy"}  # unsendable after masking: refused, never sent
    leaks = [v for v in values if len(v) >= 2 and any(v in c for c in contents)]
    leaks += [v for v in values if len(digits(v)) >= 6 and any(digits(v) in digits(c) for c in contents)]
    assert leaks == []


def test_masker_failure_sends_nothing(tmp_path, monkeypatch):
    from endcloud.data import privacy

    def broken(self, text, conv=None):
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(privacy.Masker, "mask", broken)
    samples = write_samples(tmp_path / "s.jsonl", 6, pii=True)
    rec = tmp_path / "requests.jsonl"
    with server_process("fake", record=str(rec), warmup=False) as url:
        result = run(label_cfg(tmp_path, url, input=str(samples)))
    assert recorded(rec) == [] and result.labelled == 0
    assert result.reasons == {"privacy": 6}


def test_canary_key_never_lands_in_logs_store_or_outputs(tmp_path):
    canary = "sk-canary-7f3a9c1e5b2d4f60"
    samples = write_samples(tmp_path / "s.jsonl", 6, pii=True)
    rec = tmp_path / "requests.jsonl"
    env = {**os.environ, API_KEY_ENV: canary, "ENDCLOUD_PROGRESS": "1"}
    with server_process("fake", record=str(rec), warmup=False) as url:
        ok = subprocess.run(
            [sys.executable, "-m", "endcloud", "-v", "cloud", "label", "--input", str(samples),
             f"cloud.base_url={url}", f"output_root={tmp_path / 'runs'}", f"store={os.environ['ENDCLOUD_DB']}"],
            env=env, capture_output=True, text=True, timeout=60)
    dead = subprocess.run(  # and a failing run: an error path must not print it either
        [sys.executable, "-m", "endcloud", "-v", "cloud", "label", "--input", str(samples),
         "cloud.base_url=http://127.0.0.1:9/v1", "cloud.deadline_s=0.5", "cloud.max_attempts=1",
         "max_item_failures=1", f"output_root={tmp_path / 'runs'}", f"store={tmp_path / 'e2.db'}"],
        env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert any(r["headers"].get("authorization") == f"Bearer {canary}" for r in recorded(rec))
    for text in (ok.stdout, ok.stderr, dead.stdout, dead.stderr):
        assert canary not in text
    for f in tmp_path.rglob("*"):
        if f.is_file() and f != rec:
            assert canary.encode() not in f.read_bytes(), f


def test_exactly_once_and_cache_hits_on_rerun(tmp_path):
    samples = write_samples(tmp_path / "s.jsonl", 12)
    rec = tmp_path / "requests.jsonl"
    with server_process("fake", record=str(rec), warmup=False) as url:
        first = run(label_cfg(tmp_path, url, input=str(samples)))
        n_requests = len(recorded(rec))
        second = run(label_cfg(tmp_path, url, input=str(samples)))
    assert (first.new, first.labelled) == (12, 12)
    assert (second.new, second.labelled) == (0, 12) and len(recorded(rec)) == n_requests == 12


def test_malformed_replies_are_quarantined_with_reasons(tmp_path):
    def teacher(request: httpx.Request) -> httpx.Response:
        query = json.loads(request.content)["messages"][-1]["content"]
        n = int(re.search(r"第(\d+)个", query).group(1))
        table = {0: httpx.Response(200, json={"choices": []}),
                 1: httpx.Response(200, text="<html>gateway</html>", headers={"content-type": "text/html"}),
                 2: httpx.Response(400, json={"error": {"message": "context too long"}})}
        if n in table:
            return table[n]
        finish = "length" if n == 3 else "stop"
        return httpx.Response(200, json={"choices": [{"message": {"content": "亲，尺码标准哦"},
                                                      "finish_reason": finish}]})

    samples = write_samples(tmp_path / "s.jsonl", 6)
    result = run(label_cfg(tmp_path, "http://127.0.0.1:9/v1", input=str(samples)),
                 transport=httpx.MockTransport(teacher))
    assert result.labelled == 2 and result.quarantined == 4
    assert result.reasons == {"empty_choices": 1, "html_body": 1, "http_400": 1, "truncated": 1}
    out = [json.loads(line)["meta"]["id"] for line in result.output.read_text().splitlines()]
    assert out == ["s4", "s5"]
    quarantine = [json.loads(line) for line in (result.run_dir / "quarantine.jsonl").read_text().splitlines()]
    assert sorted(q["reason"] for q in quarantine) == ["empty_choices", "html_body", "http_400", "truncated"]


def test_transient_failures_are_quarantined_after_max_item_failures(tmp_path):
    samples = write_samples(tmp_path / "s.jsonl", 3)
    calls = []

    def down(request):
        calls.append(1)
        return httpx.Response(503)

    cfg = label_cfg(tmp_path, "http://127.0.0.1:9/v1", input=str(samples), max_item_failures=2)
    cfg.cloud.breaker_consecutive = 1000
    cfg.cloud.breaker_min_calls = cfg.cloud.breaker_window
    result = run(cfg, transport=httpx.MockTransport(down))
    assert result.reasons == {"transient:http_503": 3} and len(calls) == 3 * 2 * 2


def count_labels(location: Any) -> int:
    with connect(location) as db:  # creates the schema when the job has not yet
        return db.execute("SELECT COUNT(*) FROM cloud_labels").fetchone()[0]


def test_kill_9_at_random_points_leaves_no_duplicate_and_no_loss(tmp_path):
    n, kills = 40, 5
    samples = write_samples(tmp_path / "s.jsonl", n)
    out = tmp_path / "labels.jsonl"
    cmd = [sys.executable, "-m", "endcloud", "cloud", "label", "--input", str(samples), "--output", str(out),
           f"output_root={tmp_path / 'runs'}", f"store={os.environ['ENDCLOUD_DB']}", "cloud.concurrency=4",
           "prompt.n_examples=4", "prompt.n_retrieved=2"]
    rng = random.Random(7)
    progress = []
    with server_process("fake", record=str(tmp_path / "req.jsonl"), fake_delay=0.02, warmup=False) as url:
        for _ in range(kills):
            before = count_labels(os.environ["ENDCLOUD_DB"])
            proc = subprocess.Popen([*cmd, f"cloud.base_url={url}"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            end = time.monotonic() + 30
            while count_labels(os.environ["ENDCLOUD_DB"]) <= before and proc.poll() is None and time.monotonic() < end:
                time.sleep(0.01)  # kill only once this run has committed something: truly mid-run
            time.sleep(rng.uniform(0.0, 0.1))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            progress.append(count_labels(os.environ["ENDCLOUD_DB"]))
        final = subprocess.run([*cmd, f"cloud.base_url={url}"], capture_output=True, text=True, timeout=60)
    assert any(0 < p < n for p in progress), progress
    assert final.returncode == 0, final.stderr
    ids = [json.loads(line)["meta"]["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(f"s{i}" for i in range(n))  # every one, once
    with connect() as db:
        rows = db.execute("SELECT sample_id, COUNT(*) FROM cloud_labels GROUP BY sample_id").fetchall()
        quarantined = db.execute("SELECT COUNT(*) FROM cloud_quarantine").fetchone()[0]
    assert len(rows) == n and all(c == 1 for _, c in rows) and quarantined == 0


def test_teacher_gets_the_shops_knowledge_and_labels_record_it(tmp_path):
    """prompt.knowledge: each query's top chunks go to the teacher, delimited, with the
    instruction to answer from them; each label names the chunk ids; the audit records them."""
    pytest.importorskip("bm25s")
    from endcloud.knowledge.build import run as build_kb
    from endcloud.knowledge.config import KBConfig

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policy.md").write_text("# 政策\n## 发货\n每天16:30前付款当天发出。\n## 退货\n签收后11天内可退。\n",
                                    encoding="utf-8")
    build_kb(KBConfig(input=[str(docs)], output=str(tmp_path / "kb"), encoder="ngram"))
    path = tmp_path / "s.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i, q in enumerate(["几点前付款当天发货？", "签收后几天内能退货？"]):
            s = Sample(f"k{i}", f"ks{i}", [], q, "亲，收到~", "demo", "train")
            fh.write(json.dumps(s.to_messages(), ensure_ascii=False) + "\n")
    rec = tmp_path / "requests.jsonl"
    cfg = label_cfg(tmp_path, "", input=str(path))
    cfg.prompt.knowledge, cfg.prompt.knowledge_k = str(tmp_path / "kb"), 1
    with server_process("fake", record=str(rec), warmup=False) as url:
        cfg.cloud.base_url = url
        result = run(cfg)
    systems = [json.loads(b["body"])["messages"][0]["content"] for b in recorded(rec)]
    assert any("<knowledge>" in s and "16:30" in s and "never invent" in s for s in systems)
    assert any("11天" in s for s in systems)
    labels = [json.loads(line) for line in result.output.read_text(encoding="utf-8").splitlines()]
    ids = [lab["meta"]["knowledge_ids"] for lab in labels]
    assert all(len(i) == 1 and i[0].startswith("policy-") for i in ids) and ids[0] != ids[1]
    with connect() as db:
        audited = [json.loads(k) for (k,) in db.execute("SELECT knowledge_ids FROM cloud_egress")]
    assert sorted(map(tuple, audited)) == sorted(map(tuple, ids))


def test_names_and_addresses_of_every_form_never_reach_the_teacher(tmp_path):
    """Compound surnames, accented and apostrophe names, US / UK addresses, PO boxes, an office
    park address: none arrives at the recording teacher; the shop's SKU and hotline do (kept)."""
    lines = {
        "收件人司马懿，地址：杭州市西湖区文三路90号东部软件园3号楼501室": ["司马懿", "文三路90号", "3号楼501室"],
        "Please ship to Zoë O'Brien, Apt 4B, 221 W 83rd St, New York, NY 10024": ["Zoë", "O'Brien", "221 W 83rd", "10024"],
        "Send it to PO Box 7781, Boulder, CO 80306 - thanks, Ruth": ["7781", "80306", "Ruth"],
        "Deliver to 14 Kings Road, Leeds LS6 1BX please, the name is Callum Reid": ["Kings Road", "LS6 1BX", "Callum Reid"],
        "我妈叫上官婉清，寄到南京大学仙林校区三栋二单元402": ["上官婉清", "三栋二单元402"],
    }
    kept = "订单商品编号100012043978，客服热线400-820-8820"
    path = tmp_path / "s.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i, text in enumerate([*lines, kept]):
            fh.write(json.dumps(Sample(f"n{i}", f"ns{i}", [], text, "亲，收到~", "pii", "train").to_messages(),
                                ensure_ascii=False) + "\n")
    rec = tmp_path / "requests.jsonl"
    with server_process("fake", record=str(rec), warmup=False) as url:
        result = run(label_cfg(tmp_path, url, input=str(path)))
    sent = " ".join(b["body"] for b in recorded(rec))
    assert result.labelled == len(lines) + 1
    assert [v for values in lines.values() for v in values if v in sent] == []
    assert "100012043978" in sent and "400-820-8820" in sent  # not personal: kept as written
    assert "客服热线" in sent and "[NAME_1]" in sent  # the bodies hold the text as written (not \u-escaped)


def test_two_workers_on_one_input_label_each_sample_exactly_once(tmp_path):
    """Two `cloud label` processes on the same input and store (SQLite file or PostgreSQL): one
    label row per sample, and both outputs hold every sample."""
    n = 24
    samples = write_samples(tmp_path / "s.jsonl", n)
    with server_process("fake", record=str(tmp_path / "req.jsonl"), fake_delay=0.01, warmup=False) as url:
        procs = [subprocess.Popen(
            [sys.executable, "-m", "endcloud", "cloud", "label", "--input", str(samples),
             "--output", str(tmp_path / f"out{w}.jsonl"), f"output_root={tmp_path / 'runs'}",
             f"store={os.environ['ENDCLOUD_DB']}", f"cloud.base_url={url}", "cloud.concurrency=3",
             "prompt.n_examples=4", "prompt.n_retrieved=2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(2)]
        results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    for out, err, rc in results:
        assert rc == 0, err
    with connect() as db:
        rows = db.execute("SELECT sample_id, COUNT(*) FROM cloud_labels GROUP BY sample_id").fetchall()
    assert len(rows) == n and all(c == 1 for _, c in rows)
    for w in range(2):
        ids = [json.loads(x)["meta"]["id"] for x in (tmp_path / f"out{w}.jsonl").read_text().splitlines()]
        assert sorted(ids) == sorted(f"s{i}" for i in range(n))
