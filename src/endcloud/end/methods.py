"""PEFT methods by name, with the paper's defaults (Table IV), and their exact parameter counts.

Prefix-Tuning and P-Tuning v2 both prepend trainable key/value vectors to every layer's
attention, and differ in how those vectors are parameterised:
  * `prefix-tuning` (Li & Liang 2021) reparameterises the prefix through an MLP
    (embedding -> Linear -> tanh -> Linear to all layers' K/V): PEFT `prefix_projection=True`.
    The MLP stabilises optimisation; after training only its output matters.
  * `p-tuning-v2` (Liu et al. 2022) trains the deep per-layer prompts directly, with no MLP:
    PEFT `prefix_projection=False`. Randomly initialised K/V are far from anything the model has
    seen, so the loss starts high; we start them from the model's own K/V of a real text
    (`init_prefix_from_text`) and recommend a much larger lr than LoRA's (see README).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from endcloud.end.config import MethodConfig

if TYPE_CHECKING:
    import torch
    from peft import LoraConfig, PeftConfig, PeftModel, PrefixTuningConfig
    from transformers import Cache, PreTrainedModel, PreTrainedTokenizerBase

# LoRA targets per architecture (`config.model_type`): attention and MLP projections.
LORA_TARGETS: dict[str, list[str]] = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma3_text": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "chatglm": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
}
DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]

PREFIX_INIT_TEXT = ("您好，欢迎光临本店，我是客服，很高兴为您服务。请问有什么可以帮您？"
                    "Hello, welcome to our shop, how can I help you today? ") * 8


def lora_targets(model: PreTrainedModel, method: MethodConfig) -> list[str]:
    return method.target_modules or LORA_TARGETS.get(model.config.model_type, DEFAULT_LORA_TARGETS)


def kv_dim(model: PreTrainedModel) -> int:
    """Width of one layer's key (or value) across KV heads: what a prefix vector holds."""
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return head_dim * getattr(c, "num_key_value_heads", c.num_attention_heads)


def _lora(model: PreTrainedModel, m: MethodConfig) -> LoraConfig:
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.CAUSAL_LM, r=m.r, lora_alpha=m.alpha,
                      lora_dropout=m.dropout, target_modules=lora_targets(model, m),
                      init_lora_weights=m.init_lora_weights)


def _prefix(model: PreTrainedModel, m: MethodConfig) -> PrefixTuningConfig:
    from peft import PrefixTuningConfig, TaskType

    return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=m.num_virtual_tokens,
                              prefix_projection=True,
                              encoder_hidden_size=m.prefix_hidden or model.config.hidden_size)


def _ptuning_v2(model: PreTrainedModel, m: MethodConfig) -> PrefixTuningConfig:
    from peft import PrefixTuningConfig, TaskType

    return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=m.num_virtual_tokens,
                              prefix_projection=False)


METHODS: dict[str, Callable[[PreTrainedModel, MethodConfig], PeftConfig]] = {
    "lora": _lora,
    "prefix-tuning": _prefix,
    "p-tuning-v2": _ptuning_v2,
}


def peft_config(model: PreTrainedModel, method: MethodConfig) -> PeftConfig:
    return METHODS[method.name](model, method)


def wrap(model: PreTrainedModel, method: MethodConfig,
         tokenizer: PreTrainedTokenizerBase | None = None) -> PeftModel:
    """Freeze `model` and add the method's trainable parameters (a PeftModel)."""
    from peft import get_peft_model

    peft_model = get_peft_model(model, peft_config(model, method))
    if method.name == "p-tuning-v2" and method.init_prefix_from_text and tokenizer is not None:
        init_prefix_from_text(peft_model, tokenizer, PREFIX_INIT_TEXT)
    return peft_model


def init_prefix_from_text(peft_model: PeftModel, tokenizer: PreTrainedTokenizerBase, text: str) -> None:
    """Set P-Tuning v2's prompts to the base model's own keys/values over `text`.

    The prompt embedding (P, L*2*kv) is read by PEFT as (P, L*2, heads, head_dim) with index
    2l = key and 2l+1 = value of layer l; a cache of P real tokens has exactly that content.
    """
    import torch

    weight = peft_model.prompt_encoder["default"].embedding.weight  # (P, L*2*kv)
    n_virtual = weight.shape[0]
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    ids = ids.repeat(1, n_virtual // ids.shape[1] + 1)[:, :n_virtual]  # (1, P)
    base = peft_model.get_base_model()
    with torch.no_grad(), peft_model.disable_adapter():
        out = base(input_ids=ids, use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        rows = []
        for layer in range(base.config.num_hidden_layers):
            k, v = _layer_kv(cache, layer)  # (1, heads, P, head_dim)
            rows += [k[0].permute(1, 0, 2).flatten(1), v[0].permute(1, 0, 2).flatten(1)]
        weight.copy_(torch.cat(rows, dim=1).to(weight.dtype))  # (P, L*2*kv)


def _layer_kv(cache: Cache | tuple[tuple[torch.Tensor, torch.Tensor], ...],
              layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(cache, "layers"):  # transformers >= 4.56 Cache objects
        return cache.layers[layer].keys, cache.layers[layer].values
    return cache[layer][0], cache[layer][1]


def expected_trainable(model: PreTrainedModel, method: MethodConfig) -> int:
    """Trainable parameters by formula (tests compare this with what PEFT builds)."""
    import torch

    c = model.config
    layers, kv = c.num_hidden_layers, kv_dim(model)
    n_virtual = method.num_virtual_tokens
    if method.name == "p-tuning-v2":
        return n_virtual * layers * 2 * kv  # the prompts themselves
    if method.name == "prefix-tuning":
        hidden = method.prefix_hidden or c.hidden_size
        # embedding (P, kv) -> Linear(kv, hidden) -> tanh -> Linear(hidden, L*2*kv)
        return n_virtual * kv + (kv * hidden + hidden) + (hidden * layers * 2 * kv + layers * 2 * kv)
    targets = set(lora_targets(model, method))
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets:
            total += method.r * (module.in_features + module.out_features)  # A (r, in) + B (out, r)
    return total
