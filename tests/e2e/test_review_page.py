"""The manager's review queue in Chromium: filter, reject by keyboard (with a reason), accept,
restore, set a final label, send back; and what that does to an export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotate.models import Adjudication, Annotation, AnnotationReview, Task, TaskKind
from tests.conftest import add_tasks
from tests.e2e.conftest import login, settle
from training.services.exports import export_create, export_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
GT = "\u203a"  # between the groups of a ranking on the review page


def _save_final_label(page, form, task_id: int) -> tuple:
    """Submit a card's final-label form; the (choice, strength, rationale) the database then holds."""
    form.locator("button[type=submit]").click()
    page.wait_for_selector("text=Final label saved")
    settle(page)
    adj = Adjudication.objects.get(task_id=task_id)
    return adj.choice, adj.strength, adj.rationale


def test_review_queue_by_keyboard_changes_the_export(page, make_project, labeler_in, screenshot):
    project = make_project(name="Review <i>me</i>", overlap=3)
    add_tasks(project, prompts=3)
    labeler_in(project, "boss", role="manager")
    labs = [labeler_in(project, n) for n in ("alice", "bob", "carol")]
    tasks = list(Task.objects.filter(project=project).order_by("id"))
    Annotation.objects.bulk_create(
        [
            Annotation(
                task=t,
                labeler=lab,
                choice="b" if lab.username == "carol" else "a",
                rationale="<script>alert(1)</script> looks fine" if lab.username == "carol" else "",
                time_spent_ms=4000,
            )
            for t in tasks
            for lab in labs
        ]
    )
    login(page, "boss")
    page.goto(f"/projects/{project.slug}/manage/review/")
    page.fill("#f-labeler", "carol")
    page.click("#review-filters button[type=submit]")
    page.wait_for_selector(".review-row")
    assert page.locator(".review-task").count() == 3
    screenshot(page, "review-queue", full_page=False)

    # X on the selected judgment: type the reason, Enter.
    page.locator("body").press("x")
    page.keyboard.type("ignored the question")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Rejected: it is left out of exports.")
    settle(page)
    rejected = AnnotationReview.objects.get()
    assert rejected.verdict == "rejected" and rejected.reason == "ignored the question"
    assert rejected.annotation.labeler.username == "carol"
    # The filters survived the action; J then A accepts the next one.
    assert page.input_value("#f-labeler") == "carol"
    page.locator("body").press("j")
    page.locator("body").press("a")
    page.wait_for_selector("text=Accepted.")
    assert AnnotationReview.objects.filter(verdict="accepted").count() == 1

    # Final label on the last task (D focuses the form), and a send-back.
    last = page.locator(".review-task").nth(2)
    task_id = int(last.get_attribute("data-task"))
    last.locator(".adjudicate-form select[name=choice]").select_option("b")
    last.locator(".adjudicate-form select[name=strength]").select_option("2")
    last.locator(".adjudicate-form input[name=rationale]").fill("B answers it")
    assert _save_final_label(page, last.locator(".adjudicate-form"), task_id) == ("b", 2, "B answers it")

    # Re-saving with only the "Why" changed keeps the rest (it used to drop the strength).
    page.goto(f"/projects/{project.slug}/manage/review/?state=adjudicated")
    form = page.locator(f"#task-{task_id} .adjudicate-form")
    assert form.locator("select[name=choice]").input_value() == "b"
    assert form.locator("select[name=strength]").input_value() == "2"
    assert form.locator("input[name=rationale]").input_value() == "B answers it"
    form.locator("input[name=rationale]").fill("B answers both parts")
    assert _save_final_label(page, form, task_id) == ("b", 2, "B answers both parts")
    assert page.locator(f"#task-{task_id} .adjudicate-form select[name=strength]").input_value() == "2"
    page.locator(f"#task-{task_id} button[data-key=b]").click()
    page.wait_for_selector("text=Sent back for one more label.")
    assert Task.objects.get(pk=task_id).target_labels == 4
    assert not page.recorder.dialogs, "rationale text must never run as script"
    assert not page.recorder.csp_violations and not page.recorder.page_errors

    export = export_run(
        export_id=export_create(
            project=project, format="trl", options={"test_size": 0, "aggregate": "majority"}, enqueue=False
        ).pk
    )
    rows = [json.loads(x) for x in (Path(export.path) / "train.jsonl").read_text().splitlines()]
    assert export.manifest["counts"]["dropped"]["rejected_in_review"] == 1
    assert export.manifest["review"]["adjudicated_tasks"] == 1
    slots = [s.candidate.text for s in sorted(Task.objects.get(pk=task_id).slots.all(), key=lambda s: s.slot)]
    final = [r for r in rows if {r["chosen"], r["rejected"]} == set(slots)]
    assert final[0]["chosen"] == slots[1]  # the manager's B beats the 2-1 vote for A


