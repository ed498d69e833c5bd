"""Review and adjudication: the services, their audit trail, and their effect on exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotate.errors import InvalidInput, NotFound
from annotate.models import Annotation, AuditEvent, Task, TaskKind
from annotate.services.review import (
    adjudication_clear,
    annotation_review,
    annotation_review_clear,
    task_adjudicate,
)
from tests.conftest import add_tasks
from training.services.exports import export_create, export_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(make_project, labeler_in):
    """4 A/B tasks, 3 labelers each: all say A except carol, who says B on every task."""
    project = make_project(name="Review", overlap=3)
    add_tasks(project, prompts=4)
    manager = labeler_in(project, "boss", role="manager")
    labs = [labeler_in(project, n) for n in ("alice", "bob", "carol")]
    Annotation.objects.bulk_create(
        [
            Annotation(task=t, labeler=lab, choice="b" if lab.username == "carol" else "a")
            for t in Task.objects.filter(project=project)
            for lab in labs
        ]
    )
    return project, manager


def _export_rows(project, **options):
    export = export_run(
        export_id=export_create(
            project=project, format="trl", options={"test_size": 0, **options}, enqueue=False
        ).pk
    )
    rows = [json.loads(x) for x in (Path(export.path) / "train.jsonl").read_text().splitlines()]
    return export, rows


def test_rejected_judgments_leave_exports_and_restoring_brings_them_back(campaign):
    project, manager = campaign
    carol = list(Annotation.objects.filter(labeler__username="carol").order_by("id"))
    with pytest.raises(InvalidInput):
        annotation_review(actor=manager, project=project, annotation_id=carol[0].pk, verdict="rejected")
    for ann in carol:
        annotation_review(
            actor=manager, project=project, annotation_id=ann.pk, verdict="rejected", reason="careless"
        )
    export, rows = _export_rows(project)
    assert len(rows) == 8  # 4 tasks x alice, bob
    assert export.manifest["counts"]["dropped"]["rejected_in_review"] == 4
    assert export.manifest["review"] == {
        "rejected": 4,
        "adjudicated_tasks": 0,
        "adjudication": "prefer",
        "final_labels_exported": 0,
        "adjudicator_count": 0,
    }
    annotation_review_clear(actor=manager, project=project, annotation_id=carol[0].pk)
    assert len(_export_rows(project)[1]) == 9
    actions = list(AuditEvent.objects.filter(project=project).values_list("action", flat=True))
    assert actions.count("annotation.reject") == 4 and "annotation.restore" in actions


def test_an_adjudicated_label_replaces_the_votes_unless_asked_not_to(campaign):
    project, manager = campaign
    task = Task.objects.filter(project=project).order_by("id").first()
    task_adjudicate(
        actor=manager, project=project, task_id=task.pk, choice="b", strength=3, rationale="A is wrong"
    )
    export, rows = _export_rows(project, aggregate="majority")
    by_task = {}
    for r in rows:
        by_task.setdefault(r["chosen"], 0)
    assert len(rows) == 4
    assert export.manifest["review"]["adjudicated_tasks"] == 1
    slots = [s.candidate.text for s in sorted(task.slots.all(), key=lambda s: s.slot)]
    adjudicated = [r for r in rows if {r["chosen"], r["rejected"]} == set(slots)]
    assert adjudicated and adjudicated[0]["chosen"] == slots[1]  # B, against a 2-1 majority for A
    _, ignored = _export_rows(project, aggregate="majority", adjudication="ignore")
    again = [r for r in ignored if {r["chosen"], r["rejected"]} == set(slots)]
    assert again[0]["chosen"] == slots[0]
    assert adjudication_clear(actor=manager, project=project, task_id=task.pk)
    assert AuditEvent.objects.filter(project=project, action="task.adjudicate").exists()


def test_adjudication_input_is_checked(campaign, make_project, labeler_in):
    project, manager = campaign
    task = Task.objects.filter(project=project).first()
    with pytest.raises(InvalidInput):
        task_adjudicate(actor=manager, project=project, task_id=task.pk, choice="tie", strength=2)
    with pytest.raises(InvalidInput):
        task_adjudicate(actor=manager, project=project, task_id=task.pk, choice="left")
    other = make_project()
    with pytest.raises(NotFound):
        task_adjudicate(actor=manager, project=other, task_id=task.pk, choice="a")
    ranking = make_project(kind=TaskKind.RANKING, ranking_k=3)
    add_tasks(ranking, prompts=1, candidates_per_prompt=3)
    rtask = Task.objects.get(project=ranking)
    adj = task_adjudicate(actor=manager, project=ranking, task_id=rtask.pk, ranking="c a=b")
    ids = [s.candidate_id for s in sorted(rtask.slots.all(), key=lambda s: s.slot)]
    assert adj.ranking == [[ids[2]], [ids[0], ids[1]]]
    with pytest.raises(InvalidInput):
        task_adjudicate(actor=manager, project=ranking, task_id=rtask.pk, ranking="a b")  # c missing
    with pytest.raises(InvalidInput):
        task_adjudicate(actor=manager, project=ranking, task_id=rtask.pk, ranking="a b d")


def test_the_report_links_each_labeler_to_their_judgments_for_managers(client, campaign, labeler_in):
    project, manager = campaign
    from django.urls import reverse

    client.force_login(manager)
    page = client.get(reverse("reports:project", args=[project.slug]))
    assert b'id="labeler-table"' in page.content
    assert b"/manage/review/?labeler=carol" in page.content
    researcher = labeler_in(project, "res", role="researcher")
    client.force_login(researcher)
    page = client.get(reverse("reports:project", args=[project.slug]))
    assert b'id="labeler-table"' in page.content and b"/manage/review/" not in page.content


@pytest.mark.parametrize("query", [{"labeler": "car\x00ol"}, {"labeler": "\x00", "state": "skipped"}])
def test_a_nul_in_the_review_filters_is_a_400_not_a_500(client, campaign, query):
    """PostgreSQL text cannot hold NUL: a labeler filter with one is refused like any bad filter."""
    project, manager = campaign
    client.force_login(manager)
    page = client.get(f"/projects/{project.slug}/manage/review/", query)
    assert page.status_code == 400
    assert b"NUL" in page.content


def test_a_nul_in_a_reason_or_rationale_is_refused_not_a_500(client, campaign):
    """The review form posts free text straight to the services: a NUL (which PostgreSQL text cannot
    hold) is an InvalidInput, shown on the page, and nothing is written."""
    from annotate.models import Adjudication, AnnotationReview

    project, manager = campaign
    ann = Annotation.objects.filter(task__project=project).first()
    with pytest.raises(InvalidInput) as exc:
        annotation_review(
            actor=manager, project=project, annotation_id=ann.pk, verdict="rejected", reason="bad\x00"
        )
    assert exc.value.field == "reason"
    with pytest.raises(InvalidInput) as exc:
        task_adjudicate(actor=manager, project=project, task_id=ann.task_id, choice="a", rationale="\x00")
    assert exc.value.field == "rationale"
    client.force_login(manager)
    url = f"/projects/{project.slug}/manage/review/action/"
    for data in (
        {"action": "reject", "annotation": ann.pk, "reason": "a\x00b"},
        {"action": "adjudicate", "task": ann.task_id, "choice": "a", "rationale": "a\x00b"},
    ):
        response = client.post(url, data, follow=True)
        assert response.status_code == 200
        assert b"NUL" in response.content
    assert not AnnotationReview.objects.filter(annotation=ann).exists()
    assert not Adjudication.objects.filter(task_id=ann.task_id).exists()


def test_send_back_from_the_review_queue(client, campaign, make_project):
    """One more label for a task; a task at the most labels, or another project's task, is an
    error on the page and changes nothing."""
    from annotate.services.reports import MAX_TARGET_LABELS

    project, manager = campaign
    first, second = list(Task.objects.filter(project=project).order_by("id")[:2])
    foreign = add_tasks(make_project(name="Elsewhere"), prompts=1)[0]
    client.force_login(manager)
    url = f"/projects/{project.slug}/manage/review/action/"

    def shown(task_id):
        response = client.post(url, {"action": "send_back", "task": task_id}, follow=True)
        assert response.status_code == 200
        return " ".join(str(m) for m in response.context["messages"])

    assert "Sent back for one more label." in shown(first.pk)
    assert Task.objects.get(pk=first.pk).target_labels == first.target_labels + 1
    Task.objects.filter(pk=second.pk).update(target_labels=MAX_TARGET_LABELS)
    text = shown(second.pk)
    assert "already ask for the most labels" in text and "Sent back" not in text
    text = shown(foreign.pk)
    assert f"No task {foreign.pk} in this project" in text and "Sent back" not in text
    assert Task.objects.get(pk=foreign.pk).target_labels == foreign.target_labels
