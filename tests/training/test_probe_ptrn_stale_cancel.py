"""A run its researcher asked to cancel, whose worker then died, ends cancelled, as asked: the stale
sweep marked it "failed: the worker stopped answering" (and offered to resume it as a failure),
although the cancel had been accepted and the page said "cancelling". A run nobody cancelled still
ends failed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.training.conftest import make_run
from training.models import RunState
from training.services.runs import run_cancel, runs_fail_stale

pytestmark = pytest.mark.django_db


def test_a_cancelled_run_whose_worker_died_ends_cancelled(project):
    long_ago = timezone.now() - timedelta(hours=1)
    asked = make_run(project, state=RunState.RUNNING, started_at=long_ago, heartbeat_at=long_ago)
    run_cancel(run=asked)
    unasked = make_run(project, state=RunState.RUNNING, started_at=long_ago, heartbeat_at=long_ago)
    assert runs_fail_stale() == 2
    asked.refresh_from_db()
    unasked.refresh_from_db()
    assert asked.state == RunState.CANCELLED, (asked.state, asked.error)
    assert "cancel" in asked.error.lower() and "stopped answering" in asked.error
    assert asked.finished_at is not None
    assert unasked.state == RunState.FAILED and "stopped answering" in unasked.error
