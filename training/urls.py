from django.urls import include, path

app_name = "training"

urlpatterns = [
    path("", include("training.urls_exports")),
    path("", include("training.urls_runs")),
]
