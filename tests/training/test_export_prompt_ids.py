"""Every prompt of an export has its own prompt_id. A prompt imported without an id is exported as
``prompt-<its database id>``; another prompt imported with exactly that text as its id (a
re-import of an older export, say) made two prompts share one prompt_id (and one split draw)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotate.models import Annotation, Prompt
from tests.conftest import add_tasks
from training.services.exports import export_create, export_run

pytestmark = pytest.mark.django_db


def test_a_prompt_without_an_id_never_takes_another_prompts_id(make_project, labeler_in):
    project = make_project()
    tasks = add_tasks(project, prompts=3)
    nameless, named, third = Prompt.objects.filter(project=project).order_by("pk")
    Prompt.objects.filter(pk=nameless.pk).update(external_id="")
    Prompt.objects.filter(pk=named.pk).update(external_id=f"prompt-{nameless.pk}")
    Prompt.objects.filter(pk=third.pk).update(external_id=f"prompt-{nameless.pk}-internal")
    labeler = labeler_in(project)
    Annotation.objects.bulk_create(Annotation(task=t, labeler=labeler, choice="a") for t in tasks)

    export = export_create(
        project=project, format="raw", file_type="jsonl", options={"test_size": 0}, enqueue=False
    )
    export = export_run(export_id=export.pk)
    rows = [json.loads(line) for line in (Path(export.path) / "train.jsonl").read_text().splitlines()]

    by_task = {r["task_id"]: r["prompt_id"] for r in rows}
    ids = {t.prompt_id: by_task[t.pk] for t in tasks}
    assert ids[named.pk] == f"prompt-{nameless.pk}"  # an imported id is kept as it is
    assert ids[third.pk] == f"prompt-{nameless.pk}-internal"
    assert len(set(ids.values())) == 3  # the nameless one gets a name nobody has
    assert ids[nameless.pk].startswith(f"prompt-{nameless.pk}")
