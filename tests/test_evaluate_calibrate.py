"""`endcloud evaluate calibrate`: refits both Platt maps from the corpora and says where they came from."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from endcloud.cli import main
from endcloud.evaluate import calibrate, scorers, scoring

QUERIES = ["快递几天能到", "能便宜点吗", "发票怎么开", "可以退货吗", "什么时候发货", "有没有优惠券"]
REPLIES = ["快递三天能到哦", "已经很便宜了亲", "发票随包裹寄出", "七天内可以退货", "今天下午发货", "优惠券在首页领"]


def _tiny_corpora(root: Path) -> Path:
    """JDDC 2018 train (.enc/.dec) and a Bitext CSV in the layout of ../shared/data."""
    jd = root / "jddc" / "jddc2018_baseline"
    jd.mkdir(parents=True)
    (jd / "train.enc.gz").write_bytes(gzip.compress("".join(q + ",\n" for q in QUERIES).encode()))
    (jd / "train.dec.gz").write_bytes(gzip.compress("".join(r + ",\n" for r in REPLIES).encode()))
    bt = root / "bitext_customer_support"
    bt.mkdir()
    rows = ["context,role,instruction,intent,entity_type,entity_value,start_offset,end_offset,"
            "category,tags,response"]
    for i in range(16):  # two intents, 4 even rows each
        intent, words = ("track_order", "track your order") if i % 4 < 2 else ("get_refund", "refund money")
        rows.append(f"cs,va,question {i} about {words},{intent},,,,,ORDER,BL,you can {words} now {i}")
    (bt / "bitext_customer_support.csv.gz").write_bytes(gzip.compress(("\r\n".join(rows) + "\r\n").encode()))
    return root


def test_calibrate_cli_fits_both_maps_into_out(tmp_path, monkeypatch, capsys):
    # the lexical scorer stands in for e5 / USE: same raw-cosine interface, no model download
    monkeypatch.setattr(calibrate, "get_scorer", lambda name: scorers.get_scorer("ngram"))
    data, out = _tiny_corpora(tmp_path / "data"), tmp_path / "cal"
    shipped = {p.name: p.read_bytes() for p in scorers.CALIBRATION_DIR.glob("*.json")}
    assert main(["evaluate", "calibrate", "--data", str(data), "--n", "4", "--out", str(out)]) == 0
    assert {p.name: p.read_bytes() for p in scorers.CALIBRATION_DIR.glob("*.json")} == shipped
    for name, positives in (("match-e5", 8), ("similarity", 8)):  # 4 zh + 4 en; 2n intent pairs
        cal = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        assert cal["kind"] == "platt" and cal["a"] > 0, cal
        about = cal["fitted_on"]
        assert about["positives"] == about["negatives"] == positives
        assert about["script"] == "endcloud evaluate calibrate"
        assert about["raw_cosine_mean"]["positive"] > about["raw_cosine_mean"]["negative"]
    printed = capsys.readouterr().out
    assert "match-e5: a=" in printed and "similarity: a=" in printed
    loaded = scoring.Calibration.load(out / "match-e5.json")
    assert 0.0 < float(loaded(np.array([0.5]))[0]) < 1.0
