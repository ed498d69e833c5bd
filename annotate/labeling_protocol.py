"""The labeling protocol: what a labeler's client sees of a lease and what it sends back, one
validated shape for the labeling page and the DRF labeling API.

Blind labeling: responses are addressed by an opaque per-lease *handle* (their display position on
this lease, 0-based), never by candidate id (ids follow import order, so they would tell which
response was listed first in the source). Handles are mapped back to candidate ids here, through
the lease's ``shown_order``, before the service sees them.

A submission::

    {"choice": "left"|"right"|"tie"|"both_bad"|null,          # pairwise
     "ranking": [[h, ...], ...],                              # ranking: groups of handles, best first
     "strength": 1..3|null, "ratings": {dimension: {handle: score}},
     "rationale": "", "flagged": false, "flag_reason": "", "time_spent_ms": int|null}
"""

from __future__ import annotations

from rest_framework import serializers

from annotate.errors import InvalidInput
from annotate.models import Assignment
from annotate.services.leasing import LeaseView
from core.api import validated_as_service_input

MAX_RANKING_ITEMS = 64


class SubmissionSerializer(serializers.Serializer):
    choice = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, default=None, max_length=20
    )
    ranking = serializers.JSONField(
        required=False, default=None, help_text="Groups of handles, best first: [[0], [2, 1]]."
    )
    strength = serializers.IntegerField(required=False, allow_null=True, default=None)
    ratings = serializers.JSONField(required=False, default=dict, help_text="{dimension: {handle: score}}.")
    rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    flagged = serializers.BooleanField(required=False, default=False)
    flag_reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0)


class SkipSerializer(serializers.Serializer):
    # optional here so a stranger gets 403/404 before any validation; the service requires it
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


def validated(serializer_class: type[serializers.Serializer], data: object) -> dict:
    """Validate with the protocol's serializer; the first problem answers InvalidInput (400) with
    its field, as every service error does."""
    if not isinstance(data, dict):
        raise InvalidInput("The request must be a JSON object.")
    return dict(validated_as_service_input(serializer_class, data))


def _handle_to_id(shown: list[int], value: object, field: str) -> int:
    if isinstance(value, bool):
        value = None
    try:
        pos = int(value) if isinstance(value, int | str) else None
    except ValueError:
        pos = None
    if pos is None or not 0 <= pos < len(shown):
        raise InvalidInput("That response is not part of this task.", field=field)
    return shown[pos]


def submission_for(assignment: Assignment, data: dict) -> dict:
    """Validated protocol data (handles) -> ``annotation_submit``'s arguments (candidate ids)."""
    shown = list(assignment.shown_order)
    ranking = data.get("ranking")
    if ranking in ([], ""):
        ranking = None
    if ranking is not None:
        if not isinstance(ranking, list) or len(ranking) > MAX_RANKING_ITEMS:
            raise InvalidInput("ranking must be a list of groups of handles.", field="ranking")
        if any(group == [] for group in ranking):
            raise InvalidInput(
                "ranking has an empty group: each group holds one or more handles.", field="ranking"
            )
        ranking = [
            [_handle_to_id(shown, h, "ranking") for h in (group if isinstance(group, list) else [group])]
            for group in ranking
        ]
    ratings = data.get("ratings")
    if ratings is None:  # absent or null: no ratings (0, false, "" or [] are wrong types, refused)
        ratings = {}
    if not isinstance(ratings, dict):
        raise InvalidInput("ratings must map a dimension to {handle: score}.", field="ratings")
    mapped: dict[str, dict[str, object]] = {}
    for key, per_handle in ratings.items():
        if not isinstance(per_handle, dict):
            raise InvalidInput("ratings must map a dimension to {handle: score}.", field="ratings")
        mapped[str(key)] = {
            str(_handle_to_id(shown, h, "ratings")): score
            for h, score in per_handle.items()
            if score not in (None, "")
        }
    return {**data, "choice": data.get("choice") or None, "ranking": ranking, "ratings": mapped}


def lease_candidates(kind: str, texts: list[str]) -> list[dict]:
    """The lease's responses in display order, as a client sees them: handle, position, text."""
    pairwise = kind == "pairwise"
    return [
        {"handle": i, "position": ("left", "right")[i] if pairwise and i < 2 else i + 1, "text": text}
        for i, text in enumerate(texts)
    ]


class LeaseSerializer(serializers.Serializer):
    """A leased task as the labeler sees it: candidates in display order, addressed by opaque
    per-lease handles; no candidate ids, no provenance. The labeling page renders the same payload."""

    assignment_id = serializers.IntegerField()
    task_id = serializers.IntegerField()
    kind = serializers.CharField()
    expires_at = serializers.DateTimeField()
    messages = serializers.ListField(child=serializers.DictField())
    candidates = serializers.ListField(child=serializers.DictField())
    guideline_to_acknowledge = serializers.IntegerField(allow_null=True)


def lease_payload(lease: LeaseView) -> dict:
    """The protocol's view of a claimed lease (``LeaseSerializer``'s fields), built from what the
    claim returned (no re-read); the DRF API answers it as JSON, the labeling page renders it."""
    assignment = lease.assignment
    return {
        "assignment_id": assignment.pk,
        "task_id": assignment.task_id,
        "kind": lease.kind,
        "expires_at": assignment.expires_at,
        "messages": lease.messages if isinstance(lease.messages, list) else [],
        "candidates": lease_candidates(lease.kind, lease.candidate_texts),
        "guideline_to_acknowledge": lease.guideline_pending,
    }
