"""Two people doing the same thing at the same moment, on PostgreSQL: the one who loses the race
gets a clear 4xx (or the result the service promises), never a database error (a 500), and the
effect happens once.

Each test holds the first call's transaction open after its writes (``tests.races``) until the
second call is seen waiting on one of its locks, then lets it commit."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotate.errors import InvalidInput
from annotate.judges.services import judge_create, routing_apply_now
from annotate.models import (
    Annotation,
    ApiToken,
    AuditEvent,
    Judge,
    JudgeJob,
    JudgeSuggestion,
    Membership,
    Project,
    Role,
    RoutingDecision,
    Task,
)
from annotate.models_judges import SuggestionStatus
from annotate.services.manage import member_add, member_deactivate, project_settings_change
from annotate.services.projects import project_create, project_update_settings
from annotate.services.tokens import token_create, token_revoke
from generation.services import endpoint_create
from tests.conftest import add_tasks
from tests.races import HeldTransaction, second_is_a_conflict

pytestmark = [
    pytest.mark.postgres(reason="needs PostgreSQL for real concurrent transactions (set DATABASE_URL)"),
    pytest.mark.django_db(transaction=True),
]


def test_two_projects_started_with_one_name_at_once_the_second_is_a_conflict(monkeypatch):
    """A creates "Same name" and holds its transaction; B passes the "address taken?" check (A's row
    is not committed), waits on the slug's unique index, and must get a 409 once A commits."""
    first, conflict = second_is_a_conflict(
        monkeypatch,
        "core.audit.audit_record",
        lambda: project_create(name="Same name"),
        lambda: project_create(name="Same name"),
    )
    assert first.result.slug == "same-name"
    assert conflict.field == "slug" and "already exists" in conflict.message
    assert Project.objects.filter(slug="same-name").count() == 1


@pytest.mark.parametrize("account_exists", [False, True], ids=["new-account", "existing-account"])
def test_one_person_added_twice_at_once_to_a_project_is_added_once(
    monkeypatch, make_project, make_user, account_exists
):
    """Two managers add "newbie" as a labeler at the same moment. Before: with a new account the
    second failed on the username's unique index (a 500); with an existing one both were told
    "added" and the trail said so twice. Now the second is told the person is already a labeler."""
    project = make_project()
    boss, other_boss = make_user(), make_user()
    if account_exists:
        make_user("newbie")
    with (
        HeldTransaction(
            monkeypatch,
            "annotate.services.manage.audit_record",
            lambda: member_add(project=project, actor=boss, username="newbie", role=Role.LABELER),
        ) as first,
        pytest.raises(InvalidInput) as exc,
    ):
        member_add(project=project, actor=other_boss, username="newbie", role=Role.LABELER)
    assert first.other_waited, "the second manager never waited on the first"
    assert first.error is None
    assert "already a labeler" in exc.value.message
    assert get_user_model().objects.filter(username="newbie").count() == 1
    assert Membership.objects.filter(project=project, user__username="newbie").count() == 1
    assert AuditEvent.objects.filter(project=project, action="membership.add").count() == 1


def test_one_new_account_added_to_two_projects_at_once_joins_both(monkeypatch, make_project, make_user):
    """Managers of two projects add the same new username at once: the first creates the account
    (and gets its initial password); the second, which waited on the username's unique index, adds
    the account just made, as for any existing account (no password), instead of failing with a
    database error."""
    one, two = make_project(), make_project()
    boss = make_user()
    with HeldTransaction(
        monkeypatch,
        "annotate.services.manage.audit_record",
        lambda: member_add(project=one, actor=boss, username="newbie", role=Role.LABELER),
    ) as first:
        membership, password = member_add(project=two, actor=boss, username="newbie", role=Role.LABELER)
    assert first.other_waited, "the second manager never waited on the first"
    assert first.error is None and first.result[1]
    assert password is None
    user = get_user_model().objects.get(username="newbie")
    assert membership.user == user and membership.project == two and membership.is_active
    assert set(Membership.objects.filter(user=user).values_list("project", flat=True)) == {one.pk, two.pk}


def test_two_judges_given_one_name_at_once_the_second_is_a_conflict(monkeypatch, make_project):
    """Two managers create judge "Judge One" at once. Before: the second passed the name checks,
    waited on the first's uncommitted judge account and failed on the username's unique index (a
    500). Now it is the 409 a taken name gets."""
    project = make_project()
    endpoint = endpoint_create(name="race-ep", backend="transformers", model="/models/a", project=project)
    first, conflict = second_is_a_conflict(
        monkeypatch,
        "core.audit.audit_record",
        lambda: judge_create(project=project, name="Judge One", endpoint=endpoint),
        lambda: judge_create(project=project, name="Judge One", endpoint=endpoint),
    )
    assert first.result.name == "judge-one"
    assert conflict.field == "name" and "already has a judge" in conflict.message
    assert Judge.objects.filter(project=project).count() == 1
    assert get_user_model().objects.filter(username__startswith=f"judge.{project.pk}.").count() == 1


