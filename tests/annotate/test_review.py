"""Review and adjudication: the services, their audit trail, and their effect on exports."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
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
GT = "\u203a"  # between the groups of a ranking on the review page


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


# --- The review page's final-label form and what it shows -----------------------------------------


class _Card(HTMLParser):
    """One task card of the review page, read like a browser would: the cells of each judgment row,
    the gold badge, and what the final-label form would submit as it stands."""

    def __init__(self, html: str, task_id: int) -> None:
        super().__init__(convert_charrefs=True)
        self.task_id = str(task_id)
        self.inside = 0  # depth inside this task's <article>
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.in_row = False
        self.badge: list[str] | None = None
        self.badges: list[str] = []
        self.in_form = False
        self.fields: list[tuple[str, str]] = []
        self.select: dict | None = None
        self.option: dict | None = None
        self.labels: list[str] = []
        self.label: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "article" and a.get("id") == f"task-{self.task_id}":
            self.inside = 1
            return
        if not self.inside:
            return
        if tag == "article":
            self.inside += 1
        cls = (a.get("class") or "").split()
        if tag == "tr" and "review-row" in cls:
            self.in_row = True
            self.rows.append([])
        elif tag == "td" and self.in_row:
            self.cell = []
        elif tag == "span" and "badge" in cls and self.cell is None:
            self.badge = []
        elif tag == "form" and "adjudicate-form" in cls:
            self.in_form = True
        elif tag == "strong" and self.in_form:
            self.label = []
        elif self.in_form and tag == "input" and a.get("name") and a.get("type") not in ("submit", "button"):
            self.fields.append((a["name"], a.get("value") or ""))
        elif self.in_form and tag == "select":
            self.select = {"name": a.get("name"), "options": []}
        elif self.select is not None and tag == "option":
            self.option = {"value": a.get("value"), "selected": "selected" in a, "text": ""}
            self.select["options"].append(self.option)

    def handle_endtag(self, tag):
        if not self.inside:
            return
        if tag == "article":
            self.inside -= 1
        elif tag == "td" and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr":
            self.in_row = False
        elif tag == "span" and self.badge is not None:
            self.badges.append("".join(self.badge).strip())
            self.badge = None
        elif tag == "strong" and self.label is not None:
            self.labels.append("".join(self.label).strip())
            self.label = None
        elif tag == "option":
            self.option = None
        elif tag == "select" and self.select is not None:
            opts = self.select["options"]
            chosen = [o for o in opts if o["selected"]] or opts[:1]
            if chosen:
                self.fields.append((self.select["name"], chosen[-1]["value"]))
            self.select = None
        elif tag == "form" and self.in_form:
            self.in_form = False

    def handle_data(self, data):
        if not self.inside:
            return
        if self.cell is not None:
            self.cell.append(data)
        if self.badge is not None:
            self.badge.append(data)
        if self.label is not None:
            self.label.append(data)
        if self.option is not None:
            self.option["text"] += data

    def form(self, **changes) -> dict:
        """The final-label form as a browser would submit it, with ``changes`` typed in."""
        values = dict(self.fields)
        values.update(changes)
        return values

    def selected(self, name: str) -> str:
        return dict(self.fields).get(name, "")


def _review(client, project, **query):
    response = client.get(f"/projects/{project.slug}/manage/review/", query)
    assert response.status_code == 200
    return response.content.decode()


def test_resaving_a_pairwise_final_label_keeps_its_strength_and_rationale(client, campaign):
    """Found by a user journey: re-saving a final label with only the "Why" changed wiped its
    strength, because the strength dropdown never showed the saved value."""
    from annotate.models import Adjudication

    project, manager = campaign
    task = Task.objects.filter(project=project).order_by("id").first()
    task_adjudicate(
        actor=manager,
        project=project,
        task_id=task.pk,
        choice="b",
        strength=2,
        rationale="A <b>misses</b> it",
    )
    client.force_login(manager)
    html = _review(client, project, state="adjudicated")
    card = _Card(html, task.pk)
    assert card.selected("choice") == "b"
    assert card.selected("strength") == "2"
    assert card.selected("rationale") == "A <b>misses</b> it"
    assert "A &lt;b&gt;misses&lt;/b&gt; it" in html and "A <b>misses</b> it" not in html
    response = client.post(
        f"/projects/{project.slug}/manage/review/action/",
        card.form(rationale="A misses the second question"),
        follow=True,
    )
    assert response.status_code == 200
    adj = Adjudication.objects.get(task=task)
    assert (adj.choice, adj.strength, adj.rationale) == ("b", 2, "A misses the second question")
    # Every strength the service stores comes back selected; a tie has none.
    for choice, strength in (("a", 1), ("b", 3), ("tie", None)):
        task_adjudicate(actor=manager, project=project, task_id=task.pk, choice=choice, strength=strength)
        card = _Card(_review(client, project, state="adjudicated"), task.pk)
        assert (card.selected("choice"), card.selected("strength")) == (choice, str(strength or ""))


@pytest.fixture
def ranking_campaign(make_project, labeler_in):
    """One ranking task of 4 responses, two labelers' rankings (ids), the manager."""
    project = make_project(name="Rank", kind=TaskKind.RANKING, ranking_k=4, overlap=2)
    add_tasks(project, prompts=1, candidates_per_prompt=4, seed=3)
    task = Task.objects.get(project=project)
    manager = labeler_in(project, "chief", role="manager")
    ids = [s.candidate_id for s in sorted(task.slots.all(), key=lambda s: s.slot)]
    a, b, c, d = ids
    Annotation.objects.create(
        task=task,
        labeler=labeler_in(project, "rhea"),
        ranking=[[b], [c], [a], [d]],
        ratings={"helpful": {str(d): 1, str(b): 5, str(a): 3, str(c): 4}},
    )
    Annotation.objects.create(task=task, labeler=labeler_in(project, "ravi"), ranking=[[a, c], [b], [d]])
    return project, manager, task, ids


