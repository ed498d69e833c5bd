"""Imports cannot exhaust memory or answer 500 (issue 12): over-long lines are refused while they are
read, candidates and tasks per prompt are capped, sampled pairs are drawn without building every pair,
the API honours the upload size limit like the page, deep JSON and NUL characters are line errors."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import random
import tracemalloc

import pytest

from annotate.models import AuditEvent, Prompt
from annotate.services.imports import MAX_LINE_BYTES, ImportFailed, prompts_import
from annotate.services.tasks import PairMode, candidate_groups
from tests.conftest import bearer

pytestmark = pytest.mark.django_db


def _jsonl(*rows) -> io.BytesIO:
    return io.BytesIO(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows))


def _peak_bytes(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_over_long_gzip_line_is_refused_while_it_is_read(make_project):
    project = make_project()
    # 64 MiB without a newline, then a good line: a few hundred KB of gzip.
    data = gzip.compress(b"x" * (64 * 1024 * 1024) + b"\n" + json.dumps({"prompt": "Hi"}).encode() + b"\n")
    assert len(data) < 1024 * 1024

    def run():
        with pytest.raises(ImportFailed) as exc:
            prompts_import(project=project, stream=io.BytesIO(data))
        return exc.value.report

    report, peak = _peak_bytes(run)
    assert [(e.line, e.message) for e in report.errors] == [
        (1, f"line is longer than {MAX_LINE_BYTES} bytes")
    ]
    assert report.lines == 2  # the reader went on past the long line
    assert peak < 3 * MAX_LINE_BYTES, f"peak {peak / 2**20:.1f} MiB: the long line was read whole"


def test_the_decompressed_limit_counts_an_over_long_line(make_project, settings):
    settings.PREFHUB_MAX_IMPORT_DECOMPRESSED_BYTES = 8 * 1024 * 1024
    project = make_project()
    data = gzip.compress(b"y" * (32 * 1024 * 1024))
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=io.BytesIO(data))
    assert "once decompressed" in exc.value.report.errors[-1].message


def test_candidates_per_prompt_are_capped_with_a_line_error(make_project, settings):
    settings.PREFHUB_MAX_CANDIDATES_PER_PROMPT = 10
    project = make_project()
    rows = [
        {"id": "ok", "prompt": "Hi", "candidates": [str(i) for i in range(10)]},
        {"id": "big", "prompt": "Hi", "candidates": [str(i) for i in range(11)]},
    ]
    with pytest.raises(ImportFailed) as exc:
        prompts_import(
            project=project, stream=_jsonl(*rows), task_mode=PairMode.SAMPLED_PAIRS, pairs_per_prompt=1
        )
    (error,) = exc.value.report.errors
    assert (error.line, error.field) == (2, "candidates")
    assert "11 candidates" in error.message and "at most 10" in error.message
    report = prompts_import(
        project=project,
        stream=_jsonl(*rows),
        task_mode=PairMode.SAMPLED_PAIRS,
        pairs_per_prompt=1,
        skip_invalid=True,
    )
    assert (report.prompts, report.tasks) == (1, 1)


def test_tasks_per_prompt_are_capped_before_any_task_is_built(make_project, settings):
    settings.PREFHUB_MAX_TASKS_PER_PROMPT = 100
    project = make_project()
    line = {"id": "many", "prompt": "Hi", "candidates": [str(i) for i in range(20)]}  # 190 pairs
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=_jsonl(line))
    (error,) = exc.value.report.errors
    assert error.field == "candidates" and "190 tasks" in error.message and "sampled_pairs" in error.message
    report = prompts_import(
        project=project, stream=_jsonl(line), task_mode=PairMode.SAMPLED_PAIRS, pairs_per_prompt=5
    )
    assert report.tasks == 5


def test_sampled_pairs_are_drawn_without_building_every_pair():
    ids = list(range(1, 1501))  # 1,124,250 pairs

    groups, peak = _peak_bytes(
        lambda: candidate_groups(ids, mode=PairMode.SAMPLED_PAIRS, rng=random.Random(7), pairs_per_prompt=3)
    )
    assert len(groups) == 3 and len({tuple(sorted(g)) for g in groups}) == 3
    assert all(len(g) == 2 and g[0] != g[1] for g in groups)
    assert peak < 2 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_sampled_pairs_are_the_same_pairs_as_before():
    """Drawing by index keeps the seeded choice of the old full-list sample (reproducible imports)."""
    ids = [11, 12, 13, 14, 15, 16, 17]
    for seed in range(20):
        old_rng = random.Random(seed)
        old = [list(p) for p in old_rng.sample([list(p) for p in itertools.combinations(ids, 2)], 4)]
        for pair in old:
            old_rng.shuffle(pair)
        assert (
            candidate_groups(ids, mode=PairMode.SAMPLED_PAIRS, rng=random.Random(seed), pairs_per_prompt=4)
            == old
        )


def test_deeply_nested_json_is_a_line_error_and_skip_invalid_keeps_good_lines(make_project):
    project = make_project()
    deep = b"[" * 200_000 + b"]" * 200_000
    deep_obj = b'{"prompt": "Hi", "metadata": {"x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}}"
    good = {"id": "g", "prompt": "Hi", "candidates": ["a", "b"]}
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=_jsonl(deep, deep_obj, good))
    assert [e.line for e in exc.value.report.errors] == [1, 2]
    assert all("nested too deeply" in e.message for e in exc.value.report.errors)
    report = prompts_import(project=project, stream=_jsonl(deep, deep_obj, good), skip_invalid=True)
    assert (report.prompts, report.skipped_lines) == (1, 2)


@pytest.mark.parametrize(
    "bad, field, said",
    [
        ({"prompt": "a\u0000b"}, "prompt", "NUL"),
        ({"prompt": "Hi", "candidates": ["ok", "n\u0000o"]}, "candidates[1]", "NUL"),
        ({"prompt": "Hi", "metadata": {"k": ["v\u0000"]}}, "metadata.k[0]", "NUL"),
        ({"prompt": "Hi", "metadata": {"k\u0000": 1}}, "metadata", "NUL"),
        ({"prompt": "Hi", "tags": ["t\u0000"]}, "tags[0]", "NUL"),
        ({"messages": [{"role": "user", "content": "\u0000"}]}, "messages[0].content", "NUL"),
        ({"prompt": "a\ud800b"}, "prompt", "surrogate"),
        ({"prompt": "Hi", "candidates": ["ok", "n\udc00o"]}, "candidates[1]", "surrogate"),
        ({"prompt": "Hi", "metadata": {"k\udfff": 1}}, "metadata", "surrogate"),
        ({"messages": [{"role": "user", "content": "\ud83d"}]}, "messages[0].content", "surrogate"),
    ],
)
def test_a_nul_or_an_unpaired_surrogate_is_a_line_error_and_skip_invalid_keeps_good_lines(
    make_project, bad, field, said
):
    """PostgreSQL text holds no NUL; and JSON can spell half of a UTF-16 pair (\\ud800), which Python
    reads as a lone surrogate: not text, and no database encoding can store it (PostgreSQL:
    UnicodeEncodeError, a 500)."""
    project = make_project()
    good = {"id": "g", "prompt": "Hi \U0001f600", "candidates": ["a", "b"]}  # a whole pair is fine
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=_jsonl(bad, good))
    (error,) = exc.value.report.errors
    assert error.line == 1 and error.field == field and said in error.message
    report = prompts_import(project=project, stream=_jsonl(bad, good), skip_invalid=True)
    assert report.committed and report.prompts == 1
    assert Prompt.objects.get(project=project, external_id="g").messages[0]["content"] == "Hi \U0001f600"


def test_nul_in_hh_transcripts_is_a_line_error(make_project):
    project = make_project()
    bad = {
        "chosen": "\n\nHuman: Hi\u0000\n\nAssistant: Yes",
        "rejected": "\n\nHuman: Hi\u0000\n\nAssistant: No",
    }
    good = {"chosen": "\n\nHuman: Hi\n\nAssistant: Yes", "rejected": "\n\nHuman: Hi\n\nAssistant: No"}
    report = prompts_import(project=project, stream=_jsonl(bad, good), skip_invalid=True)
    assert report.prompts == 1 and report.errors[0].line == 1 and "NUL" in report.errors[0].message


def test_the_api_import_honours_the_upload_size_limit(make_project, labeler_in, settings):
    project = make_project()
    manager = labeler_in(project, role="manager")
    client = bearer(manager, name="t")
    settings.PREFHUB_MAX_IMPORT_BYTES = 100
    big = _jsonl(*[{"id": f"x{i}", "prompt": "Hello there", "candidates": ["a", "b"]} for i in range(20)])
    big.name = "big.jsonl"
    resp = client.post(f"/api/v1/projects/{project.slug}/imports/", {"file": big}, format="multipart")
    assert resp.status_code == 413, resp.content
    assert resp.json()["error"] == "too_large" and "100 bytes" in resp.json()["detail"]
    assert not project.prompts.exists()
    small = _jsonl({"id": "s", "prompt": "Hi", "candidates": ["a", "b"]})
    small.name = "small.jsonl"
    settings.PREFHUB_MAX_IMPORT_BYTES = 10_000
    resp = client.post(f"/api/v1/projects/{project.slug}/imports/", {"file": small}, format="multipart")
    assert resp.status_code == 201 and resp.json()["prompts"] == 1


def test_deeply_nested_api_json_body_is_a_400(make_project, labeler_in):
    project = make_project()
    researcher = labeler_in(project, role="researcher")
    client = bearer(researcher, name="t")
    body = b"[" * 200_000 + b"]" * 200_000
    resp = client.post(f"/api/v1/projects/{project.slug}/exports/", body, content_type="application/json")
    assert resp.status_code == 400


@pytest.mark.parametrize(
    ("escape", "said"), [("\\u0000", "NUL"), ("\\ud800", "surrogate")], ids=["nul", "surrogate"]
)
def test_a_nul_or_an_unpaired_surrogate_in_an_api_json_body_is_a_400(make_project, labeler_in, escape, said):
    project = make_project()
    client = bearer(labeler_in(project, role="researcher"), name="t")
    resp = client.post(
        f"/api/v1/projects/{project.slug}/exports/",
        b'{"format": "trl", "options": {"note": "a' + escape.encode() + b'b"}}',
        content_type="application/json",
    )
    assert resp.status_code == 400 and said in resp.json()["detail"]


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ('{"a": ' + "[" * 200_000 + "]" * 200_000 + "}", None),
        ('{"a": "x\\u0000"}', None),
        ('{"stop": ["\\udc00"]}', "surrogate"),
    ],
    ids=["deep", "nul", "surrogate"],
)
def test_json_form_fields_refuse_deep_nesting_nul_and_unpaired_surrogates(raw, said):
    from django import forms

    from generation.forms import JSONObjectField

    with pytest.raises(forms.ValidationError, match=said):
        JSONObjectField(required=False).clean(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [('{"a": [1]}', {"a": [1]}), ('{"stop": ["\\ud83d\\ude00"]}', {"stop": ["\U0001f600"]})],
    ids=["nested", "surrogate-pair"],
)
def test_json_form_fields_keep_what_they_can_store(raw, value):
    from generation.forms import JSONObjectField

    assert JSONObjectField(required=False).clean(raw) == value


def test_cli_skip_invalid_keeps_the_good_lines_around_nul_and_deep_json(make_project, tmp_path):
    from django.core.management import call_command

    project = make_project()
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b"".join(
            [
                json.dumps({"id": "g1", "prompt": "Hi", "candidates": ["a", "b"]}).encode() + b"\n",
                json.dumps({"id": "bad", "prompt": "a\u0000b", "candidates": ["a", "b"]}).encode() + b"\n",
                b"[" * 200_000 + b"]" * 200_000 + b"\n",
                json.dumps({"id": "g2", "prompt": "Yo", "candidates": ["c", "d"]}).encode() + b"\n",
            ]
        )
    )
    call_command("import_prompts", str(path), "--project", project.slug, "--skip-invalid")
    assert set(Prompt.objects.filter(project=project).values_list("external_id", flat=True)) == {"g1", "g2"}


def test_pending_lines_are_written_in_batches_bounded_by_tasks(make_project, monkeypatch):
    from annotate.services import imports

    monkeypatch.setattr(imports, "BATCH_TASKS", 6)
    calls = []
    original = imports.tasks_bulk_create

    def counting(**kwargs):
        kwargs["specs"] = list(kwargs["specs"])
        calls.append(len(kwargs["specs"]))
        return original(**kwargs)

    monkeypatch.setattr(imports, "tasks_bulk_create", counting)
    rows = [{"id": f"p{i}", "prompt": "Hi", "candidates": ["a", "b", "c"]} for i in range(5)]  # 3 pairs each
    report = prompts_import(project=make_project(), stream=_jsonl(*rows))
    assert report.tasks == 15 and calls == [6, 6, 3]


def test_an_unpaired_surrogate_over_the_api_import_is_a_line_error(make_project, labeler_in):
    project = make_project()
    client = bearer(labeler_in(project, role="manager"), name="t")
    upload = _jsonl({"id": "s", "prompt": "hi \udc00", "candidates": ["a", "b"]})
    upload.name = "s.jsonl"
    resp = client.post(f"/api/v1/projects/{project.slug}/imports/", {"file": upload}, format="multipart")
    assert resp.status_code == 400, resp.content
    assert "surrogate" in json.dumps(resp.json())
    assert not project.prompts.exists()


def _page_import(client, project, manager, *rows):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from annotate.services.projects import membership_add

    membership_add(project=project, user=manager, role="manager")
    client.force_login(manager)
    body = b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)
    return client.post(
        reverse("annotate:manage_import", args=[project.slug]),
        {"file": SimpleUploadedFile("in.jsonl", body), "format": "auto"},
    )


@pytest.mark.parametrize("seed", [2**63, -(2**63) - 1, 2**70])
def test_a_candidate_seed_beyond_64_bits_is_a_line_error(client, make_project, make_user, seed):
    """The seed column is a bigint: 2**70 answered 500 (DataError: out of range for type bigint)."""
    project = make_project()
    good = {
        "prompt": "Fine",
        "candidates": [{"text": "a", "seed": 2**63 - 1}, {"text": "b", "seed": -(2**63)}],
    }
    bad = {"prompt": "Hi", "candidates": [{"text": "a", "seed": seed}, "b"]}
    response = _page_import(client, project, make_user(), good, bad)
    assert response.status_code == 400
    report = response.context["report"]
    assert [(e.line, e.field) for e in report.errors] == [(2, "candidates[0].seed")]
    assert "64-bit" in report.errors[0].message
    assert not Prompt.objects.filter(project=project).exists()


@pytest.mark.parametrize(
    "line",
    [
        b'{"prompt": "Hi", "metadata": {"score": NaN}, "candidates": ["a", "b"]}',
        b'{"prompt": "Hi", "candidates": [{"text": "a", "sampling": {"temperature": Infinity}}, "b"]}',
        b'{"prompt": "Hi", "candidates": [{"text": "a", "metadata": {"p": -Infinity}}, "b"]}',
        b'{"prompt": "Hi", "metadata": {"big": 1e999}, "candidates": ["a", "b"]}',
    ],
)
def test_nan_and_infinity_are_a_line_error(client, make_project, make_user, line):
    """Python's json reads NaN, Infinity and 1e999 (as inf); jsonb cannot hold them: the page
    answered 500 (DataError: invalid input syntax for type json)."""
    project = make_project()
    response = _page_import(client, project, make_user(), {"prompt": "Fine", "candidates": ["a", "b"]}, line)
    assert response.status_code == 400
    (error,) = response.context["report"].errors
    assert error.line == 2 and "not valid JSON" in error.message and "cannot be stored" in error.message
    assert not Prompt.objects.filter(project=project).exists()


@pytest.mark.parametrize(
    "candidate, field, message",
    [
        ({"text": "a", "model": "m" * 301}, "candidates[0].model", "longer than 300 characters"),
        ({"text": "a", "model_version": "v" * 201}, "candidates[0].model_version", "longer than 200"),
        ({"text": "a", "id": "c" * 201}, "candidates[0].id", "longer than 200 characters"),
        ({"text": "a", "model": {"name": "m"}}, "candidates[0].model", "must be a string"),
    ],
)
def test_candidate_names_that_do_not_fit_are_a_line_error(
    client, make_project, make_user, candidate, field, message
):
    """A prompt's id over 200 characters was refused, but a candidate's model name, version and id
    were cut to fit without a word (two models differing after 300 characters became one on the
    leaderboard), and a model given as an object was stored as its Python repr."""
    project = make_project()
    response = _page_import(client, project, make_user(), {"prompt": "Hi", "candidates": [candidate, "b"]})
    assert response.status_code == 400
    (error,) = response.context["report"].errors
    assert (error.line, error.field) == (1, field) and message in error.message
    assert not Prompt.objects.filter(project=project).exists()


@pytest.mark.parametrize("body", [b'{"a": 1e999}', b'{"a": NaN}', b'{"a": [-Infinity]}', b'{"a": "\\ud800"}'])
def test_the_api_parser_refuses_what_the_pages_refuse(body):
    """One rule for untrusted JSON (annotate.validation.json_loads_safe): the API's parser refuses
    numbers jsonb cannot hold, as the import and the pages do."""
    import io

    from rest_framework.exceptions import ParseError

    from annotate.parsers import SafeJSONParser

    with pytest.raises(ParseError, match=r"cannot be stored|not a JSON number"):
        SafeJSONParser().parse(io.BytesIO(body), "application/json", {})


@pytest.mark.parametrize("body", [b"", b"\n\n  \n", gzip.compress(b"")])
def test_a_file_with_no_prompts_is_refused_everywhere(client, make_project, make_user, tmp_path, body):
    """An empty file (or only blank lines) is an error naming the file on the page, the API and the
    command line: before, each said "Imported 0 prompts" and the command exited 0, so a pipeline
    that pointed at the wrong (empty) file went on as if it had imported."""
    from django.core.management import CommandError, call_command

    from annotate.errors import InvalidInput

    project = make_project()
    with pytest.raises(InvalidInput) as err:
        prompts_import(project=project, stream=io.BytesIO(body))
    assert err.value.field == "file" and "no prompts" in err.value.message

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from annotate.services.projects import membership_add

    manager = make_user()
    membership_add(project=project, user=manager, role="manager")
    client.force_login(manager)
    response = client.post(
        reverse("annotate:manage_import", args=[project.slug]),
        {
            "file": SimpleUploadedFile("in.jsonl.gz" if body[:2] == b"\x1f\x8b" else "in.jsonl", body),
            "format": "auto",
        },
    )
    assert response.status_code == 400
    assert (
        b"no prompts" in response.content or b"The submitted file is empty" in response.content
    )  # Django's own

    upload = io.BytesIO(body)
    upload.name = "empty.jsonl"
    resp = bearer(manager, name="t").post(
        f"/api/v1/projects/{project.slug}/imports/", {"file": upload}, format="multipart"
    )
    assert resp.status_code == 400, resp.content
    detail = resp.json()["detail"]
    assert resp.json()["field"] == "file" and (
        "no prompts" in detail or "The submitted file is empty" in detail
    )

    path = tmp_path / "empty.jsonl"
    path.write_bytes(body)
    with pytest.raises(CommandError, match=r"^file: .*no prompts"):
        call_command("import_prompts", str(path), "--project", project.slug)
    assert not Prompt.objects.filter(project=project).exists()
    assert not AuditEvent.objects.filter(project=project, action="prompts.import").exists()