def test_routing_pressed_twice_at_once_routes_each_task_once(monkeypatch, make_project):
    """Two "route now" requests (or a judge job finishing while a manager presses the button). Before:
    the second read "no decision yet" before the first committed, waited on the first's task
    locks, then inserted decisions for tasks that already had one (the one-per-task index: a 500).
    Now it looks for decisions again once it holds the locks, and routes nothing twice."""
    project = make_project()
    project_update_settings(project=project, judge_routing=True, judge_audit_share=0.0, judge_min_strength=1)
    project.refresh_from_db()
    tasks = add_tasks(project, prompts=3)
    endpoint = endpoint_create(name="route-ep", backend="transformers", model="/models/a", project=project)
    judge = judge_create(project=project, name="Judge", endpoint=endpoint)
    job = JudgeJob.objects.create(
        project=project, judge=judge, rubric="r", task_ids=[t.pk for t in tasks], total_units=len(tasks)
    )
    JudgeSuggestion.objects.bulk_create(
        JudgeSuggestion(job=job, judge=judge, task=t, status=SuggestionStatus.OK, choice="a", strength=3)
        for t in tasks
    )
    with HeldTransaction(
        monkeypatch, "annotate.judges.services.audit_record", lambda: routing_apply_now(project=project)
    ) as first:
        second = routing_apply_now(project=project)
    assert first.other_waited, "the second never waited on the first's task locks"
    assert first.error is None and first.result == len(tasks)
    assert second == 0
    assert RoutingDecision.objects.filter(project=project).count() == len(tasks)
    assert Annotation.objects.filter(task__project=project, source="judge").count() == len(tasks)
    for task in Task.objects.filter(project=project):
        assert task.claims == task.target_labels == 1


def test_a_token_revoked_twice_at_once_is_revoked_once(monkeypatch, make_user):
    """Two revocations of one token at once (two tabs, or the page and the command). Before: both
    read "not revoked", the second's UPDATE waited on the first's row and then wrote again: a second
    revoked_at and a second api_token.revoke in the audit trail. Revoking is idempotent: once."""
    user = make_user()
    token, _ = token_create(user=user, name="ci")
    with HeldTransaction(
        monkeypatch,
        "annotate.services.tokens.audit_record",
        lambda: token_revoke(token=ApiToken.objects.get(pk=token.pk), actor=user),
    ) as first:
        second = token_revoke(token=ApiToken.objects.get(pk=token.pk), actor=user)
    assert first.other_waited, "the second revocation never waited on the first"
    assert first.error is None
    token.refresh_from_db()
    assert token.revoked_at == first.result.revoked_at == second.revoked_at
    assert AuditEvent.objects.filter(action="api_token.revoke", target_id=str(token.pk)).count() == 1


def test_one_member_removed_twice_at_once_is_removed_once(monkeypatch, make_project, make_user, labeler_in):
    """Two managers deactivate the same labeler at once, each from the page they loaded while the
    labeler was active. Before: both passed the "already inactive?" check on that stale row, the
    second's UPDATE waited on the first's and then ran again, and the trail said
    membership.deactivate twice. Now the second is told the labeler is already inactive."""
    project = make_project()
    boss, other_boss = make_user(), make_user()
    labeler = labeler_in(project)
    membership = Membership.objects.get(project=project, user=labeler, role=Role.LABELER)
    stale = Membership.objects.get(pk=membership.pk)
    with (
        HeldTransaction(
            monkeypatch,
            "annotate.services.manage.audit_record",
            lambda: member_deactivate(project=project, actor=boss, membership=membership),
        ) as first,
        pytest.raises(InvalidInput) as exc,
    ):
        member_deactivate(project=project, actor=other_boss, membership=stale)
    assert first.other_waited, "the second manager never waited on the first"
    assert first.error is None
    assert "already inactive" in exc.value.message
    assert not Membership.objects.get(pk=membership.pk).is_active
    assert AuditEvent.objects.filter(project=project, action="membership.deactivate").count() == 1


def test_two_settings_changes_at_once_are_audited_from_what_each_replaced(
    monkeypatch, make_project, make_user
):
    """Two managers change the overlap at once from pages showing 1. Before: the second's audit
    event said 1 -> 3, from its stale copy, though it replaced the first's 2. Each change is now
    audited against the row it replaced."""
    project = make_project(overlap=1)
    boss, other_boss = make_user(), make_user()
    stale = Project.objects.get(pk=project.pk)
    with HeldTransaction(
        monkeypatch,
        "annotate.services.manage.audit_record",
        lambda: project_settings_change(project=project, actor=boss, values={"overlap": 2}),
    ) as first:
        _, changes = project_settings_change(project=stale, actor=other_boss, values={"overlap": 3})
    assert first.other_waited, "the second change never waited on the first"
    assert first.error is None and first.result[1] == {"overlap": [1, 2]}
    assert changes == {"overlap": [2, 3]}
    trail = AuditEvent.objects.filter(project=project, action="project.settings").order_by("id")
    assert [e.details["changes"]["overlap"] for e in trail] == [[1, 2], [2, 3]]
    assert Project.objects.get(pk=project.pk).overlap == 3
