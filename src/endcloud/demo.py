"""`endcloud demo` (what `make demo` runs): the whole end-cloud loop on the built-in demo corpus.

    endcloud demo                  # embedded cloud teacher + default end model (~5-15 min on 2 cores)
    endcloud demo --tiny           # the same loop on a tiny model and a loopback teacher (~1 min, CI)
    endcloud demo --config mine.yaml experiment.teacher.train_queries=32   # mine.yaml over demo.yaml

Profiles: configs/demo.yaml and configs/demo-tiny.yaml. No API key and no data path: everything
runs on this machine.
  1-6. the experiment recipe (`endcloud experiment`) with LoRA only:
       prepare    the built-in zh/en demo corpus -> masked samples             (endcloud.data)
       held-out   a fixed set of test queries
       teacher    masked labels from the embedded local cloud (Table II prompt) (endcloud.cloud)
       train      LoRA on the default end model                                 (endcloud.end)
       evaluate   original vs fine-tuned on the held-out queries: Table VI, Fig. 3 (endcloud.evaluate)
       report     Table V replies, metrics, summary
  7. service  the demo shop's knowledge base is built (policy pages, FAQ, catalog), then a scripted
              chat through the real service on loopback: a fact question answered from the shop's
              documents, a question the fine-tuned model answers, a complaint escalated to the
              cloud, a request for a person (a scripted staff member claims the conversation
              and answers), a thumbs-down on a reply                (endcloud.kb, endcloud.serve)
  8. relabel  the disliked exchange, read back through the staff API, is relabelled by the cloud
              teacher: the start of online evolutive learning                   (endcloud.cloud)
Then a summary: where every output is, and what to run next. One teacher serves steps 3, 7 and 8.
A part whose optional dependency is missing is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from endcloud import wire
from endcloud.cloud.config import CloudConfig
from endcloud.end.config import ModelConfig
from endcloud.experiment.config import ExperimentConfig, ExperimentResult
from endcloud.runs import new_run_dir, save_config, write_json, write_jsonl
from endcloud.serve.config import ServeConfig

FINE_TUNED = "demo-lora"  # the adapter's model name in the service
DEMO_SHOP_DOCS = ("policy.zh.md", "policy.en.md", "faq.csv", "catalog.jsonl")


def demo_shop() -> Path:
    """The demo shop's documents and held-out questions (package data)."""
    from importlib import resources

    return Path(str(resources.files("endcloud.data") / "demo_shop"))

# The demo's profiles: configs/demo.yaml (`make demo`) and configs/demo-tiny.yaml (`--tiny`, CI).
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@dataclass
class ChatScript:
    """What the scripted customer says (first question: answered by the end model, then disliked)."""

    # answered from the shop's knowledge base (src/endcloud/data/demo_shop): the fact is checked
    fact_question: str = "亲，想退货的话寄回去运费要多少钱呀？"
    fact_expected: list[str] = field(default_factory=lambda: ["9元", "9块", "九元", "¥9"])
    question: str = "你好，请问今天下单什么时候能发货？"
    complaint: str = "等了一个星期还没到，我要投诉！"  # a hard pattern: the cloud answers
    person: str = "给我转人工！"  # a request for a person: the staff queue (handoff.patterns)
    staff: str = "小李"  # the scripted staff member who claims the conversation and answers
    staff_reply: str = "您好，我是客服小李。已经帮您联系快递加急，今天之内会有物流更新，请放心~"
    feedback_comment: str = "没有回答我的问题"
    max_tokens: int = 64


@dataclass
class DemoConfig:
    """`endcloud demo`: the experiment recipe with LoRA, then the service and a relabel.

    The demo's own sizes are configs/demo.yaml (and demo-tiny.yaml), over these defaults.
    """

    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    chat: ChatScript = field(default_factory=ChatScript)
    output_root: str = "runs"
    kb_encoder: str = "e5"  # the knowledge base's dense encoder (demo-tiny: ngram, no weights)


