from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views import View
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from annotate.auth_forms import ThrottledAuthenticationForm
from annotate.views import account as views_account


class ApiDocsView(SpectacularSwaggerSplitView):
    """Swagger UI. OPTIONS answers as any Django page does (200, ``Allow``, no body): DRF's own
    OPTIONS answers with a metadata body, which this HTML-only page has no template for (a 500)."""

    def options(self, request, *args, **kwargs):
        return View.options(self, request, *args, **kwargs)


# The 404 page shows the message a 404 was raised with (core.error_pages).
handler404 = "core.error_pages.page_not_found"

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("annotate.urls_account")),
    path("projects/new/", views_account.project_new, name="project_new"),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI sets style attributes as it renders: allowed on this page only (scripts stay 'self').
    path(
        "api/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(ApiDocsView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path("generation/", include("generation.urls")),
    path("training/", include("training.urls")),
    path("reports/", include("annotate.urls_reports")),
    path("", include("annotate.urls_review")),
    path("", include("annotate.urls")),
]
