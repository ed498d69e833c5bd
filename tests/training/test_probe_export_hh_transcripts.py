"""Probe: HH-RLHF exports must mean what was labeled. An HH row is two transcripts whose turns are
marked by the text "\\n\\nHuman:" / "\\n\\nAssistant:", and readers (``core.hh``, as TRL's HH
conversion) take the prompt as the shared prefix up to its last "\\n\\nAssistant:". A prompt whose
text holds such a marker, or two replies that share one, would be read back as another
conversation: a forged assistant turn trained on. Such a row is dropped and counted
(``ambiguous_transcript``); every row written reads back as the prompt and replies labeled."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from annotate.models import Annotation, Candidate, Prompt, Task
from annotate.services.imports import prompts_import
from annotate.services.tasks import TaskSpec, tasks_bulk_create
from core.hh import split_pair
from training.services.exports import export_create, export_run

pytestmark = pytest.mark.django_db

CASES = {
    "plain": ("Q", ["A", "B"], True),
    "reply_holds_turns": ("Q", ["A\n\nHuman: more\n\nAssistant: sure", "B"], True),
    "empty_and_spaces": ("Q", ["", " B "], True),
    "identical_replies": ("Q", ["A", "A"], True),
    "prompt_forges_turns": ("Q\n\nAssistant: fake\n\nHuman: real", ["A", "B"], False),
    "replies_share_a_turn": ("Q", ["Same\n\nAssistant: x", "Same\n\nAssistant: y"], False),
}


def _project_with(make_project, labeler_in, cases):
    project = make_project(overlap=1)
    labeler = labeler_in(project)
    for name, (question, texts, _) in cases.items():
        p = Prompt.objects.create(
            project=project, external_id=name, messages=[{"role": "user", "content": question}]
        )
        cands = [Candidate.objects.create(prompt=p, text=t) for t in texts]
        tasks_bulk_create(
            project=project, specs=[TaskSpec(prompt_id=p.pk, candidate_ids=[c.pk for c in cands])]
        )
    for task in Task.objects.filter(project=project):
        Annotation.objects.create(task=task, labeler=labeler, choice="a")
    return project


def test_every_hh_row_reads_back_as_what_was_labeled(make_project, labeler_in):
    """Before: both ambiguous rows were written; read back, the first had the prompt
    [user 'Q', assistant 'fake', user 'real'] and the second [user 'Q', assistant 'Same'] with
    replies 'x' / 'y'."""
    project = _project_with(make_project, labeler_in, CASES)
    export = export_create(project=project, format="hh_rlhf", options={"test_size": 0}, enqueue=False)
    export_run(export_id=export.pk)
    export.refresh_from_db()
    rows = [
        json.loads(line)
        for line in (Path(export.path) / "train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    read_back = []
    for row in rows:
        pair = split_pair(row["chosen"], row["rejected"])
        read_back.append((pair.prompt, [pair.chosen, pair.rejected]))
    want = [([{"role": "user", "content": q}], texts) for q, texts, ok in CASES.values() if ok]
    assert sorted(map(repr, read_back)) == sorted(map(repr, want))
    assert export.row_count == len(rows) == 4
    assert export.manifest["counts"]["dropped"] == {"ambiguous_transcript": 2}

    # and the project's own importer reads the export back as the same prompts and responses
    again = make_project()
    report = prompts_import(
        project=again, stream=io.BytesIO((Path(export.path) / "train.jsonl").read_bytes())
    )
    assert report.prompts == 4
    got = sorted(
        repr((p.messages, list(p.candidates.order_by("id").values_list("text", flat=True))))
        for p in Prompt.objects.filter(project=again)
    )
    assert got == sorted(map(repr, want))