def test_a_ranking_card_speaks_in_letters_and_shows_the_saved_ranking(client, ranking_campaign):
    """The responses are lettered A-D; each verdict, the ratings and the final label use the same
    letters (never candidate ids, which leak import order), and the final-label box holds the saved
    ranking in the form's own format, so saving it again changes nothing."""
    from annotate.models import Adjudication

    project, manager, task, ids = ranking_campaign
    a, b, c, d = ids
    task_adjudicate(actor=manager, project=project, task_id=task.pk, ranking="B A=C D", rationale="close")
    assert Adjudication.objects.get(task=task).ranking == [[b], [a, c], [d]]
    client.force_login(manager)
    html = _review(client, project)
    card = _Card(html, task.pk)
    verdicts = {row[0]: row[1] for row in card.rows}
    assert verdicts == {"rhea": f"B {GT} C {GT} A {GT} D", "ravi": f"A=C {GT} B {GT} D"}
    assert card.rows[0][3] == "helpful: A 3 / B 5 / C 4 / D 1"
    assert card.selected("ranking") == "B A=C D"
    assert any(f"B {GT} A=C {GT} D" in label for label in card.labels), card.labels
    for row in card.rows:  # letters only: no candidate id (nor any digit) in a verdict
        assert re.fullmatch(rf"[A-D= {GT}]+", row[1]), row
    response = client.post(
        f"/projects/{project.slug}/manage/review/action/", card.form(rationale="close call"), follow=True
    )
    assert response.status_code == 200
    adj = Adjudication.objects.get(task=task)
    assert (adj.ranking, adj.rationale) == ([[b], [a, c], [d]], "close call")


def test_gold_answers_on_the_review_page_use_the_letters(client, ranking_campaign, campaign):
    project, manager, task, ids = ranking_campaign
    a, b, c, d = ids
    Task.objects.filter(pk=task.pk).update(is_gold=True, gold_ranking=[[c], [a, d], [b]])
    client.force_login(manager)
    card = _Card(_review(client, project), task.pk)
    assert card.badges == [f"gold: C {GT} A=D {GT} B"]
    pairwise, boss = campaign
    ptask = Task.objects.filter(project=pairwise).order_by("id").first()
    Task.objects.filter(pk=ptask.pk).update(is_gold=True, gold_choice="b")
    client.force_login(boss)
    card = _Card(_review(client, pairwise), ptask.pk)
    assert card.badges == ["gold: B is better"]


def test_a_final_label_is_never_chosen_for_the_manager(client, campaign):
    """The pairwise final-label menu preselected "A is better": Save without choosing stored it.
    Now it starts on an empty, required choice, and a post without a choice stores nothing."""
    from annotate.models import Adjudication

    project, manager = campaign
    task = Task.objects.filter(project=project).order_by("id").first()
    client.force_login(manager)
    page = client.get(f"/projects/{project.slug}/manage/review/").content.decode()
    menu = page.split('name="choice"', 1)[1].split("</select>", 1)[0]
    assert "required" in menu.split(">", 1)[0]
    assert '<option value="" selected disabled>' in menu and "selected>A is better" not in menu
    response = client.post(
        f"/projects/{project.slug}/manage/review/action/",
        {"action": "adjudicate", "task": task.pk, "choice": "", "rationale": "x"},
        follow=True,
    )
    assert response.status_code == 200
    assert not Adjudication.objects.filter(task=task).exists()
    assert any(
        "final label" in str(m).lower() or "choice" in str(m).lower() for m in response.context["messages"]
    )
