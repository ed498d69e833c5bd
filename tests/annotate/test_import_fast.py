"""Imports at COPY speed (issue 16): the reader thread and the writer, foreign keys the import itself
guarantees, ANALYZE after a large import (the first labeler's claim gets a steady-state plan), and the
same service behind the API."""

from __future__ import annotations

import io
import json

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from annotate.models import AuditEvent, Candidate, Prompt, Task, TaskCandidate
from annotate.services.bulk import bulk_analyze
from annotate.services.imports import ImportFailed, prompts_import
from annotate.services.leasing import task_claim_next
from tests.conftest import bearer, is_postgres

pytestmark = pytest.mark.django_db

TOUCHED = ("annotate_prompt", "annotate_candidate", "annotate_task", "annotate_taskcandidate")


def _lines(n: int, *, start: int = 0, bad: dict[int, bytes] | None = None) -> io.BytesIO:
    out = []
    for i in range(start, start + n):
        if bad and i in bad:
            out.append(bad[i])
            continue
        line = {"id": f"q{i}", "prompt": f"Question {i}?", "candidates": [f"yes {i}", f"no {i}"]}
        out.append(json.dumps(line).encode())
    return io.BytesIO(b"\n".join(out) + b"\n")


def _replication_role() -> str:
    with connection.cursor() as cur:
        cur.execute("SHOW session_replication_role")
        return cur.fetchone()[0]


@pytest.mark.parametrize("trusted", [True, False])
def test_many_batches_import_whole_with_every_key_in_place(make_project, settings, monkeypatch, trusted):
    """Several batches through the reader thread, with the trusted (unchecked) and the checked
    foreign-key path: same rows, tasks point at their own prompt's candidates, the session's
    replication role is back to normal afterwards and the audit event is written."""
    from annotate.services import imports

    monkeypatch.setattr(imports, "BATCH", 700)
    settings.PREFHUB_BULK_TRUSTED_FK = trusted
    project = make_project()
    with CaptureQueriesContext(connection) as ctx:
        report = prompts_import(project=project, stream=_lines(2500))
    assert (report.prompts, report.candidates, report.tasks) == (2500, 5000, 2500)
    if is_postgres():  # the test database's role is a superuser: it may skip the checks
        skipped = any("session_replication_role = replica" in q["sql"] for q in ctx.captured_queries)
        assert skipped == trusted
    assert Task.objects.filter(project=project).count() == 2500
    mismatched = TaskCandidate.objects.filter(task__project=project).exclude(
        candidate__prompt_id=F("task__prompt_id")
    )
    assert not mismatched.exists()
    slots = TaskCandidate.objects.filter(task__project=project).values_list("slot", flat=True)
    assert sorted(set(slots)) == [0, 1] and len(slots) == 5000
    assert set(Prompt.objects.filter(project=project).values_list("external_id", flat=True)) == {
        f"q{i}" for i in range(2500)
    }
    assert AuditEvent.objects.filter(project=project, action="prompts.import").count() == 1
    if is_postgres():
        assert _replication_role() == "origin"


def test_a_bad_line_in_a_late_batch_leaves_nothing_written(make_project, monkeypatch):
    from annotate.services import imports

    monkeypatch.setattr(imports, "BATCH", 500)
    project = make_project()
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=_lines(2000, bad={1800: b'{"id": "x", "prompt": 5}'}))
    assert [(e.line, e.field) for e in exc.value.report.errors] == [(1801, "prompt")]
    assert not Prompt.objects.filter(project=project).exists()
    assert not Candidate.objects.filter(prompt__project=project).exists()
    if is_postgres():
        assert _replication_role() == "origin"
    report = prompts_import(
        project=project, stream=_lines(2000, bad={1800: b'{"id": "x", "prompt": 5}'}), skip_invalid=True
    )
    assert report.prompts == 1999 and [e.line for e in report.errors] == [1801]


