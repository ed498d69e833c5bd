"""An import's ids against the prompts already in the project: the unique index decides, no lookup
per batch (which the planner turned quadratic during a large import), a clash is a line error with
nothing half-written, and with skip_invalid the other lines of the batch still land. A clash with
another import committing at the same moment is a line error too, not a database error."""

from __future__ import annotations

import io
import json
import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from annotate.models import Prompt, Task
from annotate.services import imports
from annotate.services.imports import ImportFailed, prompts_import
from tests.conftest import is_postgres
from tests.races import someone_waits_on_a_lock


def _lines(ids) -> io.BytesIO:
    rows = [{"id": i, "prompt": f"Question {i}?", "candidates": [f"yes {i}", f"no {i}"]} for i in ids]
    return io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in rows))


@pytest.mark.django_db
def test_a_clean_import_looks_up_no_ids(make_project, monkeypatch):
    monkeypatch.setattr("annotate.services.imports.BATCH", 3)
    project = make_project()
    prompts_import(project=project, stream=_lines(["a0", "a1"]))
    with CaptureQueriesContext(connection) as ctx:
        report = prompts_import(project=project, stream=_lines([f"b{i}" for i in range(10)]))
    assert report.prompts == 10
    lookups = [q["sql"] for q in ctx.captured_queries if "external_id" in q["sql"] and "SELECT" in q["sql"]]
    assert lookups == []


@pytest.mark.django_db
def test_a_clash_in_a_late_batch_writes_nothing(make_project, monkeypatch):
    monkeypatch.setattr("annotate.services.imports.BATCH", 3)
    project = make_project()
    prompts_import(project=project, stream=_lines(["old"]))
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=_lines(["n0", "n1", "n2", "n3", "old", "n5", "old2", "n7"]))
    assert [(e.line, e.field) for e in exc.value.report.errors] == [(5, "id")]
    assert "already exists" in exc.value.report.errors[0].message
    assert list(Prompt.objects.filter(project=project).values_list("external_id", flat=True)) == ["old"]
    assert Task.objects.filter(project=project).count() == 1


@pytest.mark.django_db
def test_skip_invalid_keeps_the_rest_of_a_clashing_batch(make_project, monkeypatch):
    monkeypatch.setattr("annotate.services.imports.BATCH", 3)
    project = make_project()
    prompts_import(project=project, stream=_lines(["x1", "x4"]))
    report = prompts_import(project=project, stream=_lines([f"x{i}" for i in range(6)]), skip_invalid=True)
    assert sorted(e.line for e in report.errors) == [2, 5]
    assert report.prompts == 4 and report.tasks == 4
    ids = sorted(Prompt.objects.filter(project=project).values_list("external_id", flat=True))
    assert ids == [f"x{i}" for i in range(6)]
    assert Task.objects.filter(project=project).count() == 6


@pytest.mark.skipif(not is_postgres(), reason="concurrent transactions: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_clash_with_an_import_committing_meanwhile_is_a_line_error(make_project, monkeypatch):
    """A writes c1, c2 and holds its transaction open; B imports c2, c3 and waits on the unique
    index; A commits; B must report line 1, not fail with a database error."""
    project = make_project()
    written = threading.Event()
    outcome: dict = {}
    real_analyze = imports.bulk_analyze

    def analyze_then_hold(*args, **kwargs):  # runs after every batch is written, before COMMIT
        if threading.current_thread().name == "import-a":
            written.set()
            outcome["b_waited"] = someone_waits_on_a_lock()
        return real_analyze(*args, **kwargs)

    monkeypatch.setattr(imports, "bulk_analyze", analyze_then_hold)

    def import_a() -> None:
        try:
            outcome["a"] = prompts_import(project=project, stream=_lines(["c1", "c2"]))
        finally:
            connections.close_all()

    thread = threading.Thread(target=import_a, name="import-a")
    thread.start()
    assert written.wait(10)
    try:
        with pytest.raises(ImportFailed) as exc:
            prompts_import(project=project, stream=_lines(["c2", "c3"]))
    finally:
        thread.join(20)
    assert outcome["b_waited"], "B never waited on A's uncommitted id"
    assert outcome["a"].prompts == 2
    assert [(e.line, e.field) for e in exc.value.report.errors] == [(1, "id")]
    assert sorted(Prompt.objects.filter(project=project).values_list("external_id", flat=True)) == [
        "c1",
        "c2",
    ]
