"""Property-based API test: schemathesis generates requests for every operation of the OpenAPI
schema (bounded: a few examples each) and no response may be a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from annotate.models import Annotation
from annotate.services.guidelines import guideline_publish
from annotate.services.tokens import token_create
from tests.conftest import add_tasks
from training.services.exports import export_create, export_run

application = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def api_world(make_project, labeler_in):
    """A project where the token's user is a researcher, with tasks, annotations and an export."""
    project = make_project(name="Fuzz", overlap=2, dimensions=["Harmless"])
    guideline_publish(project=project, actor=None, body="Be kind.")
    tasks = add_tasks(project, prompts=3)
    labeler = labeler_in(project)
    for task in tasks:
        Annotation.objects.create(task=task, labeler=labeler, choice="b")
    export_run(export_id=export_create(project=project, format="trl", enqueue=False).pk)
    user = labeler_in(project, role="researcher")
    _, secret = token_create(user=user, name="fuzz")
    # The WSGI handler closes "old" connections after each request, which would end the test's
    # transaction; Django's test client disconnects these receivers the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield {"slug": project.slug, "headers": {"Authorization": f"Bearer {secret}"}}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case, api_world):
    if "slug" in (case.path_parameters or {}):
        case.path_parameters["slug"] = api_world["slug"]
    case.call_and_validate(headers=api_world["headers"], checks=[not_a_server_error])
