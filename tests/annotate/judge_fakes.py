"""A deterministic fake judge, served over HTTP by ``generation.openai_server`` so the judge code
talks to it through the real ``openai`` backend.

Each candidate text carries its quality as ``q=<n>``. The fake answers with the higher-quality
response (strength 3 for a gap of 2 or more, 1 for a gap of 1, a tie when equal), unless a
response says ``LEFTBIAS`` (it then always picks A: position-inconsistent) or ``GARBAGE`` (it
answers prose without JSON). Its rationale carries markup, to check the pages escape it.
"""

from __future__ import annotations

import json
import re

from generation.backends.base import FINISH_STOP, Generation

RATIONALE = "<b>bold</b><script>window.__judge_xss = 1</script> A vs B"
_SECTION = re.compile(r"\[Response A\]\n\n(.*?)\n\n\[Response B\]\n\n(.*?)\n\n\[Your JSON verdict\]", re.S)


def _quality(text: str) -> int:
    m = re.search(r"q=(\d+)", text)
    return int(m.group(1)) if m else 0


class FakeJudgeBackend:
    model_name = "fake-judge"
    model_version = "fake-judge-1"

    def __init__(self) -> None:
        self.calls = 0

    def answer(self, content: str) -> str:
        m = _SECTION.search(content)
        if m is None:
            return "I cannot find the responses."
        first, second = m.group(1), m.group(2)
        if "GARBAGE" in first + second:
            return "Well, both have merits; hard to say really."
        qa, qb = _quality(first), _quality(second)
        if "LEFTBIAS" in first + second:
            verdict, strength = "A", 3
        elif qa == qb:
            verdict, strength = "tie", None
        else:
            verdict = "A" if qa > qb else "B"
            strength = 3 if abs(qa - qb) >= 2 else 1
        obj = {
            "verdict": verdict,
            "strength": strength,
            "scores": {"helpfulness": {"A": min(max(qa, 1), 5), "B": min(max(qb, 1), 5)}},
            "rationale": RATIONALE,
        }
        return "Here is my verdict:\n```json\n" + json.dumps(obj) + "\n```"

    def generate(self, conversations, params):
        out = []
        for conversation in conversations:
            self.calls += 1
            text = self.answer(conversation[-1]["content"])
            out.append(
                [Generation(text=text, finish_reason=FINISH_STOP, prompt_tokens=100, completion_tokens=20)]
                * params.n
            )
        return out
