"""How much better the preferred response is: one scale, here only, for labelers' answers, final
labels, AI judges' verdicts and the judges' routing threshold. The database checks it
(``strength_in_range``), the forms offer it (``STRENGTH_RANGE``, ``Strength.choices``) and every way
in reads it with ``strength_value``."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from annotate.errors import InvalidInput


class Strength(models.IntegerChoices):
    SLIGHTLY = 1, "slightly"
    CLEARLY = 2, "clearly"
    MUCH = 3, "much"


STRENGTH_RANGE = (min(Strength.values), max(Strength.values))
_POINTS = [f"{s.value} ({s.label} better)" for s in Strength]
STRENGTH_MESSAGE = f"must be {', '.join(_POINTS[:-1])} or {_POINTS[-1]}"


def strength_in_range(field: str = "strength") -> Q:
    """``field`` is empty or on the scale: the check constraint of every strength column."""
    return Q(**{f"{field}__isnull": True}) | (
        Q(**{f"{field}__gte": STRENGTH_RANGE[0]}) & Q(**{f"{field}__lte": STRENGTH_RANGE[1]})
    )


def strength_value(value: object, *, field: str = "strength", text: bool = False) -> int:
    """``value`` as a point of the scale, or an ``InvalidInput`` naming ``field``. Whole numbers
    (``True`` and ``2.0`` are refused here; an API serializer may have made 2 of them already);
    ``text`` also takes a form's ASCII digits ("2")."""
    digits = value.strip() if text and isinstance(value, str) else ""
    if digits.isascii() and digits.isdigit() and len(digits) < 3:  # not "²" (isdigit, int refuses)
        value = int(digits)
    if isinstance(value, int) and not isinstance(value, bool) and value in Strength.values:
        return value
    raise InvalidInput(f"{field} {STRENGTH_MESSAGE} (got {str(value)[:20]!r}).", field=field)
