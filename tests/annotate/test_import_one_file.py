"""An import takes one file: two under the field name are refused (page and API), nothing written.
Before, the last one was imported and the other silently dropped."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotate.models import Prompt
from tests.conftest import bearer

pytestmark = pytest.mark.django_db


def _file(name: str, prompt_id: str) -> bytes:
    line = {"id": prompt_id, "prompt": "Hi", "candidates": [{"text": "a"}, {"text": "b"}]}
    return json.dumps(line).encode() + b"\n"


def test_the_api_refuses_two_files(make_project, labeler_in):
    project = make_project()
    client = bearer(labeler_in(project, role="manager"))
    first, second = io.BytesIO(_file("a.jsonl", "p1")), io.BytesIO(_file("b.jsonl", "p2"))
    first.name, second.name = "a.jsonl", "b.jsonl"
    resp = client.post(
        f"/api/v1/projects/{project.slug}/imports/", {"file": [first, second]}, format="multipart"
    )
    assert resp.status_code == 400, resp.content
    assert "Send one file per import: 2 files were sent." in json.dumps(resp.json())
    assert not Prompt.objects.filter(project=project).exists()


def test_the_page_refuses_two_files(make_project, labeler_in):
    project = make_project()
    client = Client()
    client.force_login(labeler_in(project, role="manager"))
    files = [SimpleUploadedFile(n, _file(n, p)) for n, p in (("a.jsonl", "p1"), ("b.jsonl", "p2"))]
    resp = client.post(f"/projects/{project.slug}/manage/import/", {"file": files, "format": "auto"})
    assert resp.status_code == 400
    assert "Send one file per import: 2 files were sent." in resp.content.decode()
    assert not Prompt.objects.filter(project=project).exists()


def test_one_file_still_imports(make_project, labeler_in):
    project = make_project()
    client = bearer(labeler_in(project, role="manager"))
    upload = io.BytesIO(_file("a.jsonl", "p1"))
    upload.name = "a.jsonl"
    resp = client.post(f"/api/v1/projects/{project.slug}/imports/", {"file": upload}, format="multipart")
    assert resp.status_code == 201 and Prompt.objects.filter(project=project).count() == 1
