"""The SFT recipe, top to bottom: setup -> (resume) -> train -> checkpoint -> final adapter.

    endcloud end train --config configs/train.yaml method.name=lora data.natural=train.jsonl
    endcloud end train --config configs/train.yaml run_dir=runs/end-train-X --resume

A plain PyTorch loop (the whole recipe is this file): `batch_size` examples per micro-batch
(shared among the processes of a torchrun / accelerate launch: end/distributed.py), gradient
accumulation, AdamW on the adapter's parameters only, linear/cosine/constant schedule. Every
checkpoint holds the adapter, the optimizer and the RNG state (all safetensors), is written to a
temporary folder and renamed, and is listed with per-file sha256 in its manifest; `--resume`
continues from the newest complete one and reaches bit-identical weights to an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from endcloud.config import to_dict
from endcloud.end.adapters import save_adapter, verify
from endcloud.end.config import TrainConfig
from endcloud.end.data import Example, collate, load_mixture
from endcloud.end.distributed import setup
from endcloud.end.methods import wrap
from endcloud.end.models import BaseInfo, load_base
from endcloud.errors import AdapterError, EndcloudError
from endcloud.progress import enabled as progress_enabled
from endcloud.runs import new_run_dir, save_config, write_jsonl
from endcloud.store import training as train_store

if TYPE_CHECKING:
    import torch
    from peft import PeftModel
    from tqdm import tqdm
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)
CHECKPOINT = re.compile(r"^step-(\d{7})$")
STATE_TENSORS, STATE_JSON = "trainer_state.safetensors", "trainer_state.json"
KILL_ENV = "ENDCLOUD_END_KILL_AT_STEP"  # crash tests: SIGKILL ourselves after this step


@dataclass
class TrainResult:
    run_dir: Path
    adapter: Path
    steps: int
    final_loss: float
    tokens_per_s: float
    checkpoints: list[Path] = field(default_factory=list)
    model: PeftModel | None = None  # the trained model, for callers that go on using it (tests, bench)


def run(cfg: TrainConfig) -> TrainResult:
    """Train `cfg.method` on `cfg.model` and return where the adapter went."""
    import contextlib

    import torch

    dist = setup()  # one process, or one of a torchrun / accelerate launch (end/distributed.py)
    mine = dist.shard(cfg.batch_size)  # this process's share of every micro-batch
    run_dir = Path(dist.share(str(_run_dir(cfg)) if dist.main else None))
    torch.manual_seed(cfg.seed)
    model, tokenizer, base = load_base(cfg.model)
    mix, data_hash = load_mixture(tokenizer, cfg.data, cfg.seed)
    torch.manual_seed(cfg.seed)  # adapter init does not depend on how the data loaded
    peft_model, method = _adapter_to_train(cfg, model, tokenizer, base, dist.device())
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.method_lr, weight_decay=cfg.weight_decay)
    info = {"base": {"id": base.id, "sha256": base.sha256}, "method": method,
            "data_sha256": data_hash, "seed": cfg.seed}
    if cfg.init_adapter:
        info["init_adapter"] = str(cfg.init_adapter)

    start, tokens, elapsed = 0, 0, 0.0
    if cfg.resume:
        start, tokens, elapsed = _restore(run_dir, peft_model, optimizer, base, data_hash)
    logger = None
    if dist.main:  # rank 0 writes; the others only train
        _trim_log(run_dir / "train_log.jsonl", start)
        logger = _Logger(cfg, run_dir)

    peft_model.train()
    trained = peft_model
    if dist.world > 1:  # gradients averaged over the processes after each micro-batch group
        trained = torch.nn.parallel.DistributedDataParallel(peft_model)
    bar = _bar(cfg.steps, start) if dist.main else None
    loss_value, t0, checkpoints = float("nan"), time.perf_counter() - elapsed, []
    for step in range(start + 1, cfg.steps + 1):
        lr = lr_at(cfg, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum, step_tokens = 0.0, 0
        for micro in range(cfg.grad_accum):
            first = ((step - 1) * cfg.grad_accum + micro) * cfg.batch_size  # draw index
            batch = collate([mix.at(first + i) for i in mine], tokenizer.pad_token_id)
            batch = {k: v.to(peft_model.device) for k, v in batch.items()}
            last = micro == cfg.grad_accum - 1
            sync = trained.no_sync() if dist.world > 1 and not last else contextlib.nullcontext()
            with sync:  # accumulate locally; all-reduce once per optimizer step
                loss = trained(**batch).loss / cfg.grad_accum  # mean over reply tokens only
                if dist.world > 1:  # the mean over the whole micro-batch's reply tokens, as one
                    # process computes it: weight by this share (DDP then averages over ranks)
                    mine_n = float((batch["labels"][:, 1:] != -100).sum())
                    (all_n,) = dist.total(mine_n)
                    loss = loss * (mine_n * dist.world / max(all_n, 1.0))
                loss.backward()
            loss_sum += float(loss.detach()) / dist.world
            step_tokens += int(batch["attention_mask"].sum())
        if dist.world > 1:
            loss_sum, total_tokens = dist.total(loss_sum, step_tokens)
            step_tokens = int(total_tokens)
        tokens += step_tokens
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        loss_value, elapsed = loss_sum, time.perf_counter() - t0
        speed = tokens / max(elapsed, 1e-9)
        if logger is not None and (step % cfg.log_every == 0 or step == cfg.steps or step == start + 1):
            logger.log(step, loss_value, lr, tokens, speed)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{speed:.0f}")
        if dist.main and _is_checkpoint(cfg, step):
            checkpoints.append(_save_checkpoint(run_dir, cfg, step, peft_model, optimizer, info,
                                                tokens, elapsed))
        if os.environ.get(KILL_ENV) == str(step):
            os.kill(os.getpid(), signal.SIGKILL)
    if bar is not None:
        bar.close()

    adapter = run_dir / "adapter"
    if logger is not None:
        save_adapter(peft_model, adapter, {**info, "step": cfg.steps})
        logger.finish(adapter, cfg.steps, loss_value, tokens / max(elapsed, 1e-9), info)
    dist.barrier()  # every process returns once rank 0 has written the adapter
    dist.close()
    return TrainResult(run_dir, adapter, cfg.steps, loss_value, tokens / max(elapsed, 1e-9),
                       checkpoints, peft_model.eval())


def _adapter_to_train(cfg: TrainConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                      base: BaseInfo, device: str) -> tuple[PeftModel, str]:
    """A fresh adapter of `cfg.method`, or (`init_adapter`) an existing one made trainable."""
    if not cfg.init_adapter:
        return wrap(model, cfg.method, tokenizer).to(device), cfg.method.name
    from endcloud.end.adapters import load_adapter

    method = str(verify(cfg.init_adapter, base.sha256).get("method", cfg.method.name))
    return load_adapter(model, cfg.init_adapter, base.sha256, trainable=True).to(device), method


def reply_loss(model: PreTrainedModel | PeftModel, examples: list[Example], pad_id: int) -> float:
    """Mean loss per reply token over `examples` (batch 1, no grad): the validation loss.

    Token-weighted, so a long reply counts as much as its tokens and the figure is comparable
    with the training loss, which is also a mean over reply tokens.
    """
    import torch

    was_training, total, count = model.training, 0.0, 0
    model.eval()  # no dropout: the same adapter always scores the same
    try:
        with torch.no_grad():
            for example in examples:
                batch = {k: v.to(model.device) for k, v in collate([example], pad_id).items()}
                total += float(model(**batch).loss) * example.n_reply
                count += example.n_reply
    finally:
        model.train(was_training)
    if count == 0:
        raise EndcloudError("reply_loss: no reply tokens in the examples")
    return total / count


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate for optimizer step `step` (1-based): warmup, then the chosen decay."""
    peak = cfg.method_lr
    if step <= cfg.warmup_steps:
        return peak * step / max(cfg.warmup_steps, 1)
    frac = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    if cfg.scheduler == "linear":
        return peak * max(0.0, 1.0 - frac)
    if cfg.scheduler == "cosine":
        return peak * 0.5 * (1.0 + math.cos(math.pi * frac))
    return peak


