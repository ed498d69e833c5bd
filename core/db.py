"""Small portable database expressions (PostgreSQL and SQLite)."""

from __future__ import annotations

from django.db.models import Aggregate, JSONField


class JSONList(Aggregate):
    """The group's values as one JSON list (order unspecified): ``jsonb_agg`` on PostgreSQL,
    ``json_group_array`` on SQLite. Lets one query bring a row's few children along (a project's
    roles for a user, a task's slots) instead of a second query."""

    function = "JSONB_AGG"
    name = "JSONList"
    output_field = JSONField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="JSON_GROUP_ARRAY", **extra_context)
