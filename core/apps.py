from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The rules every app shares, each written once: audit, outbox, job lifecycle, API plumbing."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "core"
    verbose_name = "Core"

    def ready(self):
        from core import migration_history  # noqa: F401  (registers its database check)
