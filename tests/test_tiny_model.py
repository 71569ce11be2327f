"""The locally built tiny model every later test relies on."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def test_tokenizer_round_trip(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for text in ["您好，订单[ORDER_1]什么时候发货？", "Where is my parcel? 😀", "混合 mixed 123"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text


def test_model_is_tiny_and_runs(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.hidden_size == 8 and model.config.num_hidden_layers == 2
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = tok.apply_chat_template([{"role": "user", "content": "你好"}],
                                     add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
    ids = tok(prompt, return_tensors="pt")
    out = model(**ids)
    assert out.logits.shape == (1, ids["input_ids"].shape[1], len(tok))
    assert torch.isfinite(out.logits).all()
