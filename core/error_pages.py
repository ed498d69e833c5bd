"""The site's error pages (``handler404`` in config/urls.py).

A 404 raised with a message (``Http404("No such project.")``, ``core.access.project_page``) shows
that message; one from the URL resolver or raised without text shows the page's general wording
only (Django's own handler would put the exception's class name, "Http404" or "Resolver404", in its
place). The 403 page needs no handler: Django's gives the template the message as ``exception``.
Templates escape the message like any other text.

Under ``/api/`` the answer is the API's JSON error (``{"error": "not_found", "detail": ...}``, as
``annotate.errors.NotFound`` answers), not the HTML page: a URL there that matches no route (an id
that is not a whole number, a mistyped endpoint) must be readable by the client that called it.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponseNotFound, JsonResponse
from django.template import loader
from django.urls import Resolver404


def not_found_message(exception: Exception | None) -> str:
    """The text a 404 was raised with, or "" (none, or the URL resolver's own 404)."""
    if not isinstance(exception, Http404) or isinstance(exception, Resolver404):
        return ""
    message = exception.args[0] if exception.args else ""
    return message if isinstance(message, str) else ""


API_PREFIX = "/api/"


def page_not_found(
    request: HttpRequest, exception: Exception | None = None
) -> HttpResponseNotFound | JsonResponse:
    message = not_found_message(exception)
    if request.path.startswith(API_PREFIX):
        detail = message or "No such API endpoint or object: check the URL (ids are whole numbers)."
        return JsonResponse({"error": "not_found", "detail": detail}, status=404)
    body = loader.render_to_string("404.html", {"message": message}, request)
    return HttpResponseNotFound(body)
