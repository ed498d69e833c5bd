"""Dump a project and restore it: the same labels, guidelines and provenance come back."""

from __future__ import annotations

import datetime
import gzip
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.errors import Conflict, InvalidInput
from annotate.models import Adjudication, Annotation, AnnotationReview, Guideline, Project, Task
from annotate.services.backup import project_dump, project_restore
from annotate.services.guidelines import guideline_acknowledge, guideline_publish
from annotate.services.leasing import annotation_submit, assignment_skip, task_claim_next
from annotate.services.review import annotation_review, task_adjudicate
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _canonical(project):
    """Everything that matters, with ids replaced by content."""
    rows = []
    for a in Annotation.objects.filter(task__project=project).select_related(
        "task__prompt", "labeler", "guideline"
    ):
        slots = [tc.candidate.text for tc in a.task.slots.select_related("candidate").order_by("slot")]
        texts = {tc.candidate_id: tc.candidate.text for tc in a.task.slots.select_related("candidate")}
        rows.append(
            (
                a.task.prompt.messages[0]["content"],
                tuple(slots),
                a.labeler.username,
                a.choice,
                a.strength,
                tuple(texts[c] for c in a.shown_order),
                tuple(sorted((d, texts[int(c)], s) for d, row in a.ratings.items() for c, s in row.items())),
                a.guideline.version if a.guideline else None,
                a.created_at.isoformat(),
            )
        )
    return sorted(rows, key=repr)


def test_dump_and_restore_round_trip(make_project, labeler_in, make_user):
    project = make_project(overlap=2, dimensions=["Helpfulness"])
    add_tasks(project, prompts=4)
    g = guideline_publish(project=project, actor=make_user("boss"), body="Be <b>kind</b>.")
    labelers = [labeler_in(project, f"lab{i}") for i in range(2)]
    for user in labelers:
        guideline_acknowledge(guideline=g, user=user)
        for n in range(3):
            lease = task_claim_next(project=project, labeler=user)
            if n == 2:
                assignment_skip(assignment_id=lease.pk, labeler=user, reason="unsure")
                continue
            c0, c1 = lease.shown_order
            annotation_submit(
                assignment_id=lease.pk, labeler=user, choice="left", strength=3,
                ratings={"helpfulness": {str(c0): 5, str(c1): 2}},
            )  # fmt: skip
    before = _canonical(project)
    buf = io.BytesIO()
    counts = project_dump(project=project, out=buf)
    assert counts["annotation"] == 4 and counts["guideline"] == 1

    with pytest.raises(Conflict):
        project_restore(stream=io.BytesIO(buf.getvalue()))
    restored, _ = project_restore(stream=io.BytesIO(buf.getvalue()), slug="restored")
    assert restored.pk != project.pk
    assert _canonical(restored) == before
    assert Guideline.objects.get(project=restored).body == "Be <b>kind</b>."
    # live leases are not restored; the four submissions are
    assert sum(Task.objects.filter(project=restored).values_list("claims", flat=True)) == 4


def test_a_bad_dump_restores_nothing(make_project):
    project = make_project()
    add_tasks(project, prompts=2)
    buf = io.BytesIO()
    project_dump(project=project, out=buf)
    lines = gzip.decompress(buf.getvalue()).splitlines()
    broken = gzip.compress(b"\n".join([*lines[:-1], b'{"type": "task", "data": {"id": 1}}']) + b"\n")
    n_projects = Project.objects.count()
    with pytest.raises(InvalidInput, match="line"):
        project_restore(stream=io.BytesIO(broken), slug="broken")
    assert Project.objects.count() == n_projects


def test_cli_dump_restore(make_project, tmp_path):
    project = make_project()
    add_tasks(project, prompts=3)
    path = tmp_path / "p.jsonl.gz"
    call_command("project_backup", "dump", project.slug, str(path))
    call_command("project_backup", "restore", str(path), "--slug", "copy")
    assert Task.objects.filter(project__slug="copy").count() == 3
    with pytest.raises(CommandError, match="already exists"):
        call_command("project_backup", "restore", str(path), "--slug", "copy")


