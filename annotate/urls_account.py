"""/accounts/...: one's own password and API tokens; /projects/new/ lives here too (site-level)."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from annotate.throttles import page_rate_limit
from annotate.views import account as views_account

app_name = "account"

urlpatterns = [
    path(
        "password/change/",
        views_account.PasswordChangeView.as_view(success_url=reverse_lazy("account:password_change_done")),
        name="password_change",
    ),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path(
        "password/reset/",
        page_rate_limit("password_reset")(
            auth_views.PasswordResetView.as_view(
                success_url=reverse_lazy("account:password_reset_done"),
                email_template_name="registration/password_reset_email.txt",
                subject_template_name="registration/password_reset_subject.txt",
            )
        ),
        name="password_reset",
    ),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            success_url=reverse_lazy("account:password_reset_complete")
        ),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("tokens/", views_account.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views_account.token_revoke_view, name="token_revoke"),
]
