"""Training run pages and API: who may see them, the launch form, the run page (charts, escaped log,
cancel, register), the JSON the page polls, and the REST endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from annotate.services.projects import membership_add
from tests.training.conftest import done_export, make_run
from training.models import MetricPoint, RunState, TrainingRun

pytestmark = pytest.mark.django_db


def test_outsiders_get_404_and_labelers_403(client, project, make_user):
    run = make_run(project)
    outsider = make_user()
    client.force_login(outsider)
    assert client.get(reverse("training:run_list", args=[project.slug])).status_code == 404
    assert client.get(reverse("training:run_status", args=[project.slug, run.pk])).status_code == 404
    labeler = make_user()
    membership_add(project=project, user=labeler, role="labeler")
    client.force_login(labeler)
    assert client.get(reverse("training:run_list", args=[project.slug])).status_code == 403
    assert client.post(reverse("training:run_cancel", args=[project.slug, run.pk])).status_code == 403
    client.logout()
    assert client.get(reverse("training:run_list", args=[project.slug])).status_code == 302


def test_launch_form_creates_a_run_and_shows_errors(client, project, researcher, dataset, settings):
    settings.PREFHUB_DATASET_DIRS = []
    client.force_login(researcher)
    url = reverse("training:run_list", args=[project.slug])
    page = client.get(url)
    assert (
        page.status_code == 200
        and b"Launch a run" in page.content
        and b"precompute_ref_log_probs" in page.content
    )
    bad = client.post(url, {"kind": "reward", "base_model": "tiny", "config": "{not json"})
    assert bad.status_code == 400 and b"Not valid JSON" in bad.content
    no_data = client.post(url, {"kind": "reward", "base_model": "tiny"})
    assert no_data.status_code == 400 and b"Choose an export" in no_data.content
    # A dataset file is an API/CLI option; the form trains on exports.
    export = done_export(project, dataset)
    ok = client.post(
        url,
        {"kind": "reward", "base_model": "tiny", "export": export.pk, "config": '{"learning_rate": 0.001}'},
    )
    run = TrainingRun.objects.get(project=project)
    assert ok.status_code == 302 and ok["Location"] == reverse(
        "training:run_detail", args=[project.slug, run.pk]
    )
    assert run.export == export and run.config == {"learning_rate": 0.001} and run.created_by == researcher


def test_run_page_charts_escaped_log_and_polling_json(client, project, researcher):
    run = make_run(project, state=RunState.RUNNING)
    log = Path(settings.PREFHUB_DATA_DIR) / "runs" / "page.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("step 1 <script>alert(1)</script>\n")
    TrainingRun.objects.filter(pk=run.pk).update(
        log_path=str(log), metrics={"latest": {"step": 3, "loss": 0.4}}
    )
    MetricPoint.objects.bulk_create(
        [
            MetricPoint(run=run, step=s, values={"loss": 1.0 / s, "accuracy": 0.5 + s / 10, "kl": 0.1 * s})
            for s in (1, 2, 3)
        ]
    )
    client.force_login(researcher)
    page = client.get(reverse("training:run_detail", args=[project.slug, run.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert html.count("<polyline") == 3  # loss, accuracy, KL
    assert "js/training.js" in html and 'data-active="1"' in html
    assert "Cancel run" in html and " style=" not in html
    data = client.get(reverse("training:run_status", args=[project.slug, run.pk])).json()
    assert data["state"] == "running" and data["active"] is True
    assert data["charts_html"].count("<polyline") == 3
    assert data["log"].startswith("step 1 <script>")  # raw text: the page's JS sets it as textContent
    assert data["metrics"]["latest"]["loss"] == 0.4


def test_cancel_and_register_buttons(client, project, researcher):
    queued = make_run(project)
    client.force_login(researcher)
    client.post(reverse("training:run_cancel", args=[project.slug, queued.pk]))
    queued.refresh_from_db()
    assert queued.state == RunState.CANCELLED
    out = Path(settings.PREFHUB_DATA_DIR) / "models" / "page-ppo"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text("{}")
    done = make_run(project, kind="ppo", state=RunState.DONE, output_path=str(out))
    page = client.get(reverse("training:run_detail", args=[project.slug, done.pk]))
    assert b"Register as a generation endpoint" in page.content
    client.post(reverse("training:run_register", args=[project.slug, done.pk]), {"name": "my-ppo-policy"})
    done.refresh_from_db()
    assert done.registered_endpoint.name == "my-ppo-policy"
    page = client.get(reverse("training:run_detail", args=[project.slug, done.pk]))
    assert b"Register as a generation endpoint" not in page.content and b"my-ppo-policy" in page.content


def test_api_create_list_status_cancel(client, project, researcher, dataset, make_user):
    client.force_login(researcher)
    base = f"/api/v1/projects/{project.slug}/runs/"
    created = client.post(
        base,
        {"kind": "dpo", "base_model": "tiny", "dataset_path": dataset, "config": {"beta": 0.2}},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["state"] == "queued" and body["config"] == {"beta": 0.2}
    bad = client.post(
        base,
        {"kind": "dpo", "base_model": "tiny", "dataset_path": dataset, "config": {"bta": 1}},
        content_type="application/json",
    )
    assert bad.status_code == 400 and bad.json()["field"] == "config"
    listing = client.get(base).json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == body["id"]
    MetricPoint.objects.create(run_id=body["id"], step=1, values={"loss": 0.5})
    status = client.get(f"{base}{body['id']}/?points=1").json()
    assert status["points"][0]["loss"] == 0.5
    cancelled = client.post(f"{base}{body['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = client.post(f"{base}{body['id']}/cancel/")
    assert again.status_code == 409
    client.force_login(make_user())
    assert client.get(base).status_code == 404


def test_read_only_pages_refuse_other_methods(client, project, researcher):
    """The run page, its status JSON, an export's page and its downloads are read-only: a POST, PUT,
    PATCH or DELETE gets 405 like every other page (they answered 200, as if it had been done)."""
    from training.models import Export

    run = make_run(project)
    Export.objects.create(project=project, version=1, format="trl", state="done")
    client.force_login(researcher)
    urls = [
        reverse("training:run_detail", args=[project.slug, run.pk]),
        reverse("training:run_status", args=[project.slug, run.pk]),
        reverse("training:export_detail", args=[project.slug, 1]),
        reverse("training:export_download", args=[project.slug, 1]),
        reverse("training:export_file", args=[project.slug, 1, "manifest.json"]),
    ]
    for url in urls:
        for method in ("post", "put", "patch", "delete"):
            assert getattr(client, method)(url).status_code == 405, (method, url)
    assert client.get(urls[0]).status_code == 200
    assert client.get(urls[2]).status_code == 200


@pytest.mark.parametrize(
    "name, message",
    [("my\x00policy", "Null characters are not allowed."), ("p" * 101, "at most 100 characters")],
)
def test_register_button_refuses_a_name_the_api_refuses(client, project, researcher, name, message):
    """The name is read like the API's (100 characters, no NUL): the page registered 'mypolicy'
    for a name with a NUL in it and cut a long one to 100 characters, without a word."""
    out = Path(settings.PREFHUB_DATA_DIR) / "models" / "page-register-bad"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text("{}")
    done = make_run(project, kind="dpo", state=RunState.DONE, output_path=str(out))
    client.force_login(researcher)
    response = client.post(
        reverse("training:run_register", args=[project.slug, done.pk]), {"name": name}, follow=True
    )
    assert message in response.content.decode()
    done.refresh_from_db()
    assert done.registered_endpoint is None
    api = client.post(
        f"/api/v1/projects/{project.slug}/runs/{done.pk}/register/",
        {"name": name},
        content_type="application/json",
    )
    assert api.status_code == 400
