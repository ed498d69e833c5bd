"""Build a tiny causal language model offline, in Hugging Face format.

Nothing is downloaded: a byte-level BPE tokenizer is trained with ``tokenizers`` on the given texts
(or a small built-in corpus), a Llama-family config with random weights is initialised, and both are
saved with a chat template so every part of the platform (generation backends, reward/DPO/PPO
training) can run on any machine in seconds. Used by the demo and the tests.

``build_tiny_model`` takes the family quirks as options (special tokens, whether the tokenizer adds
a BOS to plain text, the chat template, the saved dtype, ``generation_config`` defaults): the
checkpoint zoo (``generation.zoo``) uses them to imitate real families.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|unk|>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_BUILTIN_CORPUS = [
    "How do I sort a list in Python? Use sorted(items) or items.sort() to sort in place.",
    "What is the capital of France? The capital of France is Paris.",
    "Explain photosynthesis simply. Plants turn light, water and carbon dioxide into sugar and oxygen.",
    "Write a haiku about the sea. Waves fold into foam, the tide keeps its patient time, gulls stitch sky to shore.",
    "Can you help me write an email to my manager asking for a day off next Friday?",
    "I am sorry, but I cannot help with that request. Is there something else I can do for you?",
    "The quick brown fox jumps over the lazy dog. Numbers: 0 1 2 3 4 5 6 7 8 9.",
    "Here is a list:\n- first item\n- second item\n- third item\n\n```python\nprint('hello')\n```",
    "Thank you! That was helpful. Could you explain it again with an example, please?",
    "Yes. No. Maybe. Good answer. Bad answer. Safe and honest and helpful responses are preferred.",
]


def build_tiny_model(
    out_dir: str | Path,
    *,
    texts: Iterable[str] | None = None,
    vocab_size: int = 512,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    max_position_embeddings: int = 1024,
    seed: int = 0,
    special_tokens: list[str] | None = None,
    bos_token: str | None = "<|bos|>",  # noqa: S107
    eos_token: str = "<|end|>",  # noqa: S107
    pad_token: str | None = "<|pad|>",  # noqa: S107
    unk_token: str | None = "<|unk|>",  # noqa: S107
    add_bos: bool = False,
    padding_side: str = "left",
    chat_template: str | None = CHAT_TEMPLATE,
    dtype: str = "float32",
    eos_token_ids: list[str] | None = None,
    generation_defaults: dict[str, Any] | None = None,
) -> Path:
    """Train a tokenizer, random-init a small Llama, save both to ``out_dir``; return the path.

    add_bos: the tokenizer prepends ``bos_token`` to plain text (Llama/Mistral/Gemma do); with
        ``add_bos=False`` a ``bos_token`` is still declared but never added (Phi-3, Qwen without one).
    padding_side: saved in ``tokenizer_config.json`` (what ``AutoTokenizer`` pads with after loading).
    chat_template: None saves a base model without one.
    dtype: the saved weights' dtype ("float32" or "bfloat16").
    eos_token_ids: the tokens ``generation_config.eos_token_id`` lists (default: ``eos_token``); real
        chat models list their end-of-turn token there besides the tokenizer's EOS.
    generation_defaults: extra ``generation_config`` fields (sampling defaults a real checkpoint ships).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = [t for t in (texts or []) if t] or list(_BUILTIN_CORPUS)
    corpus = corpus + list(_BUILTIN_CORPUS)
    specials = list(special_tokens or SPECIAL_TOKENS)

    tok = Tokenizer(models.BPE(unk_token=unk_token))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    if add_bos and bos_token:
        bos_id = tok.token_to_id(bos_token)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A",
            pair=f"{bos_token} $A {bos_token} $B",
            special_tokens=[(bos_token, bos_id)],
        )

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        unk_token=unk_token,
        padding_side=padding_side,
        model_max_length=max_position_embeddings,
        add_bos_token=add_bos,
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(out)

    stop_ids = [tokenizer.convert_tokens_to_ids(t) for t in (eos_token_ids or [eos_token])]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stop_ids[0] if len(stop_ids) == 1 else stop_ids,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = stop_ids[0] if len(stop_ids) == 1 else stop_ids
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    for key, value in (generation_defaults or {}).items():
        setattr(model.generation_config, key, value)
    if dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    return out
