"""The manager's review queue: browse judgments with filters, accept / reject / restore them,
adjudicate a task's final label, send tasks back for more labels. Keyboard-driven (review.js)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from annotate.errors import ServiceError
from annotate.models import Choice, ReviewVerdict
from annotate.rendering import render_markdown
from annotate.selectors_review import STRENGTHS, ReviewFilters, review_counts, review_page
from annotate.services.reports import tasks_send_back
from annotate.services.review import (
    adjudication_clear,
    annotation_review,
    annotation_review_clear,
    task_adjudicate,
)
from core.access import ProjectAccess, project_page


@project_page("manage")
@require_GET
def review_queue(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    filters = ReviewFilters.from_query(request.GET)
    page = review_page(project=project, filters=filters)
    for row in page["tasks"]:
        for cand in row["candidates"]:
            cand["html"] = render_markdown(cand["text"])
        for m in row["messages"] if isinstance(row["messages"], list) else []:
            if isinstance(m, dict):
                m["html"] = render_markdown(str(m.get("content", "")))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "annotate/manage/review.html",
        {
            **access.nav("review"),
            "filters": filters,
            "page": page,
            "counts": review_counts(project=project),
            "query": query.urlencode(),
            "here": request.get_full_path(),
            "choices": Choice.choices,
            "strengths": STRENGTHS,
        },
        status=400 if filters.errors else 200,
    )


def _back(request: HttpRequest, slug: str):
    target = request.POST.get("next") or ""
    if (
        target
        and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
        and target.startswith("/")
    ):
        return redirect(target)
    return redirect("review:queue", slug=slug)


@project_page("manage")
@require_POST
def review_action(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    slug = project.slug
    action = request.POST.get("action", "")
    post = request.POST
    try:
        if action in ("accept", "reject"):
            annotation_review(
                actor=request.user,
                project=project,
                annotation_id=_int(post.get("annotation")),
                verdict=ReviewVerdict.ACCEPTED if action == "accept" else ReviewVerdict.REJECTED,
                reason=post.get("reason", ""),
            )
            text = "Accepted." if action == "accept" else "Rejected: it is left out of exports."
        elif action == "restore":
            annotation_review_clear(
                actor=request.user, project=project, annotation_id=_int(post.get("annotation"))
            )
            text = "Restored: it counts again."
        elif action == "adjudicate":
            task_adjudicate(
                actor=request.user,
                project=project,
                task_id=_int(post.get("task")),
                choice=post.get("choice") or None,
                ranking=post.get("ranking") or None,
                strength=post.get("strength") or None,
                rationale=post.get("rationale", ""),
            )
            text = "Final label saved: exports prefer it over the votes."
        elif action == "unadjudicate":
            adjudication_clear(actor=request.user, project=project, task_id=_int(post.get("task")))
            text = "Final label removed."
        elif action == "send_back":
            tasks_send_back(
                project=project, task_ids=[_int(post.get("task"))], extra_labels=1, actor=request.user
            )
            text = "Sent back for one more label."
        else:
            messages.error(request, "Unknown review action.")
            return _back(request, slug)
    except ValueError:
        messages.error(request, "The form was incomplete; nothing changed.")
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, text)
    return _back(request, slug)


def _int(value) -> int:
    return int(str(value or "").strip())
