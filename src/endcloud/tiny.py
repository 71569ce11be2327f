"""A tiny causal LM built locally from a config, for tests and CI (no downloads, seconds on CPU).

    path = build_tiny_model("/tmp/tiny")   # Llama config, hidden size 8, 2 layers, ChatML template

The tokenizer is a byte-level BPE trained here on a few sentences (Chinese and English), so any
text round-trips. A Llama config is used on purpose: `AutoTokenizer` picks its class from the
model config, and a Qwen2 config would silently swap in Qwen2's tokenizer class.
"""

from __future__ import annotations

from pathlib import Path

from endcloud.errors import MissingExtraError

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

TRAINING_TEXT = [
    "您好，请问有什么可以帮您？",
    "我的订单什么时候发货？",
    "亲，您的包裹已经在配送途中了，请耐心等待哦~",
    "可以退货吗？七天无理由退换货。",
    "优惠券在结算页面使用，满减活动请关注店铺首页。",
    "Hello, how can I help you with your order today?",
    "I would like to return these shoes, they are too small.",
    "Your refund has been processed and will arrive in 3-5 business days.",
    "Where is my package? The tracking number does not work.",
    "[PHONE_1] [NAME_1] [ORDER_1] [ADDRESS_1] 0123456789 ,.?!:;'\"-()[]{}",
]


def build_tiny_model(path: str | Path, seed: int = 0, vocab_size: int = 512) -> Path:
    """Write a tiny Llama model + tokenizer to `path` (idempotent) and return the path."""
    try:
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    except ImportError as exc:
        raise MissingExtraError(exc.name or "transformers", "end") from None

    path = Path(path)
    if (path / "config.json").exists() and (path / "tokenizer.json").exists():
        return path
    path.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(TRAINING_TEXT * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        bos_token=None, unk_token=None, additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(path)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=8, intermediate_size=16, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    return path
