from django.urls import path

from annotate import views

app_name = "annotate"

urlpatterns = [
    path("", views.home, name="home"),
    # The labeler's workspace and its JSON endpoints.
    path("projects/<slug:slug>/label/", views.label, name="label"),
    path("projects/<slug:slug>/label/next/", views.label_next, name="label_next"),
    path("projects/<slug:slug>/label/<int:assignment_id>/submit/", views.label_submit, name="label_submit"),
    path("projects/<slug:slug>/label/<int:assignment_id>/skip/", views.label_skip, name="label_skip"),
    path("projects/<slug:slug>/label/<int:assignment_id>/undo/", views.label_undo, name="label_undo"),
    path("projects/<slug:slug>/label/<int:assignment_id>/renew/", views.label_renew, name="label_renew"),
    path("projects/<slug:slug>/guidelines/", views.guidelines, name="guidelines"),
    path("projects/<slug:slug>/guidelines/current.json", views.guideline_current, name="guideline_current"),
    path("projects/<slug:slug>/guidelines/ack/", views.guideline_ack, name="guideline_ack"),
    # The manager's pages.
    path("projects/<slug:slug>/manage/", views.manage_progress, name="manage_progress"),
    path("projects/<slug:slug>/manage/settings/", views.manage_settings, name="manage_settings"),
    path("projects/<slug:slug>/manage/guidelines/", views.manage_guidelines, name="manage_guidelines"),
    path(
        "projects/<slug:slug>/manage/guidelines/preview/",
        views.manage_guideline_preview,
        name="manage_guideline_preview",
    ),
    path(
        "projects/<slug:slug>/manage/guidelines/diff/",
        views.manage_guideline_diff,
        name="manage_guideline_diff",
    ),
    path(
        "projects/<slug:slug>/manage/guidelines/v<int:version>/",
        views.manage_guideline_version,
        name="manage_guideline_version",
    ),
    path("projects/<slug:slug>/manage/members/", views.manage_members, name="manage_members"),
    path(
        "projects/<slug:slug>/manage/members/<int:membership_id>/deactivate/",
        views.manage_member_deactivate,
        name="manage_member_deactivate",
    ),
    path(
        "projects/<slug:slug>/manage/members/<int:membership_id>/reactivate/",
        views.manage_member_reactivate,
        name="manage_member_reactivate",
    ),
    path("projects/<slug:slug>/manage/import/", views.manage_import, name="manage_import"),
    path("projects/<slug:slug>/manage/audit/", views.manage_audit, name="manage_audit"),
]
