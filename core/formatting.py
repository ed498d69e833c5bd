"""The one definition of the text and token ids of a (prompt, response).

Export, reward training, reward scoring (held-out evaluation, PPO/RLOO/GRPO rewards, the
``evaluate_reward`` command), DPO and generation all call these functions, so a reward model reads
the same tokens in training as when it scores a sampled response.

Prompts and responses
---------------------
A prompt is a string (plain text) or a list of ``{"role", "content"}`` messages; a response is a
string or a list with one assistant message.

* **Chat template** (the tokenizer has one, the data is conversational): a (prompt, response) is the
  template's rendering of the full conversation, prompt + assistant reply (``split_ids``), split
  into a prompt part and a completion part where it parts from the prompt rendered with
  ``add_generation_prompt=True`` (their common prefix, as TRL splits it). Usually the prompt part is
  exactly the generation prompt; a template whose generation prompt adds something the rendered
  history drops (an empty think block: Qwen3, and Gemma 4 per TRL's ``common_prefix_length``) gives
  a prompt part ending at the assistant header and a completion starting with the reply: no header
  doubled, none lost. Whatever the template puts after the end-of-turn token (Qwen's
  ``<|im_end|>\\n``, Gemma's ``<end_of_turn>\\n``, the newline and EOS of Phi-3's
  ``<|end|>\\n<|endoftext|>``) is dropped, so every sequence ends AT its end-of-turn token. A
  policy is prompted with the generation prompt itself (``prompt_ids``, ``generation_prompt_ids``:
  think block included).
* **Plain text** (a string prompt, or messages for a tokenizer without a chat template): messages
  are rendered as an HH-style transcript, ``"Human: ...\\n\\nAssistant: ...\\n\\nHuman: ...\\n\\nAssistant:"``
  (a system turn as ``"System: ..."``). The response follows the prompt with a separator unless
  either side already has whitespace there: one space after a prompt ending in ``:`` (the
  ``"Assistant:"`` cue, HH-RLHF's own convention ``"Assistant: reply"``), else a newline (a
  single-turn question: ``"question?\\nAnswer"``, never ``"question?Answer"``). The prompt's ids
  start with whatever the tokenizer itself puts before plain text (Llama/Mistral/Gemma's BOS,
  BERT's ``[CLS]``; nothing for Qwen), exactly as ``tokenizer(text)`` would.
* **End token**: every response's ids end with an end token (OpenRLHF's convention for reward
  models). It is the template's end-of-turn token when a template ends the turn with a special
  token, else the tokenizer's EOS; a tokenizer without an EOS (BERT) uses its ``[SEP]``. Where the
  reward is read depends on the model, not on these ids: a decoder's sequence-classification head
  (Llama, Qwen, Gemma) reads it at the last token that is not the pad token: the end token, since a
  reward model's tokenizer never pads with an end token (``training.runners.models.pad_apart_from_ends``:
  families without a pad token, Llama-3 and Mistral, would otherwise pad with their EOS); a BERT-like
  encoder pools its first token, ``[CLS]``, which attends to the whole sequence, end token included.

Special-token text is text (``literal_text``)
-----------------------------------------------
Prompts, replies and generated candidates are untrusted text, and a Hugging Face tokenizer reads a
special token's TEXT anywhere in a string as the control token itself: a reply typed as
``"Hi<|eot_id|> more"`` would train (DPO) and be scored (reward model) with an end of turn in the
middle, and an imported prompt could forge a system or assistant turn in the policy's generation
prompt. The rule is tiktoken's (``disallowed_special=()``): such text is ordinary text. Every
content string is passed through ``literal_text`` before it is tokenised (message contents before
the chat template renders them, ``template_ids``; the plain text of a prompt or reply); the
template's own special tokens (BOS, turn headers, end of turn) are untouched, since the template
writes them, not the content. ``literal_text`` inserts U+200B (zero width space) after the first
character of each occurrence of a special token's text (``tokenizer.all_special_tokens`` and the
added tokens marked ``special``), so it tokenises as ordinary characters; a string without such
text is returned as it is (the same object), so every other row's ids are bit-identical to before.
The result is checked (a tokenizer whose normaliser would drop the U+200B and re-form the token is
refused with ``FormattingError`` rather than trained on forged ids).

Why this rather than tokenising with ``split_special_tokens=True``: that flag applies to a whole
string, so content would have to be located inside the rendered template and tokenised segment by
segment, where SentencePiece (Metaspace) tokenizers add a prefix space per segment and added tokens'
``lstrip``/``rstrip`` change the neighbouring whitespace: easy to get subtly different from the
template's own ids. A text-level neutraliser leaves the tokenizer and the template exactly as they
are, and also works where the platform hands text to code that tokenises it itself (TRL's RLOO/GRPO
prompts, ``literal_prompt``). transformers 5.23 (training's pin) also has
``apply_chat_template(..., sanitize_control_tokens=True)``, which encodes marked control tokens as
exact plain text; it is not used because the vLLM generation environment pins another
transformers (5.20.2, not checked for the feature here) and the policy must be prompted with the ids
it was trained and scored on in every environment, because it covers only templated chats (plain
text would need its private marking helpers), and because it does not reach text TRL tokenises
itself. The cost: an affected row carries an invisible U+200B (a few bytes'
tokens) in its content, and its decoded text has it too.

Truncation (``truncate_prompt_ids``, one rule for reward inputs, PPO queries and RLOO/GRPO
sampling): a prompt over its budget loses the beginning of its content (the end of a conversation is
what the reply answers); what comes before the content (BOS, a template's first turn header) and the
generation prompt at its end stay. ``sequence_ids`` cuts the response (from its end, keeping the end
token) only when it alone is over ``max_length``, and gives the prompt the rest.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_ROLE_LABEL = {"system": "System", "user": "User", "assistant": "Assistant"}
_TRANSCRIPT_LABEL = {"system": "System", "user": "Human", "assistant": "Assistant"}


class FormattingError(ValueError):
    """A (prompt, response) that cannot be rendered for this tokenizer."""


def is_conversational(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


# --- text ---------------------------------------------------------------------------------------


def prompt_text(messages: list[dict]) -> str:
    """The standard-format (TRL ``prompt`` column) string of a conversation: a single user turn is its
    text verbatim; anything longer is ``"System: ..."``/``"User: ..."``/``"Assistant: ..."`` blocks
    separated by a blank line, ending with ``"\\n\\nAssistant:"``."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    blocks = [f"{_ROLE_LABEL.get(m['role'], m['role'].title())}: {m['content']}" for m in messages]
    return "\n\n".join(blocks) + "\n\nAssistant:"


