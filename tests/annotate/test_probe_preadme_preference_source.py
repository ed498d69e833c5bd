"""``import_prompts --preference-source`` on a file that records no preference.

The README: "``--preference-source hh-rlhf`` records their [HH-RLHF files'] preferences as
annotations". Given with the project's own JSONL, the command reported every line alike, "line N:
this format records no preference to import", without naming the option, and ended with
"--skip-invalid imports the rest" (it would have imported nothing of what was asked). Named as
``--format jsonl`` the option is now refused before anything is read, naming it; a file detected as
JSONL names ``preference_source`` on its lines."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.models import Prompt
from annotate.services.imports import ImportFailed, prompts_import

LINE = {"id": "p1", "prompt": "Hi?", "candidates": ["a", "b"]}


@pytest.mark.django_db
def test_explicit_jsonl_with_a_preference_source_is_refused_naming_the_option(make_project, tmp_path):
    project = make_project()
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(LINE) + "\n")
    with pytest.raises(CommandError, match=r"^--preference-source: .*HH-RLHF"):
        call_command(
            "import_prompts", str(path), "--project", project.slug, "--format", "jsonl",
            "--preference-source", "hh-rlhf", stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    assert not Prompt.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_detected_jsonl_names_the_preference_source_on_its_lines(make_project):
    project = make_project()
    with pytest.raises(ImportFailed) as exc:
        prompts_import(
            project=project,
            stream=io.BytesIO((json.dumps(LINE) + "\n").encode()),
            preference_source="hh-rlhf",
        )
    (error,) = exc.value.report.errors
    assert error.field == "preference_source" and "HH-RLHF" in error.message
