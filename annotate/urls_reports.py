from django.urls import path, re_path

from annotate.views import reports as views

app_name = "reports"

urlpatterns = [
    path("<slug:slug>/", views.report_page, name="project"),
    re_path(
        r"^(?P<slug>[-a-zA-Z0-9_]+)/download/(?P<table>[a-z_]+)\.(?P<fmt>csv|json)$",
        views.report_download,
        name="download",
    ),
    path("<slug:slug>/recompute", views.report_recompute, name="recompute"),
    path("<slug:slug>/send-back", views.report_send_back, name="send_back"),
]