def test_a_reader_failure_is_raised_in_the_caller_and_nothing_is_written(make_project, monkeypatch):
    from annotate.services import imports

    def boom(*args, **kwargs):
        raise RuntimeError("reader broke")

    monkeypatch.setattr(imports, "_parse_jsonl", boom)
    project = make_project()
    with pytest.raises(RuntimeError, match="reader broke"):
        prompts_import(project=project, stream=_lines(10))
    assert not Prompt.objects.filter(project=project).exists()


def _last_analyze() -> dict[str, object]:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute(
            "SELECT relname, last_analyze FROM pg_stat_user_tables WHERE relname = ANY(%s)", [list(TOUCHED)]
        )
        return dict(cur.fetchall())


def _claim_plan(project, labeler) -> list[dict]:
    """EXPLAIN (no execution) of the statements the next-task claim runs that read tasks."""
    with CaptureQueriesContext(connection) as ctx:
        task_claim_next(project=project, labeler=labeler)
    plans = []
    with connection.cursor() as cur:
        for q in ctx.captured_queries:
            sql = q["sql"]
            if "annotate_task" in sql and sql.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE")):
                cur.execute("EXPLAIN (FORMAT JSON) " + sql)
                plans.append(cur.fetchone()[0][0]["Plan"])
    return plans


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def test_a_large_import_analyzes_the_touched_tables_and_the_claim_plan_is_serial(
    make_project, labeler_in, settings
):
    if not is_postgres():
        pytest.skip("ANALYZE and query plans: PostgreSQL")
    settings.PREFHUB_IMPORT_ANALYZE_ROWS = 2000
    project = make_project(overlap=3)
    prompts_import(project=project, stream=_lines(500))  # small: no ANALYZE
    before = _last_analyze()
    prompts_import(project=project, stream=_lines(3000, start=500))
    after = _last_analyze()
    for table in TOUCHED:
        assert after[table] is not None and (before.get(table) is None or after[table] > before[table]), table
    # Autovacuum's rule: a write of under a tenth of a table's rows leaves its statistics alone.
    assert bulk_analyze({Prompt: 200}, min_rows=100) == []
    assert bulk_analyze({Prompt: 2000}, min_rows=100) == ["annotate_prompt"]
    # The statistics describe the new rows: two candidates a task, not thousands.
    with connection.cursor() as cur:
        task_id = Task.objects.filter(project=project).values_list("id", flat=True).first()
        cur.execute(
            "EXPLAIN (FORMAT JSON) SELECT * FROM annotate_taskcandidate WHERE task_id = %s", [task_id]
        )
        assert cur.fetchone()[0][0]["Plan"]["Plan Rows"] <= 10
        # Make a parallel plan cheap, so only good estimates keep it away.
        cur.execute("SET LOCAL parallel_setup_cost = 10")
        cur.execute("SET LOCAL parallel_tuple_cost = 0.001")
        cur.execute("SET LOCAL min_parallel_table_scan_size = 0")
        cur.execute("SET LOCAL min_parallel_index_scan_size = 0")
    plans = _claim_plan(project, labeler_in(project))
    assert plans, "the claim ran no task query"
    node_types = {n["Node Type"] for p in plans for n in _nodes(p)}
    assert not {"Gather", "Gather Merge"} & node_types, node_types
    assert not any(n.get("Parallel Aware") for p in plans for n in _nodes(p))


def test_a_small_import_does_not_analyze(make_project, settings):
    if not is_postgres():
        pytest.skip("ANALYZE: PostgreSQL")
    settings.PREFHUB_IMPORT_ANALYZE_ROWS = 10_000
    project = make_project()
    with CaptureQueriesContext(connection) as ctx:
        prompts_import(project=project, stream=_lines(50))
    assert not [q for q in ctx.captured_queries if q["sql"].startswith("ANALYZE")]


def test_the_api_import_is_the_same_service_and_streams_a_gzip_upload(make_project, labeler_in):
    import gzip

    project = make_project()
    client = bearer(labeler_in(project, role="manager"))
    upload = io.BytesIO(gzip.compress(_lines(1200).getvalue()))
    upload.name = "prompts.jsonl.gz"
    resp = client.post(f"/api/v1/projects/{project.slug}/imports/", {"file": upload}, format="multipart")
    assert resp.status_code == 201, resp.content
    assert (resp.json()["prompts"], resp.json()["tasks"]) == (1200, 1200)
    assert Task.objects.filter(project=project).count() == 1200


