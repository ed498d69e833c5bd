"""Endpoint names at the same moment, on PostgreSQL: a name taken by a request committing meanwhile
is a 409, never a database error (a 500). The first request's transaction is held open after its
writes (``tests.races``) until the second is seen waiting on its uncommitted row."""

from __future__ import annotations

import pytest

from generation.models import ModelEndpoint
from generation.services import endpoint_create, endpoint_update
from tests.races import second_is_a_conflict

pytestmark = [
    pytest.mark.postgres(reason="needs PostgreSQL for real concurrent transactions (set DATABASE_URL)"),
    pytest.mark.django_db(transaction=True),
]


def test_renaming_to_a_name_being_created_meanwhile_is_a_conflict(monkeypatch, make_project):
    """A creates endpoint "shared" and holds its transaction; B renames another endpoint to "shared":
    its check finds no such name (A's is uncommitted), its save waits on the name's unique index,
    and once A commits it must be a 409. Before, the save failed with an IntegrityError (a 500)."""
    project = make_project()
    other = endpoint_create(name="other", backend="transformers", model="/models/b", project=project)
    _, conflict = second_is_a_conflict(
        monkeypatch,
        "core.audit.audit_record",
        lambda: endpoint_create(name="shared", backend="transformers", model="/models/a", project=project),
        lambda: endpoint_update(endpoint=other, name="shared"),
    )
    assert conflict.field == "name" and "already exists" in conflict.message
    assert sorted(ModelEndpoint.objects.values_list("name", flat=True)) == ["other", "shared"]
