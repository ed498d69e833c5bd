"""Deleting a project removes everything it owns, generated responses included, and a generation
job whose responses are still kept cannot be deleted on its own (that would leave generated
responses that name no job, which the database refuses)."""

import pytest
from django.db.models import RestrictedError
from django.test import Client

from annotate.models import Annotation, Assignment, Candidate, Prompt, Task, TaskCandidate
from annotate.services.leasing import annotation_submit, task_claim_next
from generation.models import CandidateCheck, GenerationJob
from tests.generation.staged_data import staged_job


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr("core.outbox.send_task", lambda name, args: None)


def _generated_project(research_project, monkeypatch, labeler_in):
    job = staged_job(research_project, monkeypatch, auto_release="all")
    assert Candidate.objects.filter(generation_job=job).count() == 16
    assert Task.objects.filter(project=research_project).count() == 24
    labeler = labeler_in(research_project)
    assignment = task_claim_next(project=research_project, labeler=labeler)
    annotation_submit(assignment_id=assignment.pk, labeler=labeler, choice="left")
    assert Annotation.objects.count() == 1
    return job


@pytest.mark.django_db(transaction=True)
def test_project_delete_removes_generated_candidates(research_project, monkeypatch, labeler_in):
    job = _generated_project(research_project, monkeypatch, labeler_in)
    research_project.delete()
    assert not GenerationJob.objects.filter(pk=job.pk).exists()
    for model in (Prompt, Candidate, Task, TaskCandidate, CandidateCheck, Assignment, Annotation):
        assert model.objects.count() == 0, model.__name__


@pytest.mark.django_db
def test_job_with_kept_candidates_cannot_be_deleted_alone(research_project, monkeypatch, labeler_in):
    job = _generated_project(research_project, monkeypatch, labeler_in)
    with pytest.raises(RestrictedError):
        job.delete()
    assert Candidate.objects.filter(generation_job=job).count() == 16


@pytest.mark.django_db
def test_admin_deletes_project_with_generated_candidates(
    research_project, monkeypatch, labeler_in, make_user
):
    _generated_project(research_project, monkeypatch, labeler_in)
    admin = make_user("root", is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(admin)
    url = f"/admin/annotate/project/{research_project.pk}/delete/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"post": "yes"})
    assert response.status_code == 302, response.content[:500]
    assert Candidate.objects.count() == 0
