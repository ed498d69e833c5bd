from django.urls import path

from annotate.views import judges, labeling, leaderboard, manage

app_name = "annotate"

urlpatterns = [
    path("", labeling.home, name="home"),
    # The labeler's workspace and its JSON endpoints.
    path("projects/<slug:slug>/label/", labeling.label, name="label"),
    path("projects/<slug:slug>/label/next/", labeling.label_next, name="label_next"),
    path(
        "projects/<slug:slug>/label/<int:assignment_id>/submit/", labeling.label_submit, name="label_submit"
    ),
    path("projects/<slug:slug>/label/<int:assignment_id>/skip/", labeling.label_skip, name="label_skip"),
    path("projects/<slug:slug>/label/<int:assignment_id>/undo/", labeling.label_undo, name="label_undo"),
    path("projects/<slug:slug>/label/<int:assignment_id>/renew/", labeling.label_renew, name="label_renew"),
    path("projects/<slug:slug>/guidelines/", labeling.guidelines, name="guidelines"),
    path(
        "projects/<slug:slug>/guidelines/current.json", labeling.guideline_current, name="guideline_current"
    ),
    path("projects/<slug:slug>/guidelines/ack/", labeling.guideline_ack, name="guideline_ack"),
    # The manager's pages.
    path("projects/<slug:slug>/manage/", manage.manage_progress, name="manage_progress"),
    path("projects/<slug:slug>/manage/settings/", manage.manage_settings, name="manage_settings"),
    path("projects/<slug:slug>/manage/guidelines/", manage.manage_guidelines, name="manage_guidelines"),
    path(
        "projects/<slug:slug>/manage/guidelines/preview/",
        manage.manage_guideline_preview,
        name="manage_guideline_preview",
    ),
    path(
        "projects/<slug:slug>/manage/guidelines/diff/",
        manage.manage_guideline_diff,
        name="manage_guideline_diff",
    ),
    path(
        "projects/<slug:slug>/manage/guidelines/v<int:version>/",
        manage.manage_guideline_version,
        name="manage_guideline_version",
    ),
    path("projects/<slug:slug>/manage/members/", manage.manage_members, name="manage_members"),
    path(
        "projects/<slug:slug>/manage/members/<int:membership_id>/deactivate/",
        manage.manage_member_deactivate,
        name="manage_member_deactivate",
    ),
    path(
        "projects/<slug:slug>/manage/members/<int:membership_id>/reactivate/",
        manage.manage_member_reactivate,
        name="manage_member_reactivate",
    ),
    path("projects/<slug:slug>/manage/import/", manage.manage_import, name="manage_import"),
    path("projects/<slug:slug>/manage/audit/", manage.manage_audit, name="manage_audit"),
    # Reports under the project (managers and researchers).
    path("projects/<slug:slug>/reports/leaderboard/", leaderboard.leaderboard_page, name="leaderboard"),
    path(
        "projects/<slug:slug>/reports/leaderboard/leaderboard.csv",
        leaderboard.leaderboard_csv,
        name="leaderboard_csv",
    ),
    # AI judges (managers and researchers).
    path("projects/<slug:slug>/judges/", judges.judges_home, name="judges"),
    path("projects/<slug:slug>/judges/new/", judges.judge_new, name="judge_new"),
    path("projects/<slug:slug>/judges/settings/", judges.judge_settings, name="judge_settings"),
    path("projects/<slug:slug>/judges/<int:judge_id>/run/", judges.judge_run, name="judge_run"),
    path("projects/<slug:slug>/judges/jobs/<int:job_id>/", judges.judge_job, name="judge_job"),
]
