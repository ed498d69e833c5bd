"""Position-swap consistency, strength and per-candidate scores, checked against a computation
written out in the test (already right when probed: kept as a check).

The fake judge gives each response its quality plus one point for being shown first (a position
bias), prefers the higher score, and answers the difference as the strength. Expected, per pair,
from the two orderings by hand: the verdict of the second ordering swapped back, consistency, the
weaker strength, and each candidate's mean score over both orderings."""

from __future__ import annotations

import json
import re

import pytest

from annotate.judges.services import judge_job_create, judge_job_run
from annotate.models import JudgeSuggestion
from annotate.services.projects import project_update_settings
from tests.annotate import judge_fakesrv as fakesrv
from tests.annotate.test_judges import make_pairs
from tests.annotate.test_judges_defects import make_judge

pytestmark = pytest.mark.django_db
SECTIONS = re.compile(r"\[Response A\]\n\n(.*?)\n\n\[Response B\]\n\n(.*?)\n\n\[Your JSON verdict\]", re.S)
QUALITY = re.compile(r"q=(\d)")
PAIRS = {"clear": ("r q=4", "r q=1"), "close": ("r q=2", "r q=3"), "equal": ("r q=3", "r q=3"),
         "mirror": ("r q=1", "r q=4")}  # fmt: skip


def biased_judge(content: str) -> str:
    a_text, b_text = SECTIONS.search(content).groups()
    a, b = int(QUALITY.search(a_text).group(1)) + 1, int(QUALITY.search(b_text).group(1))
    verdict = "A" if a > b else "B" if b > a else "tie"
    return json.dumps(
        {"verdict": verdict, "strength": min(abs(a - b), 3) or 1, "scores": {"h": {"A": a, "B": b}}}
    )


def expected(q0: int, q1: int) -> dict:
    first = (q0 + 1, q1)  # slot 0 shown as A
    swapped = (q1 + 1, q0)  # slot 1 shown as A
    v1 = "a" if first[0] > first[1] else "b" if first[1] > first[0] else "tie"
    v2_shown = "a" if swapped[0] > swapped[1] else "b" if swapped[1] > swapped[0] else "tie"
    v2 = {"a": "b", "b": "a"}.get(v2_shown, v2_shown)
    consistent = v1 == v2
    strengths = (min(abs(first[0] - first[1]), 3) or 1, min(abs(swapped[0] - swapped[1]), 3) or 1)
    return {
        "status": "ok" if consistent else "inconsistent",
        "choice": v1 if consistent else "",
        "strength": min(strengths) if consistent and v1 in ("a", "b") else None,
        "first": v1,
        "swapped": v2,
        "scores": ((first[0] + swapped[1]) / 2, (first[1] + swapped[0]) / 2),
    }


def test_swap_consistency_strength_and_scores_match_a_hand_computation(make_project, servers):
    project = make_project(dimensions=[{"key": "h", "label": "H"}])
    project_update_settings(project=project, judge_routing=False)
    tasks = make_pairs(project, PAIRS)
    url, _ = servers(default=fakesrv.answering(biased_judge))
    job = judge_job_run(job_id=judge_job_create(judge=make_judge(project, url)).pk, chunk=3)
    for name, (t0, t1) in PAIRS.items():
        want = expected(int(t0[-1]), int(t1[-1]))
        s = JudgeSuggestion.objects.get(job=job, task=tasks[name])
        c0, c1 = tasks[name].slots.order_by("slot").values_list("candidate_id", flat=True)
        got = (s.status, s.choice, s.strength, s.verdict_first, s.verdict_swapped)
        assert got == (want["status"], want["choice"], want["strength"], want["first"], want["swapped"]), name
        assert s.scores == {"h": {str(c0): want["scores"][0], str(c1): want["scores"][1]}}, name
    assert [expected(4, 1)["choice"], expected(2, 3)["status"], expected(1, 4)["choice"]] == [
        "a",
        "inconsistent",
        "b",
    ]
