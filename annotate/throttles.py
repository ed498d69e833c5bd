"""Per-user rate limits for the costly writes, shared by the API and the pages.

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (scopes claim, submit, export, jobs,
runs, import, password_reset; env RATE_<SCOPE>), counted in the default cache (Redis in production).
"""

from __future__ import annotations

from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from annotate.auth_backends import client_ip


class WriteScopedRateThrottle(ScopedRateThrottle):
    """``ScopedRateThrottle`` for writes only: listing exports or jobs is never limited."""

    def allow_request(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)


class _PageThrottle(SimpleRateThrottle):
    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__()

    def get_cache_key(self, request, view) -> str:
        # signed out: the address sign-in throttling uses (a client cannot choose it, as it can
        # DRF's ``get_ident``, which trusts any X-Forwarded-For)
        ident = request.user.pk if request.user.is_authenticated else f"ip:{client_ip(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


def page_rate_limit(scope: str, *, json: bool = False):
    """Decorate a page view: POSTs beyond the scope's rate get a 429 with a clear message."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if request.method == "POST":
                throttle = _PageThrottle(scope)
                if not throttle.allow_request(request, None):
                    wait = int(throttle.wait() or 1)
                    message = f"Too many requests; try again in {wait} second{'s' if wait != 1 else ''}."
                    if json:
                        response = JsonResponse({"error": "throttled", "detail": message}, status=429)
                    else:
                        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
                    response["Retry-After"] = str(wait)
                    return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
