"""Squashed migrations: a new database, one that ran every old migration, and one that stopped
half-way (refused with the way out, instead of Django's silent "No migrations to apply")."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

from core.migration_history import LAST_UNSQUASHED, check_no_half_applied_squashes

pytestmark = pytest.mark.django_db

SQUASHED = {
    ("annotate", "0001_initial_squashed"): 1,
    ("annotate", "0002_squashed_0015_judge_job_progress"): 14,
    ("generation", "0001_squashed_0004_staged_candidates"): 4,
    ("training", "0001_squashed_0003_export_progress"): 3,
}


def recorded():
    return set(MigrationRecorder(connection).applied_migrations())


def forget(app, *names):
    MigrationRecorder.Migration.objects.filter(app=app, name__in=names).delete()


def test_each_app_is_one_squashed_history_that_replaces_every_old_migration():
    executor = MigrationExecutor(connection)
    ours = {
        key: migration
        for key, migration in executor.loader.disk_migrations.items()
        if key[0] in {"annotate", "generation", "training"}
    }
    assert {key: len(m.replaces) for key, m in ours.items() if m.replaces} == SQUASHED
    # Migrations made since the squash replace nothing and come after their app's squashed history.
    for key in ours.keys() - SQUASHED.keys():
        before = set(executor.loader.graph.forwards_plan(key))
        assert {k for k in SQUASHED if k[0] == key[0]} <= before, key
    # The test database was built by them, and a database that ran every old migration (each
    # replaced name recorded) has nothing left to do.
    replaced = {(key[0], name) for key, m in ours.items() for app, name in m.replaces}
    assert replaced <= recorded()
    assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []
    assert check_no_half_applied_squashes(databases=["default"]) == []


def test_a_database_that_stopped_half_way_is_refused_naming_what_is_missing():
    forget("annotate", "0014_reroute_job", "0015_judge_job_progress")
    forget("training", "0003_export_progress")

    errors = check_no_half_applied_squashes(databases=["default"])

    assert [e.id for e in errors] == ["prefhub.E001", "prefhub.E001"]
    annotate, training = sorted(errors, key=lambda e: e.msg)
    assert "annotate migrations up to 0013_judge_retry_wait_outbox_not_before" in annotate.msg
    assert "0014_reroute_job, 0015_judge_job_progress" in annotate.msg
    assert "training migrations up to 0002_run_heartbeat but not 0003_export_progress" in training.msg
    assert f"git checkout {LAST_UNSQUASHED}" in annotate.hint
    # Without this check Django answers "No migrations to apply"; with it migrate stops first.
    with pytest.raises(SystemCheckError, match=r"prefhub\.E001"):
        call_command("migrate", skip_checks=False, verbosity=0)


def test_the_check_runs_only_when_a_database_is_named():
    forget("training", "0003_export_progress")
    assert check_no_half_applied_squashes(databases=None) == []
    assert len(check_no_half_applied_squashes(databases=["default"])) == 1
