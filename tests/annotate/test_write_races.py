"""Two people doing the same thing at the same moment, on PostgreSQL: the one who loses the race
gets a clear 4xx (or the result the service promises), never a database error (a 500), and the
effect happens once.

Each test holds the first call's transaction open after its writes (``tests.races``) until the
second call is seen waiting on one of its locks, then lets it commit."""

from __future__ import annotations

import pytest
from django.db import connection

from annotate.errors import Conflict
from annotate.models import Project
from annotate.services.projects import project_create
from tests.races import HeldTransaction

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL for real concurrent transactions (set DATABASE_URL)")


def test_two_projects_started_with_one_name_at_once_the_second_is_a_conflict(monkeypatch):
    """A creates "Same name" and holds its transaction; B passes the "address taken?" check (A's row
    is not committed), waits on the slug's unique index, and must get a 409 once A commits."""
    with (
        HeldTransaction(
            monkeypatch, "annotate.services.projects.audit_record", lambda: project_create(name="Same name")
        ) as first,
        pytest.raises(Conflict) as exc,
    ):
        project_create(name="Same name")
    assert first.other_waited, "B never waited on A's uncommitted project"
    assert first.error is None and first.result.slug == "same-name"
    assert exc.value.field == "slug" and "already exists" in exc.value.message
    assert Project.objects.filter(slug="same-name").count() == 1