def load_demo_config(path: str | None = None, overrides: list[str] | None = None,
                     tiny: bool = False) -> DemoConfig:
    """configs/demo.yaml (or demo-tiny.yaml), then the YAML file merged over it, then overrides."""
    from endcloud.config import load_config

    configs = CONFIGS if CONFIGS.is_dir() else Path("configs")  # an installed copy: run from the repo
    profile = configs / ("demo-tiny.yaml" if tiny else "demo.yaml")
    return load_config(DemoConfig, [profile, *([path] if path else [])], overrides)


# -- the loop -----------------------------------------------------------------------------------
def run(cfg: DemoConfig) -> dict[str, Any]:
    """Run the demo; return its summary (also written to <run>/summary.json)."""
    from endcloud.experiment.run import resolve_model, run as run_experiment

    t0 = time.perf_counter()
    run_dir = new_run_dir(cfg.output_root, "demo")
    save_config(run_dir, cfg)
    exp_dir = run_dir / "experiment"
    model = resolve_model(cfg.experiment.train.model, exp_dir)
    report: dict[str, Any] = {"run_dir": str(run_dir), "model": model.name, "skipped": []}
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no request lines inside the chat
    _say(f"demo -> {run_dir}\n  steps 1-6: the experiment recipe with LoRA only; "
         "7: a chat through the service; 8: a relabel from feedback")
    with _teacher(cfg.experiment.teacher.cloud) as cloud:
        exp = dataclasses.replace(
            cfg.experiment, run_dir=str(exp_dir),
            teacher=dataclasses.replace(cfg.experiment.teacher, cloud=cloud),
            train=dataclasses.replace(cfg.experiment.train, model=model))
        result = run_experiment(exp)
        _print_evaluation(result)
        report["experiment"] = {"run_dir": str(result.run_dir), "finals": result.finals,
                                "files": {k: str(v) for k, v in result.files.items()}}
        adapter = result.run_dir / "train" / exp.train.methods[0].name / "adapter"
        report["adapter"] = str(adapter)
        try:  # the trained model and its evaluation stand even if the service part fails
            chat = _service_step(cfg, model, adapter, cloud, run_dir, report)
            if chat is not None:
                _relabel_step(cfg, chat, cloud, result.run_dir, run_dir, report)
        except Exception as exc:
            logging.getLogger(__name__).exception("the service part of the demo failed")
            report["failed"] = f"service chat / relabel: {type(exc).__name__}: {exc}"
    # The demo stops at the relabel: retrain -> gate -> promote is `endcloud evolve run`.
    report["skipped"].append(
        "evolve (retrain -> gate -> promote -> roll back): not run by the demo; "
        "`endcloud evolve run` does one round from the store's feedback")
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    write_json(run_dir / "summary.json", report)
    _print_summary(report, cfg)
    return report


@contextlib.contextmanager
def _teacher(cloud: CloudConfig) -> Iterator[CloudConfig]:
    """The embedded teacher for the whole demo (started once), or the configured endpoint."""
    if not cloud.is_local:
        yield cloud
        return
    from endcloud.cloud.label import local_teacher

    _say("starting the embedded cloud teacher (local, no key; fetched on first use)")
    with local_teacher(cloud) as running:
        yield running


def _print_evaluation(result: ExperimentResult) -> None:
    table = (result.run_dir / "table_vi.md").read_text(encoding="utf-8").split("\n## ")[0]
    print("\n" + table.rstrip() + "\n")
    finals = result.finals
    tuned = {k: v for k, v in finals.items() if k != "original"}
    best = max(tuned, key=lambda k: tuned[k])
    print(f"mean Final on {result.summary['queries']} held-out queries: original "
          f"{finals['original']:.3f}  ->  fine-tuned ({best}) {tuned[best]:.3f}\n")


