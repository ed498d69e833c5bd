"""What a hostile model server sends back is shown escaped on the judge job page: its answer text
(rationale, raw answer), its version and its error messages."""

from __future__ import annotations

import json

from core.jobs import JobState
from tests.annotate import judge_fakesrv as fakesrv
from tests.annotate.test_judges_defects import judged, prefers_x

TAG = "<img src=x onerror=alert(1)>"


def test_the_judge_job_page_escapes_what_the_server_sent(make_project, servers, client, labeler_in):
    def hostile(handler, body):
        content = body["messages"][-1]["content"]
        if "Answer 1" in content:
            fakesrv.send(handler, 400, {"error": {"message": f"refused {TAG}"}})
            return
        verdict = json.loads(prefers_x(content))
        verdict["rationale"] = f"because {TAG}"
        payload = fakesrv.completion(json.dumps(verdict) + f" {TAG}")
        payload["system_fingerprint"] = f"fp {TAG}"
        fakesrv.send(handler, 200, payload)

    job = judged(make_project, servers, hostile)
    project = job.project
    assert job.state == JobState.DONE, job.error
    client.force_login(labeler_in(project, "mx", role="manager"))
    response = client.get(f"/projects/{project.slug}/judges/jobs/{job.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert TAG not in page
    assert "refused &lt;img src=x onerror=alert(1)&gt;" in page
    assert "because &lt;img src=x onerror=alert(1)&gt;" in page
