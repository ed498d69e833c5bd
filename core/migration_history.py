"""Refuse to migrate a database that stopped half-way through migrations that have since been squashed.

The apps' migrations were squashed (each squashed migration names the old ones it ``replaces``).
Django then handles two kinds of database by itself: a new one (it runs the squashed migrations)
and one that had run every old migration (it records the squashed ones as applied, nothing to do).
A database that had run only some of them (made by an older PrefHub and not migrated since) is the
third kind: Django quietly drops the squashed migration from its plan, answers "No migrations to
apply" and leaves the old schema in place, so the platform would fail later, table by table.

This check stops ``manage.py migrate`` (and ``manage.py check --database default``) first, with the
one way out: migrate the database with the last PrefHub version that still has the old migrations,
then come back.
"""

from django.core import checks
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

# The last commit whose tree still holds every migration the squashed ones replace.
LAST_UNSQUASHED = "82b6e5b"


def half_applied_squashes(connection):
    """``(squashed migration key, applied replaced names, missing replaced names)`` for every
    squashed migration whose old migrations this database ran only some of."""
    recorder = MigrationRecorder(connection)
    if not recorder.has_table():
        return []
    applied = set(recorder.applied_migrations())
    loader = MigrationLoader(None, ignore_no_migrations=True)
    found = []
    for key, migration in sorted(loader.replacements.items()):
        done = [name for app, name in migration.replaces if (app, name) in applied]
        if done and len(done) < len(migration.replaces):
            missing = [name for app, name in migration.replaces if (app, name) not in applied]
            found.append((key, done, missing))
    return found


@checks.register(checks.Tags.database)
def check_no_half_applied_squashes(app_configs=None, databases=None, **kwargs):
    """System check (database tag): one error per half-applied squashed migration."""
    errors = []
    for alias in databases or ():
        for (app, name), done, missing in half_applied_squashes(connections[alias]):
            errors.append(
                checks.Error(
                    f"Database {alias!r} ran {app} migrations up to {done[-1]} but not "
                    f"{', '.join(missing)}, which are now squashed into {app}.{name}; migrating it "
                    "with this version would leave its tables as they are.",
                    hint=(
                        f"Migrate it first with PrefHub {LAST_UNSQUASHED} (`git checkout "
                        f"{LAST_UNSQUASHED} && .venv/bin/python manage.py migrate`), then come back "
                        "to this version and migrate again. Back up the database before."
                    ),
                    id="prefhub.E001",
                )
            )
    return errors
