"""Probe of exports of a ranking project: rankings with tied groups, a ranking that is all one
group, a flagged one and one by a deactivated labeler, in every pair format and file type and with
every pairing, against an independent recomputation of the pairs written here."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from annotate.models import Annotation, Candidate, Prompt, Task, TaskCandidate, TaskKind
from annotate.services.projects import membership_deactivate
from annotate.services.tasks import TaskSpec, tasks_bulk_create
from training.services.exports import export_create, export_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def ranked(make_project, labeler_in):
    project = make_project(name="Probe ranking", kind=TaskKind.RANKING, overlap=3, ranking_k=3)
    specs = []
    for i in range(2):
        p = Prompt.objects.create(
            project=project, external_id=f"r{i}", messages=[{"role": "user", "content": f"Q{i} \u2028"}]
        )
        cs = [Candidate.objects.create(prompt=p, text=f"{i}-{j} \x1f\u00e9") for j in range(3)]
        specs.append(TaskSpec(prompt_id=p.pk, candidate_ids=[c.pk for c in cs]))
    tasks_bulk_create(project=project, specs=specs)
    t1, t2 = Task.objects.filter(project=project).order_by("id")
    s1, s2 = (list(TaskCandidate.objects.filter(task=t).order_by("slot").values_list("candidate_id", flat=True)) for t in (t1, t2))  # fmt: skip
    u1, u2, u3 = (labeler_in(project, f"rk{i}") for i in (1, 2, 3))
    Annotation.objects.create(task=t1, labeler=u1, ranking=[[s1[2]], [s1[0], s1[1]]])
    Annotation.objects.create(task=t1, labeler=u2, ranking=[[s1[0]], [s1[1]], [s1[2]]])
    Annotation.objects.create(task=t1, labeler=u3, ranking=[[s1[0], s1[1], s1[2]]])  # all tied: no pair
    Annotation.objects.create(
        task=t2, labeler=u1, ranking=[[s2[1]], [s2[2]], [s2[0]]], flagged=True, flag_reason="x"
    )
    Annotation.objects.create(task=t2, labeler=u3, ranking=[[s2[1], s2[2]], [s2[0]]])
    membership_deactivate(project=project, user=u3)
    return project


def _pairs(groups, pairing):
    if pairing == "best_vs_rest":
        return [(x, y) for g in groups[1:] for x in groups[0] for y in g]
    if pairing == "adjacent":
        return [(x, y) for i in range(len(groups) - 1) for x in groups[i] for y in groups[i + 1]]
    return [
        (x, y)
        for i in range(len(groups))
        for j in range(i + 1, len(groups))
        for x in groups[i]
        for y in groups[j]
    ]


def _expected(project, fmt, pairing):
    rows, dropped, kto_seen = [], {}, set()  # KTO: one row per (candidate, label) per task
    for a in Annotation.objects.filter(task__project=project).order_by("task_id", "labeler_id"):
        if a.flagged:
            dropped["flagged"] = dropped.get("flagged", 0) + 1
            continue
        pairs = _pairs(a.ranking, pairing)
        if not pairs:
            dropped["no_pairs"] = dropped.get("no_pairs", 0) + 1
            continue
        texts = dict(Candidate.objects.filter(prompt=a.task.prompt).values_list("pk", "text"))
        prompt = a.task.prompt.messages[0]["content"]
        if fmt == "trl":
            rows += [
                {"prompt": prompt, "chosen": texts[w], "rejected": texts[lo], "margin": 0.0}
                for w, lo in pairs
            ]
        elif fmt == "trl_unpaired":
            for w, lo in pairs:
                for cid, label in ((w, True), (lo, False)):
                    if (a.task_id, cid, label) not in kto_seen:
                        kto_seen.add((a.task_id, cid, label))
                        rows.append({"prompt": prompt, "completion": texts[cid], "label": label})
        elif fmt == "hh_rlhf":
            head = f"\n\nHuman: {prompt}\n\nAssistant: "
            rows += [{"chosen": head + texts[w], "rejected": head + texts[lo]} for w, lo in pairs]
    return rows, dropped


def _read(export):
    path = Path(export.path) / f"train.{export.file_type}"
    if export.file_type == "parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_bytes().decode("utf-8").split("\n")[:-1]]


def _canon(rows):
    return sorted(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in rows)


@pytest.mark.parametrize("file_type", ["jsonl", "parquet"])
@pytest.mark.parametrize("pairing", ["all_pairs", "best_vs_rest", "adjacent"])
@pytest.mark.parametrize("fmt", ["trl", "trl_unpaired", "hh_rlhf"])
def test_ranking_pairs_are_the_recomputed_ones(ranked, fmt, pairing, file_type):
    export = export_create(
        project=ranked,
        format=fmt,
        file_type=file_type,
        options={"test_size": 0, "pairing": pairing},
        enqueue=False,
    )
    export_run(export_id=export.pk)
    export.refresh_from_db()
    rows = _read(export)
    want, dropped = _expected(ranked, fmt, pairing)
    assert _canon(rows) == _canon(want)
    assert export.row_count == len(rows) == export.manifest["counts"]["rows"]
    assert export.manifest["counts"]["dropped"] == dropped
    assert export.manifest["counts"]["annotations_read"] == 5
