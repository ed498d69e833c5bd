"""Fast set-based inserts for imports and task creation.

Django's ``bulk_create`` spends most of its time compiling SQL per row in Python (measured: ~85% of
an import's time). Here ids are reserved up front (PostgreSQL: ``nextval`` over the table's
sequence; SQLite: past ``MAX(id)``, safe because writers hold the database lock from ``BEGIN
IMMEDIATE``), and rows go in with ``COPY`` on PostgreSQL or ``executemany`` on SQLite. Must run
inside a transaction. Values are given per column; JSON columns are serialised here.

Around a large bulk write: ``bulk_fk_trusted`` (foreign keys the writer guarantees are not looked
up row by row) and ``bulk_analyze`` (fresh planner statistics before COMMIT), both PostgreSQL only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone

_SEQUENCES: dict[str, str] = {}


# n nextval calls, so a concurrent writer's ids never collide with ours; the values come back as a
# range when nobody else drew from the sequence meanwhile (the usual case: nothing to transfer and
# convert), else as the list.
_DRAW = (
    "min(v), max(v), CASE WHEN max(v) - min(v) + 1 = count(*) THEN NULL ELSE array_agg(v ORDER BY v) END"
    " FROM (SELECT nextval(%s::regclass) AS v FROM generate_series(1, %s)) AS drawn"
)


def _sequence(table: str) -> str:
    seq = _SEQUENCES.get(table)
    if seq is None:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            seq = _SEQUENCES[table] = cur.fetchone()[0]
    return seq


def _drawn(low: int, high: int, scattered: list[int] | None) -> list[int]:
    return list(range(low, high + 1)) if scattered is None else list(scattered)


def _reserve_ids(table: str, n: int) -> list[int]:
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(f"SELECT {_DRAW}", [_sequence(table), n])
            return _drawn(*cur.fetchone())
        cur.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')
        start = cur.fetchone()[0] + 1
        if connection.vendor == "sqlite":
            cur.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            row = cur.fetchone()
            if row and row[0] >= start:
                start = row[0] + 1
        return list(range(start, start + n))


def reserve_ids(counts: Mapping[type[models.Model], int]) -> dict[type[models.Model], list[int]]:
    """New ids for several tables at once: ``{model: [ids]}`` for ``{model: how many}``, with one
    statement (one round trip) on PostgreSQL; pass each list to ``bulk_insert(ids=...)``. Ids left
    unused (a batch that shrank) are gaps, as a rolled-back insert leaves."""
    wanted = {m: n for m, n in counts.items() if n > 0}
    if connection.vendor != "postgresql" or len(wanted) < 2:
        return {m: _reserve_ids(m._meta.db_table, n) for m, n in wanted.items()}
    parts, params = [], []
    for i, (model, n) in enumerate(wanted.items()):
        parts.append(f"SELECT {i}, {_DRAW}")
        params += [_sequence(model._meta.db_table), n]
    with connection.cursor() as cur:
        cur.execute(" UNION ALL ".join(parts), params)
        drawn = {i: _drawn(low, high, scattered) for i, low, high, scattered in cur.fetchall()}
    return {model: drawn[i] for i, model in enumerate(wanted)}


def _json_text(value: object) -> str | None:
    if value is None:
        return None
    if not value and isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return _json_encode(value)


_json_encode = json.JSONEncoder(ensure_ascii=False).encode


def bulk_insert(
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[Sequence],
    *,
    with_ids: bool = True,
    json_ready: bool = False,
    ids: Sequence[int] | None = None,
) -> list[int]:
    """Insert ``rows`` (tuples in the order of ``columns``, field names or ``<fk>_id``) into ``model``'s
    table and return the new ids in row order (``with_ids=False``: the database numbers the rows and
    nothing is returned; ``ids``: the first ``len(rows)`` of ids from ``reserve_ids``). ``created_at``/``updated_at`` auto-fields are filled in. JSON columns take
    Python values, or their JSON text with ``json_ready=True``."""
    if not rows:
        return []
    assert transaction.get_connection().in_atomic_block, "bulk_insert must run inside a transaction"
    meta = model._meta
    fields = [meta.get_field(c) for c in columns]  # accepts attnames such as "prompt_id"
    extra_cols: list[str] = []
    extra_vals: list[object] = []
    now = timezone.now()
    for f in meta.concrete_fields:
        if (
            isinstance(f, models.DateTimeField)
            and (f.auto_now or f.auto_now_add)
            and f.attname not in columns
        ):
            extra_cols.append(f.column)
            # as text, formatted once: COPY parses it; a datetime would be formatted per row
            extra_vals.append(
                now.isoformat()
                if connection.vendor == "postgresql"
                else connection.ops.adapt_datetimefield_value(now)
            )
    json_idx = [] if json_ready else [i for i, f in enumerate(fields) if isinstance(f, models.JSONField)]
    db_cols = [f.column for f in fields] + extra_cols
    if not with_ids:
        ids = []
    elif ids is None:
        ids = _reserve_ids(meta.db_table, len(rows))
    else:
        ids = list(ids[: len(rows)])
        assert len(ids) == len(rows), "bulk_insert: fewer reserved ids than rows"
    if json_idx:
        rows = [tuple(_json_text(v) if i in json_idx else v for i, v in enumerate(row)) for row in rows]
    extra = tuple(extra_vals)
    if with_ids:
        prepared = [(pk, *row, *extra) for pk, row in zip(ids, rows, strict=True)]
    else:
        prepared = [(*row, *extra) for row in rows]
    if with_ids:
        db_cols.insert(0, meta.pk.column)
    quoted = ", ".join(f'"{c}"' for c in db_cols)
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            # the driver's cursor, so its errors are translated here as Django translates its own
            copy_sql = f'COPY "{meta.db_table}" ({quoted}) FROM STDIN'
            with connection.wrap_database_errors, cur.cursor.copy(copy_sql) as copy:
                for values in prepared:
                    copy.write_row(values)
        else:
            placeholders = ", ".join(["%s"] * len(db_cols))
            cur.executemany(f'INSERT INTO "{meta.db_table}" ({quoted}) VALUES ({placeholders})', prepared)
    return ids


@contextmanager
def bulk_fk_trusted(
    models_: Sequence[type[models.Model]], *, locked: Sequence[tuple[type[models.Model], int]]
) -> Iterator[str]:
    """Write rows of ``models_`` whose foreign keys this transaction guarantees, without a per-row
    check for each of them. Yields the mode used ("trusted", "immediate" or "none").

    The caller promises that every foreign key it writes inside the block points at a row that this
    transaction inserted earlier (parents first) or at one of ``locked``, which is locked here
    ``FOR KEY SHARE`` (the lock PostgreSQL's own check takes) until COMMIT, so it cannot be deleted
    or re-keyed meanwhile. The constraints are unchanged and still hold; only their ~1M redundant
    per-row lookups of a large import are skipped.

    PostgreSQL, when the role may set ``session_replication_role`` (a superuser, or after ``GRANT
    SET ON PARAMETER session_replication_role TO <role>``, PostgreSQL 15+) and
    ``PREFHUB_BULK_TRUSTED_FK`` is on: the block runs with ``session_replication_role = replica``
    (restored on the way out; a rollback restores it too). Otherwise the deferred foreign keys of
    these tables are checked as each statement ends instead of all at COMMIT. SQLite: nothing."""
    if connection.vendor != "postgresql":
        yield "none"
        return
    with connection.cursor() as cur:
        for model, pk in locked:
            cur.execute(
                f"SELECT 1 FROM {connection.ops.quote_name(model._meta.db_table)} WHERE id = %s FOR KEY SHARE",
                [pk],
            )
        if getattr(settings, "PREFHUB_BULK_TRUSTED_FK", True):
            try:
                with transaction.atomic():
                    cur.execute("SET LOCAL session_replication_role = replica")
            except DatabaseError:
                pass  # not permitted: check them as we go
            else:
                yield "trusted"
                cur.execute("SET LOCAL session_replication_role = origin")
                return
        cur.execute(
            "SELECT quote_ident(conname) FROM pg_constraint WHERE contype = 'f' AND condeferrable AND condeferred"
            " AND conrelid = ANY(%s::regclass[])",
            [[m._meta.db_table for m in models_]],
        )
        names = ", ".join(row[0] for row in cur.fetchall())
        if names:
            cur.execute(f"SET CONSTRAINTS {names} IMMEDIATE")
        yield "immediate"
        if names:
            cur.execute(f"SET CONSTRAINTS {names} DEFERRED")


def bulk_analyze(
    written: Mapping[type[models.Model], int], *, min_rows: int, fraction: float = 0.1
) -> list[str]:
    """PostgreSQL: ANALYZE, inside the current transaction, each table that a bulk write changed
    enough for the planner's statistics to mislead it: ``written[model]`` rows, at least
    ``min_rows`` and at least ``fraction`` of the rows the table had at its last ANALYZE (the rule
    autovacuum applies, default scale factor 0.1, applied now rather than whenever autovacuum gets
    to it). The new statistics commit with the rows (a rollback discards both), so the first query
    after the commit is planned like later ones. Takes a SHARE UPDATE EXCLUSIVE lock on each table
    until the transaction ends (writers are not blocked; a concurrent ANALYZE or VACUUM of it
    waits). Returns the tables analyzed; no-op elsewhere."""
    if connection.vendor != "postgresql":
        return []
    candidates = {m._meta.db_table: n for m, n in written.items() if n >= min_rows}
    if not candidates:
        return []
    with connection.cursor() as cur:
        cur.execute(
            "SELECT relname, reltuples FROM pg_class WHERE oid = ANY(%s::regclass[])", [list(candidates)]
        )
        known = dict(cur.fetchall())
        tables = [t for t, n in candidates.items() if n >= fraction * max(known.get(t, -1), 0)]
        if tables:
            cur.execute(f"ANALYZE {', '.join(connection.ops.quote_name(t) for t in tables)}")
    return tables
