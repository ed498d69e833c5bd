"""Naming one labeler both to include and to exclude is refused, naming them.

Before: ``labelers_include: ["alice"]`` with ``labelers_exclude: ["alice"]`` (the API, the page, or
``export_preferences --labelers alice --exclude-labelers alice``) was accepted and made an export of
no comparisons, with a 201. Now it is a 400 on ``labelers_exclude`` that names the labeler, and no
export is made."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.conftest import bearer
from tests.training.test_naming_labelers import people  # noqa: F401 - the fixture
from training.models import Export

pytestmark = pytest.mark.django_db


def test_the_api_refuses_a_labeler_both_included_and_excluded(people):  # noqa: F811
    resp = bearer(people["researcher"]).post(
        f"/api/v1/projects/{people['project'].slug}/exports/",
        {
            "format": "trl",
            "options": {
                "labelers_include": ["alice", "77777"],
                "labelers_exclude": ["alice"],
                "test_size": 0,
            },
        },
        format="json",
    )
    assert resp.status_code == 400, resp.content
    body = resp.json()
    assert body["field"] == "labelers_exclude" and "alice" in body["detail"]
    assert not Export.objects.exists()


def test_the_command_refuses_it_too(people, tmp_path):  # noqa: F811
    with pytest.raises(CommandError, match="alice"):
        call_command(
            "export_preferences",
            "--project",
            people["project"].slug,
            "--format",
            "trl",
            "--out",
            str(tmp_path / "out"),
            "--labelers",
            "alice",
            "--exclude-labelers",
            "alice",
        )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