# -- the service --------------------------------------------------------------------------------
def _service_step(cfg: DemoConfig, model: ModelConfig, adapter: Path, cloud: CloudConfig,
                  run_dir: Path, report: dict[str, Any]) -> dict[str, Any] | None:
    """A scripted chat through the real service on a free loopback port; the staff view of it."""
    try:
        import httpx

        from endcloud.serve.app import create_app
        from endcloud.serve.server import running
    except ImportError as exc:
        report["skipped"].append(f"service chat: {exc.name} is not installed "
                                 "(pip install 'endcloud[serve]')")
        _say(f"skipped the service chat: {exc.name} is not installed")
        return None
    _say("[7/8] the demo shop's knowledge base, then a scripted chat through the service "
         "(fine-tuned end model, cloud escalation)")
    kb = _knowledge_step(cfg, run_dir, report)
    staff = secrets.token_urlsafe(16)  # this run's staff token; never written anywhere
    serve_cfg = _serve_config(cfg.serve, model, adapter, cloud)
    if kb is not None:
        serve_cfg.knowledge = dataclasses.replace(serve_cfg.knowledge, index=str(kb))
    app = create_app(serve_cfg, admin_token=staff)
    with running(app) as url, httpx.Client(base_url=url, timeout=300) as http:
        if kb is not None:
            report["fact"] = _fact_turn(http, cfg.chat)
        turns, auth = _customer(http, cfg.chat)
        admin = {"authorization": f"Bearer {staff}"}
        report["handoff"] = _person(http, auth, admin, turns[-1]["conversation_id"], cfg.chat)
        ours = {t["reply_id"] for t in turns}
        views = {which: [r for r in http.get("/admin/exchanges", headers=admin, params={
                     "filter": which}).raise_for_status().json()["data"] if r["id"] in ours]
                 for which in ("all", "disliked")}
    for row in reversed(views["all"]):
        score = "–" if row["match_score"] is None else f"{row['match_score']:.2f}"
        print(f"  staff view: {row['id'][:18]}… answered_by={row['answered_by']} "
              f"escalation={row['escalation']} match={score} downs={row['downs']}")
    write_jsonl(run_dir / "chat.jsonl", views["all"])
    report["chat"] = {"transcript": str(run_dir / "chat.jsonl"),
                      "escalated": [r["id"] for r in views["all"] if r["answered_by"] == "cloud"],
                      "disliked": [r["id"] for r in views["disliked"]]}
    return {"turns": turns, "exchanges": views["all"], "disliked": views["disliked"]}


def _knowledge_step(cfg: DemoConfig, run_dir: Path, report: dict[str, Any]) -> Path | None:
    """`endcloud kb build` on the demo shop's policy pages, FAQ and catalog."""
    try:
        from endcloud.knowledge.build import run as build
        from endcloud.knowledge.config import KBConfig

        shop = demo_shop()
        result = build(KBConfig(input=[str(shop / f) for f in DEMO_SHOP_DOCS],
                                output=str(run_dir / "kb"), encoder=cfg.kb_encoder))
    except ImportError as exc:
        report["skipped"].append(f"knowledge base: {exc.name} is not installed "
                                 "(pip install 'endcloud[kb]')")
        return None
    print(f"  knowledge base: {result.chunks} chunks from {result.sources} documents "
          f"({cfg.kb_encoder} + BM25) -> {result.root}")
    report["knowledge"] = {"index": str(result.root), "chunks": result.chunks}
    return result.root


def _fact_turn(http: Any, script: ChatScript) -> dict[str, Any]:
    """One question whose answer only the shop's documents hold; is the fact in the reply?"""
    token = http.post("/v1/customers").raise_for_status().json()["token"]
    auth = {"authorization": f"Bearer {token}"}
    turn = _chat(http, auth, [{"role": "user", "content": script.fact_question}], script.max_tokens, [])
    right = any(f in "".join(turn["reply"].split()) for f in script.fact_expected)
    print(f"  {'✓' if right else '✗'} the shop's fact ({' / '.join(script.fact_expected[:1])}) "
          f"{'is' if right else 'is not'} in the reply")
    return {"question": script.fact_question, "reply": turn["reply"], "right": right}


def _customer(http: Any, script: ChatScript) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The customer's side: a question, a complaint, a request for a person, then a thumbs-down
    on the first reply. Returns the turns and the customer's auth header."""
    token = http.post("/v1/customers").raise_for_status().json()["token"]
    auth = {"authorization": f"Bearer {token}"}
    messages: list[dict[str, str]] = []
    turns: list[dict[str, Any]] = []
    for text in (script.question, script.complaint, script.person):
        messages.append({"role": "user", "content": text})
        turn = _chat(http, auth, messages, script.max_tokens, turns)
        messages.append({"role": "assistant", "content": turn["reply"]})
        turns.append(turn)
    http.post("/v1/feedback", headers=auth, json={
        "reply_id": turns[0]["reply_id"], "thumb": "down",
        "comment": script.feedback_comment}).raise_for_status()
    print(f"  customer: 👎 on the first reply ({script.feedback_comment})")
    return turns, auth


