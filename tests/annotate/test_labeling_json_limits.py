"""The labeling page's JSON endpoints read bodies with the one reader of untrusted JSON
(``annotate.validation.json_loads_safe``): an integer longer than Python will convert (4,300
digits) is a 400 with a message, as in imports, not a 500 (``int()``'s ValueError escaped before)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models import Annotation
from annotate.services.leasing import task_claim_next
from tests.annotate.test_views import login, pairwise  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

HUGE = "9" * 5000


@pytest.mark.parametrize("view", ["label_submit", "label_skip"])
def test_an_integer_too_long_to_read_is_a_400_and_writes_nothing(client, pairwise, view):  # noqa: F811
    project, labeler = pairwise
    login(client, labeler)
    lease = task_claim_next(project=project, labeler=labeler)
    body = '{"choice": "a", "reason": "x", "time_spent_ms": ' + HUGE + "}"
    response = client.post(
        reverse(f"annotate:{view}", args=[project.slug, lease.pk]), data=body, content_type="application/json"
    )
    assert response.status_code == 400
    assert "4300 digits" in response.json()["detail"]
    assert not Annotation.objects.exists()
    lease.refresh_from_db()
    assert lease.state == "live"
