"""The judge's prompt (a rubric rendered from the project's guidelines and dimensions) and the
robust parser of its answer.

The judge is asked for one small JSON object::

    {"verdict": "A" | "B" | "tie" | "both_bad", "strength": 1-3,
     "scores": {"<dimension>": {"A": int, "B": int}}, "rationale": "..."}

``parse_judgment`` finds the first JSON object with a ``verdict`` anywhere in the text (models wrap
it in prose or code fences) after a reasoning model's ``<think>`` block, normalises the verdict
(``[[A]]``, ``**A**``, ``Assistant A``: "a") and keeps only well-formed parts; an answer
without a usable verdict raises :class:`UnparseableJudgment` (recorded with the raw text). An
answer cut off by the judge's token limit inside its object keeps the members it finished (the
verdict, the strength, whole scores) and its rationale as far as it went, marked ``CUT_MARK``.
A model's answer is untrusted: whatever it holds (infinite or NaN numbers, integers of thousands
of digits, nesting deeper than the JSON decoder recurses, non-string verdicts, megabytes of braces)
the parser returns a judgment or raises ``UnparseableJudgment``, never anything else, and reads at
most ``MAX_ANSWER_CHARS`` characters and ``MAX_OBJECT_STARTS`` candidate objects. A strength or a
score that is not a finite number in range is dropped; the verdict is kept.
The rubric goes in the user turn: several model families have no system role.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from annotate.strength import Strength
from core.formatting import prompt_text

MAX_RATIONALE_CHARS = 4000
MAX_GUIDELINE_CHARS = 20_000
MAX_ANSWER_CHARS = 100_000  # a judge answers in a few hundred characters
MAX_OBJECT_STARTS = 500  # "{" positions tried as the start of the verdict object

_VERDICTS = {
    "a": "a",
    "response a": "a",
    "b": "b",
    "response b": "b",
    "tie": "tie",
    "equal": "tie",
    "both_bad": "both_bad",
    "both bad": "both_bad",
    "both-bad": "both_bad",
    "bothbad": "both_bad",
    "neither": "both_bad",
}
#: Around a verdict: brackets, Markdown and punctuation ("[[A]]", "**B**", "A.") are dropped;
#: before it, the name of what is judged ("Assistant A", "Model B").
_VERDICT_DRESSING = " \t\r\n\"'`*_[](){}<>.,:;!"
_VERDICT_SUBJECT = re.compile(r"^(?:response|assistant|model|output|answer)\s+(?=\S+$)")
#: A reasoning model's thoughts (served without a reasoning parser they come in the answer): the
#: verdict is what follows the last closing tag; an opening tag without one is an answer cut off
#: while still thinking, whose drafts are not its verdict.
_THINK_END = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
_THINK_START = re.compile(r"<think(?:ing)?>", re.IGNORECASE)


class UnparseableJudgment(ValueError):
    """The judge's answer holds no usable verdict."""


@dataclass
class Judgment:
    """A parsed answer, in the positions the judge saw (``a`` = the response shown as A)."""

    verdict: str
    strength: int | None = None
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # dim -> {"A": x, "B": y}
    rationale: str = ""


def allowed_verdicts(project) -> set[str]:
    """The canonical verdicts the project accepts from a labeler, and so from a judge."""
    out = {"a", "b"}
    if project.allow_tie:
        out.add("tie")
    if project.allow_both_bad:
        out.add("both_bad")
    return out


def render_rubric(*, project, guideline, dimensions: list) -> str:
    """The instructions every prompt of a judge job starts with: only the verdicts the project
    allows are offered (one it does not allow is still recorded, as ``not_allowed``)."""
    allowed = allowed_verdicts(project)
    verdicts = ['"A"', '"B"'] + [f'"{v}"' for v in ("tie", "both_bad") if v in allowed]
    lines = [
        f'You are an impartial judge of responses for the project "{project.name}".',
        "Compare Response A and Response B to the conversation below and decide which is better.",
        "Do not let the order of the responses or their length sway you.",
    ]
    if guideline is not None:
        lines += [
            "",
            f"Labeling guidelines (version {guideline.version}):",
            "<guidelines>",
            guideline.body[:MAX_GUIDELINE_CHARS],
            "</guidelines>",
        ]
    if dimensions:
        lines += ["", f"Score each response on these dimensions, integers 1 to {project.rating_scale_max}:"]
        for dim in dimensions:
            desc = f": {dim.description}" if dim.description else ""
            lines.append(f"- {dim.key} ({dim.label}){desc}")
    scores = ", ".join(f'"{d.key}": {{"A": int, "B": int}}' for d in dimensions)
    lines += [
        "",
        "Answer with ONE JSON object and nothing else:",
        f'{{"verdict": {" | ".join(verdicts)}, "strength": {" | ".join(map(str, Strength.values))}, '
        f'"scores": {{{scores}}}, "rationale": "one or two sentences"}}',
        f"strength: {', '.join(f'{s.value} {s.label}' for s in Strength)} better (only when the verdict is A or B).",
    ]
    return "\n".join(lines)


def judge_conversation(*, rubric: str, messages: list, first: str, second: str) -> list[dict]:
    """One user turn: the rubric, the conversation, then the two responses as A and B."""
    body = "\n\n".join(
        [
            rubric,
            "[Conversation]",
            prompt_text(messages) if messages else "(empty)",
            "[Response A]",
            first,
            "[Response B]",
            second,
            "[Your JSON verdict]",
        ]
    )
    return [{"role": "user", "content": body}]


