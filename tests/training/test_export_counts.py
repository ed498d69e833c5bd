"""What an export's manifest and dataset card count, and where its defaults come from.

* Labeler figures count labelers: the people whose annotations are in the export. A task's final
  label (adjudication) is not an annotation and its adjudicator is not a labeler: final labels are
  counted in the manifest's ``review`` block, the annotations they replace are ``dropped`` as
  ``replaced_by_final_label``, and guideline figures are about the labelers' annotations only.
* Export defaults have one home (``ExportOptions``): an export made from the page with what the
  form shows, from the API without options and from the service without options are the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
from django.urls import reverse

from annotate.models import Annotation, Task
from annotate.services.guidelines import guideline_publish
from annotate.services.review import task_adjudicate
from tests.conftest import add_tasks, bearer
from training.compiler import ExportOptions
from training.models import Export
from training.services.exports import export_create, export_run

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def adjudicated(make_project, labeler_in):
    """4 A/B tasks; labeler1 and labeler2 say A on every task under guideline version 2; a manager
    gives the first task the final label B."""
    project = make_project(name="Adjudicated", overlap=2)
    guideline_publish(project=project, actor=None, body="First version.")
    v2 = guideline_publish(project=project, actor=None, body="Second version.")
    add_tasks(project, prompts=4)
    manager = labeler_in(project, "boss", role="manager")
    labelers = [labeler_in(project, f"labeler{i}") for i in (1, 2)]
    tasks = list(Task.objects.filter(project=project).order_by("id"))
    Annotation.objects.bulk_create(
        [Annotation(task=t, labeler=u, choice="a", guideline=v2) for t in tasks for u in labelers]
    )
    task_adjudicate(actor=manager, project=project, task_id=tasks[0].pk, choice="b", strength=2)
    return project, tasks, manager


def _export(project, fmt="trl", **options) -> Export:
    export = export_create(project=project, format=fmt, options={"test_size": 0, **options}, enqueue=False)
    return export_run(export_id=export.pk)


def _card(export: Export) -> str:
    return (Path(export.path) / "README.md").read_text(encoding="utf-8")


# --- defect 4: labeler counts with a final label --------------------------------------------------


def test_an_adjudicator_is_not_counted_as_a_labeler(adjudicated):
    project, _, _ = adjudicated
    export = _export(project, aggregate="majority")
    m = export.manifest
    assert m["labeler_count"] == 2
    assert m["guideline_versions"] == [2]
    assert m["annotations_without_guideline"] is False
    # every annotation is read; the two the final label replaces are dropped, with that reason
    assert m["counts"]["annotations_read"] == 8
    assert m["counts"]["dropped"] == {"replaced_by_final_label": 2}
    assert m["counts"]["rows"] == 4
    assert m["review"] == {
        "rejected": 0,
        "adjudicated_tasks": 1,
        "adjudication": "prefer",
        "final_labels_exported": 1,
        "adjudicator_count": 1,
    }
    card = _card(export)
    assert "| labelers | 2 |" in card
    assert "| guideline versions | 2 |" in card
    assert "| final labels | 1 (adjudicated task whose final label replaces the labelers' votes; " in card
    assert "set by 1 adjudicator, not counted as labelers) |" in card


def test_the_raw_table_counts_labelers_the_same_way(adjudicated):
    project, _, _ = adjudicated
    export = _export(project, "raw")
    rows = [json.loads(x) for x in (Path(export.path) / "train.jsonl").read_text().splitlines()]
    assert sorted(r["source"] for r in rows) == ["adjudication"] + ["human"] * 6
    m = export.manifest
    assert m["labeler_count"] == 2 and m["guideline_versions"] == [2]
    assert m["annotations_without_guideline"] is False
    assert m["counts"]["annotations_read"] == 8
    assert m["counts"]["dropped"] == {"replaced_by_final_label": 2}
    assert m["review"]["final_labels_exported"] == 1 and m["review"]["adjudicator_count"] == 1


def test_a_labeler_whose_only_work_was_replaced_is_not_counted(adjudicated, labeler_in):
    """Labeler figures are about the judgments in the export: with ``adjudication=prefer`` a labeler
    whose every annotation is on adjudicated tasks contributed nothing; with ``ignore`` they did."""
    project, tasks, _ = adjudicated
    late = labeler_in(project, "labeler3")
    Annotation.objects.create(task=tasks[0], labeler=late, choice="a")  # no guideline recorded
    prefer = _export(project, aggregate="majority").manifest
    assert prefer["labeler_count"] == 2
    assert prefer["annotations_without_guideline"] is False
    assert prefer["counts"]["dropped"] == {"replaced_by_final_label": 3}
    ignore = _export(project, aggregate="majority", adjudication="ignore").manifest
    assert ignore["labeler_count"] == 3
    assert ignore["annotations_without_guideline"] is True
    assert (
        ignore["counts"]["annotations_read"] == 9
        and "replaced_by_final_label" not in ignore["counts"]["dropped"]
    )
    assert ignore["review"]["adjudicated_tasks"] == 1
    assert ignore["review"]["final_labels_exported"] == 0 and ignore["review"]["adjudicator_count"] == 0
    assert "| final labels |" not in _card(Export.objects.get(project=project, version=2))


def test_no_adjudication_no_final_label_row(make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=2)
    user = labeler_in(project)
    for task in Task.objects.filter(project=project):
        Annotation.objects.create(task=task, labeler=user, choice="a")
    export = _export(project)
    assert export.manifest["labeler_count"] == 1
    assert export.manifest["review"]["final_labels_exported"] == 0
    assert export.manifest["annotations_without_guideline"] is True
    assert "| final labels |" not in _card(export)


# --- defect 9: one set of defaults -------------------------------------------------------------------


DEFAULT_TEST_SIZE = 0.1


@pytest.fixture
def labeled(make_project, labeler_in):
    project = make_project(name="Defaults")
    add_tasks(project, prompts=30)
    user = labeler_in(project)
    researcher = labeler_in(project, role="researcher")
    for i, task in enumerate(Task.objects.filter(project=project).order_by("id")):
        Annotation.objects.create(task=task, labeler=user, choice="ab"[i % 2], strength=1 + i % 3)
    return project, researcher


def test_the_service_default_holds_out_a_test_split(labeled):
    project, _ = labeled
    assert ExportOptions().test_size == DEFAULT_TEST_SIZE
    export = export_create(project=project, format="trl", enqueue=False)
    assert export.options["test_size"] == DEFAULT_TEST_SIZE and export.options["margin"] is True
    export = export_run(export_id=export.pk)
    assert set(export.manifest["files"]) == {"train", "test"}
    assert export.manifest["counts"]["test"] > 0


def _page_defaults(client, project) -> dict:
    """What the export form posts when nothing is changed: every field's shown value."""
    page = client.get(reverse("training:export_list", args=[project.slug]))
    assert page.status_code == 200
    form = page.context["form"]
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field.widget, __import__("django").forms.CheckboxInput):
            if value:
                data[name] = "on"
            continue
        data[name] = "" if value is None else value
    return data


