"""`endcloud cloud label`: the cloud teacher writes a label for every prepared sample.

    endcloud cloud label --config configs/label.yaml --input runs/data-X/train.jsonl \\
        --output labels.jsonl cloud.base_url=http://127.0.0.1:8765/v1 cloud.model=local

Exactly once, even across kill -9 (the design):
  * an item is (sample id, prompt hash); the prompt hash covers the model, the sampling
    parameters and the full messages, so a changed prompt is a new item and an unchanged one
    is never asked twice;
  * the store is the single source of truth: each label (or quarantine entry) is one committed
    row under UNIQUE(sample_id, prompt_hash), written by the main thread as replies arrive;
  * a restarted job skips every item that has a row, and reuses a label made for an identical
    prompt under another sample id without calling the teacher;
  * the output JSONL is generated from the store at the end and renamed into place atomically,
    so it never holds a duplicate or a half line. A kill between the teacher's answer and the
    commit costs one repeated request, never a duplicate label.
Malformed replies are retried by the client, then quarantined with the reason; transient
failures (timeouts, 5xx) are retried in later rounds and quarantined after
`max_item_failures` failed calls; the privacy check failing quarantines without sending.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from endcloud.cloud.audit import CloudStore
from endcloud.cloud.client import KNOWLEDGE_IDS, CloudClient
from endcloud.records import TeacherReply
from endcloud.cloud.config import CloudConfig, LabelConfig
from endcloud.cloud.prompt import ExamplePool, PromptBuilder, prompt_hash
from endcloud.records import read_samples
from endcloud.config import to_dict
from endcloud.errors import (AuthError, CircuitOpenError, CloudError, ConfigError, MalformedReplyError,
                             PrivacyError, RequestRejectedError)
from endcloud.progress import enabled as progress_enabled
from endcloud.records import Sample
from endcloud.runs import new_run_dir, save_config, write_json, write_jsonl
from endcloud.store import Store

log = logging.getLogger(__name__)


@dataclass
class LabelItem:
    sample: Sample
    messages: list[dict[str, str]]
    key: tuple[str, str]  # (sample id, prompt hash)
    knowledge_ids: list[str] = field(default_factory=list)  # chunks the teacher was given


@dataclass
class LabelResult:
    run_dir: Path
    output: Path
    labelled: int = 0  # labels in the output (new + from earlier runs)
    new: int = 0  # labels made by this run
    cached: int = 0  # reused from an identical prompt
    quarantined: int = 0
    pending: int = 0  # still to do (breaker stayed open): rerun to resume
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def run(cfg: LabelConfig, *, masker: Any = None, transport: Any = None) -> LabelResult:
    """Label every selected sample once; return counts. See the module docstring for the design."""
    if not cfg.input:
        raise ConfigError("input: name the prepared samples, e.g. --input runs/data-X/train.jsonl")
    if cfg.cloud.is_local:  # no endpoint given: start the embedded teacher for this job only
        with local_teacher(cfg.cloud) as cloud:
            return run(dataclasses.replace(cfg, cloud=cloud), masker=masker, transport=transport)
    all_samples = list(read_samples(cfg.input))
    samples = _select(all_samples, cfg)
    pool = (ExamplePool.from_jsonl(cfg.prompt.examples) if cfg.prompt.examples else
            ExamplePool.from_samples(s for s in all_samples if s.split == "train"))
    if len(pool) < cfg.prompt.n_examples:
        log.warning("only %d training examples for prompt.n_examples=%d", len(pool), cfg.prompt.n_examples)
    builder = PromptBuilder(cfg.prompt, pool)
    params = {"model": cfg.cloud.model, "temperature": cfg.cloud.temperature,
              "top_p": cfg.cloud.top_p, "max_tokens": cfg.cloud.max_tokens}
    items = []
    for s in samples:
        msgs, ids = builder.build(s)
        items.append(LabelItem(s, msgs, (s.id, prompt_hash(msgs, params)), ids))

    run_dir = new_run_dir(cfg.output_root, "label")
    save_config(run_dir, cfg)
    output = Path(cfg.output) if cfg.output else run_dir / "labels.jsonl"
    store = Store.open(cfg.store or None)
    run_id = store.start_run("cloud.label", run_dir, to_dict(cfg))
    db = CloudStore(store, run_id)
    result = LabelResult(run_dir, output)
    try:
        with CloudClient(cfg.cloud, masker=masker, audit=db.audit, transport=transport) as client:
            _label_all(cfg, client, db, items, result)
        _write_outputs(db, items, result)
    except BaseException as exc:
        store.finish_run(run_id, error=type(exc).__name__ + (f": {exc}" if isinstance(exc, Exception) else ""))
        store.close()
        raise
    stats = {k: v for k, v in vars(result).items() if k not in ("run_dir", "output")}
    write_json(run_dir / "stats.json", stats)
    store.finish_run(run_id, stats)
    store.close()
    return result


def _select(samples: list[Sample], cfg: LabelConfig) -> list[Sample]:
    seen: set[str] = set()
    out = []
    for s in samples:
        if cfg.split and s.split != cfg.split or s.id in seen:
            continue  # a repeated id would make two items share one label
        seen.add(s.id)
        out.append(s)
    return out[: cfg.limit] if cfg.limit else out


def _label_all(cfg: LabelConfig, client: CloudClient, db: CloudStore, items: list[LabelItem],
               result: LabelResult) -> None:
    todo = []
    for item in items:
        state = db.state(*item.key)
        if state == "todo" and (row := db.cached_reply(item.key[1])) is not None:
            db.add_label(item.sample, item.key[1], _reply_from_row(row))
            result.cached += 1
        elif state == "todo":
            todo.append(item)
    bar = _bar(len(todo))
    try:
        for _round in range(cfg.max_item_failures):
            if not todo:
                break
            todo = _round_of_calls(cfg, client, db, todo, result, bar)
    finally:
        if bar is not None:
            bar.close()
    result.pending = len(todo)


def _round_of_calls(cfg: LabelConfig, client: CloudClient, db: CloudStore, todo: list[LabelItem],
                    result: LabelResult, bar: Any) -> list[LabelItem]:
    """Call the teacher for each item (in parallel); commit outcomes here, in the main thread."""
    retry: list[LabelItem] = []
    queue = list(reversed(todo))
    with ThreadPoolExecutor(cfg.cloud.concurrency, thread_name_prefix="teacher") as ex:
        running: dict[Future, LabelItem] = {}
        while queue or running:
            while queue and len(running) < cfg.cloud.concurrency * 2:  # bounded in-flight window
                item = queue.pop()
                running[ex.submit(_call, client, item, cfg.cloud.deadline_s)] = item
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                item = running.pop(fut)
                outcome = fut.result()
                if isinstance(outcome, AuthError):
                    ex.shutdown(wait=False, cancel_futures=True)
                    raise outcome
                if _commit(cfg, db, item, outcome, result):
                    retry.append(item)
                elif bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"cost={result.cost:.4f} quarantined={result.quarantined}")
    return retry


def _call(client: CloudClient, item: LabelItem, patience_s: float) -> TeacherReply | Exception:
    """One item's call in a worker thread; waits out an open breaker for up to `patience_s`."""
    KNOWLEDGE_IDS.set(tuple(item.knowledge_ids))  # this worker thread's audit records name them
    waited = 0.0
    while True:
        try:
            return client.chat(item.messages)
        except CircuitOpenError as exc:
            if waited >= patience_s:
                return exc
            pause = exc.retry_in + random.uniform(0.0, 0.2)
            time.sleep(pause)
            waited += pause
        except (CloudError, PrivacyError) as exc:
            return exc


