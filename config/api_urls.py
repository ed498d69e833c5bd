"""REST API routes (DRF), versioned under /api/v1/.

Generation jobs (``generation.apis``) and training runs (``training.apis_runs``) are included when
those modules import; a missing one is logged, not fatal.
"""

import importlib
import logging

from django.urls import include, path

from annotate import apis as annotate_apis
from training import apis as export_apis

logger = logging.getLogger(__name__)

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
]

OPTIONAL_API_MODULES = ("annotate.apis_labeling", "generation.apis", "training.apis_runs")
included_api_modules: list[str] = []
for _module in OPTIONAL_API_MODULES:
    try:
        _patterns = importlib.import_module(_module).urlpatterns
    except ModuleNotFoundError as exc:
        if exc.name != _module:  # the module exists but something it imports does not
            logger.warning("API module %s not included: %s", _module, exc)
        else:
            logger.debug("API module %s not present", _module)
        continue
    except (ImportError, AttributeError) as exc:
        logger.warning("API module %s not included: %s", _module, exc)
        continue
    urlpatterns.append(path("", include(_patterns)))
    included_api_modules.append(_module)
