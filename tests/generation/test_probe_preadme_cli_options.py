"""``generate`` and ``create_tiny_model`` name the option a refused value came from, as every other
command does (house style: "a CLI error naming the option"). Before, ``generate --project nope``
said "No project 'nope'." and ``--endpoint``/``--resume`` likewise, without the option."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["generate", "--project", "nope", "--endpoint", "x"], "--project"),
        (["generate", "--project", "{slug}", "--endpoint", "no-such-endpoint"], "--endpoint"),
        (["generate", "--resume", "987654"], "--resume"),
        (["create_tiny_model", "{tmp}/tiny", "--project", "nope"], "--project"),
    ],
)
def test_refusals_name_the_option(make_project, tmp_path, argv, option):
    project = make_project()
    argv = [a.format(slug=project.slug, tmp=tmp_path) for a in argv]
    with pytest.raises(CommandError, match=f"^{option}: "):
        call_command(*argv)
    assert not (tmp_path / "tiny").exists()