def _commit(cfg: LabelConfig, db: CloudStore, item: LabelItem, outcome: TeacherReply | Exception,
            result: LabelResult) -> bool:
    """Record one outcome; True when the item should be tried again in the next round."""
    sid, phash = item.key
    if isinstance(outcome, TeacherReply):
        if db.add_label(item.sample, phash, outcome):
            result.new += 1
            result.cost += outcome.cost
            result.prompt_tokens += outcome.prompt_tokens
            result.completion_tokens += outcome.completion_tokens
        return False
    if isinstance(outcome, PrivacyError):
        return _quarantine(db, item, "privacy", str(outcome), 0, result)
    assert isinstance(outcome, CloudError)
    if isinstance(outcome, CircuitOpenError):
        return True  # not the item's fault: try again in the next round
    if isinstance(outcome, (MalformedReplyError, RequestRejectedError)):
        return _quarantine(db, item, outcome.kind, str(outcome), outcome.attempts, result)
    failures = db.add_failure(sid, phash, str(outcome))
    if failures >= cfg.max_item_failures:
        return _quarantine(db, item, f"transient:{outcome.kind}", str(outcome), failures, result)
    return True


def _quarantine(db: CloudStore, item: LabelItem, reason: str, detail: str, attempts: int,
                result: LabelResult) -> bool:
    db.quarantine(item.key[0], item.key[1], reason, detail, attempts)
    result.quarantined += 1
    result.reasons[reason] = result.reasons.get(reason, 0) + 1
    return False


