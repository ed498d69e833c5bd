"""The manager's progress table: pace per *active* hour comes from the time the page measured."""

from __future__ import annotations

from annotate.models import Annotation, Task
from annotate.selectors import labeler_throughput
from tests.conftest import add_tasks


def test_pace_is_per_hour_of_measured_active_time(make_project, labeler_in):
    """15 labels in 6 minutes of work is 150 an hour, not 15 (one clock hour touched)."""
    project = make_project()
    add_tasks(project, prompts=20)
    fast = labeler_in(project, "fast")
    api_only = labeler_in(project, "api")
    tasks = list(Task.objects.filter(project=project).order_by("id"))
    Annotation.objects.bulk_create(
        [Annotation(task=t, labeler=fast, choice="a", time_spent_ms=24_000) for t in tasks[:15]]
        + [Annotation(task=t, labeler=api_only, choice="b") for t in tasks[15:18]]
    )
    rows = {r["user"].username: r for r in labeler_throughput(project=project)}
    assert rows["fast"]["last_window"] == 15
    assert abs(rows["fast"]["per_hour"] - 150.0) < 1e-9
    assert rows["api"]["last_window"] == 3
    assert rows["api"]["per_hour"] is None  # no measured time: no pace rather than a made-up one
