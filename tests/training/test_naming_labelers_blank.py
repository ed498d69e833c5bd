"""A list of labelers that names nobody is refused, not read as "everyone".

Before: the export API took ``labelers_include: [null]`` (or ``[""]``, ``["  "]``) as an empty filter,
so an export meant for some labelers held every labeler's judgments, with a 201. The text forms the
page and the command take (``"alice,"``: a trailing comma) still mean what they name."""

from __future__ import annotations

import pytest

from tests.conftest import bearer
from tests.training.test_naming_labelers import _api_export, people  # noqa: F401 - the fixture
from training.models import Export

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("names", [[None], ["", "  "], [None, "alice"]])
def test_a_list_naming_nobody_or_null_is_a_400(people, names):  # noqa: F811
    resp = _api_export(people, names)
    assert resp.status_code == 400, resp.content
    body = resp.json()
    assert "labelers_include" in str(body)
    assert not Export.objects.filter(project=people["project"]).exists()


def test_exclude_naming_nobody_is_a_400_too(people):  # noqa: F811
    resp = bearer(people["researcher"]).post(
        f"/api/v1/projects/{people['project'].slug}/exports/",
        {"format": "trl", "options": {"labelers_exclude": [None], "test_size": 0}},
        format="json",
    )
    assert resp.status_code == 400, resp.content
    assert "labelers_exclude" in str(resp.json())


def test_a_trailing_comma_in_text_still_names_who_it_names(people):  # noqa: F811
    resp = _api_export(people, "alice,")
    assert resp.status_code == 201, resp.content
    export = Export.objects.get(project=people["project"], version=resp.json()["version"])
    assert export.options["labelers_include"] == [people["alice"].pk]
