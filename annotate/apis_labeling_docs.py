"""Response bodies of the labeling API (``annotate.apis_labeling``), for its OpenAPI document only:
the views build their answers themselves; tests/test_api_schema.py checks real answers against
these shapes."""

from __future__ import annotations

from rest_framework import serializers

from annotate.models import AssignmentState


class MessageSerializer(serializers.Serializer):
    role = serializers.CharField(help_text="user, assistant or system.")
    content = serializers.CharField()


class LeaseCandidateSerializer(serializers.Serializer):
    handle = serializers.IntegerField(help_text="Name this response by its handle when you submit.")
    position = serializers.JSONField(help_text='"left" or "right" (A/B), else 1, 2, ... (ranking).')
    text = serializers.CharField()


class ClaimedLeaseSerializer(serializers.Serializer):
    assignment_id = serializers.IntegerField(help_text="Submit, skip or undo through this id.")
    task_id = serializers.IntegerField()
    kind = serializers.CharField(help_text="pairwise or ranking.")
    expires_at = serializers.DateTimeField(help_text="The task goes back to the pool after this.")
    messages = MessageSerializer(many=True, help_text="The conversation so far (the prompt).")
    candidates = LeaseCandidateSerializer(many=True, help_text="The responses, in display order.")
    guideline_to_acknowledge = serializers.IntegerField(
        allow_null=True, help_text="A guideline version to acknowledge before submitting, or null."
    )


class AssignmentStateSerializer(serializers.Serializer):
    assignment_id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=AssignmentState.choices)


class UndoneSerializer(AssignmentStateSerializer):
    released_assignment_ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Leases of yours given back to the pool by this undo, so that you hold no more live "
        "leases than a claim allows (the task you preloaded; usually empty): drop them.",
    )


class AcknowledgedSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The guideline version acknowledged.")
