from django.core.management import call_command


def test_migrations_are_complete(db):
    """makemigrations --check: the models and the migrations agree."""
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