# -- run folder and logging ---------------------------------------------------------------------
def _run_dir(cfg: TrainConfig) -> Path:
    if not cfg.run_dir:
        run_dir = new_run_dir(cfg.out_dir, "end-train")
    else:
        run_dir = Path(cfg.run_dir)
        if not cfg.resume and (run_dir / "checkpoints").is_dir() and any(
                (run_dir / "checkpoints").iterdir()):
            raise EndcloudError(f"{run_dir} already has checkpoints: add --resume to continue "
                                "it, or choose another run_dir")
        run_dir.mkdir(parents=True, exist_ok=True)
    save_config(run_dir, cfg)
    return run_dir


def _bar(total: int, start: int) -> tqdm | None:
    if not progress_enabled():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)


class _Logger:
    """Loss/lr rows to `train_log.jsonl` (appended, flushed) and to the store's `train_log`."""

    def __init__(self, cfg: TrainConfig, run_dir: Path) -> None:
        self.path = run_dir / "train_log.jsonl"
        self.store, self.run_id = None, None
        if cfg.store:
            from endcloud.store import Store

            self.store = Store.open()
            self.run_id = self.store.start_run("end-train", run_dir, to_dict(cfg))

    def log(self, step: int, loss: float, lr: float, tokens: int, speed: float) -> None:
        row = {"step": step, "loss": round(loss, 6), "lr": lr, "tokens": tokens,
               "tokens_per_s": round(speed, 2), "time": time.time()}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        log.debug("step %d loss %.4f lr %.2e %.0f tok/s", step, loss, lr, speed)
        if self.store is not None:
            train_store.log_step(self.store.conn, self.run_id, step, loss, lr, tokens, speed)

    def finish(self, adapter: Path, step: int, loss: float, speed: float,
               info: dict[str, Any]) -> None:
        if self.store is None:
            return
        manifest = json.loads((adapter / "manifest.json").read_text(encoding="utf-8"))
        train_store.add_adapter(self.store.conn, self.run_id, str(adapter), info["method"], step,
                                info["base"]["id"], info["base"]["sha256"], manifest["data_sha256"])
        self.store.finish_run(self.run_id, {"steps": step, "final_loss": loss,
                                            "tokens_per_s": speed, "adapter": str(adapter)})
        self.store.close()