# --- judges, endpoints, job endpoints, creation times and the audit log --------------------------
# Before, a dump held none of these: a restored project had no judges, no endpoints of its own,
# jobs that had forgotten their endpoints, prompts/candidates/tasks/reviews made at the time of the
# restore, and an empty audit log.

PAST = datetime.datetime(2021, 3, 4, 5, 6, 7, 890123, tzinfo=datetime.UTC)


def _records(data: bytes) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(data).splitlines()]


def _dump(project) -> bytes:
    buf = io.BytesIO()
    project_dump(project=project, out=buf)
    return buf.getvalue()


def _edited(data: bytes, edit) -> bytes:
    """The dump with ``edit(record)`` applied to each record (None drops it)."""
    out = [r for r in (edit(r) for r in _records(data)) if r is not None]
    return gzip.compress(b"\n".join(json.dumps(r).encode() for r in out) + b"\n")


def _line_of(data: bytes, kind: str) -> int:
    return next(n for n, r in enumerate(_records(data), start=1) if r["type"] == kind)


def _endpoints(project, boss):
    from generation.services import endpoint_create

    own = endpoint_create(
        name="own-ep", backend="transformers", model="tiny", config={"device": "cpu", "batch_size": 4},
        default_sampling={"temperature": 0.7}, project=project, actor=boss,
    )  # fmt: skip
    shared = endpoint_create(name="shared-ep", backend="transformers", model="tiny", actor=boss)
    return own, shared


def _generated(project, own, shared):
    """A finished generation job of both endpoints, every candidate of the project written by ``own``."""
    from annotate.models import Candidate
    from generation.models import GenerationJob

    job = GenerationJob.objects.create(project=project, k=1, state="done")
    job.endpoints.set([own, shared])
    Candidate.objects.filter(prompt__project=project).update(
        source="generated", generation_job=job, endpoint=own
    )
    return job


def _labelled_reviewed_and_adjudicated(project, boss, user) -> None:
    """``user`` labels a task; ``boss`` accepts the label and adjudicates the task."""
    lease = task_claim_next(project=project, labeler=user)
    ann = annotation_submit(assignment_id=lease.pk, labeler=user, choice="left")[0]
    annotation_review(actor=boss, project=project, annotation_id=ann.pk, verdict="accepted")
    task_adjudicate(actor=boss, project=project, task_id=ann.task_id, choice="a", strength=1)


def _project_with_every_record(make_project, make_user, labeler_in):
    """A project with a record of every kind a dump writes: tasks, its own endpoint (and a shared
    one), a judge, a generation job (``_generated``), a label reviewed and adjudicated, the log."""
    from annotate.judges.services import judge_create

    boss = make_user("boss")
    project = make_project(actor=boss)
    add_tasks(project, prompts=2)
    own, shared = _endpoints(project, boss)
    judge_create(project=project, name="j", endpoint=shared, actor=boss)
    _generated(project, own, shared)
    _labelled_reviewed_and_adjudicated(project, boss, labeler_in(project, "lab"))
    return project


def test_judges_and_the_project_s_endpoints_come_back(make_project, make_user):
    from annotate.judges.services import judge_create, judge_set_active
    from annotate.models import AnnotationSource, Judge
    from generation.models import ModelEndpoint

    boss = make_user("boss")
    project = make_project()
    add_tasks(project, prompts=2)
    own, shared = _endpoints(project, boss)
    j1 = judge_create(
        project=project, name="Judge One", endpoint=own, sampling={"temperature": 0.2},
        price_prompt_per_1k="0.5", price_completion_per_1k="1.25", actor=boss,
    )  # fmt: skip
    j2 = judge_create(project=project, name="other", endpoint=shared, actor=boss)
    j2, _ = judge_set_active(judge=j2, active=False, actor=boss)
    task = Task.objects.filter(project=project).first()
    Annotation.objects.create(
        task=task, labeler=j1.user, source=AnnotationSource.JUDGE, choice="a", strength=2
    )

    copy, counts = project_restore(stream=io.BytesIO(_dump(project)), slug="copy")
    assert counts["endpoint"] == 1 and counts["judge"] == 2
    new_own = ModelEndpoint.objects.get(project=copy)
    assert new_own.pk != own.pk and new_own.name != own.name  # names are server-wide: the copy's is free
    assert new_own.name.startswith("own-ep")
    for field in ("backend", "model", "config", "default_sampling", "is_active", "created_by", "created_at"):
        assert getattr(new_own, field) == getattr(own, field), field
    judges = {j.name: j for j in Judge.objects.filter(project=copy).select_related("user")}
    assert set(judges) == {"judge-one", "other"}
    one, other = judges["judge-one"], judges["other"]
    assert one.endpoint_id == new_own.pk and other.endpoint_id == shared.pk  # shared: matched by name
    for field in ("sampling", "price_prompt_per_1k", "price_completion_per_1k", "is_active", "created_by",
                  "created_at"):  # fmt: skip
        assert getattr(one, field) == getattr(j1, field), field
        assert getattr(other, field) == getattr(j2, field), field
    # each restored judge labels as an account of its own, which cannot sign in
    assert one.user_id not in (j1.user_id, j2.user_id) and other.user_id != one.user_id
    assert one.user.username == f"judge.{copy.pk}.judge-one"
    assert not one.user.is_active and not one.user.has_usable_password()
    judge_label = Annotation.objects.get(task__project=copy, source=AnnotationSource.JUDGE)
    assert judge_label.labeler_id == one.user_id