def _write_outputs(db: CloudStore, items: list[LabelItem], result: LabelResult) -> None:
    """labels.jsonl (and quarantine.jsonl) from the store, in input order, written atomically."""
    keys = [it.key for it in items]
    labels = db.labels_for(keys)
    rows = []
    for it in items:
        row = labels.get(it.key)
        if row is None:
            continue
        teacher = {"model": row["model"], "prompt_hash": it.key[1], "prompt_tokens": row["prompt_tokens"],
                   "completion_tokens": row["completion_tokens"], "cost": row["cost"],
                   "latency_ms": row["latency_ms"]}
        s = it.sample
        labelled = Sample(s.id, s.session_id, s.context, s.query, row["reply"], s.source, s.split,
                          {**s.meta, "label_source": "cloud", "teacher": teacher, "human_reply": s.reply,
                           **({"knowledge_ids": it.knowledge_ids} if it.knowledge_ids else {})})
        rows.append(labelled.to_messages())
    result.labelled = write_jsonl(result.output, rows)
    quarantined = db.quarantined_for(keys)
    write_jsonl(result.run_dir / "quarantine.jsonl",
                ({"id": k[0], "prompt_hash": k[1], "reason": r["reason"], "detail": r["detail"]}
                 for k, r in quarantined.items()))


def _reply_from_row(row: Any) -> TeacherReply:
    return TeacherReply(text=row["reply"], masked_text=row["reply"], finish_reason=row["finish_reason"],
                 model=row["model"], prompt_tokens=0, completion_tokens=0, latency_s=0.0,
                 attempts=0, cost=0.0, payload_sha256="")


def _bar(total: int) -> Any:
    if not progress_enabled():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="labelling", unit="label", dynamic_ncols=True, mininterval=0.5)


def print_summary(result: LabelResult) -> None:
    print(json.dumps({"output": str(result.output), "run_dir": str(result.run_dir),
                      **{k: v for k, v in vars(result).items() if k not in ("run_dir", "output")}},
                     ensure_ascii=False, indent=2))


# -- the embedded teacher: cloud.base_url "" or "local" --------------------------------------------
@contextlib.contextmanager
def local_teacher(cloud: CloudConfig) -> Iterator[CloudConfig]:
    """Run `serve-local` on a free loopback port for the duration of the block; yield `cloud`
    pointing at it. The server is stopped on exit, on error and on Ctrl-C.

        with local_teacher(CloudConfig(base_url="local")) as c:
            CloudClient(c).chat([{"role": "user", "content": "你好"}])
    """
    import httpx

    from endcloud.cloud.server import resolve_model, server_process

    model = resolve_model(cloud.local_model)  # downloads here, with a progress bar, not in the child
    log.info("starting the local teacher %s (backend %s)", model, cloud.local_backend)
    with tempfile.NamedTemporaryFile(prefix="endcloud-teacher-", suffix=".log", delete=False) as fh:
        server_log = Path(fh.name)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(server_process(
                model, served_name=cloud.model, backend=cloud.local_backend,
                timeout_s=cloud.local_start_timeout_s, log_path=str(server_log)))
        except (RuntimeError, TimeoutError) as exc:
            tail = "\n".join(server_log.read_text(errors="replace").splitlines()[-8:])
            raise CloudError("local_teacher", f"{exc}; server log {server_log}:\n{tail}") from None
        httpx.get(url.removesuffix("/v1") + "/health", timeout=10).raise_for_status()
        log.info("local teacher ready at %s after %.1f s (log: %s)", url, time.monotonic() - started,
                 server_log)
        yield dataclasses.replace(cloud, base_url=url)
    server_log.unlink(missing_ok=True)
