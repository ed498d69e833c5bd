"""Small portable database helpers (PostgreSQL and SQLite)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import IntegrityError, transaction
from django.db.models import Aggregate, JSONField, QuerySet


class JSONList(Aggregate):
    """The group's values as one JSON list (order unspecified): ``jsonb_agg`` on PostgreSQL,
    ``json_group_array`` on SQLite. Lets one query bring a row's few children along (a project's
    roles for a user, a task's slots) instead of a second query."""

    function = "JSONB_AGG"
    name = "JSONList"
    output_field = JSONField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="JSON_GROUP_ARRAY", **extra_context)


@contextlib.contextmanager
def unique_or_conflict(*taken: tuple[QuerySet, Exception]) -> Iterator[None]:
    """Write rows that a unique index guards. ``taken``: pairs of (the rows the write would clash
    with, the error that says so). An existing row is refused up front; the block then runs in a
    savepoint, and when the index refuses it anyway (a request committing the same name meanwhile)
    the error of the row that now exists is raised instead of the database's. Any other integrity
    error goes on as it is."""
    for rows, error in taken:
        if rows.exists():
            raise error
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        for rows, error in taken:
            if rows.exists():
                raise error from None
        raise
