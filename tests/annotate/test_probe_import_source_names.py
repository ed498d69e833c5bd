"""Probe: the recorded preferences of an HH-RLHF import are annotations by a login-less user named
after ``preference_source`` ("source-<slug>"). Two different sources must never become the same
user, and a name that names nothing is refused with the field, before anything is written."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from annotate.errors import InvalidInput
from annotate.models import Annotation, Prompt
from annotate.services.imports import prompts_import
from tests.conftest import bearer

pytestmark = pytest.mark.django_db


def _hh(reply: str) -> io.BytesIO:
    line = (
        '{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: %s", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: no"}\n'
    )
    return io.BytesIO((line % reply).encode())


def test_sources_named_in_other_scripts_stay_apart(make_project):
    """Before: slugify dropped every non-ASCII letter, so "日本" and "中文" (and "!!!") all
    recorded their preferences as the one user "source-"."""
    project = make_project()
    prompts_import(project=project, stream=_hh("yes"), preference_source="日本")
    prompts_import(project=project, stream=_hh("sure"), preference_source="中文")
    names = sorted(
        Annotation.objects.filter(task__project=project).values_list("labeler__username", flat=True)
    )
    assert names == ["source-中文", "source-日本"]
    # an ASCII name keeps its user, as before
    prompts_import(project=project, stream=_hh("ok"), preference_source="HH RLHF")
    assert Annotation.objects.filter(labeler__username="source-hh-rlhf").count() == 1


@pytest.mark.parametrize("name", ["!!!", "---", "\u200b"])
def test_a_source_name_without_letters_or_digits_is_refused(make_project, labeler_in, tmp_path, name):
    project = make_project()
    with pytest.raises(InvalidInput) as exc:
        prompts_import(project=project, stream=_hh("yes"), preference_source=name)
    assert exc.value.field == "preference_source" and "letter or digit" in exc.value.message
    client = bearer(labeler_in(project, role="manager"))
    resp = client.post(
        f"/api/v1/projects/{project.slug}/imports/?preference_source={name}",
        _hh("yes").getvalue(),
        content_type="application/x-ndjson",
    )
    assert resp.status_code == 400 and resp.json()["field"] == "preference_source"
    path = tmp_path / "hh.jsonl"
    path.write_bytes(_hh("yes").getvalue())
    with pytest.raises(CommandError, match=r"--preference-source: .*letter or digit"):
        call_command("import_prompts", str(path), "--project", project.slug, f"--preference-source={name}")
    assert not Prompt.objects.filter(project=project).exists()
    assert not Annotation.objects.filter(task__project=project).exists()


def test_a_source_whose_user_name_is_a_persons_account_is_refused(make_project, labeler_in):
    """Before: a real, active account called "source-x" (a person a manager added) got an HH
    import's recorded preferences as their own labels when the source was named "x"."""
    project = make_project()
    person = labeler_in(project, username="source-x")
    with pytest.raises(InvalidInput) as exc:
        prompts_import(project=project, stream=_hh("yes"), preference_source="x")
    assert exc.value.field == "preference_source" and "source-x" in exc.value.message
    assert not Annotation.objects.filter(labeler=person).exists()
    assert not Prompt.objects.filter(project=project).exists()
    # a source's own login-less user is reused, as before
    prompts_import(project=project, stream=_hh("yes"), preference_source="y")
    prompts_import(project=project, stream=_hh("sure"), preference_source="y")
    assert Annotation.objects.filter(labeler__username="source-y").count() == 2