def test_a_generation_job_keeps_its_endpoints(make_project, make_user):
    from annotate.models import Candidate
    from generation.models import GenerationJob, ModelEndpoint

    boss = make_user("boss")
    project = make_project()
    add_tasks(project, prompts=2)
    own, shared = _endpoints(project, boss)
    _generated(project, own, shared)
    records = _records(_dump(project))
    assert next(r for r in records if r["type"] == "generation_job")["data"]["endpoints"] == [
        "own-ep",
        "shared-ep",
    ]

    copy, _ = project_restore(stream=io.BytesIO(_dump(project)), slug="copy")
    new_own = ModelEndpoint.objects.get(project=copy)
    new_job = GenerationJob.objects.get(project=copy)
    assert set(new_job.endpoints.all()) == {new_own, shared}
    assert set(Candidate.objects.filter(prompt__project=copy).values_list("endpoint", flat=True)) == {
        new_own.pk
    }


def test_prompts_candidates_tasks_reviews_and_adjudications_keep_their_creation_times(
    make_project, labeler_in, make_user
):
    from annotate.models import Candidate, Prompt

    project = make_project()
    add_tasks(project, prompts=2)
    boss = make_user("boss")
    _labelled_reviewed_and_adjudicated(project, boss, labeler_in(project, "lab"))
    tables = [
        (Prompt, Prompt.objects.filter(project=project), ("created_at",)),
        (Candidate, Candidate.objects.filter(prompt__project=project), ("created_at",)),
        (Task, Task.objects.filter(project=project), ("created_at",)),
        (AnnotationReview, AnnotationReview.objects.filter(annotation__task__project=project),
         ("created_at", "updated_at")),
        (Adjudication, Adjudication.objects.filter(task__project=project), ("created_at", "updated_at")),
    ]  # fmt: skip
    for n, (_model, qs, fields) in enumerate(tables):
        qs.update(**dict.fromkeys(fields, PAST + datetime.timedelta(days=n)))

    copy, _ = project_restore(stream=io.BytesIO(_dump(project)), slug="copy")
    restored = {
        Prompt: Prompt.objects.filter(project=copy),
        Candidate: Candidate.objects.filter(prompt__project=copy),
        Task: Task.objects.filter(project=copy),
        AnnotationReview: AnnotationReview.objects.filter(annotation__task__project=copy),
        Adjudication: Adjudication.objects.filter(task__project=copy),
    }
    for n, (model, _qs, fields) in enumerate(tables):
        assert restored[model].exists(), model.__name__
        for field in fields:
            assert set(restored[model].values_list(field, flat=True)) == {
                PAST + datetime.timedelta(days=n)
            }, (
                model.__name__,
                field,
            )


def _log(project) -> list[tuple]:
    from annotate.models import AuditEvent

    return [
        (e.actor.username if e.actor else None, e.action, e.target_type, e.target_id, e.details, e.created_at)
        for e in AuditEvent.objects.filter(project=project)
        .select_related("actor")
        .order_by("created_at", "id")
    ]