def hh_transcript(messages: list[dict], reply: str) -> str:
    """An HH-RLHF transcript (``"\\n\\nHuman: ...\\n\\nAssistant: reply"``); parsed back by ``core.hh``."""
    parts = [f"\n\n{'Human' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in messages]
    parts.append(f"\n\nAssistant: {reply}")
    return "".join(parts)


def plain_prompt(prompt: Any) -> str:
    """The plain-text prompt: a string as is; messages as an HH-style transcript ending with the cue."""
    if isinstance(prompt, str):
        return prompt
    if not is_conversational(prompt):
        raise FormattingError("A prompt must be a string or a list of messages.")
    blocks = [f"{_TRANSCRIPT_LABEL.get(m['role'], m['role'].title())}: {m['content']}" for m in prompt]
    if prompt[-1]["role"] != "assistant":
        blocks.append("Assistant:")
    return "\n\n".join(blocks)


def response_text(response: Any) -> str:
    """The text of a response (a string, or a list whose assistant messages are joined)."""
    if isinstance(response, str):
        return response
    if is_conversational(response):
        return "\n\n".join(m["content"] for m in response if m.get("role") == "assistant")
    raise FormattingError("A response must be a string or a list of assistant messages.")


def separator(prompt: str, response: str) -> str:
    """What goes between a plain-text prompt and its response (see the module docstring)."""
    if not prompt or not response or prompt[-1].isspace() or response[0].isspace():
        return ""
    return " " if prompt.endswith(":") else "\n"


def plain_response(prompt: Any, response: Any) -> str:
    """The plain-text response as it follows the plain prompt: separator + response text."""
    p, r = plain_prompt(prompt), response_text(response)
    return separator(p, r) + r


def as_response(prompt: Any, text: str) -> Any:
    """A generated text as a response of ``prompt``'s shape (a message list for a conversation)."""
    return [{"role": "assistant", "content": text}] if is_conversational(prompt) else text


# --- special-token text is text -----------------------------------------------------------------

NEUTRALISER = "\u200b"  # zero width space, put after the first character of special-token text


def special_texts(tokenizer) -> tuple[str, ...]:
    """The text of every special token (``all_special_tokens`` and added tokens marked special),
    longest first. Single characters (an insertion cannot split them) and whitespace-only tokens
    (a tokenizer marking ``"\\n\\n"`` special would otherwise have every paragraph break rewritten) are
    left out."""
    texts = {str(t) for t in (getattr(tokenizer, "all_special_tokens", None) or [])}
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(token, "special", False):
            texts.add(str(token))
    return tuple(sorted((t for t in texts if len(t) > 1 and t.strip()), key=lambda t: (-len(t), t)))


@functools.lru_cache(maxsize=64)
def _special_pattern(texts: tuple[str, ...]) -> re.Pattern | None:
    return re.compile("|".join(re.escape(t) for t in texts)) if texts else None


def literal_text(tokenizer, text: Any) -> Any:
    """``text`` as it must be tokenised: every special token's text in it neutralised (U+200B after
    its first character) so it reads as ordinary text, never as the control token; anything else
    (text without special-token text, a non-string) returned as it is. FormattingError when the
    tokenizer still reads a special token in the result (see the module docstring)."""
    if not isinstance(text, str) or not text:
        return text
    texts = special_texts(tokenizer)
    pattern = _special_pattern(texts)
    if pattern is None or not pattern.search(text):
        return text
    out = text
    while pattern.search(out):  # again while an occurrence overlapping one just split is left
        out = pattern.sub(lambda m: m.group(0)[0] + NEUTRALISER + m.group(0)[1:], out)
    if _reads_special_tokens(tokenizer, out, texts):
        found = sorted({m.group(0) for m in pattern.finditer(text)})
        raise FormattingError(
            f"Text holding the special token(s) {', '.join(found)} cannot be made literal for this tokenizer."
        )
    return out


def _reads_special_tokens(tokenizer, text: str, texts: tuple[str, ...]) -> bool:
    """Whether the tokenizer still reads a special token in ``text``: its ids differ from those with
    special tokens split as text (``split_special_tokens``; byte-fallback ids that happen to be
    special, ``<0x3C>``, are the same both ways), or, where that is not supported, they hold the id
    of one of ``texts``."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    try:
        split = list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])
    except TypeError:
        return bool(set(ids) & {tokenizer.convert_tokens_to_ids(t) for t in texts})
    return ids != split


def _literal_message(tokenizer, message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, str):
        literal = literal_text(tokenizer, content)
        return message if literal is content else {**message, "content": literal}
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        parts = [
            {**part, "text": literal_text(tokenizer, part["text"])}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
        if parts != content:
            return {**message, "content": parts}
    return message


def literal_messages(tokenizer, messages: list) -> list:
    """``messages`` with every content made literal (``literal_text``); the same dicts where
    nothing needed it."""
    return [_literal_message(tokenizer, m) for m in messages]


def literal_prompt(tokenizer, prompt: Any) -> Any:
    """A prompt (string or messages) made literal, for code that tokenises it itself (TRL's RLOO/GRPO
    trainers): it then reads the ids ``prompt_ids`` gives. Idempotent."""
    if isinstance(prompt, str):
        return literal_text(tokenizer, prompt)
    if is_conversational(prompt):
        return literal_messages(tokenizer, prompt)
    return prompt


def text_ids(tokenizer, text: str) -> list[int]:
    """Ids of plain text, special-token text read as text, nothing added (no BOS)."""
    return list(tokenizer(literal_text(tokenizer, text), add_special_tokens=False)["input_ids"])


# --- tokens -------------------------------------------------------------------------------------


def uses_template(tokenizer, prompt: Any, response: Any = None) -> bool:
    conv = is_conversational(prompt) or is_conversational(response)
    return bool(conv and getattr(tokenizer, "chat_template", None))


def template_ids(tokenizer, messages: list[dict], *, add_generation_prompt: bool) -> list[int]:
    """Ids of ``messages`` as the chat template renders them, every content read as literal text
    (``literal_messages``). FormattingError (its cause: the template's exception) when the template
    refuses the conversation."""
    messages = literal_messages(tokenizer, messages)
    try:
        out = tokenizer.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=add_generation_prompt
        )
    except Exception as exc:  # jinja raise_exception (e.g. Gemma: "System role not supported")
        raise FormattingError(f"The chat template refused the conversation: {exc}") from exc
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def special_ids(tokenizer) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for idx, token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(token, "special", False):
            ids.add(int(idx))
    return ids


def end_token_id(tokenizer) -> int | None:
    """The token a plain-text response ends with: EOS, or [SEP] for an encoder without EOS."""
    if tokenizer.eos_token_id is not None:
        return tokenizer.eos_token_id
    return getattr(tokenizer, "sep_token_id", None)


def bos_prefix(tokenizer) -> list[int]:
    """The ids the tokenizer itself puts before plain text (BOS, [CLS]), or []."""
    probe = "a"
    with_special = list(tokenizer(probe)["input_ids"])
    without = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    for i in range(len(with_special) - len(without) + 1):
        if with_special[i : i + len(without)] == without:
            return with_special[:i]
    return []


def prompt_ids(tokenizer, prompt: Any) -> list[int]:
    """Ids of the prompt: a generation prompt (template), or the plain text after the tokenizer's BOS."""
    if uses_template(tokenizer, prompt):
        return template_ids(tokenizer, list(prompt), add_generation_prompt=True)
    return bos_prefix(tokenizer) + text_ids(tokenizer, plain_prompt(prompt))


def _strip_after_end(tokenizer, ids: list[int]) -> list[int]:
    """Drop what a template renders after its end-of-turn token: a newline (Qwen, Gemma), and an
    EOS it appends after the turn's own end token (Phi-3: ``<|end|>\\n<|endoftext|>``). An EOS
    right after the reply's text is the end-of-turn itself (Mistral) and stays."""
    specials = special_ids(tokenizer)

    def strip_space(seq: list[int]) -> list[int]:
        while seq and seq[-1] not in specials and not tokenizer.decode([seq[-1]]).strip():
            seq.pop()
        return seq

    out = strip_space(list(ids))
    if len(out) > 1 and out[-1] == tokenizer.eos_token_id:
        before = strip_space(out[:-1])
        if before and before[-1] in specials:
            out = before
    return out if out and out[-1] in specials else list(ids)


def common_prefix_length(ids: list[int], other: list[int]) -> int:
    """How many leading ids ``ids`` and ``other`` share (TRL's ``common_prefix_length``)."""
    n = 0
    for a, b in zip(ids, other, strict=False):
        if a != b:
            break
        n += 1
    return n


def _conversation(prompt: Any, response: Any) -> tuple[list[dict], list[dict]]:
    conv_prompt = list(prompt) if is_conversational(prompt) else [{"role": "user", "content": prompt}]
    conv_resp = (
        list(response) if is_conversational(response) else [{"role": "assistant", "content": response}]
    )
    return conv_prompt, conv_resp


def _with_end(tokenizer, tail: list[int]) -> list[int]:
    if tail and tail[-1] in special_ids(tokenizer):
        return tail
    end = end_token_id(tokenizer)
    return tail + ([end] if end is not None else [])


def split_ids(tokenizer, prompt: Any, response: Any) -> tuple[list[int], list[int]]:
    """(prompt part, completion part) of the sequence a model is trained and scored on for
    (prompt, response): together the full conversation as the template renders it (less what follows
    the end-of-turn token), split where it parts from the generation prompt; or, for plain text, the
    prompt's ids and the separator + response + end token (see the module docstring)."""
    if uses_template(tokenizer, prompt, response):
        conv_prompt, conv_resp = _conversation(prompt, response)
        full = template_ids(tokenizer, conv_prompt + conv_resp, add_generation_prompt=False)
        head = template_ids(tokenizer, conv_prompt, add_generation_prompt=True)
        n = common_prefix_length(full, head)
        return full[:n], _with_end(tokenizer, _strip_after_end(tokenizer, full[n:]))
    ids = text_ids(tokenizer, plain_response(prompt, response))
    end = end_token_id(tokenizer)
    if end is not None and (not ids or ids[-1] != end):
        ids.append(end)
    return prompt_ids(tokenizer, prompt), ids


def completion_ids(tokenizer, prompt: Any, response: Any) -> list[int]:
    """Ids of ``response`` after ``prompt``, ending with the end token (see the module docstring): the
    completion part of ``split_ids``."""
    return split_ids(tokenizer, prompt, response)[1]


def _bos_length(tokenizer, ids: list[int]) -> int:
    """How many of ``ids``' first ids are the tokenizer's own BOS ([CLS]...)."""
    head = bos_prefix(tokenizer) or ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else [])
    return len(head) if head and ids[: len(head)] == head else 0


def _lead_length(tokenizer, prompt: Any, ids: list[int]) -> int:
    """How many of the prompt's first ids come before its content: its leading special tokens (BOS,
    a first turn header token) and, for a template, everything the template renders before the first
    message's content (BOS, a default system turn, the first turn's header)."""
    specials = special_ids(tokenizer)
    n = 0
    while n < len(ids) and ids[n] in specials:
        n += 1
    if uses_template(tokenizer, prompt) and is_conversational(prompt):
        first = prompt[0]
        try:
            a = template_ids(tokenizer, [{**first, "content": "a"}], add_generation_prompt=False)
            b = template_ids(tokenizer, [{**first, "content": "b"}], add_generation_prompt=False)
        except FormattingError:
            return n
        n = max(n, common_prefix_length(ids, a[: common_prefix_length(a, b)]))
    return n


def _header_length(tokenizer, prompt: Any, ids: list[int]) -> int:
    """How many of the prompt's last ids are the generation prompt (the assistant header the reply
    follows): what ``ids`` has after the conversation rendered without it. 0 for plain text."""
    if not (uses_template(tokenizer, prompt) and is_conversational(prompt)):
        return 0
    history = template_ids(tokenizer, list(prompt), add_generation_prompt=False)
    return len(ids) - common_prefix_length(ids, history)


def truncate_prompt_ids(tokenizer, prompt: Any, ids: list[int], max_tokens: int) -> list[int]:
    """The prompt ``ids`` (of ``prompt``) within ``max_tokens``, cut from the start of its content:
    what comes before the content (BOS, the first turn's header) and the generation prompt at its end
    stay. The one left-truncation rule of reward inputs, PPO queries and RLOO/GRPO sampling. When even
    those do not fit, the BOS goes last, then the generation prompt."""
    if len(ids) <= max_tokens:
        return list(ids)
    if max_tokens <= 0:
        return []
    bos = min(_bos_length(tokenizer, ids), max_tokens)
    header = min(_header_length(tokenizer, prompt, ids), max_tokens - bos)
    lead = min(max(_lead_length(tokenizer, prompt, ids), bos), max_tokens - header)
    return ids[:lead] + ids[len(ids) - (max_tokens - lead) :]


def sequence_and_completion_length(
    tokenizer, prompt: Any, response: Any, max_length: int
) -> tuple[list[int], int]:
    """(``sequence_ids``, how many of its last ids are the response's)."""
    p, c = split_ids(tokenizer, prompt, response)
    if len(c) > max_length:
        c = c[: max_length - 1] + c[-1:]
    if uses_template(tokenizer, prompt, response):  # a string prompt rendered as a user turn
        prompt = _conversation(prompt, response)[0]
    return truncate_prompt_ids(tokenizer, prompt, p, max_length - len(c)) + c, len(c)


def sequence_ids(tokenizer, prompt: Any, response: Any, max_length: int) -> list[int]:
    """prompt + response ids (``split_ids``) within ``max_length``: the response is cut from the right
    (keeping its end token) only when it alone is too long; the prompt by ``truncate_prompt_ids``."""
    return sequence_and_completion_length(tokenizer, prompt, response, max_length)[0]


def reward_input_ids(tokenizer, prompt: Any, response: Any, max_length: int) -> list[int]:
    """The ids a reward model reads for (prompt, response): in reward training, held-out evaluation,
    ``evaluate_reward`` and PPO/RLOO/GRPO scoring alike. ``response`` may be a generated text (it is
    put in the prompt's shape). The ids end with the end token; where a model reads the reward (the
    last non-pad token of a decoder, ``[CLS]`` of an encoder) is in the module docstring."""
    if isinstance(response, str) and is_conversational(prompt):
        response = as_response(prompt, response)
    return sequence_ids(tokenizer, prompt, response, max_length)


def response_reward_input(
    tokenizer, reward_tokenizer, stop_ids, prompt: Any, resp_ids: list[int], max_length: int
) -> tuple[list[int], bool]:
    """(the reward model's input ids, whether the response ended) for a sampled response, in PPO and
    RLOO/GRPO alike. The response is read up to its first end id (``stop_ids``), decoded with
    ``tokenizer`` (the policy's) and put through ``reward_input_ids``, the function
    reward training uses, so the reward model reads the same tokens (and the same final end token) as
    in training. A response with no end id (cut off at the length limit) does not get the end token
    it never produced; the caller takes ``missing_eos_penalty`` off its score."""
    stops = set(stop_ids)
    end = next((i for i, t in enumerate(resp_ids) if t in stops), None)
    ended = end is not None
    text = tokenizer.decode(resp_ids[:end] if ended else resp_ids, skip_special_tokens=True)
    ids = reward_input_ids(reward_tokenizer, prompt, text, max_length)
    if not ended and len(ids) > 1 and ids[-1] in special_ids(reward_tokenizer):
        ids = ids[:-1]
    return ids, ended


def generation_prompt_ids(tokenizer, prompt: Any, max_tokens: int | None = None) -> list[int]:
    """Ids a policy generates after (``prompt_ids``: the response's separator, if any, is the model's
    to generate), within ``max_tokens`` by ``truncate_prompt_ids`` when given."""
    ids = prompt_ids(tokenizer, prompt)
    return ids if max_tokens is None else truncate_prompt_ids(tokenizer, prompt, ids, max_tokens)


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """Every id that ends a response: the tokenizer's EOS, ``generation_config.eos_token_id`` (chat
    models list their end-of-turn there) and the template's end-of-turn token."""
    ids: list[int] = []

    def add(value):
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is not None and int(v) not in ids:
                ids.append(int(v))

    add(tokenizer.eos_token_id)
    if generation_config is not None:
        add(getattr(generation_config, "eos_token_id", None))
    if getattr(tokenizer, "chat_template", None):
        try:
            tail = completion_ids(tokenizer, [{"role": "user", "content": "a"}], "b")
        except FormattingError:
            tail = []
        if tail and tail[-1] in special_ids(tokenizer):
            add(tail[-1])
    return ids
