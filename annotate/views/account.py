"""Pages of one's own account and of starting a project: new project, API tokens. (Password change
and reset are Django's own views, wired in annotate/urls_account.py.)"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from annotate.auth_forms import ThrottledPasswordChangeForm
from annotate.models import ApiToken, TaskKind
from annotate.project_input import project_start_values
from annotate.services.projects import KIND_SETTINGS, project_start
from annotate.services.tokens import MAX_EXPIRY_DAYS, token_create, token_revoke_by_id
from core.access import can_create_projects, visible_projects
from core.pages import flash_outcome, form_page_submit


class ProjectStartForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(
        choices=TaskKind.choices,
        initial=TaskKind.PAIRWISE,
        widget=forms.RadioSelect,
        help_text="A/B: labelers compare two responses. Ranking: they order K responses.",
    )
    description = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Markdown; shown on the project card.",
    )
    ranking_k = forms.IntegerField(
        label="Responses per ranking task (K)", min_value=2, max_value=16, initial=4, required=False
    )
    overlap = forms.IntegerField(
        label="Labelers per task",
        min_value=1,
        max_value=100,
        initial=1,
        help_text="2 or more to measure agreement.",
    )
    lease_minutes = forms.IntegerField(
        label="Minutes a labeler holds a task", min_value=1, max_value=24 * 60, initial=15
    )
    allow_tie = forms.BooleanField(label="Allow ties", required=False, initial=True)
    allow_both_bad = forms.BooleanField(label='Allow "both bad"', required=False, initial=True)
    strength_scale = forms.BooleanField(label="Ask how much better", required=False, initial=True)
    allow_rank_ties = forms.BooleanField(label="Allow ties in rankings", required=False)
    rating_scale_max = forms.IntegerField(label="Rating scale 1 to", min_value=2, max_value=10, initial=5)
    dimensions = forms.CharField(
        label="Rating dimensions",
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "Helpfulness: Does it answer the question?\nHarmlessness"}
        ),
        help_text="One per line, optionally 'Name: description'; end a line with * to make it required.",
    )
    guidelines = forms.CharField(
        label="Guidelines (version 1)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Markdown. Labelers read and acknowledge them before their first task; you can publish new versions later.",
    )

    def clean_dimensions(self) -> list[dict]:
        rows = []
        for line in self.cleaned_data["dimensions"].splitlines():
            line = line.strip()
            if not line:
                continue
            required = line.endswith("*")
            line = line.rstrip("*").strip()
            label, _, description = line.partition(":")
            rows.append({"label": label.strip(), "description": description.strip(), "required": required})
        return rows

    def project_values(self) -> dict:
        return project_start_values(self.cleaned_data)

    # The page's sections (templates/annotate/project_new.html).
    def task_fields(self) -> list:
        return [self[name] for name in ("name", "kind", "description", "overlap", "lease_minutes")]

    def pairwise_fields(self) -> list:
        return [self[name] for name in KIND_SETTINGS[TaskKind.PAIRWISE]]

    def ranking_fields(self) -> list:
        return [self[name] for name in KIND_SETTINGS[TaskKind.RANKING]]


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request: HttpRequest) -> HttpResponse:
    if not can_create_projects(request.user):
        raise PermissionDenied("Only site staff can start projects here; ask an administrator.")
    form = ProjectStartForm(request.POST or None)
    project, status = form_page_submit(
        request,
        form,
        lambda data: project_start(
            actor=request.user,
            name=data["name"],
            kind=data["kind"],
            dimensions=data["dimensions"],
            guidelines=data["guidelines"],
            **form.project_values(),
        ),
        field_names={"lease_ttl_seconds": "lease_minutes", "slug": "name"},
    )
    if project is not None:
        return redirect("annotate:manage_members", slug=project.slug)
    return render(request, "annotate/project_new.html", {"form": form}, status=status)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. 'training cluster'.")
    projects = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to let the token reach every project you belong to.",
    )
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        min_value=1,
        max_value=MAX_EXPIRY_DAYS,
        required=False,
        help_text="Blank: never.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["projects"].queryset = visible_projects(user)
        # the address tells apart projects of one name (a restored copy, two teams' "Demo")
        self.fields["projects"].label_from_instance = lambda project: f"{project.name} ({project.slug})"


_NEW_SECRET = "prefhub_new_token_secret"


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """List, create and revoke one's own API tokens. A new token's secret is shown exactly once:
    the create POST redirects (a reload never makes a second token) and the secret travels in the
    session only until that next page view."""
    form = TokenForm(request.POST or None, user=request.user)

    def create(data: dict) -> tuple[ApiToken, str]:
        days = data["expires_in_days"]
        return token_create(
            user=request.user,
            name=data["name"],
            projects=list(data["projects"]),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )

    created, status = form_page_submit(request, form, create)
    if created is not None:
        _token, secret = created
        request.session[_NEW_SECRET] = secret
        return redirect("account:tokens")
    rows = ApiToken.objects.filter(user=request.user).prefetch_related("projects").order_by("-created_at")
    context = {
        "form": form,
        "tokens": rows,
        "created_secret": request.session.pop(_NEW_SECRET, None),
        "now": timezone.now(),
    }
    response = render(request, "annotate/tokens.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    flash_outcome(
        request,
        lambda: token_revoke_by_id(user=request.user, token_id=token_id),
        lambda token: f"Revoked {token.name}; it stops working at once.",
        level=messages.info,
    )
    return redirect("account:tokens")


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's page, the old password checked as a sign-in is (``ThrottledPasswordChangeForm``)."""

    form_class = ThrottledPasswordChangeForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}