def test_page_and_api_exports_without_changes_have_the_same_options(labeled, client):
    project, researcher = labeled
    client.force_login(researcher)
    shown = _page_defaults(client, project)
    assert float(shown["test_size"]) == DEFAULT_TEST_SIZE
    with mock.patch("core.outbox.send_task"):
        page = client.post(reverse("training:export_list", args=[project.slug]), shown)
    assert page.status_code == 302
    api = bearer(researcher)
    with mock.patch("core.outbox.send_task"):
        resp = api.post(f"/api/v1/projects/{project.slug}/exports/", {"format": "trl"}, format="json")
    assert resp.status_code == 201, resp.json()
    service = export_create(project=project, format="trl", enqueue=False)
    by_page, by_api = Export.objects.get(version=1), Export.objects.get(version=2)
    assert resp.json()["options"] == by_api.options
    assert by_api.options["test_size"] == DEFAULT_TEST_SIZE
    assert by_page.options == by_api.options == service.options == ExportOptions().as_dict()


def test_the_page_offers_every_option_the_api_takes(labeled, client):
    """Final labels, AI judges' labels, the labeled-by column and soft labels could be set through
    the API and the command line only: the page had no field for them."""
    project, researcher = labeled
    client.force_login(researcher)
    fields = client.get(reverse("training:export_list", args=[project.slug])).context["form"].fields
    assert set(ExportOptions().as_dict()) <= set(fields)
    shown = _page_defaults(client, project)
    chosen = {
        **shown,
        "adjudication": "ignore",
        "judge_labels": "exclude",
        "labeled_by": "on",
        "soft_labels": "on",
    }
    with mock.patch("core.outbox.send_task"):
        page = client.post(reverse("training:export_list", args=[project.slug]), chosen)
    assert page.status_code == 302
    options = Export.objects.get(project=project).options
    assert (options["adjudication"], options["judge_labels"]) == ("ignore", "exclude")
    assert options["labeled_by"] is True and options["soft_labels"] is True


