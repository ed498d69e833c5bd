"""The priority refresh of an active-order project racing the expiry sweep.

The refresh writes new priorities with ``UPDATE ... WHERE id IN (chunk)``: on a small table the
planner walks the primary key (id order), but for a chunk of a large project it scans the table
(forced here), taking the rows in the table's order, while the sweep gives back claims task by task
in id order. With the sweep holding the first task and the refresh the second, PostgreSQL killed
one of them ("deadlock detected")."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction

from annotate.models import Task
from annotate.services.leasing import leases_expire
from annotate.services.task_order import task_priorities_refresh
from tests.races import RACE_TTL, sweep_held_after_its_first_task, two_tasks_held_table_order_reversed

pytestmark = [
    pytest.mark.postgres(reason="needs PostgreSQL for real concurrent transactions (set DATABASE_URL)"),
    pytest.mark.django_db(transaction=True),
]

TTL = RACE_TTL


def test_a_priority_refresh_scanning_the_table_while_the_sweep_runs_does_not_deadlock(
    monkeypatch, labelers_on
):
    project, _bob, _ids, now = two_tasks_held_table_order_reversed(labelers_on, task_order="active")

    def refresh_scanning_the_table():
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off")
            return task_priorities_refresh(project_id=project.pk)

    with sweep_held_after_its_first_task(
        monkeypatch, lambda: leases_expire(now=now + timedelta(seconds=TTL + 1))
    ) as held:
        try:
            written, error = refresh_scanning_the_table(), None
        except Exception as exc:  # reported below
            written, error = 0, exc
    assert held.other_waited, "the refresh never waited on the sweep"
    assert held.error is None, held.error
    assert error is None, error
    assert written == 2
    assert 123.0 not in set(Task.objects.filter(project=project).values_list("priority", flat=True))
