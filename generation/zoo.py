"""A checkpoint zoo for tests: tiny offline models that reproduce real families' quirks.

Every model is a random-init tiny Llama with a byte-level BPE tokenizer trained on the spot
(``generation.tiny_model``); what differs is what trips code written against one family only:

``llama3``  saved in bf16; pads on the right (Llama-3's tokenizer config sets no side); the
            tokenizer adds ``<|begin_of_text|>`` to plain text and the template
            starts with it too; each turn ends with ``<|eot_id|>``, an id different from the
            tokenizer's EOS ``<|end_of_text|>`` (``generation_config.eos_token_id`` lists both).
``qwen``    saved in bf16; no BOS; ``<|im_start|>role\\n...<|im_end|>\\n`` turns (the rendered text
            ends with end-of-turn + newline); EOS is ``<|im_end|>``, pad ``<|endoftext|>``; a
            ``generation_config`` with Qwen's sampling defaults (repetition_penalty 1.05, top_k 20,
            top_p 0.8, temperature 0.7, do_sample).
``gemma``   saved in bf16; needs BOS (tokenizer and template add ``<bos>``); the template has no
            system role (raises like Gemma's) and ends turns with ``<end_of_turn>``.
``mistral`` saved in bf16; ships no pad token (nor does Llama-3: code must not assume one); the
            tokenizer adds ``<s>``; Mistral-Instruct's template: ``[INST] ... [/INST]`` user turns,
            the reply right after ``[/INST]`` ending with the EOS ``</s>``, no system role (raises),
            and no generation prompt (``add_generation_prompt`` adds nothing).
``phi3``    saved in bf16; Phi-3-mini-4k-instruct's tokenizer: ``padding_side`` "left" in
            ``tokenizer_config.json`` (set explicitly, as Phi-3 ships it), the pad token IS the EOS
            ``<|endoftext|>`` (pad == EOS); turns ``<|user|>\n...<|end|>\n`` end with ``<|end|>``, an id
            different from EOS; without a generation prompt the template ends the text with the EOS
            (``...<|end|>\n<|endoftext|>``); ``generation_config.eos_token_id`` lists
            ``<|endoftext|>``, ``<|assistant|>`` and ``<|end|>``; a BOS ``<s>`` is declared but the
            tokenizer does not add it (``add_bos_token: false``) and the template does not emit it; a
            ``</s>`` that is not the EOS.
``base``    saved in bf16; a base model with no chat template; the tokenizer adds ``<s>``; EOS ``</s>``;
            pads on the right. (The other families pad on the left.)

``build_zoo_model(name, out_dir)`` builds one in about a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

QWEN_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

# Mistral-7B-Instruct-v0.1's own template: no system role, no generation prompt (the reply follows
# "[/INST]" directly) and the assistant turn ends with the tokenizer's EOS.
MISTRAL_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}"
    "{% endfor %}"
)

# microsoft/Phi-3-mini-4k-instruct's own template: the text ends with the EOS unless a generation
# prompt is added.
PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|>\n{{ message['content'] }}<|end|>\n"
    "{% elif message['role'] == 'user' %}<|user|>\n{{ message['content'] }}<|end|>\n"
    "{% elif message['role'] == 'assistant' %}<|assistant|>\n{{ message['content'] }}<|end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% else %}{{ eos_token }}{% endif %}"
)

QWEN_GENERATION_DEFAULTS = {
    "do_sample": True,
    "repetition_penalty": 1.05,
    "top_k": 20,
    "top_p": 0.8,
    "temperature": 0.7,
}


@dataclass(frozen=True)
class ZooSpec:
    """What a zoo model is, and what tests may assert about it."""

    name: str
    description: str
    build: dict[str, Any]
    end_of_turn: str | None  # the token a chat turn ends with (None: no chat template)
    needs_bos: bool
    system_role: bool
    generation_defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def chat(self) -> bool:
        return self.build.get("chat_template") is not None


ZOO: dict[str, ZooSpec] = {
    "llama3": ZooSpec(
        name="llama3",
        description="Llama-3-like: bf16, BOS, <|eot_id|> end-of-turn != EOS",
        build={
            "special_tokens": [
                "<|begin_of_text|>",
                "<|end_of_text|>",
                "<|eot_id|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|finetune_right_pad_id|>",
                "<|unk|>",
            ],
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|end_of_text|>",
            "pad_token": "<|finetune_right_pad_id|>",
            "unk_token": "<|unk|>",
            "add_bos": True,
            "chat_template": LLAMA3_TEMPLATE,
            "eos_token_ids": ["<|end_of_text|>", "<|eot_id|>"],
            "padding_side": "right",  # Llama-3's tokenizer_config sets none: the library's right
        },
        end_of_turn="<|eot_id|>",
        needs_bos=True,
        system_role=True,
    ),
    "qwen": ZooSpec(
        name="qwen",
        description="Qwen-like: bf16, no BOS, <|im_end|>\\n turns, sampling defaults in generation_config",
        build={
            "special_tokens": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|unk|>"],
            "bos_token": None,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "unk_token": "<|unk|>",
            "add_bos": False,
            "chat_template": QWEN_TEMPLATE,
            "eos_token_ids": ["<|im_end|>", "<|endoftext|>"],
            "generation_defaults": QWEN_GENERATION_DEFAULTS,
        },
        end_of_turn="<|im_end|>",
        needs_bos=False,
        system_role=True,
        generation_defaults=QWEN_GENERATION_DEFAULTS,
    ),
    "gemma": ZooSpec(
        name="gemma",
        description="Gemma-like: bf16, needs <bos>, no system role, <end_of_turn>",
        build={
            "special_tokens": ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
            "bos_token": "<bos>",
            "eos_token": "<eos>",
            "pad_token": "<pad>",
            "unk_token": "<unk>",
            "add_bos": True,
            "chat_template": GEMMA_TEMPLATE,
            "eos_token_ids": ["<eos>", "<end_of_turn>"],
        },
        end_of_turn="<end_of_turn>",
        needs_bos=True,
        system_role=False,
    ),
    "mistral": ZooSpec(
        name="mistral",
        description="Mistral/Llama-2-like: bf16, BOS <s>, no pad token, [INST] turns, no generation prompt",
        build={
            "special_tokens": ["<unk>", "<s>", "</s>"],
            "bos_token": "<s>",
            "eos_token": "</s>",
            "pad_token": None,
            "unk_token": "<unk>",
            "add_bos": True,
            "chat_template": MISTRAL_TEMPLATE,
        },
        end_of_turn="</s>",
        needs_bos=True,
        system_role=False,
    ),
    "phi3": ZooSpec(
        name="phi3",
        description="Phi-3-like: bf16, left padding, pad == EOS <|endoftext|>, <|end|> turns, BOS not added",
        build={
            "special_tokens": [
                "<unk>",
                "<s>",
                "</s>",
                "<|endoftext|>",
                "<|assistant|>",
                "<|system|>",
                "<|end|>",
                "<|user|>",
            ],
            "bos_token": "<s>",
            "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
            "unk_token": "<unk>",
            "add_bos": False,
            "padding_side": "left",
            "chat_template": PHI3_TEMPLATE,
            "eos_token_ids": ["<|endoftext|>", "<|assistant|>", "<|end|>"],
        },
        end_of_turn="<|end|>",
        needs_bos=False,
        system_role=True,
    ),
    "base": ZooSpec(
        name="base",
        description="base model: bf16, no chat template, tokenizer adds <s>",
        build={
            "special_tokens": ["<unk>", "<s>", "</s>", "<pad>"],
            "bos_token": "<s>",
            "eos_token": "</s>",
            "pad_token": "<pad>",
            "unk_token": "<unk>",
            "add_bos": True,
            "chat_template": None,
            "padding_side": "right",
        },
        end_of_turn=None,
        needs_bos=True,
        system_role=False,
    ),
}


def build_zoo_model(name: str, out_dir: str | Path, **overrides: Any) -> Path:
    """Build the zoo model ``name`` (saved in bf16) into ``out_dir``; return the path."""
    from generation.tiny_model import build_tiny_model

    if name not in ZOO:
        raise KeyError(f"Unknown zoo model {name!r}; one of {', '.join(ZOO)}.")
    options = {"dtype": "bfloat16", **ZOO[name].build, **overrides}
    return build_tiny_model(out_dir, **options)
