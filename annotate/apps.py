from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotate"
    verbose_name = "Annotation"

    def ready(self) -> None:
        from config.runtime import runtime_dirs_ensure

        runtime_dirs_ensure()  # settings create no folders; the ones in use are made here
        from annotate import signals  # noqa: F401 - connects the receivers (token cache, after-submit)
