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
        until = login_locked_until(rules=throttle_rules(username=username, ip=client_ip(self.request)))
        if until is not None:
            minutes = max(1, math.ceil((until - timezone.now()).total_seconds() / 60))
            raise forms.ValidationError(
                f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                code="locked",
            )
        try:
            return super().clean()
        except forms.ValidationError:
            until = login_locked_until(rules=throttle_rules(username=username, ip=client_ip(self.request)))
            if until is not None:
                raise forms.ValidationError(
                    "Too many failed sign-in attempts. Sign-in from here is locked for a while.",
                    code="locked",
                ) from None
            raise