def _trim_log(path: Path, upto: int) -> None:
    """On resume, forget log rows written after the checkpoint we continue from."""
    if not path.is_file():
        return
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    write_jsonl(path, [r for r in rows if r["step"] <= upto])


# -- checkpoints --------------------------------------------------------------------------------
def _is_checkpoint(cfg: TrainConfig, step: int) -> bool:
    return step in cfg.save_steps or (cfg.save_every > 0 and step % cfg.save_every == 0)


def _save_checkpoint(run_dir: Path, cfg: TrainConfig, step: int, peft_model: PeftModel,
                     optimizer: torch.optim.Optimizer, info: dict[str, Any], tokens: int,
                     elapsed: float) -> Path:
    import torch
    from safetensors.torch import save_file

    def trainer_state(tmp: Path) -> None:
        # every trainable tensor by name: PEFT's adapter file holds only what inference needs
        # (for prefix-tuning the MLP's output, not the MLP), so resume needs these
        tensors = {f"param.{n}": p.detach().clone().contiguous()
                   for n, p in peft_model.named_parameters() if p.requires_grad}
        tensors["rng.torch"], groups = torch.get_rng_state(), []
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        state = optimizer.state_dict()
        for idx, slots in state["state"].items():
            for key, value in slots.items():
                tensors[f"opt.{idx}.{key}"] = torch.as_tensor(value).contiguous()
        for g in state["param_groups"]:
            groups.append({k: v for k, v in g.items()})
        save_file(tensors, str(tmp / STATE_TENSORS))
        (tmp / STATE_JSON).write_text(json.dumps(
            {"step": step, "tokens": tokens, "elapsed_s": elapsed, "param_groups": groups}))

    folder = save_adapter(peft_model, run_dir / "checkpoints" / f"step-{step:07d}",
                          {**info, "step": step}, extra=trainer_state)
    _prune(run_dir / "checkpoints", cfg)
    return folder


def _prune(folder: Path, cfg: TrainConfig) -> None:
    periodic = sorted(int(m.group(1)) for p in folder.iterdir()
                      if (m := CHECKPOINT.match(p.name)) and int(m.group(1)) not in cfg.save_steps)
    for step in periodic[:-cfg.keep_last]:
        shutil.rmtree(folder / f"step-{step:07d}", ignore_errors=True)


def latest_checkpoint(run_dir: Path, base_sha256: str | None = None) -> Path | None:
    """The newest checkpoint that verifies; half-written or corrupt ones are skipped with a note."""
    folder = run_dir / "checkpoints"
    found = sorted((p for p in folder.iterdir() if CHECKPOINT.match(p.name)),
                   reverse=True) if folder.is_dir() else []
    for path in found:
        try:
            verify(path, base_sha256)
            return path
        except AdapterError as exc:
            log.warning("skipping checkpoint: %s", exc)
    return None


def _restore(run_dir: Path, peft_model: PeftModel, optimizer: torch.optim.Optimizer, base: BaseInfo,
             data_hash: str) -> tuple[int, int, float]:
    """Load the newest complete checkpoint into model + optimizer + RNG; return (step, tokens, s)."""
    import torch
    from safetensors.torch import load_file

    path = latest_checkpoint(run_dir, base.sha256)
    if path is None:
        log.warning("no complete checkpoint in %s: starting from step 0", run_dir)
        return 0, 0, 0.0
    manifest = verify(path, base.sha256)
    if manifest["data_sha256"] != data_hash:
        raise EndcloudError(f"{path}: trained on other data (data hash differs); resume with "
                            "the same data files and settings, or start a new run")
    tensors = load_file(str(path / STATE_TENSORS))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if param.requires_grad:
                param.copy_(tensors[f"param.{name}"].to(param.device))
    meta = json.loads((path / STATE_JSON).read_text(encoding="utf-8"))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, slot = key.split(".", 2)
            state.setdefault(int(idx), {})[slot] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    log.info("resumed from %s", path)
    return int(meta["step"]), int(meta["tokens"]), float(meta["elapsed_s"])
