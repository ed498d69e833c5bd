"""Probe: an overlap change while the judges' routing applies, on PostgreSQL.

The settings change locks the project's row (FOR UPDATE), then moves every task's target (waiting
on the task rows routing holds). Routing held those rows and, at its COMMIT, checks its new rows'
foreign key to the project (a KEY SHARE lock the settings change's FOR UPDATE refuses): each waited
on the other, and PostgreSQL killed one of them ("deadlock detected": a 500 for the manager, or a
failed routing). Routing and re-routing now lock the project's row first, as the settings change
does, so one waits for the other and both apply."""

from __future__ import annotations

import pytest

from annotate.judges.services import judge_create, judge_set_active, routing_apply_now, routing_reroute
from annotate.models import RoutingDecision, Task
from annotate.services.projects import membership_add, project_update_settings
from generation.models import ModelEndpoint
from tests.annotate.test_judges_reroute import add_suggestion, assert_claims_consistent, routed  # noqa: F401
from tests.conftest import add_tasks
from tests.races import HeldTransaction

pytestmark = [
    pytest.mark.postgres(reason="needs PostgreSQL for real concurrent transactions (set DATABASE_URL)"),
    pytest.mark.django_db(transaction=True),
]


def _raise_the_overlap_while(monkeypatch, project, hook: str, routing) -> None:
    """Raise the project's overlap to 5 while ``routing`` is held at ``hook`` (a ``HeldTransaction``),
    holding the tasks' rows; the held call must still succeed."""
    with HeldTransaction(monkeypatch, hook, routing) as first:
        project_update_settings(project=project, overlap=5)
    assert first.error is None, first.error


def test_raising_the_overlap_while_routing_applies_waits_and_leaves_the_judged_task_alone(
    monkeypatch, make_project, make_user
):
    manager = make_user("race-boss")
    project = make_project(overlap=3)
    membership_add(project=project, user=manager, role="manager")
    project_update_settings(project=project, judge_routing=True, judge_audit_share=0.0, judge_min_strength=2)
    project.refresh_from_db()
    confident, unsure = add_tasks(project, prompts=2)
    endpoint = ModelEndpoint.objects.create(name="race-ep", backend="openai", model="m", project=project)
    judge = judge_create(project=project, name="J", endpoint=endpoint, actor=manager)
    add_suggestion(judge, confident, choice="a", strength=3)
    add_suggestion(judge, unsure, status="unparseable", error="no JSON")
    # routing holds the tasks' rows, its decisions written, when the overlap changes
    _raise_the_overlap_while(
        monkeypatch,
        project,
        "annotate.judges.services.audit_record",
        lambda: routing_apply_now(project=project, actor=manager),
    )
    decision = RoutingDecision.objects.get(task=confident)
    task = Task.objects.get(pk=confident.pk)
    assert decision.route == "judge" and (task.claims, task.target_labels) == (1, 1)
    assert decision.details["target_before"] == 5, "a re-route gives back the overlap of now"
    assert Task.objects.get(pk=unsure.pk).target_labels == 5
    assert_claims_consistent(project)


def test_raising_the_overlap_while_a_re_route_applies_waits_for_it(monkeypatch, routed):  # noqa: F811
    project, judge, manager, _ = routed
    judge_set_active(judge=judge, active=False, actor=manager)  # its tasks go back to humans
    _raise_the_overlap_while(
        monkeypatch,
        project,
        "annotate.judges.services.routing_apply",
        lambda: routing_reroute(project=project, actor=manager),
    )
    assert not RoutingDecision.objects.filter(project=project).exists()
    assert sorted(Task.objects.filter(project=project).values_list("claims", "target_labels")) == [(0, 5)] * 4
    assert_claims_consistent(project)
