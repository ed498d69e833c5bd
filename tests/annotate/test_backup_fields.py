"""A backup keeps every column of a project's tables, or says why not (the list cannot fall behind)."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command

from annotate.models import Adjudication, Annotation, AnnotationReview, Project, Task
from annotate.services.backup import DUMPED, LEFT_OUT, TABLES_LEFT_OUT, project_dump, project_restore
from annotate.services.leasing import annotation_submit, task_claim_next
from annotate.services.projects import SETTINGS_FIELDS
from annotate.services.review import annotation_review, task_adjudicate
from tests.conftest import add_tasks

SETTINGS = {
    "task_order": "active",
    "target_agreement": 0.8,
    "max_labels_per_task": 7,
    "judge_pre_annotation": True,
    "judge_routing": True,
    "judge_audit_share": 0.0,
    "judge_min_strength": 1,
}


def _column(model, name: str) -> str:
    """The model field behind a dumped column (``labeler__username`` -> labeler, ``task_id`` -> task,
    ``target_id`` -> target_id, a text column of that name)."""
    name = name.split("__")[0]
    names = {f.name for f in model._meta.get_fields()}
    return name[:-3] if name.endswith("_id") and name not in names else name


def _fields(model) -> set[str]:
    """Its columns, and its many-to-many fields without a model of their own (a job's endpoints)."""
    m2m = {f.name for f in model._meta.many_to_many if f.remote_field.through._meta.auto_created}
    return {f.name for f in model._meta.concrete_fields} | m2m


@pytest.mark.parametrize("model", [m for _, m, _ in DUMPED], ids=lambda m: m.__name__)
def test_every_column_is_dumped_or_left_out_with_a_reason(model):
    columns = next(c for _, m, c in DUMPED if m is model)
    dumped = {_column(model, c) for c in columns}
    left_out = LEFT_OUT[model]
    fields = _fields(model)
    assert not dumped & set(left_out), "a column is both dumped and left out"
    assert fields - dumped - set(left_out) == set(), (
        f"{model.__name__}: add these columns to backup.DUMPED or backup.LEFT_OUT (with a reason)"
    )
    assert (dumped | set(left_out)) - fields == set(), "backup names columns the model does not have"
    assert all(reason.strip() for reason in left_out.values())


def test_project_record_holds_every_setting():
    project_columns = next(c for kind, _, c in DUMPED if kind == "project")
    assert set(SETTINGS_FIELDS) <= set(project_columns)


def test_every_table_that_refers_to_a_dumped_one_is_dumped_or_left_out():
    dumped = {m for _, m, _ in DUMPED}
    missing = []
    for model in apps.get_models():
        label = f"{model._meta.app_label}.{model.__name__}"
        if model in dumped or label in TABLES_LEFT_OUT:
            continue
        refers = [f.name for f in model._meta.concrete_fields if f.is_relation and f.related_model in dumped]
        if refers:
            missing.append((label, refers))
    assert missing == [], "add these tables to backup.DUMPED or backup.TABLES_LEFT_OUT (with a reason)"


@pytest.mark.django_db
def test_cli_restore_keeps_every_setting(make_project, tmp_path):
    project = make_project(name="Settings probe", **SETTINGS)
    add_tasks(project, prompts=2)
    path = tmp_path / "p.jsonl.gz"
    call_command("project_backup", "dump", project.slug, str(path))
    call_command("project_backup", "restore", str(path), "--slug", "copy")
    copy = Project.objects.get(slug="copy")
    for field in (*SETTINGS_FIELDS, "kind"):
        if field == "name":
            continue
        assert getattr(copy, field) == getattr(project, field), field
    assert copy.created_at == project.created_at


@pytest.mark.django_db
def test_pre_annotated_reviews_and_adjudications_come_back(make_project, labeler_in, make_user):
    project = make_project(overlap=1)
    add_tasks(project, prompts=3)
    boss = make_user("boss")
    anns = []
    for i in range(2):
        user = labeler_in(project, f"lab{i}")
        lease = task_claim_next(project=project, labeler=user)
        anns.append(annotation_submit(assignment_id=lease.pk, labeler=user, choice="left")[0])
    Annotation.objects.filter(pk=anns[0].pk).update(pre_annotated=True)
    annotation_review(actor=boss, project=project, annotation_id=anns[0].pk, verdict="rejected", reason="r")
    annotation_review(actor=boss, project=project, annotation_id=anns[1].pk, verdict="accepted")
    task = Task.objects.filter(project=project).order_by("id").last()
    task_adjudicate(actor=boss, project=project, task_id=task.pk, choice="b", strength=2, rationale="why")

    buf = io.BytesIO()
    counts = project_dump(project=project, out=buf)
    assert counts["review"] == 2 and counts["adjudication"] == 1
    records = [json.loads(line) for line in gzip.decompress(buf.getvalue()).splitlines()]
    assert sorted(r["data"]["pre_annotated"] for r in records if r["type"] == "annotation") == [False, True]

    copy, _ = project_restore(stream=io.BytesIO(buf.getvalue()), slug="copy2")
    by_user = {
        a.labeler.username: a for a in Annotation.objects.filter(task__project=copy).select_related("labeler")
    }
    assert by_user["lab0"].pre_annotated is True and by_user["lab1"].pre_annotated is False
    reviews = {
        r.annotation.labeler.username: (r.verdict, r.reason, r.reviewer.username)
        for r in AnnotationReview.objects.filter(annotation__task__project=copy)
    }
    assert reviews == {"lab0": ("rejected", "r", "boss"), "lab1": ("accepted", "", "boss")}
    adj = Adjudication.objects.get(task__project=copy)
    assert (adj.choice, adj.strength, adj.rationale, adj.adjudicator.username) == ("b", 2, "why", "boss")
    assert adj.task.prompt.external_id == task.prompt.external_id


@pytest.mark.django_db
def test_an_older_dump_without_the_new_columns_still_restores(make_project):
    project = make_project()
    add_tasks(project, prompts=1)
    buf = io.BytesIO()
    project_dump(project=project, out=buf)
    lines = []
    for line in gzip.decompress(buf.getvalue()).splitlines():
        record = json.loads(line)
        if record["type"] == "project":
            for key in [*SETTINGS, "created_by__username", "created_at"]:
                record["data"].pop(key)
        lines.append(json.dumps(record).encode())
    copy, _ = project_restore(stream=io.BytesIO(gzip.compress(b"\n".join(lines))), slug="old")
    assert (copy.judge_audit_share, copy.judge_min_strength) == (0.1, 2)


@pytest.mark.django_db
def test_a_project_with_generated_responses_restores(make_project):
    from annotate.models import Candidate
    from generation.models import GenerationJob

    project = make_project()
    add_tasks(project, prompts=2)
    job = GenerationJob.objects.create(project=project, k=2, state="running")
    Candidate.objects.filter(prompt__project=project).update(source="generated", generation_job=job)
    buf = io.BytesIO()
    project_dump(project=project, out=buf)
    copy, _ = project_restore(stream=io.BytesIO(buf.getvalue()), slug="gen-copy")
    assert Task.objects.filter(project=copy).count() == 2
    new_job = GenerationJob.objects.get(project=copy)
    assert new_job.state == "cancelled" and "does not resume" in new_job.error  # no worker runs it
    assert set(Candidate.objects.filter(prompt__project=copy).values_list("generation_job", "source")) == {
        (new_job.pk, "generated")
    }


@pytest.mark.django_db
def test_restore_names_the_copy(make_project, tmp_path):
    project = make_project(name="Helpfulness")
    add_tasks(project, prompts=1)
    path = tmp_path / "p.jsonl.gz"
    call_command("project_backup", "dump", project.slug, str(path))
    call_command("project_backup", "restore", str(path), "--slug", "copy-a")
    call_command("project_backup", "restore", str(path), "--slug", "copy-b")
    call_command("project_backup", "restore", str(path), "--slug", "copy-c", "--name", "Helpfulness v2")
    names = dict(Project.objects.values_list("slug", "name"))
    assert names["copy-a"] == "Helpfulness (restored copy)"
    assert names["copy-b"] == "Helpfulness (restored copy 2)"
    assert names["copy-c"] == "Helpfulness v2"
    assert len(set(names.values())) == len(names)
    # a name PostgreSQL cannot store is refused on SQLite too, naming --name
    with pytest.raises(CommandError, match=r"^--name: .*NUL"):
        call_command("project_backup", "restore", str(path), "--slug", "copy-d", "--name", "a\x00b")
    assert not Project.objects.filter(slug="copy-d").exists()


@pytest.mark.django_db
def test_restore_keeps_the_name_where_it_is_free(make_project):
    project = make_project(name="Only one")
    buf = io.BytesIO()
    project_dump(project=project, out=buf)
    project.delete()
    copy, _ = project_restore(stream=io.BytesIO(buf.getvalue()))
    assert copy.name == "Only one"
