from django.core.management import call_command


def test_migrations_are_complete(db):
    """makemigrations --check: the models and the migrations agree."""
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_seed_demo_prints_the_login_link_of_the_address_it_is_given(db):
    """``make run ADDR=...`` printed the login link of port 8000 whatever the address."""
    import io

    out = io.StringIO()
    call_command("seed_demo", password="pw-for-tests-123", addr="127.0.0.1:8123", stdout=out)
    assert "Log in at http://127.0.0.1:8123/accounts/login/ with:" in out.getvalue()
