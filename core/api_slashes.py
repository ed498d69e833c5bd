"""Every API route answers with and without its trailing slash.

The API's routes are documented in one form (most end in a slash; the labeling actions and export
files do not), and clients write the other one: a POST to it used to answer 404, or under Django's
``APPEND_SLASH`` a 301 that the client follows as a GET (a 405), or under DEBUG a 500
(CommonMiddleware refuses to redirect a POST). This middleware is the one rule for all of them:
a path under ``API_PREFIX`` that no route matches is tried with its trailing slash toggled, and if
that form matches a route the request goes on as that form (no redirect, the method and body
kept). The schema and the docs list the documented form only; pages keep Django's behaviour.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver

API_PREFIX = "/api/v1/"


def _resolves(path: str, urlconf: str | None) -> bool:
    try:
        get_resolver(urlconf).resolve(path)
    except Resolver404:
        return False
    return True


class ApiTrailingSlashMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(API_PREFIX) and len(path) > len(API_PREFIX) and not path.endswith("//"):
            urlconf = getattr(request, "urlconf", None)
            if not _resolves(path, urlconf):
                other = path[:-1] if path.endswith("/") else path + "/"
                if _resolves(other, urlconf):
                    request.path_info = other
                    request.path = request.path[: len(request.path) - len(path)] + other
        return self.get_response(request)