def _person(http: Any, auth: dict[str, str], admin: dict[str, str], conversation: str,
            script: ChatScript) -> dict[str, Any]:
    """The staff side of the hand-off (scripted): claim the waiting conversation from the queue,
    reply; the customer's long poll brings the reply; then back to the bot."""
    queue = http.get("/admin/handoffs", headers=admin).raise_for_status().json()["data"]
    item = next(h for h in queue if h["conversation_id"] == conversation)
    print(f"  staff queue: conversation {conversation[:12]}… waiting ({item['reason']}), "
          f"{len(item['messages'])} messages")
    seen = http.get(f"/v1/conversations/{conversation}/handoff", headers=auth).raise_for_status().json()
    http.post(f"/admin/handoffs/{item['id']}/claim", headers=admin,
              json={"staff": script.staff}).raise_for_status()
    http.post(f"/admin/handoffs/{item['id']}/reply", headers=admin,
              json={"staff": script.staff, "text": script.staff_reply}).raise_for_status()
    got = http.get(f"/v1/conversations/{conversation}/handoff", headers=auth,
                   params={"after": seen["cursor"], "wait": 10}).raise_for_status().json()
    reply = next((m["text"] for m in got["messages"] if m["sender"] == "staff"), "")
    print(f"  staff ({script.staff}): {reply}")
    http.post(f"/admin/handoffs/{item['id']}/release", headers=admin,
              json={"staff": script.staff}).raise_for_status()
    print("  staff: released the conversation back to the bot (the reply is a training label)")
    return {"handoff_id": item["id"], "staff": script.staff, "reply": reply,
            "waited_s": item["waiting_s"]}


def _serve_config(base: ServeConfig, model: ModelConfig, adapter: Path,
                  cloud: CloudConfig) -> ServeConfig:
    """The demo's service: the base model plus the fine-tuned adapter; the teacher as the cloud."""
    backend = dataclasses.replace(
        base.backend, model=dataclasses.replace(base.backend.model, name=model.name),
        adapters={FINE_TUNED: str(adapter)})
    esc = base.escalation
    esc_cloud = dataclasses.replace(esc.cloud, base_url=cloud.base_url, model=cloud.model)
    return dataclasses.replace(base, port=0, backend=backend,
                               escalation=dataclasses.replace(esc, cloud=esc_cloud))


def _chat(http: Any, auth: dict[str, str], messages: list[dict[str, str]], max_tokens: int,
          earlier: list[dict[str, Any]]) -> dict[str, Any]:
    """One streamed turn, printed as it arrives; returns the reply and its ids."""
    body: dict[str, Any] = {"model": FINE_TUNED, "messages": messages, "stream": True,
                            "max_tokens": max_tokens}
    if earlier:
        body["conversation_id"] = earlier[0]["conversation_id"]
    print(f"  customer: {messages[-1]['content']}")
    print("  shop:     ", end="", flush=True)
    parts = []
    with http.stream("POST", "/v1/chat/completions", headers=auth, json=body) as resp:
        resp.raise_for_status()
        stream = wire.Stream()
        for event in wire.sse_events(resp.iter_lines()):
            piece = stream.feed(event)
            parts.append(piece)
            print(piece, end="", flush=True)
        print()
        return {"reply": "".join(parts).strip(), "reply_id": resp.headers["x-reply-id"],
                "conversation_id": resp.headers["x-conversation-id"]}


