"""``bulk_insert`` reserves its ids with one statement: a range when the sequence handed out a
contiguous run (the usual case), the drawn values themselves when another writer drew from it
meanwhile; either way the rows get exactly the ids returned, and the timestamps are the same."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from annotate.models import Annotation, Prompt
from annotate.services.bulk import _reserve_ids, bulk_insert
from tests.conftest import is_postgres

pytestmark = pytest.mark.django_db


def _insert(project, n):
    rows = [(project.pk, f"x{i}", [{"role": "user", "content": f"q{i}"}], {}, []) for i in range(n)]
    with transaction.atomic():
        return bulk_insert(Prompt, ["project_id", "external_id", "messages", "metadata", "tags"], rows)


def test_rows_get_the_ids_returned_in_row_order(make_project):
    project = make_project()
    ids = _insert(project, 50)
    assert len(ids) == len(set(ids)) == 50
    got = dict(Prompt.objects.filter(project=project).values_list("external_id", "id"))
    assert [got[f"x{i}"] for i in range(50)] == ids
    stamps = set(Prompt.objects.filter(project=project).values_list("created_at", flat=True))
    assert len(stamps) == 1 and next(iter(stamps)) is not None


@pytest.mark.skipif(not is_postgres(), reason="sequences: PostgreSQL")
def test_ids_drawn_with_gaps_come_back_as_drawn(make_project):
    """A sequence that hands out every other value stands for a concurrent writer drawing between
    our draws: the range shortcut must not be taken."""
    project = make_project()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_get_serial_sequence('annotate_prompt', 'id')")
        seq = cur.fetchone()[0]
        cur.execute(f"ALTER SEQUENCE {seq} INCREMENT BY 2")
        ids = _reserve_ids("annotate_prompt", 5)
        assert ids == list(range(ids[0], ids[0] + 10, 2))
        inserted = _insert(project, 4)
        assert inserted == list(range(inserted[0], inserted[0] + 8, 2))
        assert sorted(Prompt.objects.filter(project=project).values_list("id", flat=True)) == inserted
        transaction.set_rollback(True)


def test_reserve_ids_for_several_tables_in_one_statement(make_project):
    from django.test.utils import CaptureQueriesContext

    from annotate.models import Candidate, Task
    from annotate.services.bulk import reserve_ids

    with transaction.atomic():
        _insert(make_project(), 1)  # the sequence lookups are cached after a first use
        with CaptureQueriesContext(connection) as ctx:
            got = reserve_ids({Prompt: 3, Candidate: 5, Task: 2, Annotation: 0})
    assert {m: len(v) for m, v in got.items()} == {Prompt: 3, Candidate: 5, Task: 2}
    for ids in got.values():
        assert ids == sorted(set(ids))
    if is_postgres():
        assert len([q for q in ctx.captured_queries if "nextval" in q["sql"]]) == 1
        assert all(ids == list(range(ids[0], ids[0] + len(ids))) for ids in got.values())
