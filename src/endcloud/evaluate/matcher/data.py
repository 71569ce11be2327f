"""Training pairs for the matcher, from prepared splits (`endcloud data prepare` messages JSONL).

    pairs, stats = read_pairs(["runs/data-jddc2019/train.jsonl"], look_alikes=2, seed=0)

Per agent reply with a customer turn before it, one pair per query window (the last customer
turn; the last two turns), each with three kinds of negatives:
- `negatives` (look-alikes): the other agent replies of the same session, and the replies of the
  other sessions whose last-two-turn context has the highest char n-gram cosine with this one's
  (how ECD built its own negatives, with Lucene);
- `nonanswers`: the query's last customer turn (an echo) and a restatement of it ("您是想问…吗？");
- generic fillers are drawn per step from `filler_pool(...)` (training half of `nonanswer.FILLERS`
  + the corpus's frequent replies that the rule calls fillers); the other half of FILLERS is
  kept out of training so a bench can test fillers the matcher never saw.

Pairs whose real reply is itself a non-answer (a filler to a question, an echo) are dropped: they
would teach the matcher that a filler answers. A phatic query ("谢谢") keeps its stock reply.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from endcloud.errors import DataFormatError
from endcloud.evaluate import nonanswer

MAX_QUERY_CHARS = 400  # a window longer than this keeps its end (the turns nearest the reply)


@dataclass
class TrainPair:
    """One real exchange: `query` (customer side) -> `reply` (the agent's), with negatives."""

    query: str
    reply: str
    negatives: list[str] = field(default_factory=list)  # look-alike replies
    nonanswers: list[str] = field(default_factory=list)  # echo / restatement of this query
    group: str = ""  # session id: replies of the same group are never random negatives


def restatement(turn: str, rng: random.Random) -> str:
    """The customer's turn asked back, as a model that answers nothing does."""
    t = turn.strip().rstrip("?？。.!！~ ")
    if any("\u4e00" <= ch <= "\u9fff" for ch in t):
        return rng.choice(["您是想问{}吗？", "亲，您是说{}吗？", "您的意思是{}对吗？", "{}是吗？"]).format(t)
    return rng.choice(["You want to know {}?", "Are you asking about {}?", "So you mean {}?"]).format(t)


def _windows(turns: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(query window, last customer turn) for the reply turns[-1]."""
    if len(turns) < 2 or turns[-1]["role"] != "assistant" or turns[-2]["role"] != "user":
        return []
    last = turns[-2]["content"]
    out = [(last, last)]
    if len(turns) >= 3:
        out.append(((turns[-3]["content"] + " " + last)[-MAX_QUERY_CHARS:], last))
    return out


def expand(path: str | Path) -> Path:
    """`path`, or for a glob ("runs/prep/data-*/train.jsonl") its last match in name order - the
    newest of `endcloud data prepare`'s stamped run folders."""
    text = str(Path(path).expanduser())
    if any(ch in text for ch in "*?["):
        hits = sorted(Path("/").glob(text.lstrip("/")) if text.startswith("/") else Path().glob(text))
        if not hits:
            raise DataFormatError(text, None, "no prepared split matches (make one with `endcloud data prepare`)")
        return hits[-1]
    return Path(text)


def read_samples(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    out = []
    for given in paths:
        path = expand(given)
        if not path.is_file():
            raise DataFormatError(path, None, "no such prepared split (make one with `endcloud data prepare`)")
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                        row["messages"]  # noqa: B018 - the key must be there
                    except (ValueError, KeyError, TypeError):
                        raise DataFormatError(path, n, "not a messages JSONL row ({\"messages\": [...]})") from None
                    out.append(row)
    return out


def read_pairs(paths: Iterable[str | Path], look_alikes: int = 2, seed: int = 0,
               limit: int = 0) -> tuple[list[TrainPair], dict[str, Any]]:
    """Pairs with negatives from prepared splits; `limit` > 0 keeps a random subset of replies."""
    rng = random.Random(seed)
    samples = read_samples(paths)
    rows = []  # (group, turns, reply)
    for i, s in enumerate(samples):
        turns = s["messages"]
        if len(turns) >= 2 and turns[-1]["role"] == "assistant" and turns[-1]["content"].strip():
            meta = s.get("meta") or {}
            rows.append((str(meta.get("session_id") or meta.get("id") or i), turns, turns[-1]["content"]))
    if limit and len(rows) > limit:
        rows = rng.sample(rows, limit)
    sessions: dict[str, set[str]] = defaultdict(set)
    for g, _, r in rows:
        sessions[r].add(g)
    dropped = Counter()
    kept = []
    for row in rows:
        k = nonanswer.kind(row[1][-2]["content"], row[2])
        if k:
            dropped[k] += 1
        else:
            kept.append(row)
    by_group: dict[str, set[str]] = defaultdict(set)
    for g, _, r in kept:
        by_group[g].add(r)
    keys = [" ".join(t["content"] for t in turns[-3:-1]) for _, turns, _ in kept]
    nbrs = lexical_neighbours(keys, look_alikes,
                              lambda i, j: kept[i][0] == kept[j][0] or kept[i][2] == kept[j][2])
    pairs = []
    for (g, turns, reply), nb in zip(kept, nbrs):
        negs = sorted(by_group[g] - {reply})[:4] + [kept[j][2] for j in nb]
        for query, last in _windows(turns):
            pairs.append(TrainPair(query, reply, negs, [last, restatement(last, rng)], g))
    frequent = sorted((r for r, gs in sessions.items() if len(gs) >= 5 and nonanswer.is_filler(r)),
                      key=lambda r: -len(sessions[r]))
    stats = {"files": [str(expand(p)) for p in paths], "replies": len(rows), "pairs": len(pairs),
             "dropped_nonanswer_replies": dict(dropped), "look_alikes": look_alikes,
             "corpus_fillers": frequent[:300]}
    return pairs, stats


def lexical_neighbours(keys: list[str], k: int, skip) -> list[list[int]]:
    """Per key, the k other keys of highest char n-gram cosine, leaving out j where skip(i, j)."""
    if k <= 0 or not keys:
        return [[] for _ in keys]
    from endcloud.evaluate.encoders import get_encoder

    a = get_encoder("ngram").encode(keys)  # (N, D) unit rows
    out: list[list[int]] = []
    for start in range(0, len(keys), 512):
        sims = a[start: start + 512] @ a.T
        top = np.argpartition(-sims, min(k + 32, sims.shape[1] - 1), axis=1)[:, : k + 32]
        for i, row in enumerate(top, start):
            row = row[np.argsort(-sims[i - start, row])]
            out.append([int(j) for j in row if j != i and not skip(i, int(j))][:k])
    return out


def filler_pool(corpus_fillers: list[str]) -> list[str]:
    """Stock replies to train against: half of FILLERS + the corpus's frequent filler replies
    (`read_pairs`' stats["corpus_fillers"]: in 5 or more sessions, and a filler by the rule)."""
    return sorted(set(sorted(nonanswer.FILLERS)[::2]) | set(corpus_fillers))


def held_out_fillers() -> list[str]:
    """The half of FILLERS training never sees (for benches), plus stock phrasings not in it."""
    return sorted(nonanswer.FILLERS)[1::2] + [
        "请问还有其他可以为您效劳的吗", "亲亲稍等哦", "请您耐心等待哦", "您好，很高兴为您服务", "好的，收到",
        "嗯嗯", "好的亲", "感谢您的耐心等待，祝您生活愉快", "Is there anything else I can do for you?",
        "Thank you for your patience.", "Please wait a moment."]
