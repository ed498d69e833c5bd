"""Researchers' generation pages, mounted at /generation/."""

from django.urls import path

from generation import views

app_name = "generation"

urlpatterns = [
    path("<slug:slug>/", views.project_home, name="home"),
    path("<slug:slug>/endpoints/new/", views.endpoint_new, name="endpoint_new"),
    path("<slug:slug>/jobs/new/", views.job_new, name="job_new"),
    path("<slug:slug>/jobs/<int:job_id>/", views.job_detail, name="job_detail"),
    path("<slug:slug>/jobs/<int:job_id>/status.json", views.job_status_json, name="job_status"),
    path("<slug:slug>/jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("<slug:slug>/jobs/<int:job_id>/release/", views.job_release, name="job_release"),
]
