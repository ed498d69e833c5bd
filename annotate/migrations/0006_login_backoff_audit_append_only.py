"""Sign-in lockouts back off (``LoginThrottle.lockouts``); on PostgreSQL a trigger makes the audit
table append-only: UPDATE and DELETE are refused, except the ON DELETE SET NULL of a deleted project
or actor (every other column unchanged, the reference only cleared)."""

from django.db import migrations, models

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION annotate_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND NEW.id = OLD.id
       AND NEW.action = OLD.action
       AND NEW.target_type = OLD.target_type
       AND NEW.target_id = OLD.target_id
       AND NEW.details = OLD.details
       AND NEW.created_at = OLD.created_at
       AND (NEW.project_id IS NULL OR NEW.project_id = OLD.project_id)
       AND (NEW.actor_id IS NULL OR NEW.actor_id = OLD.actor_id)
       AND (NEW.project_id IS DISTINCT FROM OLD.project_id OR NEW.actor_id IS DISTINCT FROM OLD.actor_id)
    THEN
        RETURN NEW;  -- the referenced project or user was deleted (ON DELETE SET NULL)
    END IF;
    RAISE EXCEPTION USING
        MESSAGE = 'audit events are append-only: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS annotate_auditevent_append_only ON annotate_auditevent;
CREATE TRIGGER annotate_auditevent_append_only
    BEFORE UPDATE OR DELETE ON annotate_auditevent
    FOR EACH ROW EXECUTE FUNCTION annotate_auditevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS annotate_auditevent_append_only ON annotate_auditevent;
DROP FUNCTION IF EXISTS annotate_auditevent_append_only();
"""


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0005_outbox"),
    ]

    operations = [
        migrations.AddField(
            model_name="loginthrottle",
            name="lockouts",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(_on_postgres(APPEND_ONLY), _on_postgres(DROP), elidable=False),
    ]
