"""Probe: the import (and export) command's --project. A slug typed in a terminal that is not
UTF-8 reaches Python as a surrogate escape ("\\udcff"); such text, or a NUL, names no project: a
CommandError naming --project, never a traceback from the database driver."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from annotate.selectors import project_get

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("slug", ["caf\udce9", "a\x00b"], ids=["latin1-terminal", "nul"])
def test_import_and_export_name_the_project_option(make_project, tmp_path, slug):
    """Before: UnicodeEncodeError ('surrogates not allowed') / DataError ('PostgreSQL text fields
    cannot contain NUL (0x00) bytes') from the slug lookup."""
    make_project()
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": "Hi", "candidates": ["a", "b"]}\n', encoding="utf-8")
    with pytest.raises(CommandError, match=r"^--project: no project"):
        call_command("import_prompts", str(path), "--project", slug)
    with pytest.raises(CommandError, match=r"^--project: no project"):
        call_command(
            "export_preferences", "--project", slug, "--format", "trl", "--out", str(tmp_path / "out")
        )
    with pytest.raises(CommandError, match=r"No project"):
        call_command("generate", "--project", slug, "--endpoint", "e")
    assert project_get(slug=slug) is None
