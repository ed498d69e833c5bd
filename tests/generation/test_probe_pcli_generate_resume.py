"""``generate --resume JOB`` with the options that describe a new job.

Before: ``--resume`` took the job as it was and silently dropped every option that shapes a new job
(``--k 8``, ``--temperature``, ``--filter``, ``--release all``, ``--endpoint``...): the command said
"Re-enqueued ..." and the job ran with its old settings, so the user believed they had changed
them. ``--resume 0`` was read as no ``--resume`` at all and answered "--project and at least one
--endpoint are required."
Now: ``--resume`` with any of those options is a one-line CommandError naming them (a resumed job
keeps its own settings), and ``--resume 0`` says there is no job 0. The defaults of the options
(k 2, filter all, release staged) are unchanged for a new job.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from generation import services
from generation.models import GenerationJob
from tests.generation.conftest import add_prompts


@pytest.fixture
def queued_job(research_project, monkeypatch, django_capture_on_commit_callbacks):
    add_prompts(research_project, 2)
    services.endpoint_create(name="e1", backend="transformers", model="/m", project=research_project)
    monkeypatch.setattr("core.outbox.send_task", lambda name, args: None)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("generate", "--project", research_project.slug, "--endpoint", "e1", "--no-follow")
    return GenerationJob.objects.get()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--k", "8"], "--k"),
        (["--k", "2"], "--k"),  # the default value, given: still not applied to the job
        (["--temperature", "0.2"], "--temperature"),
        (["--filter", "tag:x"], "--filter"),
        (["--release", "all"], "--release"),
        (["--endpoint", "e1"], "--endpoint"),
        (["--stop", "END", "--seed", "3"], "--seed, --stop"),
    ],
)
def test_resume_refuses_the_options_of_a_new_job(queued_job, args, named):
    before = GenerationJob.objects.values().get(pk=queued_job.pk)
    with pytest.raises(CommandError, match=rf"^--resume: {named} .*leave"):
        call_command("generate", "--resume", str(queued_job.pk), "--no-follow", *args)
    assert GenerationJob.objects.values().get(pk=queued_job.pk) == before


def test_resume_zero_is_no_such_job(db):
    with pytest.raises(CommandError, match=r"^--resume: No generation job 0\.$"):
        call_command("generate", "--resume", "0", "--no-follow")


def test_resume_alone_still_requeues(queued_job, capsys):
    call_command("generate", "--resume", str(queued_job.pk), "--no-follow")
    assert f"pending batches of job {queued_job.pk}" in capsys.readouterr().out


def test_a_new_job_keeps_the_defaults(queued_job):
    assert queued_job.k == 2 and queued_job.auto_release == ""
    assert queued_job.prompt_filter == {"mode": "all"}
