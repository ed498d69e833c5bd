"""An overlap change racing the expiry sweep (or a deactivation) over two tasks of one project.

The sweep gives back the claims of the leases it expires task by task, in id order, each task's
row locked by its UPDATE until the sweep commits. The settings change that moves the overlap
updated every task of the project in one UPDATE, in whatever order PostgreSQL scanned them (the
heap's order: a row updated since it was inserted comes after the rows inserted later). With the
sweep holding the first task and the settings change holding the second, each waited on the
other: PostgreSQL killed one ("deadlock detected"), a 500 for the manager or a failed sweep.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from annotate.models import Task
from annotate.services.leasing import leases_expire
from annotate.services.projects import membership_deactivate, project_update_settings
from tests.races import RACE_TTL, sweep_held_after_its_first_task, two_tasks_held_table_order_reversed

pytestmark = [
    pytest.mark.postgres(reason="needs PostgreSQL for real concurrent transactions (set DATABASE_URL)"),
    pytest.mark.django_db(transaction=True),
]

TTL = RACE_TTL


def _both_finish_and_both_tasks_ask_for_one(change_error, held, ids):
    assert held.other_waited, "the settings change never waited on the release"
    assert held.error is None, held.error
    assert change_error is None, change_error
    for task_id in ids:
        task = Task.objects.get(pk=task_id)
        assert (task.claims, task.target_labels, task.kept_slots) == (0, 1, 0)


def _change_overlap(project):
    try:
        project_update_settings(project=project, overlap=1)
    except BaseException as exc:  # reported to the test
        return exc
    return None


def test_an_overlap_change_racing_the_expiry_sweep_does_not_deadlock(monkeypatch, labelers_on):
    project, _bob, ids, now = two_tasks_held_table_order_reversed(labelers_on)
    with sweep_held_after_its_first_task(
        monkeypatch, lambda: leases_expire(now=now + timedelta(seconds=TTL + 1))
    ) as held:
        error = _change_overlap(project)
    _both_finish_and_both_tasks_ask_for_one(error, held, ids)


def test_an_overlap_change_racing_a_deactivation_does_not_deadlock(monkeypatch, labelers_on):
    project, bob, ids, _now = two_tasks_held_table_order_reversed(labelers_on)
    with sweep_held_after_its_first_task(
        monkeypatch, lambda: membership_deactivate(project=project, user=bob)
    ) as held:
        error = _change_overlap(project)
    _both_finish_and_both_tasks_ask_for_one(error, held, ids)
