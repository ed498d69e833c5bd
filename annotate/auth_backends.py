"""Authentication backend that refuses to check passwords for locked-out accounts or addresses."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from annotate.services.auth import login_attempt_reserve, login_succeeded, throttle_rules


def client_ip(request) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR")


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field_name(), "")
        rules = throttle_rules(username=username or "", ip=client_ip(request))
        if not login_attempt_reserve(rules=rules):
            raise PermissionDenied("Too many failed sign-in attempts.")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            login_succeeded(username=username)
        return user

    @staticmethod
    def _username_field_name() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD
