from __future__ import annotations

import math

from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.utils import timezone

from annotate.auth_backends import client_ip
from annotate.services.auth import login_locked_until, throttle_rules


class ThrottledAuthenticationForm(AuthenticationForm):
    """The stock login form, with a clear message when sign-in from this address is locked out."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        self._refuse_if_locked(username)
        try:
            return super().clean()
        except forms.ValidationError:
            self._refuse_if_locked(username)  # this failure may have started the lock
            raise

    def _refuse_if_locked(self, username: str) -> None:
        refuse_if_locked(username, self.request)


def refuse_if_locked(username: str, request) -> None:
    """One message for a locked sign-in, whether this attempt found the lock or made it."""
    until = login_locked_until(rules=throttle_rules(username=username, ip=client_ip(request)))
    if until is not None:
        minutes = max(1, math.ceil((until - timezone.now()).total_seconds() / 60))
        raise forms.ValidationError(
            f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            code="locked",
        ) from None


class ThrottledPasswordChangeForm(PasswordChangeForm):
    """The stock form, its old password checked by the sign-in backend (``ThrottledModelBackend``):
    a wrong one counts as a failed sign-in and the same lock stops the guessing, as on the sign-in
    page."""

    def __init__(self, user, *args, request=None, **kwargs):
        self.request = request
        super().__init__(user, *args, **kwargs)

    def clean_old_password(self):
        old = self.cleaned_data["old_password"]
        username = self.user.get_username()
        refuse_if_locked(username, self.request)
        checked = authenticate(self.request, username=username, password=old)
        if checked is None or checked.pk != self.user.pk:
            refuse_if_locked(username, self.request)  # this failure may have started the lock
            raise forms.ValidationError(self.error_messages["password_incorrect"], code="password_incorrect")
        return old