def test_an_explicit_test_size_of_zero_still_exports_everything_as_train(labeled):
    project, researcher = labeled
    api = bearer(researcher)
    with mock.patch("core.outbox.send_task"):
        resp = api.post(
            f"/api/v1/projects/{project.slug}/exports/",
            {"format": "trl", "options": {"test_size": 0, "margin": False}},
            format="json",
        )
    assert resp.status_code == 201
    assert resp.json()["options"]["test_size"] == 0.0 and resp.json()["options"]["margin"] is False
    export = export_run(export_id=Export.objects.get(project=project).pk)
    assert set(export.manifest["files"]) == {"train"} and export.manifest["counts"]["test"] == 0


def test_the_documented_defaults_are_the_defaults(labeled, client):
    """The page's help text, the OpenAPI description of ``options`` and the README say the default
    test split that the service applies."""
    from tests.openapi import api_schema, resolve

    project, researcher = labeled
    client.force_login(researcher)
    form = client.get(reverse("training:export_list", args=[project.slug])).context["form"]
    assert f"default {DEFAULT_TEST_SIZE:g}" in form.fields["test_size"].help_text
    schema = api_schema()
    post = schema["paths"]["/api/v1/projects/{slug}/exports/"]["post"]
    body = resolve(schema, post["requestBody"]["content"]["application/json"]["schema"])["properties"][
        "options"
    ]
    assert f"test_size ({DEFAULT_TEST_SIZE:g})" in body["description"]
    assert "margin (true)" in body["description"]
    readme = README.read_text(encoding="utf-8")
    assert f"`test_size` {DEFAULT_TEST_SIZE:g}" in readme


@pytest.mark.parametrize(
    "options",
    [
        {"aggregate": "majority", "min_votes": 2},
        {"aggregate": "majority", "min_agreement": 0.9},
        {"labelers_include": "labeler1,labeler2"},
        {"labelers_exclude": "boss"},
    ],
    ids=["min_votes", "min_agreement", "labelers_include", "labelers_exclude"],
)
def test_a_final_label_is_exported_whatever_the_vote_and_labeler_filters(adjudicated, options):
    """A final label replaces the votes: it is no vote to count (min_votes, min_agreement) and its
    adjudicator is no labeler to filter. Before, majority with min_votes 2 dropped every adjudicated
    task as too_few_votes, and a labeler filter dropped it as labeler_not_included."""
    from django.contrib.auth import get_user_model

    project, _, _ = adjudicated
    User = get_user_model()
    for key in ("labelers_include", "labelers_exclude"):
        if key in options:
            names = options[key].split(",")
            options = {
                **options,
                key: list(User.objects.filter(username__in=names).values_list("pk", flat=True)),
            }
    export = _export(project, **options)
    rows = [json.loads(x) for x in (Path(export.path) / "train.jsonl").read_text().splitlines()]
    dropped = export.manifest["counts"]["dropped"]
    assert dropped == {"replaced_by_final_label": 2}, dropped
    assert export.manifest["review"]["final_labels_exported"] == 1
    # majority: one row a task (the final label's among them); none: a row per vote, plus the final label
    assert len(rows) == (4 if options.get("aggregate") == "majority" else 3 * 2 + 1)
