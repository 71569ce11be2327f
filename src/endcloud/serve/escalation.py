"""When the cloud takes over a turn, and the cloud call that must never become an error.

Before generation: a query matching a hard pattern (complaints, legal, "a human please"), an
out-of-scope pattern, or longer than `max_query_chars` goes to the cloud at once.
After generation: the end reply's Match score (query vs reply, `endcloud.evaluate` scorers) or
its confidence (geometric-mean token probability) below the threshold hands the turn over.

The cloud call goes through the masked, fail-closed `CloudClient` (only masked text leaves the
machine) with first bytes due within `first_token_s` and the whole call within `total_s`; any
failure - timeout, 5xx, breaker open, unmaskable text - comes back as a `CloudOutcome` with a
status, never as an exception, and the turn falls back to the local reply or a polite hand-off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from endcloud.evaluate.nonanswer import cap as nonanswer_cap
from endcloud.serve.config import PERSON_PATTERNS, EscalationConfig, HandoffConfig

log = logging.getLogger(__name__)


@dataclass
class CloudOutcome:
    status: str  # ok | timeout | circuit_open | http_503 | privacy | disabled | ...
    text: str = ""  # restored reply (only when status == "ok")
    masked_request: str | None = None  # JSON of what left the machine (None: nothing did)
    masked_reply: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Policy:
    """Decides, per turn, whether the cloud should answer."""

    def __init__(self, cfg: EscalationConfig, scorer: Any = None,
                 handoff: HandoffConfig | None = None) -> None:
        self.cfg = cfg
        self.hard = [re.compile(p) for p in cfg.hard_patterns]
        # a request for a person: the staff queue when hand-off is on, else the cloud, as "hard"
        self.person = [re.compile(p) for p in (handoff.patterns if handoff else PERSON_PATTERNS)]
        self.handoff = handoff is not None and handoff.enabled
        self.out_of_scope = [re.compile(p) for p in cfg.out_of_scope_patterns]
        self.scorer = scorer if scorer is not None else load_scorer(cfg.scorer)

    def before(self, query: str) -> str | None:
        """A reason to escalate before generating ('person': to the staff queue; 'hard',
        'out_of_scope', 'too_long': to the cloud), or None."""
        asks_for_person = any(p.search(query) for p in self.person)
        if asks_for_person and self.handoff:
            return "person"
        if not self.cfg.enabled:
            return None
        if asks_for_person:
            return "hard"
        if len(query) > self.cfg.max_query_chars:
            return "too_long"
        if any(p.search(query) for p in self.hard):
            return "hard"
        if any(p.search(query) for p in self.out_of_scope):
            return "out_of_scope"
        return None

    def match(self, query: str, reply: str) -> float | None:
        """Match of the reply, capped where it is a non-answer (an echo, a stock filler...)."""
        try:
            score = float(self.scorer.score([query], [reply])[0])
        except Exception:  # a broken scorer costs the score, never the turn
            log.exception("the Match scorer failed")
            return None
        return min(score, nonanswer_cap(query, reply)[1])

    def after(self, match: float | None, confidence: float | None) -> str | None:
        """A reason to escalate after generating ('low_match', 'low_confidence'), or None."""
        if not self.cfg.enabled:
            return None
        if match is not None and match < self.cfg.match_threshold:
            return "low_match"
        if confidence is not None and confidence < self.cfg.confidence_threshold:
            return "low_confidence"
        return None


def load_scorer(name: str) -> Any:
    """The evaluation stage's scorer `name`, else its `ngram` scorer, else our own n-gram cosine."""
    try:
        from endcloud.evaluate.scorers import get_scorer
    except ImportError:
        return CharNgramScorer()
    for candidate in (name, "ngram"):
        try:
            scorer = get_scorer(candidate)
            scorer.score(["你好"], ["您好"])  # load now, in the lifespan, not on a customer's turn
            if candidate != name:
                log.warning("scorer %r unavailable; using 'ngram' for the Match score", name)
            return scorer
        except Exception as exc:  # missing model files or extras
            log.info("scorer %r unavailable (%s)", candidate, type(exc).__name__)
    return CharNgramScorer()


class CharNgramScorer:
    """Cosine of character 1-3-gram counts: a dependency-free stand-in for the Match scorer."""

    @staticmethod
    def _grams(text: str) -> dict[str, int]:
        t = "".join(text.lower().split())
        out: dict[str, int] = {}
        for n in (1, 2, 3):
            for i in range(len(t) - n + 1):
                out[t[i:i + n]] = out.get(t[i:i + n], 0) + 1
        return out

    def score(self, left: list[str], right: list[str]) -> list[float]:
        scores = []
        for a, b in zip(left, right):
            ga, gb = self._grams(a), self._grams(b)
            dot = sum(v * gb.get(k, 0) for k, v in ga.items())
            na = sum(v * v for v in ga.values()) ** 0.5
            nb = sum(v * v for v in gb.values()) ** 0.5
            scores.append(dot / (na * nb) if na and nb else 0.0)
        return scores


class Cloud:
    """The masked cloud client, held to the service's deadlines; `ask` never raises."""

    def __init__(self, cfg: EscalationConfig, audit: Any = None, client: Any = None) -> None:
        self.cfg = cfg
        cloud_cfg = dataclasses.replace(
            cfg.cloud, read_timeout_s=cfg.first_token_s, deadline_s=cfg.total_s,
            connect_timeout_s=min(cfg.cloud.connect_timeout_s, cfg.first_token_s))
        self.client = client
        self.error: str | None = None
        if client is None:
            try:
                from endcloud.cloud.client import CloudClient

                self.client = CloudClient(cloud_cfg, audit=audit)
            except Exception as exc:  # no key for a remote cloud, no httpx: serve without it
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("cloud escalation unavailable: %s", self.error)

    @property
    def breaker_state(self) -> str:
        return self.client.breaker.state if self.client is not None else "unavailable"

    async def ask(self, messages: list[dict[str, str]],
                  knowledge_ids: list[str] | None = None) -> CloudOutcome:
        """`knowledge_ids`: the chunks inside `messages`, for the egress audit."""
        if self.client is None:
            return CloudOutcome("unavailable")
        from endcloud.cloud.client import KNOWLEDGE_IDS
        from endcloud.errors import CloudError, PrivacyError

        KNOWLEDGE_IDS.set(tuple(knowledge_ids or ()))  # this task's context, copied into the thread

        try:
            masked, _ = self.client.mask_messages(messages)
        except PrivacyError:
            return CloudOutcome("privacy")  # fail closed: nothing leaves the machine
        sent = json.dumps(masked, ensure_ascii=False)
        try:
            # The client enforces the deadline itself; the outer wait is a belt to its braces.
            reply = await asyncio.wait_for(asyncio.to_thread(self.client.chat, messages, self.cfg.total_s),
                                           self.cfg.total_s + 0.5)
        except asyncio.TimeoutError:
            return CloudOutcome("timeout", masked_request=sent)
        except CloudError as exc:
            status = "timeout" if exc.kind in ("deadline", "timeout") else exc.kind
            return CloudOutcome(status, masked_request=None if exc.kind == "circuit_open" else sent)
        except PrivacyError:
            return CloudOutcome("privacy")
        except Exception as exc:  # never an error for the customer
            log.exception("unexpected failure calling the cloud")
            return CloudOutcome(f"error:{type(exc).__name__}", masked_request=sent)
        return CloudOutcome("ok", reply.text, sent, reply.masked_text, reply.prompt_tokens,
                            reply.completion_tokens, reply.cost)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
