"""An endpoint name that has nothing to keep as a name (no letter or digit a slug keeps: "!!!",
"政策") is refused, page and API, instead of registering the policy under the default
``<project>-<kind>-run-<id>`` name the researcher did not give, with a 201 as if it were theirs."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.models import ModelEndpoint
from tests.training.test_register_defects import _policy, _register

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["!!!", "政策"])
def test_a_name_with_nothing_to_keep_is_refused(client, project, researcher, name):
    run = _policy(project)
    client.force_login(researcher)
    api = _register(client, project, run, {"name": name})
    assert api.status_code == 400, api.content
    assert api.json()["field"] == "name"
    page = client.post(
        reverse("training:run_register", args=[project.slug, run.pk]), {"name": name}, follow=True
    )
    assert "letters or digits" in page.content.decode()
    run.refresh_from_db()
    assert run.registered_endpoint is None and not ModelEndpoint.objects.filter(project=project).exists()
    # a name with something to keep is registered under its slug
    assert _register(client, project, run, {"name": "Policy v2!"}).json()["endpoint"] == "policy-v2"
