"""Database constraints that several apps' models declare the same way."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


def one_of(
    field: str, choices: type[models.Choices], *, name: str, null: bool = False
) -> models.CheckConstraint:
    """The check that column ``field`` holds one of the values of ``choices`` (or, with ``null``,
    none at all), so that a value written past the model's ``choices`` (an UPDATE, a raw import)
    is refused by the database too."""
    condition = Q(**{f"{field}__in": choices.values})
    if null:
        condition = Q(**{f"{field}__isnull": True}) | condition
    return models.CheckConstraint(condition=condition, name=name)
