from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from annotate.auth_forms import ThrottledAuthenticationForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/", SpectacularAPIView.as_view(), name="api-docs"
    ),  # the schema itself: UI assets would need a CDN
    path("generation/", include("generation.urls")),
    path("training/", include("training.urls")),
    path("reports/", include("annotate.urls_reports")),
    path("", include("annotate.urls")),
]
