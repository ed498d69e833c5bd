from __future__ import annotations

import math

from django import forms
from django.contrib.auth.forms import AuthenticationForm
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
        """One message for a locked sign-in, whether this attempt found the lock or made it."""
        until = login_locked_until(rules=throttle_rules(username=username, ip=client_ip(self.request)))
        if until is not None:
            minutes = max(1, math.ceil((until - timezone.now()).total_seconds() / 60))
            raise forms.ValidationError(
                f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                code="locked",
            ) from None
