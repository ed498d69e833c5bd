"""What every page view does around its one service call, written once.

Pages post a form and call one service (:func:`form_submit`, :func:`form_page_submit`), or post a
button and flash the outcome (:func:`flash_outcome`, :func:`flash_form_outcome` when the button
sends a field); a refusal (``ServiceError``) lands on the
form's field or in a flash message. A form posted to an address of its own, which shows the refused
form again there, is :func:`post_form` (a reload of that address goes back to the form's page). A
button on one object of the project (cancel a job, deactivate a member) is a view made by
:func:`object_button`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from annotate.errors import ServiceError
from annotate.throttles import page_rate_limit
from core.access import project_page

T = TypeVar("T")


def add_service_error(form: Any, exc: ServiceError, *, field_names: Mapping[str, str] | None = None) -> None:
    """Show a service's refusal on the form: on the field it names when the form has that field
    (``field_names`` maps a service's field name to the form's), else above the form."""
    field = exc.field
    if field_names:
        field = field_names.get(field or "", field)
    form.add_error(field if field in form.fields else None, exc.message)


def form_submit(
    form: Any, action: Callable[[dict], T], *, field_names: Mapping[str, str] | None = None
) -> T | None:
    """Validate a bound form and run ``action(form.cleaned_data)`` (the view's one service call).

    Returns what the action returns (never None: a service that creates or changes something
    returns it), or None when the form is invalid or the service refused (its message then stands
    on the form, see :func:`add_service_error`)."""
    if not form.is_valid():
        return None
    try:
        return action(form.cleaned_data)
    except ServiceError as exc:
        add_service_error(form, exc, field_names=field_names)
        return None


def form_page_submit(
    request: HttpRequest,
    form: Any,
    action: Callable[[dict], T],
    *,
    field_names: Mapping[str, str] | None = None,
) -> tuple[T | None, int]:
    """A page that shows a form on GET and runs it on POST: ``(result, status)``.

    GET: ``(None, 200)``. POST: ``(result, 200)`` when the action ran (the view redirects), else
    ``(None, 400)`` with the errors on the form (the view renders it again)."""
    if request.method != "POST":
        return None, 200
    result = form_submit(form, action, field_names=field_names)
    return result, 200 if result is not None else 400


def flash_outcome(
    request: HttpRequest,
    action: Callable[[], T],
    success: str | Callable[[T], str],
    *,
    level: Callable[..., None] = messages.success,
) -> tuple[bool, T | None]:
    """Run a button's one service call and flash its outcome: the refusal's message as an error,
    else ``success`` (a text, or a function of the action's result) at ``level``.

    Returns ``(ok, result)``; the view redirects either way."""
    try:
        result = action()
    except ServiceError as exc:
        messages.error(request, exc.message)
        return False, None
    level(request, success(result) if callable(success) else success)
    return True, result


def flash_form_outcome(
    request: HttpRequest,
    form: Any,
    action: Callable[[dict], T],
    success: str | Callable[[T], str],
    *,
    level: Callable[..., None] = messages.success,
) -> tuple[bool, T | None]:
    """:func:`flash_outcome` for a button that sends fields: a bound ``form`` reads them (a field's
    limits, NUL characters refused, as the API's serializer does), an invalid one flashes its errors
    and runs nothing, else ``action(form.cleaned_data)`` runs."""
    if not form.is_valid():
        texts = [
            f"{form.fields[name].label or name.replace('_', ' ').capitalize()}: {error}"
            if name in form.fields
            else str(error)
            for name, errors in form.errors.items()
            for error in errors
        ]
        messages.error(request, " ".join(texts))
        return False, None
    return flash_outcome(request, lambda: action(form.cleaned_data), success, level=level)


def post_form(page: str) -> Callable:
    """For a project view (under ``project_page``) that takes a form's POST and, when the form is
    refused, shows it again at its own address: a GET or HEAD of that address (the browser's reload,
    a bookmark) goes back to ``page``, the URL name of the page the form lives on, instead of a blank
    405; other methods still get a 405."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, access: Any, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method in ("GET", "HEAD"):
                return redirect(page, slug=access.project.slug)
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            return view(request, access, *args, **kwargs)

        return wrapped

    return decorator


def object_button(
    capability: str,
    *,
    find: Callable[..., Any],
    back: Callable[[Any, Any], HttpResponse],
    level: Callable[..., None] = messages.success,
    rate_limit: str | None = None,
) -> Callable:
    """Make ``view(request, access, obj) -> str`` a project page's button on one object of the
    project (a job, a membership): POST only, under ``project_page(capability)``.

    ``find(access, **url_kwargs)`` looks the object up (its refusal is the 404); the view makes the
    one service call and returns the success message, flashed at ``level`` (a ``ServiceError`` it
    raises is flashed instead, see :func:`flash_outcome`); either way the answer is
    ``back(access, obj)``, the redirect to the object's page. ``rate_limit``: the throttle scope of
    a button that queues costly work (``annotate.throttles.page_rate_limit``)."""

    def decorator(view: Callable[..., str]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def pressed(request: HttpRequest, access: Any, **kwargs: Any) -> HttpResponse:
            obj = find(access, **kwargs)
            flash_outcome(request, lambda: view(request, access, obj), str, level=level)
            return back(access, obj)

        if rate_limit:
            pressed = page_rate_limit(rate_limit)(pressed)
        return project_page(capability)(require_POST(pressed))

    return decorator
