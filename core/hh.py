"""The one HH-RLHF transcript parser, for the importer and the runners.

An HH-RLHF row is two transcripts, ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``, that share a conversation
and differ in the last reply. The split follows TRL's own HH conversion: the prompt is the longest
shared prefix of the two transcripts, cut back to its last ``"\\n\\nAssistant:"``; each reply is the
rest of its transcript, verbatim (one leading space dropped). A reply may therefore hold text that
looks like further turns (``"\\n\\nHuman: ..."``, ``"\\n\\nAssistant: ..."``): real HH files have such
replies, and they stay part of the reply instead of being refused or cut to their last turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ASSISTANT = "\n\nAssistant:"
_TURN = re.compile(r"\n\n(Human|Assistant):")


class HHFormatError(ValueError):
    """A row that is not an HH-RLHF pair; ``field`` names the transcript at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class HHPair:
    prompt: list[dict]  # the shared conversation, as messages
    chosen: str
    rejected: str


def parse_transcript(text: str) -> list[dict]:
    """Every ``Human:``/``Assistant:`` turn of a transcript, as messages (no reply rule applied)."""
    if not isinstance(text, str) or not text.startswith("\n\nHuman:"):
        raise HHFormatError("must be a transcript starting with '\\n\\nHuman:'")
    parts = _TURN.split(text)
    return [
        {"role": "user" if role == "Human" else "assistant", "content": content.removeprefix(" ")}
        for role, content in zip(parts[1::2], parts[2::2], strict=True)
    ]


def _common_prefix(a: str, b: str) -> str:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return a[:i]


def split_pair(chosen: str, rejected: str) -> HHPair:
    """(prompt messages, chosen reply, rejected reply) of an HH-RLHF row (see the module docstring)."""
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(text, str):
            raise HHFormatError("must be a transcript string", name)
        if not text.startswith("\n\nHuman:"):
            raise HHFormatError("must be a transcript starting with '\\n\\nHuman:'", name)
    shared = _common_prefix(chosen, rejected)
    cut = shared.rfind(ASSISTANT)
    if cut < 0:
        raise HHFormatError(
            "chosen and rejected do not share the same conversation before the last reply", "rejected"
        )
    prompt = parse_transcript(chosen[:cut])
    if not any(m["role"] == "user" for m in prompt):
        raise HHFormatError("the shared conversation has no Human turn", "chosen")
    start = cut + len(ASSISTANT)
    return HHPair(
        prompt=prompt,
        chosen=chosen[start:].removeprefix(" "),
        rejected=rejected[start:].removeprefix(" "),
    )
