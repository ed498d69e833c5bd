"""Hostile bytes in import files (probe of imports): every bad line is a line error naming its line
and field on the page, the API and the command line, and nothing is written; never a 500."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotate.models import Candidate, Prompt, Task
from annotate.services.imports import ImportFailed, prompts_import
from annotate.services.projects import membership_add
from annotate.validation import UnsafeJSON, json_loads_finite, json_loads_safe
from tests.conftest import bearer

pytestmark = pytest.mark.django_db

GOOD = b'{"id": "good", "prompt": "Fine", "candidates": ["a", "b"]}'
# An integer of 5000 digits: Python refuses to read more than 4300 (ValueError, not a JSON error).
HUGE_INT = b'{"id": "h", "prompt": "Hi", "metadata": {"n": ' + b"7" * 5000 + b'}, "candidates": ["a", "b"]}'
# U+D800 written as UTF-8 bytes (ED A0 80): json.loads(bytes) decodes with 'surrogatepass'.
RAW_SURROGATE = b'{"id": "s", "prompt": "Hi \xed\xa0\x80", "candidates": ["a", "b"]}'


def _body(*lines: bytes) -> bytes:
    return b"\n".join(lines) + b"\n"


def _counts(project) -> tuple[int, int, int]:
    return (
        Prompt.objects.filter(project=project).count(),
        Candidate.objects.filter(prompt__project=project).count(),
        Task.objects.filter(project=project).count(),
    )


def _page(client, project, manager, body: bytes):
    membership_add(project=project, user=manager, role="manager")
    client.force_login(manager)
    client.raise_request_exception = False
    return client.post(
        reverse("annotate:manage_import", args=[project.slug]),
        {"file": SimpleUploadedFile("in.jsonl", body), "format": "auto"},
    )


def test_json_readers_refuse_an_integer_too_long_for_python_as_bad_json():
    """json.loads raises a bare ValueError past 4300 digits: the import's reader thread (which
    catches JSON errors only) let it through as a 500."""
    for loads in (json_loads_finite, json_loads_safe):
        with pytest.raises(UnsafeJSON, match="digits"):
            loads(b'{"n": ' + b"1" * 5000 + b"}")
    assert json_loads_finite(b'{"n": ' + b"1" * 4000 + b"}")["n"] == int("1" * 4000)


def test_json_readers_refuse_a_surrogate_encoded_as_utf8_bytes():
    """Bytes ED A0 80 are not UTF-8; json.loads(bytes) read them as the lone surrogate U+D800."""
    with pytest.raises(UnicodeDecodeError):
        json_loads_finite(b'{"a": "\xed\xa0\x80"}')
    assert json_loads_finite('{"a": "\U0001f600"}'.encode()) == {"a": "\U0001f600"}
    assert json_loads_finite('\ufeff{"a": 1}'.encode()) == {"a": 1}  # a BOM is still read


@pytest.mark.parametrize("bad", [HUGE_INT, RAW_SURROGATE], ids=["huge-int", "raw-surrogate"])
def test_page_import_reports_the_line_and_writes_nothing(client, make_project, make_user, bad):
    """Before: 500 (ValueError: Exceeds the limit (4300 digits) / UnicodeEncodeError: surrogates
    not allowed, raised from the reader thread and the COPY)."""
    project = make_project()
    response = _page(client, project, make_user(), _body(GOOD, bad))
    assert response.status_code == 400
    (error,) = response.context["report"].errors
    assert error.line == 2 and "not valid JSON" in error.message
    assert _counts(project) == (0, 0, 0)


@pytest.mark.parametrize("bad", [HUGE_INT, RAW_SURROGATE], ids=["huge-int", "raw-surrogate"])
def test_api_import_answers_400_with_the_line_and_skip_invalid_keeps_the_rest(make_project, labeler_in, bad):
    project = make_project()
    client = bearer(labeler_in(project, role="manager"))
    client.raise_request_exception = False
    url = f"/api/v1/projects/{project.slug}/imports/"
    resp = client.post(url, _body(GOOD, bad), content_type="application/x-ndjson")
    assert resp.status_code == 400, resp.content
    errors = resp.json()["details"]["errors"]
    assert [e["line"] for e in errors] == [2] and "not valid JSON" in errors[0]["message"]
    assert _counts(project) == (0, 0, 0)
    resp = client.post(url + "?skip_invalid=true", _body(GOOD, bad), content_type="application/x-ndjson")
    assert resp.status_code == 201, resp.content
    assert resp.json()["skipped_lines"] == 1
    assert list(Prompt.objects.filter(project=project).values_list("external_id", flat=True)) == ["good"]


@pytest.mark.parametrize("bad", [HUGE_INT, RAW_SURROGATE], ids=["huge-int", "raw-surrogate"])
def test_cli_import_names_the_line_and_writes_nothing(make_project, tmp_path, capsys, bad):
    project = make_project()
    path = tmp_path / "in.jsonl"
    path.write_bytes(_body(GOOD, bad))
    with pytest.raises(CommandError, match="Nothing was imported: 1 bad line"):
        call_command("import_prompts", str(path), "--project", project.slug)
    assert f"{path}: line 2: not valid JSON" in capsys.readouterr().err
    assert _counts(project) == (0, 0, 0)


@pytest.mark.parametrize(
    "line, field",
    [
        ({"prompt": "Hi", "metadata": False, "candidates": ["a", "b"]}, "metadata"),
        ({"prompt": "Hi", "metadata": 0, "candidates": ["a", "b"]}, "metadata"),
        ({"prompt": "Hi", "metadata": "", "candidates": ["a", "b"]}, "metadata"),
        ({"prompt": "Hi", "tags": 0, "candidates": ["a", "b"]}, "tags"),
        ({"prompt": "Hi", "tags": "", "candidates": ["a", "b"]}, "tags"),
        ({"prompt": "Hi", "tags": False, "candidates": ["a", "b"]}, "tags"),
        ({"prompt": "Hi", "candidates": False}, "candidates"),
        ({"prompt": "Hi", "candidates": 0}, "candidates"),
        ({"prompt": "Hi", "candidates": ""}, "candidates"),
        ({"prompt": "Hi", "candidates": [{"text": "a", "sampling": 0}, "b"]}, "candidates[0].sampling"),
        ({"prompt": "Hi", "candidates": [{"text": "a", "sampling": ""}, "b"]}, "candidates[0].sampling"),
        ({"prompt": "Hi", "candidates": [{"text": "a", "metadata": False}, "b"]}, "candidates[0].metadata"),
        ({"prompt": "Hi", "candidates": [{"text": "a", "metadata": 0}, "b"]}, "candidates[0].metadata"),
    ],
)
def test_a_falsy_value_of_the_wrong_type_is_a_line_error(make_project, line, field):
    """Before: ``obj.get(...) or {}`` took false, 0 and "" for "absent": the line was imported with
    empty metadata, tags or candidates (a prompt with no tasks at all) and no word of it."""
    project = make_project()
    stream = io.BytesIO(_body(GOOD, json.dumps(line).encode()))
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=stream)
    assert [(e.line, e.field) for e in exc.value.report.errors] == [(2, field)]
    assert "must be" in exc.value.report.errors[0].message
    assert _counts(project) == (0, 0, 0)


def test_null_and_empty_containers_still_mean_absent(make_project):
    project = make_project()
    line = {
        "id": "n",
        "prompt": "Hi",
        "metadata": None,
        "tags": [],
        "candidates": [
            {"text": "a", "sampling": None, "metadata": {}},
            {"text": "b", "sampling": {}, "metadata": None},
        ],
    }
    report = prompts_import(project=project, stream=io.BytesIO(_body(json.dumps(line).encode())))
    assert (report.prompts, report.candidates, report.tasks) == (1, 2, 1)
    prompt = Prompt.objects.get(project=project)
    assert (prompt.metadata, prompt.tags) == ({}, [])
