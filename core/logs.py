"""Logging helpers the settings' LOGGING uses."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404


class NoTracebackForRefusals(logging.Filter):
    """Keep a refused request's one warning line (``Forbidden (Permission denied): /path``) and drop
    its traceback: a 403 or 404 is the app answering as designed, not a fault, and a traceback per
    refusal buried the real errors in the log. Every other record passes untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, PermissionDenied | Http404):
            record.exc_info = None
            record.exc_text = None
        return True
