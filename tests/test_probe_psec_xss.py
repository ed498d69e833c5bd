"""Penetration sweep (psec): stored XSS. Every free-text column of every row in the matrix's world
(prompts, model outputs, model and endpoint names, rationales, judge output, guideline Markdown,
file names, usernames...) is set to markup, the run's log holds markup too; then every page,
JSON and CSV route is read by a superuser: no response that a browser renders as HTML carries the
markup unescaped."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import models
from rest_framework.test import APIClient

from tests import test_permission_matrix as matrix
from tests.test_permission_matrix import _fill, _routes
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

world = matrix.world  # the permission matrix's fixture: its projects, principals and ids

MARK = "<x-xss onx=1>"
SKIP_FIELDS = {"slug", "path", "log_path", "password", "key", "digest", "token_hash", "prefix"}


def _poison_every_text_column() -> int:
    changed = 0
    for app in ("annotate", "generation", "training", "auth"):
        for model in apps.get_app_config(app).get_models():
            fields = [
                f
                for f in model._meta.concrete_fields
                if isinstance(f, models.CharField | models.TextField)
                and not f.choices
                and not f.unique
                and f.name not in SKIP_FIELDS
                and (f.max_length is None or f.max_length >= len(MARK) + 12)
            ]
            if not fields:
                continue
            if model.__name__ == "AuditEvent":  # append-only: poisoned at creation below
                continue
            for obj in model.objects.all():
                for f in fields:
                    setattr(obj, f.attname, f"{MARK}{obj.pk}")
                model.objects.filter(pk=obj.pk).update(**{f.attname: getattr(obj, f.attname) for f in fields})
                changed += 1
    return changed


def test_no_untrusted_text_reaches_a_page_unescaped(world, make_user, tmp_path):
    run = TrainingRun.objects.get(pk=world["values"]["run_id"])
    log = tmp_path / "run.log"
    log.write_text(f"step 1 {MARK}\n")
    TrainingRun.objects.filter(pk=run.pk).update(log_path=str(log))
    from annotate.models import Annotation, JudgeJob, JudgeSuggestion, Task
    from core.audit import audit_record

    judge_job = JudgeJob.objects.get(pk=world["values"]["judge_job_id"])
    for n, task in enumerate(Task.objects.filter(project=world["target"])):
        Annotation.objects.create(
            task=task, labeler=world["labeler"], choice="a", rationale="r", flagged=True, flag_reason="f"
        )
        Annotation.objects.create(
            task=task, labeler=world["insider"], choice="b" if n else "a", rationale="r"
        )
        JudgeSuggestion.objects.create(
            job=judge_job,
            judge=judge_job.judge,
            task=task,
            status="ok",
            choice="a",
            rationale="r",
            raw_first="r",
        )

    audit_record(actor=None, project=world["target"], action="psec", details={"name": MARK})
    assert _poison_every_text_column() > 10
    admin = make_user(is_superuser=True, is_staff=True)
    client = APIClient()
    client.force_login(admin)
    failures = []
    shown = set()  # the control: the pages that did show the text (escaped)
    for route in _routes():
        if "assignment_id" in route:
            continue
        path = _fill(route, world["values"])
        resp = client.get(path)
        if resp.status_code >= 500:
            failures.append(f"GET {route}: {resp.status_code}")
            continue
        ctype = resp.get("Content-Type", "")
        body = b"".join(resp.streaming_content) if resp.streaming else resp.content
        if b"&lt;x-xss" in body or b"\\u003cx-xss" in body or MARK.encode() in body:
            shown.add(route)
        if "html" in ctype and MARK.encode() in body:
            failures.append(f"GET {route}: markup in {ctype}")
        if "json" in ctype and not resp.streaming and isinstance(data := resp.json(), dict):
            for key, value in data.items():  # what the page's script puts in with innerHTML
                if key.endswith("html") and MARK in str(value):
                    failures.append(f"GET {route}: markup in {key} of {ctype}")
    assert not failures, "\n".join(failures)
    assert len(shown) > 20, sorted(shown)