def _objects(text: str):
    """The JSON objects that start at the text's first ``MAX_OBJECT_STARTS`` braces. A start that
    does not decode (malformed, nested past the recursion limit, an integer of more digits than
    Python converts) is skipped."""
    decoder = json.JSONDecoder()
    text = text[:MAX_ANSWER_CHARS]
    i = text.find("{")
    tried = 0
    while i >= 0 and tried < MAX_OBJECT_STARTS:
        tried += 1
        try:
            value, _end = decoder.raw_decode(text, i)
        except (ValueError, RecursionError, OverflowError):
            value = None
        if isinstance(value, dict):
            yield value
        i = text.find("{", i + 1)


def _number(value) -> float | None:
    """A finite number, from a JSON number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str) and len(value) <= 50:
            number = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):  # "abc"; an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def _verdict(raw) -> str | None:
    """The canonical verdict a judge wrote, or None: "A", "Response A", "[[A]]", "**A**", "A.",
    "Assistant A" and "Model A" are all "a"."""
    if not isinstance(raw, str) or len(raw) > 50:
        return None
    word = " ".join(raw.strip(_VERDICT_DRESSING).lower().split())
    return _VERDICTS.get(word) or _VERDICTS.get(_VERDICT_SUBJECT.sub("", word).strip(_VERDICT_DRESSING))


def parse_judgment(text: str, *, dimensions: list[str], scale_max: int) -> Judgment:
    """The first JSON object in ``text`` with a recognisable verdict (raises UnparseableJudgment)."""
    if not isinstance(text, str) or not text.strip():
        raise UnparseableJudgment("The judge answered nothing.")
    *thoughts, text = _THINK_END.split(text)
    if not thoughts and _THINK_START.search(text):
        raise UnparseableJudgment("The answer ended inside the judge's reasoning (<think> without </think>).")
    for obj in _objects(text):
        judgment = _judgment_from(obj, dimensions=dimensions, scale_max=scale_max)
        if judgment is not None:
            return judgment
    cut = _cut_object(text)  # a judge stopped by its token limit after writing its verdict
    judgment = _judgment_from(cut, dimensions=dimensions, scale_max=scale_max) if cut else None
    if judgment is not None:
        return judgment
    raise UnparseableJudgment("No JSON object with a verdict (A, B, tie or both_bad) in the answer.")


def _judgment_from(obj: dict, *, dimensions: list[str], scale_max: int) -> Judgment | None:
    """The judgment in one decoded object, or None when it has no recognisable verdict."""
    verdict = _verdict(obj.get("verdict"))
    if verdict is None:
        return None
    strength = None
    s = _number(obj.get("strength"))
    if verdict in ("a", "b") and s is not None and s in Strength.values:
        strength = int(s)
    scores: dict[str, dict[str, float]] = {}
    raw_scores = obj.get("scores")
    if isinstance(raw_scores, dict):
        for key in dimensions:
            pair = raw_scores.get(key)
            if not isinstance(pair, dict):
                continue
            a = _number(pair.get("A", pair.get("a")))
            b = _number(pair.get("B", pair.get("b")))
            if a is not None and b is not None and 1 <= a <= scale_max and 1 <= b <= scale_max:
                scores[key] = {"A": a, "B": b}
    rationale = obj.get("rationale")
    rationale = rationale.strip()[:MAX_RATIONALE_CHARS] if isinstance(rationale, str) else ""
    return Judgment(verdict=verdict, strength=strength, scores=scores, rationale=rationale)


_CUT_ESCAPE = re.compile(r"(\\+)(u[0-9a-fA-F]{0,3})?$")
CUT_MARK = "\u2026 (cut off)"


def _without_cut_escape(fragment: str) -> str:
    """A JSON string's text cut off mid-escape (a lone backslash, or ``\\u`` with fewer than four
    hex digits after it), without that unfinished escape."""
    m = _CUT_ESCAPE.search(fragment)
    if m and len(m.group(1)) % 2:  # an odd run: its last backslash starts the unfinished escape
        return fragment[: m.end(1) - 1]
    return fragment


def _cut_object(text: str) -> dict | None:
    """The members a cut-off answer finished: the text's last top-level object that never closes
    (the answer ends inside it), read member by member while each value decodes whole. A string
    member the cut went through (the rationale, written last) is kept as far as it went, marked
    with ``CUT_MARK``; a member cut anywhere else is dropped. None when no object runs to the end."""
    text = text[:MAX_ANSWER_CHARS]
    start, depth, in_string, escaped = None, 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = depth > 0
        elif ch in "{[":
            if depth == 0:
                if ch == "[":
                    continue
                start = i
            depth += 1
        elif ch in "}]" and depth:
            depth -= 1
    if depth == 0 or start is None:
        return None
    decoder = json.JSONDecoder()
    members: dict = {}
    pos = start + 1
    ws = re.compile(r"[ \t\r\n]*")
    while True:
        pos = ws.match(text, pos).end()
        try:
            key, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            return members
        pos = ws.match(text, pos).end()
        if not isinstance(key, str) or text[pos : pos + 1] != ":":
            return members
        pos = ws.match(text, pos + 1).end()
        try:
            value, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError, OverflowError):
            if text[pos : pos + 1] == '"':  # cut inside this string: keep what came
                try:
                    partial = json.loads('"' + _without_cut_escape(text[pos + 1 :]) + '"')
                except ValueError:
                    return members
                if partial.strip():
                    members[key] = partial.rstrip() + CUT_MARK
            return members
        members[key] = value
        pos = ws.match(text, pos).end()
        if text[pos : pos + 1] != ",":
            return members
        pos += 1


def unswap(verdict: str) -> str:
    """A verdict given with the responses swapped, in canonical terms."""
    return {"a": "b", "b": "a"}.get(verdict, verdict)
