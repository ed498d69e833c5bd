"""One strength scale (annotate.strength): every way a strength comes in reads it with one rule and
answers with one message, and the database holds every strength column to the same range."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import IntegrityError, transaction
from rest_framework.test import APIClient

from annotate.errors import InvalidInput
from annotate.judges.forms import JudgeSettingsForm
from annotate.judges.rubric import parse_judgment
from annotate.models import Adjudication, Annotation, Task
from annotate.selectors_review import STRENGTHS
from annotate.services.projects import project_update_settings
from annotate.services.review import task_adjudicate
from annotate.strength import STRENGTH_RANGE, Strength, strength_value
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db
MESSAGE = "must be 1 (slightly better), 2 (clearly better) or 3 (much better)"


@pytest.mark.parametrize("good", [1, 2, 3])
def test_the_scale_takes_its_points(good):
    assert strength_value(good) == good
    assert strength_value(str(good), text=True) == good


@pytest.mark.parametrize("bad", [0, 4, -1, True, 2.0, "2", None, [2], 10**30])
def test_json_strengths_off_the_scale_are_refused_naming_the_field(bad):
    with pytest.raises(InvalidInput) as err:
        strength_value(bad, field="strength")
    assert err.value.field == "strength" and MESSAGE in err.value.message


@pytest.mark.parametrize("bad", ["4", "0", "x", "", "2.5", "999", " "])
def test_form_text_off_the_scale_is_refused(bad):
    with pytest.raises(InvalidInput):
        strength_value(bad, text=True)


def test_the_labeling_api_answers_400_with_the_scale(make_project, labeler_in):
    cache.clear()
    project = make_project()
    add_tasks(project, prompts=1)
    api = APIClient()
    api.force_authenticate(labeler_in(project))
    lease = api.post(f"/api/v1/labeling/{project.slug}/next", {}, format="json").json()["assignment_id"]
    url = f"/api/v1/labeling/assignments/{lease}/submit"
    resp = api.post(url, {"choice": "left", "strength": 4}, format="json")
    assert resp.status_code == 400 and resp.json()["field"] == "strength"
    assert MESSAGE in resp.json()["detail"]
    assert api.post(url, {"choice": "left", "strength": 3}, format="json").status_code == 201
    assert Annotation.objects.get().strength == 3


def test_a_final_label_reads_the_same_scale(make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=1)
    manager = labeler_in(project, role="manager")
    task = Task.objects.get(project=project)
    with pytest.raises(InvalidInput) as err:
        task_adjudicate(actor=manager, project=project, task_id=task.pk, choice="a", strength="4")
    assert MESSAGE in err.value.message
    task_adjudicate(actor=manager, project=project, task_id=task.pk, choice="a", strength="2")
    assert Adjudication.objects.get(task=task).strength == 2


@pytest.mark.parametrize("bad", [0, 4, "x", None])
def test_the_judges_threshold_is_a_point_of_the_scale(make_project, bad):
    """'x' used to escape as a ValueError (a 500) from int()."""
    project = make_project()
    with pytest.raises(InvalidInput) as err:
        project_update_settings(project=project, judge_min_strength=bad)
    assert err.value.field == "judge_min_strength"
    project_update_settings(project=project, judge_min_strength=3)
    project.refresh_from_db()
    assert project.judge_min_strength == 3


def test_pages_offer_the_scale_and_judges_answer_on_it():
    form = JudgeSettingsForm()
    assert [v for v, _ in form.fields["judge_min_strength"].choices] == Strength.values
    assert not JudgeSettingsForm({"judge_audit_share": 0, "judge_min_strength": 4}).is_valid()
    assert [v for v, _ in STRENGTHS] == Strength.values
    assert parse_judgment('{"verdict": "A", "strength": 3}', dimensions=[], scale_max=5).strength == 3
    assert parse_judgment('{"verdict": "A", "strength": 4}', dimensions=[], scale_max=5).strength is None


def test_the_database_holds_every_strength_column_to_the_range(make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=1)
    task = Task.objects.get(project=project)
    alice = labeler_in(project)
    over = STRENGTH_RANGE[1] + 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Annotation.objects.create(task=task, labeler=alice, choice="a", strength=over)
    with pytest.raises(IntegrityError), transaction.atomic():
        Adjudication.objects.create(task=task, choice="a", strength=over)
    with pytest.raises(IntegrityError), transaction.atomic():
        project.judge_min_strength = over
        project.save(update_fields=["judge_min_strength"])
