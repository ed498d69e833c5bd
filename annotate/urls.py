from django.urls import include, path

from annotate.views import judges, labeling, leaderboard, manage

app_name = "annotate"

# The labeler's workspace and its JSON endpoints, under projects/<slug>/label/.
label_patterns = [
    path("", labeling.label, name="label"),
    path("next/", labeling.label_next, name="label_next"),
    path("<int:assignment_id>/submit/", labeling.label_submit, name="label_submit"),
    path("<int:assignment_id>/skip/", labeling.label_skip, name="label_skip"),
    path("<int:assignment_id>/undo/", labeling.label_undo, name="label_undo"),
    path("<int:assignment_id>/renew/", labeling.label_renew, name="label_renew"),
]

guideline_patterns = [
    path("", labeling.guidelines, name="guidelines"),
    path("current.json", labeling.guideline_current, name="guideline_current"),
    path("ack/", labeling.guideline_ack, name="guideline_ack"),
]

# The manager's pages, under projects/<slug>/manage/.
manage_patterns = [
    path("", manage.manage_progress, name="manage_progress"),
    path("settings/", manage.manage_settings, name="manage_settings"),
    path("guidelines/", manage.manage_guidelines, name="manage_guidelines"),
    path("guidelines/preview/", manage.manage_guideline_preview, name="manage_guideline_preview"),
    path("guidelines/diff/", manage.manage_guideline_diff, name="manage_guideline_diff"),
    path("guidelines/v<int:version>/", manage.manage_guideline_version, name="manage_guideline_version"),
    path("members/", manage.manage_members, name="manage_members"),
    path(
        "members/<int:membership_id>/deactivate/",
        manage.manage_member_deactivate,
        name="manage_member_deactivate",
    ),
    path(
        "members/<int:membership_id>/reactivate/",
        manage.manage_member_reactivate,
        name="manage_member_reactivate",
    ),
    path("import/", manage.manage_import, name="manage_import"),
    path("audit/", manage.manage_audit, name="manage_audit"),
]

# AI judges (managers and researchers), under projects/<slug>/judges/.
judge_patterns = [
    path("", judges.judges_home, name="judges"),
    path("new/", judges.judge_new, name="judge_new"),
    path("settings/", judges.judge_settings, name="judge_settings"),
    path("reroute/", judges.judge_reroute, name="judge_reroute"),
    path("<int:judge_id>/run/", judges.judge_run, name="judge_run"),
    path("<int:judge_id>/active/", judges.judge_active, name="judge_active"),
    path("jobs/<int:job_id>/", judges.judge_job, name="judge_job"),
    path("jobs/<int:job_id>/cancel/", judges.judge_job_cancel, name="judge_job_cancel"),
    path("jobs/<int:job_id>/retry/", judges.judge_job_retry, name="judge_job_retry"),
]

project_patterns = [
    path("label/", include(label_patterns)),
    path("guidelines/", include(guideline_patterns)),
    path("manage/", include(manage_patterns)),
    # Reports under the project (managers and researchers).
    path("reports/leaderboard/", leaderboard.leaderboard_page, name="leaderboard"),
    path("reports/leaderboard/leaderboard.csv", leaderboard.leaderboard_csv, name="leaderboard_csv"),
    path("judges/", include(judge_patterns)),
]

urlpatterns = [
    path("", labeling.home, name="home"),
    path("projects/<slug:slug>/", include(project_patterns)),
]