def test_the_audit_log_comes_back_as_it_was_and_the_restore_is_recorded(make_project, make_user):
    from annotate.models import AuditEvent
    from annotate.services.guidelines import guideline_publish
    from annotate.services.manage import project_settings_change

    boss = make_user("boss")
    project = make_project(actor=boss)
    guideline_publish(project=project, actor=boss, body="v1")
    project_settings_change(project=project, actor=boss, values={"overlap": 3})
    guideline_publish(project=project, actor=make_user("editor"), body="v2")
    before = _log(project)
    assert len(before) >= 4 and before[0][1] == "project.create"
    data = _dump(project)
    assert [r["data"]["action"] for r in _records(data) if r["type"] == "audit_event"] == [
        e[1] for e in before
    ]

    copy, counts = project_restore(stream=io.BytesIO(data), slug="copy")
    assert counts["audit_event"] == len(before)
    after = _log(copy)
    assert after[: len(before)] == before  # actor, action, target, details and time, in order
    # ... then the restore's own event, now, by nobody (the command line)
    actor, action, target_type, target_id, details, when = after[len(before)]
    assert (actor, action, target_type, target_id) == (
        None,
        "project.restore",
        "annotate.project",
        str(copy.pk),
    )
    assert details["from_slug"] == project.slug and details["audit_events"] == len(before)
    assert when > before[-1][5] and len(after) == len(before) + 1
    assert _log(project) == before  # the original's log is untouched
    ids = list(AuditEvent.objects.filter(project=copy).order_by("created_at").values_list("id", flat=True))
    assert ids == sorted(ids)  # inserted in their order


def test_a_dump_holds_no_secret(make_project, make_user, settings, monkeypatch):
    from annotate.services.tokens import token_create
    from generation.models import ModelEndpoint
    from generation.services import endpoint_create

    settings.PREFHUB_ALLOWED_MODEL_HOSTS = ["model-box.example"]
    monkeypatch.setenv("PREFHUB_KEY_BOX", "sk-live-the-key-itself")
    boss = make_user("boss")
    project = make_project(actor=boss)
    endpoint_create(
        name="box", backend="openai", model="served",
        config={"base_url": "https://model-box.example/v1?api-version=2024-06&api_key=sk-in-the-url",
                "api_key_env": "PREFHUB_KEY_BOX", "concurrency": 4},
        project=project, actor=boss,
    )  # fmt: skip
    token, secret = token_create(user=boss, name="ci")
    data = gzip.decompress(_dump(project)).decode()
    for value in ("sk-live-the-key-itself", "sk-in-the-url", secret, token.digest):
        assert value not in data
    assert "PREFHUB_KEY_BOX" in data and "api-version=2024-06" in data  # the NAME of the key's variable

    copy, _ = project_restore(stream=io.BytesIO(_dump(project)), slug="copy")
    config = ModelEndpoint.objects.get(project=copy).config
    assert config == {
        "base_url": "https://model-box.example/v1?api-version=2024-06", "api_key_env": "PREFHUB_KEY_BOX",
        "concurrency": 4,
    }  # fmt: skip


NEW_RECORDS = {"endpoint", "judge", "audit_event", "end"}
NEW_COLUMNS = {
    "header": ["ends_with"],
    "prompt": ["created_at"],
    "candidate": ["created_at", "endpoint__name"],
    "task": ["created_at"],
    "review": ["created_at", "updated_at"],
    "adjudication": ["created_at", "updated_at"],
    "generation_job": ["endpoints"],
}


def test_an_older_dump_without_judges_endpoints_times_or_log_still_restores(
    make_project, make_user, labeler_in
):
    from annotate.models import Judge
    from generation.models import GenerationJob

    project = _project_with_every_record(make_project, make_user, labeler_in)

    def old(record):
        if record["type"] in NEW_RECORDS:
            return None
        for column in NEW_COLUMNS.get(record["type"], ()):
            record["data"].pop(column)
        return record

    copy, counts = project_restore(stream=io.BytesIO(_edited(_dump(project), old)), slug="old")
    assert not NEW_RECORDS & set(counts)
    assert Task.objects.filter(project=copy).count() == 2 and not Judge.objects.filter(project=copy).exists()
    assert GenerationJob.objects.get(project=copy).endpoints.count() == 0
    assert AnnotationReview.objects.filter(annotation__task__project=copy).count() == 1
    assert [e[1] for e in _log(copy)] == ["project.restore"]


