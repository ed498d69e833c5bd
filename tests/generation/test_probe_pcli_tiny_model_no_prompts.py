"""``create_tiny_model --project SLUG`` for a project with no prompt text yet.

Before: it printed "Training the tokenizer on 0 messages of SLUG." and then trained the tokenizer
on the built-in corpus without saying so: --project ("train the tokenizer on this project's
prompts") was taken and silently did nothing.
Now: it says the project has no prompt text and that the built-in corpus is used instead; a
project with prompts still reports how many messages the tokenizer is trained on.
"""

from __future__ import annotations

import io

from django.core.management import call_command

from tests.conftest import add_tasks


def test_a_project_without_prompts_says_the_built_in_corpus_is_used(make_project, tmp_path):
    project = make_project()
    out = io.StringIO()
    call_command("create_tiny_model", str(tmp_path / "m"), "--project", project.slug, stdout=out)
    text = out.getvalue()
    assert f"{project.slug} has no prompt text: training the tokenizer on the built-in corpus." in text
    assert "0 messages" not in text
    assert (tmp_path / "m" / "config.json").is_file()


def test_a_project_with_prompts_names_the_count(make_project, tmp_path):
    project = make_project()
    add_tasks(project, prompts=3)
    out = io.StringIO()
    call_command("create_tiny_model", str(tmp_path / "m"), "--project", project.slug, stdout=out)
    assert f"Training the tokenizer on 3 messages of {project.slug}." in out.getvalue()