def test_a_ranking_card_shows_letters_and_the_saved_final_ranking(page, make_project, labeler_in, screenshot):
    """Responses are lettered A-D on the card: the verdicts and the final label use those letters
    (never candidate ids), and the saved ranking is in the box, so saving again keeps it."""
    project = make_project(name="Rank <b>me</b>", kind=TaskKind.RANKING, ranking_k=4, overlap=2)
    add_tasks(project, prompts=1, candidates_per_prompt=4, seed=3)
    task = Task.objects.get(project=project)
    labeler_in(project, "boss", role="manager")
    a, b, c, d = (s.candidate_id for s in sorted(task.slots.all(), key=lambda s: s.slot))
    Annotation.objects.create(task=task, labeler=labeler_in(project, "alice"), ranking=[[b], [c], [a], [d]])
    Annotation.objects.create(task=task, labeler=labeler_in(project, "bob"), ranking=[[a, c], [b], [d]])
    login(page, "boss")
    page.goto(f"/projects/{project.slug}/manage/review/")
    card = page.locator(f"#task-{task.pk}")
    verdicts = card.locator(".review-row td:nth-child(2)").all_inner_texts()
    assert [v.strip() for v in verdicts] == [f"B {GT} C {GT} A {GT} D", f"A=C {GT} B {GT} D"]

    card.locator("input[name=ranking]").fill("B A=C D")
    card.locator("input[name=rationale]").fill("B is <i>best</i>")
    card.locator(".adjudicate-form button[type=submit]").click()
    page.wait_for_selector("text=Final label saved")
    settle(page)
    assert Adjudication.objects.get(task=task).ranking == [[b], [a, c], [d]]

    page.goto(f"/projects/{project.slug}/manage/review/?state=adjudicated")
    card = page.locator(f"#task-{task.pk}")
    assert f"B {GT} A=C {GT} D" in card.locator(".adjudicate-form").inner_text()
    assert card.locator("input[name=ranking]").input_value() == "B A=C D"
    assert card.locator("input[name=rationale]").input_value() == "B is <i>best</i>"
    screenshot(page, "review-ranking-final")
    card.locator("input[name=rationale]").fill("B is best; A and C tie")
    card.locator(".adjudicate-form button[type=submit]").click()
    page.wait_for_selector("text=Final label saved")
    settle(page)
    adj = Adjudication.objects.get(task=task)
    assert (adj.ranking, adj.rationale) == ([[b], [a, c], [d]], "B is best; A and C tie")
    assert not page.recorder.dialogs
    assert not page.recorder.csp_violations and not page.recorder.page_errors


def test_review_filters_reject_bad_input_with_a_message(client, make_project, labeler_in):
    project = make_project()
    manager = labeler_in(project, "boss", role="manager")
    client.force_login(manager)
    response = client.get(f"/projects/{project.slug}/manage/review/?min_seconds=abc&since=yesterday")
    assert response.status_code == 400
    assert b"min seconds must be a whole number" in response.content
    labeler = labeler_in(project, "lab")
    client.force_login(labeler)
    assert client.get(f"/projects/{project.slug}/manage/review/").status_code == 403
    assert (
        client.post(f"/projects/{project.slug}/manage/review/action/", {"action": "accept"}).status_code
        == 403
    )
