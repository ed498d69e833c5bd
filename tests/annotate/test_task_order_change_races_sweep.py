"""A change of task order (active back to fewest labels) racing the expiry sweep.

Going back to fewest labels sets every task's priority to 0 in one UPDATE, in the settings
change's transaction, taking the rows in the table's order; the sweep gives back claims task by
task in id order. With the sweep holding the first task and the settings change the second, each
waited on the other and PostgreSQL killed one ("deadlock detected"), as with an overlap change
(tests/annotate/test_overlap_change_races_sweep.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from annotate.models import Task
from annotate.services.leasing import leases_expire
from annotate.services.projects import project_update_settings
from tests.races import RACE_TTL, sweep_held_after_its_first_task, two_tasks_held_table_order_reversed

TTL = RACE_TTL

pytestmark = [
    pytest.mark.postgres(reason="needs PostgreSQL for real concurrent transactions (set DATABASE_URL)"),
    pytest.mark.django_db(transaction=True),
]


def test_going_back_to_fewest_labels_while_the_sweep_runs_does_not_deadlock(monkeypatch, labelers_on):
    project, _bob, _ids, now = two_tasks_held_table_order_reversed(labelers_on, task_order="active")
    with sweep_held_after_its_first_task(
        monkeypatch, lambda: leases_expire(now=now + timedelta(seconds=TTL + 1))
    ) as held:
        try:
            project_update_settings(project=project, task_order="fewest_labels")
            error = None
        except Exception as exc:  # reported below
            error = exc
    assert held.other_waited, "the settings change never waited on the sweep"
    assert held.error is None, held.error
    assert error is None, error
    assert list(Task.objects.filter(project=project).values_list("claims", "priority")) == [(0, 0.0)] * 2
