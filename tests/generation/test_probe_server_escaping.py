"""What a hostile model server sends back is shown escaped on the generation job page and in its
status JSON: its error messages, through a real job (not only a failure row written by hand)."""

from __future__ import annotations

import pytest

from tests.generation.conftest import openai_job_inline
from tests.generation.test_backend_openai_defects import by_prompt, fake_server, send  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db
TAG = "<img src=x onerror=alert(1)>"


def test_the_job_page_escapes_the_servers_error_text(research_project, researcher, client, fake_server):  # noqa: F811
    refuse = lambda h, body: send(h, 400, {"error": {"message": f"refused {TAG}"}})  # noqa: E731
    _, url = fake_server(default=by_prompt({"number 1": refuse}))
    job = openai_job_inline(research_project, url)
    client.force_login(researcher)
    response = client.get(f"/generation/{research_project.slug}/jobs/{job.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert TAG not in page and "refused &lt;img src=x onerror=alert(1)&gt;" in page