# -- relabel ------------------------------------------------------------------------------------
def _relabel_step(cfg: DemoConfig, chat: dict[str, Any], cloud: CloudConfig, exp_dir: Path,
                  run_dir: Path, report: dict[str, Any]) -> None:
    """The disliked exchanges (masked, as the store keeps them) go to the cloud teacher again."""
    from endcloud.cloud.config import LabelConfig
    from endcloud.cloud.label import run as label_run

    if not chat["disliked"]:
        report["skipped"].append("relabel: no disliked exchange came back from the staff API")
        return
    _say("[8/8] feedback-driven relabel: the disliked reply goes back to the cloud teacher")
    samples = run_dir / "feedback-samples.jsonl"
    write_jsonl(samples, ({"messages": [{"role": "user", "content": r["query"]},
                                        {"role": "assistant", "content": r["reply"]}],
                           "meta": {"id": f"feedback:{r['id']}", "session_id": r["conversation_id"],
                                    "split": "feedback", "exchange_id": r["id"]}}
                          for r in chat["disliked"]))
    (data_dir,) = sorted(exp_dir.glob("data-*"))[-1:]
    teacher = cfg.experiment.teacher
    out = run_dir / "labels-feedback.jsonl"
    kb = report.get("knowledge", {}).get("index", "")  # the teacher relabels from the shop's text
    res = label_run(LabelConfig(input=str(samples), output=str(out), output_root=str(run_dir),
                                cloud=cloud, prompt=dataclasses.replace(
                                    teacher.prompt, examples=str(data_dir / "train.jsonl"), knowledge=kb)))
    for line in out.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        print(f"  disliked: {row['meta']['human_reply'][:80]!r}")
        print(f"  new label from the cloud: {row['messages'][-1]['content'][:120]!r}"
              + (f" (given {len(row['meta'].get('knowledge_ids') or [])} knowledge chunks)" if kb else ""))
    report["relabel"] = {"labels": str(out), "new": res.new, "quarantined": res.quarantined}


# -- output -------------------------------------------------------------------------------------
def _print_summary(report: dict[str, Any], cfg: DemoConfig) -> None:
    files = report["experiment"]["files"]
    print(f"\ndemo finished in {report['wall_s'] / 60:.1f} min. "
          f"Everything is under {report['run_dir']}:")
    rows = [("Table VI", files["table_vi"]), ("Fig. 3", files["fig3"]),
            ("Table V (replies)", files["table_v"]), ("metrics", files["metrics"]),
            ("loss plot", files["loss"]), ("scores (every component)", files["scores"]),
            ("fine-tuned adapter", report["adapter"])]
    if "knowledge" in report:
        rows.append(("knowledge base", report["knowledge"]["index"]))
    if "chat" in report:
        rows.append(("chat transcript", report["chat"]["transcript"]))
    if "relabel" in report:
        rows.append(("relabelled from feedback", report["relabel"]["labels"]))
    rows.append(("summary", str(Path(report["run_dir"]) / "summary.json")))
    for name, path in rows:
        print(f"  {name:<26} {path}")
    if "handoff" in report:
        print(f"  {'hand-off to a person':<26} {report['handoff']['staff']} answered the customer "
              "who asked for one (a staff label for the next evolve round)")
    for line in report["skipped"]:
        print(f"  skipped: {line}")
    if "failed" in report:
        print(f"  FAILED: {report['failed']} (the log above has the traceback)")
    print("\nnext:")
    print(f"  ENDCLOUD_ADMIN_TOKEN=choose-a-secret endcloud serve --config configs/serve.yaml \\\n"
          f"      backend.kind=transformers 'backend.adapters={{{FINE_TUNED}: {report['adapter']}}}' "
          f"backend.model.name={report['model']} backend.model.dtype={cfg.serve.backend.model.dtype}")
    print("  then chat at http://127.0.0.1:8080/ and review at http://127.0.0.1:8080/review")
    print("  the paper's experiment on JDDC: endcloud experiment --config configs/paper.yaml")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- CLI ----------------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole loop on the built-in demo corpus (what `make demo` runs)",
                       description=__doc__.split("\n\n")[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="YAML merged over configs/demo.yaml (or demo-tiny.yaml)")
    p.add_argument("--tiny", action="store_true", help="tiny model + loopback teacher (about a minute)")
    p.add_argument("--output-root", help="where the run folder goes (default: runs)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from endcloud.config import dump_yaml

    overrides = list(args.overrides) + ([f"output_root={args.output_root}"] if args.output_root else [])
    cfg = load_demo_config(args.config, overrides, tiny=args.tiny)
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    return 1 if "failed" in run(cfg) else 0