def test_a_role_that_may_not_skip_checks_imports_with_them(make_project):
    """Without the right to set session_replication_role the foreign keys are checked as each batch
    is written (a role created inside the test's transaction, rolled back with it)."""
    if not is_postgres():
        pytest.skip("roles: PostgreSQL")
    project = make_project()
    with connection.cursor() as cur:
        cur.execute("CREATE ROLE prefhub_import_probe NOSUPERUSER NOLOGIN")
        cur.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO prefhub_import_probe")
        cur.execute("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO prefhub_import_probe")
        cur.execute("SET LOCAL ROLE prefhub_import_probe")
    try:
        with CaptureQueriesContext(connection) as ctx:
            report = prompts_import(project=project, stream=_lines(30))
        sqls = [q["sql"] for q in ctx.captured_queries]
        assert report.prompts == 30 and report.tasks == 30
        assert any(s.startswith("SET CONSTRAINTS") and s.endswith("IMMEDIATE") for s in sqls)
        assert _replication_role() == "origin"
    finally:
        with connection.cursor() as cur:
            cur.execute("RESET ROLE")
    assert TaskCandidate.objects.filter(task__project=project).count() == 60


def test_the_garbage_collector_is_back_on_after_an_import_good_or_bad(make_project):
    import gc

    project = make_project()
    assert gc.isenabled()
    prompts_import(project=project, stream=_lines(5))
    assert gc.isenabled()
    with pytest.raises(ImportFailed):
        prompts_import(project=project, stream=_lines(5, start=10, bad={12: b"{nope"}))
    assert gc.isenabled()


def test_the_api_imports_a_raw_body_as_it_arrives(make_project, labeler_in, settings):
    """The file as the request body (options in the query string): same service, same limits."""
    import gzip

    project = make_project()
    client = bearer(labeler_in(project, role="manager"))
    url = f"/api/v1/projects/{project.slug}/imports/"
    body = gzip.compress(_lines(300).getvalue())
    resp = client.post(url + "?filename=p.jsonl.gz", body, content_type="application/gzip")
    assert resp.status_code == 201, resp.content
    assert (resp.json()["prompts"], resp.json()["tasks"]) == (300, 300)
    assert (
        AuditEvent.objects.get(project=project, action="prompts.import").details["filename"] == "p.jsonl.gz"
    )

    bad = _lines(5, start=1000, bad={1003: b'{"id": "z", "prompt": ""}'}).getvalue()
    resp = client.post(url, bad, content_type="application/x-ndjson")
    assert resp.status_code == 400 and resp.json()["details"]["errors"][0]["line"] == 4
    resp = client.post(url + "?skip_invalid=true", bad, content_type="application/x-ndjson")
    assert resp.status_code == 201 and resp.json()["prompts"] == 4

    resp = client.post(url + "?task_mode=bogus", bad, content_type="application/x-ndjson")
    assert resp.status_code == 400 and "task_mode" in json.dumps(resp.json())

    settings.PREFHUB_MAX_IMPORT_BYTES = 1000
    big = _lines(100, start=5000).getvalue()
    resp = client.post(url, big, content_type="application/x-ndjson")
    assert resp.status_code == 413 and resp.json()["error"] == "too_large"
    assert not Prompt.objects.filter(project=project, external_id="q5000").exists()


def test_a_raw_body_longer_than_declared_limit_is_cut_off_while_read(make_project):
    """No (or a false) Content-Length: the reader stops at the limit with a 413, nothing written."""
    from annotate.uploads import ImportTooLarge, _BoundedBody

    class Req:
        def __init__(self, data: bytes) -> None:
            self._buf = io.BytesIO(data)

        def read(self, n: int) -> bytes:
            return self._buf.read(n)

    project = make_project()
    with pytest.raises(ImportTooLarge):
        prompts_import(project=project, stream=_BoundedBody(Req(_lines(200).getvalue()), 2000))
    assert not Prompt.objects.filter(project=project).exists()
