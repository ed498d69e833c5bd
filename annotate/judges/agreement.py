"""Judge-human agreement for the agreement report: a judge is only as trusted as this figure.

On the tasks that have both a consistent judge verdict and human labels (``counted_judgments``:
AI judges' own annotations are never counted as human, judgments rejected in review not at all),
per active judge:

* ``vs_majority``: the share of tasks where the judge's verdict equals the humans' unique majority
  (tasks without one do not count);
* ``vs_labelers``: per labeler, the share of shared tasks where they agree;
* ``by_dimension``: the same against the human majority of the per-dimension preference (higher
  score wins, equal scores tie), where the judge gave scores;

beside ``human_vs_majority``: each human label against the unique majority of the *other* humans
on the same task (the human-human figure to compare with). Every figure comes with a seeded
percentile bootstrap 95 % interval over tasks (labels for the human figure). Position-inconsistent,
unparseable or failed verdicts are counted as ``uncertain``, never as disagreement. A judge's
verdict on a task is the one routing reads (``selectors.newest_answers``: its newest answer; a
later failure, a re-run while its server was down, leaves that answer standing).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
from django.contrib.auth import get_user_model

from annotate.judges import selectors
from annotate.models import Judge, JudgeSuggestion, Project
from annotate.models_judges import SuggestionStatus
from annotate.selectors import counted_judgments, task_slot_candidate_ids

BOOTSTRAP = 200


def _ci(hits: list[int] | np.ndarray, *, bootstrap: int, rng: np.random.Generator) -> dict:
    hits = np.asarray(hits, dtype=float)
    n = len(hits)
    if n == 0:
        return {"n": 0, "agreement": None, "low": None, "high": None}
    out = {"n": n, "agreement": round(float(hits.mean()), 4), "low": None, "high": None}
    if bootstrap > 0 and n > 1:
        means = hits[rng.integers(0, n, size=(bootstrap, n))].mean(axis=1)
        out["low"], out["high"] = (round(float(x), 4) for x in np.percentile(means, [2.5, 97.5]))
    return out


def _unique_mode(values: list) -> object | None:
    top = Counter(values).most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def _dim_pref(scores: dict, slots: tuple[int, int]) -> str | None:
    """a / b / tie from ``{candidate_id: score}`` (string or int keys)."""
    if not isinstance(scores, dict):
        return None
    a = scores.get(str(slots[0]), scores.get(slots[0]))
    b = scores.get(str(slots[1]), scores.get(slots[1]))
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return None
    return "a" if a > b else "b" if b > a else "tie"


def judge_agreement(project: Project, *, bootstrap: int = BOOTSTRAP, seed: int = 0) -> dict:
    """The report's ``judges`` block (see the module docstring)."""
    rng = np.random.default_rng(seed)
    judges = list(Judge.objects.filter(project=project, is_active=True).select_related("endpoint"))
    humans: dict[int, dict[int, str]] = defaultdict(dict)  # task -> labeler -> choice
    human_ratings: dict[int, dict[int, dict]] = defaultdict(dict)  # task -> labeler -> ratings
    # people's judgments not rejected in review, as the rest of the report counts them
    rows = counted_judgments(project=project).filter(choice__isnull=False, flagged=False)
    rows = rows.values_list("task_id", "labeler_id", "choice", "ratings")
    for task_id, labeler_id, choice, ratings in rows.iterator(chunk_size=5000):
        humans[task_id][labeler_id] = choice
        if ratings:
            human_ratings[task_id][labeler_id] = ratings

    # human-human: each label against the others' unique majority on the same task
    loo = []
    for per in humans.values():
        if len(per) < 2:
            continue
        for labeler, choice in per.items():
            mode = _unique_mode([c for lid, c in per.items() if lid != labeler])
            if mode is not None:
                loo.append(int(mode == choice))
    out = {
        "bootstrap": bootstrap,
        "human_vs_majority": _ci(loo, bootstrap=bootstrap, rng=rng),
        "judges": [],
    }
    if not judges:
        return out
    dim_keys = list(project.dimensions.values_list("key", flat=True))
    task_ids = list(humans)
    slots = task_slot_candidate_ids(task_id__in=task_ids)
    names = dict(
        get_user_model()
        .objects.filter(pk__in={lid for per in humans.values() for lid in per})
        .values_list("pk", "username")
    )
    # each judge's answer that routing reads (``newest_answers``: a later failure leaves it standing)
    latest = selectors.newest_answers(
        JudgeSuggestion.objects.filter(judge__in=judges, task_id__in=task_ids)
        .only("judge_id", "task_id", "job_id", "status", "choice", "scores")
        .order_by("task_id", "judge_id", "-job_id")
    )

    for judge in judges:
        mine = {t: per[judge.pk] for t, per in latest.items() if judge.pk in per}
        ok = {t: s for t, s in mine.items() if s.status == SuggestionStatus.OK}
        vs_major, per_labeler = [], defaultdict(list)
        per_dim = defaultdict(list)
        for task_id, s in sorted(ok.items()):
            per = humans[task_id]
            mode = _unique_mode(list(per.values()))
            if mode is not None:
                vs_major.append(int(s.choice == mode))
            for labeler, choice in per.items():
                per_labeler[labeler].append(int(s.choice == choice))
            pair = slots.get(task_id, [])
            if len(pair) != 2:
                continue
            for key in dim_keys:
                judge_pref = _dim_pref((s.scores or {}).get(key), tuple(pair))
                if judge_pref is None:
                    continue
                prefs = [
                    p
                    for p in (
                        _dim_pref((r or {}).get(key), tuple(pair)) for r in human_ratings[task_id].values()
                    )
                    if p is not None
                ]
                human_mode = _unique_mode(prefs)
                if human_mode is not None:
                    per_dim[key].append(int(judge_pref == human_mode))
        out["judges"].append(
            {
                "judge": judge.name,
                "model": judge.endpoint.model,
                "labeler_id": judge.user_id,
                "tasks_with_humans": len(mine),
                "consistent": len(ok),
                "uncertain": len(mine) - len(ok),
                "vs_majority": _ci(vs_major, bootstrap=bootstrap, rng=rng),
                "vs_labelers": [
                    {
                        "labeler_id": lid,
                        "username": names.get(lid, str(lid)),
                        **_ci(hits, bootstrap=bootstrap, rng=rng),
                    }
                    for lid, hits in sorted(per_labeler.items())
                ],
                "by_dimension": [
                    {"key": key, **_ci(per_dim[key], bootstrap=bootstrap, rng=rng)}
                    for key in dim_keys
                    if per_dim[key]
                ],
            }
        )
    return out
