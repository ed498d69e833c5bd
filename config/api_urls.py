"""REST API routes (DRF), versioned under /api/v1/.

Every API module is imported here unconditionally: a broken module stops the app at start-up
instead of silently dropping its routes.
"""

from django.urls import include, path

from annotate import apis as annotate_apis
from annotate import apis_judges, apis_labeling, apis_members
from generation import apis as generation_apis
from training import apis as export_apis
from training import apis_runs

P = "projects/<slug:slug>/"

urlpatterns = [
    path("projects/", annotate_apis.ProjectListApi.as_view(), name="api-projects"),
    path(P, annotate_apis.ProjectDetailApi.as_view(), name="api-project"),
    path(P + "guidelines/", annotate_apis.GuidelineListApi.as_view(), name="api-guidelines"),
    path(P + "guidelines/<int:version>/", annotate_apis.GuidelineDetailApi.as_view(), name="api-guideline"),
    path(P + "imports/", annotate_apis.PromptImportApi.as_view(), name="api-imports"),
    path(P + "tasks/", annotate_apis.TaskListApi.as_view(), name="api-tasks"),
    path(P + "annotations/", annotate_apis.AnnotationListApi.as_view(), name="api-annotations"),
    path(P + "exports/", export_apis.ExportListCreateApi.as_view(), name="api-exports"),
    path(P + "exports/<int:version>/", export_apis.ExportDetailApi.as_view(), name="api-export"),
    path(
        P + "exports/<int:version>/download/",
        export_apis.ExportDownloadApi.as_view(),
        name="api-export-download",
    ),
    path(
        P + "exports/<int:version>/files/<str:name>",
        export_apis.ExportFileApi.as_view(),
        name="api-export-file",
    ),
    path("", include(apis_members.urlpatterns)),
    path("", include(apis_labeling.urlpatterns)),
    path("", include(apis_judges.urlpatterns)),
    path("", include(generation_apis.urlpatterns)),
    path("", include(apis_runs.urlpatterns)),
]
