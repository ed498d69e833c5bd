"""Probe: files that are not UTF-8. A UTF-16 or UTF-32 file (as Windows tools save "Unicode" text)
is one clear error naming the encoding, not a line error per line with misnumbered lines; a
Latin-1 line is an error that says the line is not UTF-8. Nothing is written. A UTF-8 byte order
mark, CRLF line ends and a last line without a newline are read as they should be."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Prompt
from annotate.services.imports import ImportFailed, prompts_import
from tests.conftest import bearer

pytestmark = pytest.mark.django_db

LINES = [{"id": f"p{i}", "prompt": f"Caf\u00e9 {i}", "candidates": ["a", "b"]} for i in range(3)]
TEXT = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in LINES)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_utf16_or_utf32_file_is_one_error_naming_the_encoding(make_project, encoding, gz):
    """Before: UTF-16 text split at its "\\n" bytes gave every line two errors, misnumbered
    ("line 1: not valid JSON ('utf-16-le' codec can't decode byte 0x0a in position 76: truncated
    data)", "line 3: not valid JSON (Expecting value)", ...): nothing said the file was UTF-16."""
    project = make_project()
    data = TEXT.encode(encoding)
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=io.BytesIO(gzip.compress(data) if gz else data))
    report = exc.value.report
    assert [(e.line, e.field) for e in report.errors] == [(1, "file")]
    message = report.errors[0].message
    assert "not UTF-8" in message and "UTF-16 or UTF-32" in message and "save it as UTF-8" in message
    assert not Prompt.objects.filter(project=project).exists()


def test_the_api_and_the_cli_say_so_too(make_project, labeler_in, tmp_path, capsys):
    project = make_project()
    client = bearer(labeler_in(project, role="manager"))
    resp = client.post(
        f"/api/v1/projects/{project.slug}/imports/",
        TEXT.encode("utf-16"),
        content_type="application/x-ndjson",
    )
    assert resp.status_code == 400
    (error,) = resp.json()["details"]["errors"]
    assert error["line"] == 1 and error["field"] == "file" and "UTF-16" in error["message"]
    path = tmp_path / "unicode.jsonl"
    path.write_bytes(TEXT.encode("utf-16"))
    with pytest.raises(CommandError, match="1 bad line"):
        call_command("import_prompts", str(path), "--project", project.slug)
    assert "line 1, file: the file is not UTF-8" in capsys.readouterr().err
    assert not Prompt.objects.filter(project=project).exists()


def test_a_latin1_line_is_an_error_saying_it_is_not_utf8(make_project):
    project = make_project()
    data = TEXT.encode("utf-8") + b'{"id": "x", "prompt": "Caf\xe9", "candidates": ["a", "b"]}\n'
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=io.BytesIO(data))
    (error,) = exc.value.report.errors
    assert error.line == 4 and "not UTF-8 text" in error.message and "0xe9" in error.message
    assert not Prompt.objects.filter(project=project).exists()


def test_bom_crlf_and_a_last_line_without_newline_import_every_line(make_project):
    project = make_project()
    data = ("\ufeff" + TEXT.replace("\n", "\r\n")).encode("utf-8").removesuffix(b"\r\n")
    report = prompts_import(project=project, stream=io.BytesIO(data))
    assert (report.lines, report.prompts, report.errors) == (3, 3, [])
    assert sorted(Prompt.objects.filter(project=project).values_list("external_id", flat=True)) == [
        "p0",
        "p1",
        "p2",
    ]
    assert Prompt.objects.get(project=project, external_id="p2").messages[0]["content"] == "Caf\u00e9 2"


def test_a_raw_nul_byte_in_a_utf8_first_line_is_a_line_error_not_an_encoding_error(make_project):
    project = make_project()
    data = b'{"id": "z", "prompt": "x\x00y", "candidates": ["a", "b"]}\n' + TEXT.encode()
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=io.BytesIO(data))
    (error,) = exc.value.report.errors
    assert error.line == 1 and error.field is None and "not valid JSON" in error.message
    assert "UTF-16" not in error.message
    assert not Prompt.objects.filter(project=project).exists()
