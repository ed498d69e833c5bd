"""Abstract model parts that several apps' models share (no tables of their own)."""

from django.conf import settings
from django.db import models


class Authored(models.Model):
    """Who made the row and when. Deleting that account keeps the row (``created_by`` empties)."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
