"""Keep the next-task index free of dead entries on PostgreSQL.

Every claim updates ``annotate_task.claims``, an indexed column, so each claim leaves a dead entry
at the front of the ``task_open_by_claims`` index — exactly where the next-task query starts reading.
With the default autovacuum trigger (20% of the table) a 1M-task project would pile up ~200k dead
entries there and the next-task query slows from ~0.3 ms to ~90 ms (measured with bench/claim_submit.py's
data). Vacuuming after a fixed number of changed rows keeps that front short whatever the project size.
"""

from django.db import migrations

TABLE_OPTIONS = {
    "annotate_task": "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000, "
    "autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0",
    "annotate_assignment": "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 2000",
}


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, options in TABLE_OPTIONS.items():
        schema_editor.execute(f"ALTER TABLE {table} SET ({options})")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, options in TABLE_OPTIONS.items():
        names = ", ".join(part.split("=")[0].strip() for part in options.split(","))
        schema_editor.execute(f"ALTER TABLE {table} RESET ({names})")


class Migration(migrations.Migration):
    dependencies = [("annotate", "0003_login_throttle")]
    operations = [migrations.RunPython(forwards, backwards)]