def _bad(kind: str, change: dict):
    def edit(record):
        if record["type"] == kind:
            record["data"].update(change)
        return record

    return edit


BAD_NEW_RECORDS = [
    ("judge", {"temperature": 0.3}, "unknown field"),
    ("judge", {"sampling": "hot"}, "record's sampling: Sampling must be a JSON object"),
    ("judge", {"sampling": {"temprature": 0.3}}, "Unknown sampling parameter"),
    ("judge", {"price_prompt_per_1k": "cheap"}, "price_prompt_per_1k"),
    ("judge", {"name": "Not A Slug"}, "record's name: 'Not A Slug' is not a name"),
    ("judge", {"endpoint__name": "nowhere"}, "'nowhere'"),
    ("generation_job", {"endpoints": ["shared-ep", "nowhere"]}, "'nowhere'"),
    ("generation_job", {"endpoints": "shared-ep"}, "record's endpoints: must be a list"),
    ("candidate", {"endpoint__name": "nowhere"}, "'nowhere'"),
    ("endpoint", {"backend": "bogus"}, "backend"),
    ("endpoint", {"config": {"device": "toaster"}}, "device"),
    ("endpoint", {"api_key": "sk-x"}, "unknown field"),
    ("prompt", {"created_at": "garbage"}, "created_at"),
    ("candidate", {"created_at": "garbage"}, "created_at"),
    ("task", {"created_at": "garbage"}, "created_at"),
    ("review", {"created_at": "garbage"}, "created_at"),
    ("audit_event", {"created_at": "garbage"}, "created_at"),
    ("audit_event", {"created_at": None}, "created_at"),
    ("audit_event", {"details": ["not", "an", "object"]}, "record's details: must be a JSON object"),
    ("audit_event", {"action": ""}, "record's action: must be text"),
    ("audit_event", {"forged": True}, "unknown field"),
    ("audit_event", {"details": {"note": "a\x00b"}}, "details.note contains a NUL"),
]


@pytest.mark.parametrize(("kind", "change", "message"), BAD_NEW_RECORDS, ids=lambda v: str(v)[:30])
def test_bad_new_records_are_refused_with_their_line_restoring_nothing(
    make_project, make_user, labeler_in, kind, change, message
):
    from django.contrib.auth import get_user_model

    from annotate.models import AuditEvent, Judge
    from generation.models import ModelEndpoint

    project = _project_with_every_record(make_project, make_user, labeler_in)
    data = _edited(_dump(project), _bad(kind, change))
    line = _line_of(data, kind)
    counts = [m.objects.count() for m in (Project, ModelEndpoint, Judge, AuditEvent, get_user_model(), Task)]
    with pytest.raises(InvalidInput) as err:
        project_restore(stream=io.BytesIO(data), slug="copy")
    assert err.value.message.startswith(f"line {line}: "), err.value.message
    assert message in err.value.message
    assert [
        m.objects.count() for m in (Project, ModelEndpoint, Judge, AuditEvent, get_user_model(), Task)
    ] == counts


def test_a_copied_log_stays_append_only_and_cannot_be_back_dated_into(make_project, make_user):
    from annotate.models import AuditEvent, AuditEventImmutable
    from core.audit import audit_log_copy

    boss = make_user("boss")
    project = make_project(actor=boss)
    copy, _ = project_restore(stream=io.BytesIO(_dump(project)), slug="copy")
    forged = AuditEvent(actor=boss, action="guideline.publish", details={}, created_at=PAST)
    for target in (copy, project):  # a restored project's log, or any other, is closed to copies
        with pytest.raises(AuditEventImmutable):
            audit_log_copy(project=target, events=[forged])
    with pytest.raises(AuditEventImmutable):
        AuditEvent.objects.filter(project=copy).update(created_at=PAST)
    assert not AuditEvent.objects.filter(created_at=PAST).exists()
