"""The labeling hot path's statement budget (issue 16), asserted on PostgreSQL.

Next-task: at most 3 SQL statements and one transaction; submit: at most 4 and one transaction,
no savepoint. Counted with ``CaptureQueriesContext`` around the whole API request (permission
check, service, payload), with a session user (``force_authenticate``: no session row to read)
and with a bearer token (its lookup cached after the first request). A regression fails here.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from annotate.models import Annotation, Assignment, AssignmentState
from tests.conftest import add_tasks, bearer

# transaction=True: the services open real transactions (BEGIN/COMMIT), not savepoints inside the
# test's own transaction, so what is counted is what production runs.
pytestmark = [
    pytest.mark.postgres(
        reason="the statement budget is PostgreSQL's (set DATABASE_URL); SQLite takes the ORM path"
    ),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("token_cache"),
]

TX_WORDS = ("BEGIN", "COMMIT", "ROLLBACK")


def _split(ctx: CaptureQueriesContext) -> tuple[list[str], list[str]]:
    sqls = [q["sql"] for q in ctx.captured_queries]
    tx = [s for s in sqls if s.strip().upper() in TX_WORDS]
    statements = [s for s in sqls if s.strip().upper() not in TX_WORDS]
    return statements, tx


def _assert_one_transaction(statements: list[str], tx: list[str]) -> None:
    assert tx.count("BEGIN") <= 1 and tx.count("COMMIT") == tx.count("BEGIN"), tx
    assert "ROLLBACK" not in tx
    assert not any("SAVEPOINT" in s.upper() for s in statements), statements


def _clients(project, labeler_in):
    session_user = labeler_in(project)
    session = APIClient()
    session.force_authenticate(session_user)
    token = bearer(labeler_in(project))
    return {"session": session, "token": token}


@pytest.mark.parametrize("who", ["session", "token"])
def test_next_task_takes_at_most_three_statements_in_one_transaction(make_project, labeler_in, who):
    project = make_project(overlap=2)
    add_tasks(project, prompts=5)
    api = _clients(project, labeler_in)[who]
    url = f"/api/v1/labeling/{project.slug}/next"
    first = api.post(url, {}, format="json")  # warms the token cache
    assert first.status_code == 200, first.content
    with CaptureQueriesContext(connection) as ctx:
        resp = api.post(url, {"exclude_assignment_ids": [first.json()["assignment_id"]]}, format="json")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["assignment_id"] != first.json()["assignment_id"]
    assert len(body["candidates"]) == 2 and all(c["text"] for c in body["candidates"])
    statements, tx = _split(ctx)
    assert len(statements) <= 3, "\n".join(statements)
    _assert_one_transaction(statements, tx)
    # the existing lease is returned again, within the same budget
    with CaptureQueriesContext(connection) as ctx:
        again = api.post(url, {}, format="json")
    assert again.json()["assignment_id"] == first.json()["assignment_id"]
    statements, tx = _split(ctx)
    assert len(statements) <= 3, "\n".join(statements)
    _assert_one_transaction(statements, tx)


@pytest.mark.parametrize("who", ["session", "token"])
def test_submit_takes_at_most_four_statements_in_one_transaction(make_project, labeler_in, who):
    project = make_project(dimensions=[{"label": "Helpfulness", "required": False}])
    add_tasks(project, prompts=3)
    api = _clients(project, labeler_in)[who]
    lease = api.post(f"/api/v1/labeling/{project.slug}/next", {}, format="json").json()
    url = f"/api/v1/labeling/assignments/{lease['assignment_id']}/submit"
    with CaptureQueriesContext(connection) as ctx:
        resp = api.post(
            url, {"choice": "left", "strength": 2, "ratings": {"helpfulness": {"0": 4}}}, format="json"
        )
    assert resp.status_code == 201, resp.content
    statements, tx = _split(ctx)
    assert len(statements) <= 4, "\n".join(statements)
    _assert_one_transaction(statements, tx)
    assert tx.count("BEGIN") == 1
    assert Assignment.objects.get(pk=lease["assignment_id"]).state == AssignmentState.SUBMITTED
    assert Annotation.objects.get().ratings["helpfulness"]
    # a replay stays within the budget too, and writes nothing
    with CaptureQueriesContext(connection) as ctx:
        replay = api.post(url, {"choice": "right"}, format="json")
    assert replay.status_code == 200 and replay.json()["annotation_id"] == resp.json()["annotation_id"]
    statements, tx = _split(ctx)
    assert len(statements) <= 4, "\n".join(statements)
    assert not any(s.lstrip().upper().startswith(("INSERT", "UPDATE")) for s in statements)


def _without_authentication(statements: list[str]) -> list[str]:
    """The page's own statements: Django's session and user lookups are its sign-in, not the
    labeling path (the API counts above run with no session to read)."""
    return [s for s in statements if '"django_session"' not in s and 'FROM "auth_user"' not in s]


def test_the_labeling_pages_claim_has_the_same_budget_and_shows_the_apis_lease(
    client, make_project, labeler_in
):
    import json

    from django.urls import reverse

    project = make_project()
    add_tasks(project, prompts=3)
    labeler = labeler_in(project)
    client.force_login(labeler)
    url = reverse("annotate:label_next", args=[project.slug])
    with CaptureQueriesContext(connection) as ctx:
        resp = client.post(url, data=json.dumps({}), content_type="application/json")
    assert resp.status_code == 200 and resp.json()["state"] == "task", resp.content
    statements, tx = _split(ctx)
    page_statements = _without_authentication(statements)
    assert len(page_statements) <= 3, "\n".join(page_statements)
    _assert_one_transaction(statements, tx)
    page = resp.json()

    # the API hands the same held lease back, built by the same lease_payload
    api = APIClient()
    api.force_authenticate(labeler)
    lease = api.post(f"/api/v1/labeling/{project.slug}/next", {}, format="json").json()
    assert lease["assignment_id"] == page["assignment_id"]
    html = page["html"]
    positions = [html.index(c["text"]) for c in lease["candidates"]]
    assert positions == sorted(positions), "the page shows the responses in the API's display order"


def test_async_commit_of_the_claim_only_when_it_is_its_own_transaction(settings, make_project, labeler_in):
    from django.db import transaction

    from annotate.services.leasing import task_claim_next

    settings.LEASE_CLAIM_ASYNC_COMMIT = True
    project = make_project()
    add_tasks(project, prompts=3)
    alice = labeler_in(project)
    with CaptureQueriesContext(connection) as ctx:
        first = task_claim_next(project=project, labeler=alice)
    assert first is not None
    assert any("synchronous_commit" in q["sql"] for q in ctx.captured_queries)
    with connection.cursor() as cur:  # the setting was local to the claim's own transaction
        cur.execute("SHOW synchronous_commit")
        assert cur.fetchone()[0] == "on"
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        second = task_claim_next(project=project, labeler=alice, exclude_assignment_ids=[first.pk])
    assert second is not None and second.pk != first.pk
    assert not any("synchronous_commit" in q["sql"] for q in ctx.captured_queries), (
        "never relaxes a caller's transaction"
    )
