"""Labeling over JSON: claim the next task, submit, skip, undo, acknowledge guidelines.

The same services as the labeling pages; useful for scripted labeling tools and for load tests.
Responses never include model names, candidate ids or other labelers' work (blind labeling):
responses are addressed by opaque per-lease handles (``annotate.labeling_protocol``, the same
protocol the labeling page speaks).
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from annotate.apis_labeling_docs import (
    AcknowledgedSerializer,
    AssignmentStateSerializer,
    ClaimedLeaseSerializer,
    UndoneSerializer,
)
from annotate.labeling_protocol import (
    LeaseSerializer,
    SkipSerializer,
    SubmissionSerializer,
    lease_payload,
    submission_for,
    validated,
)
from annotate.services.guidelines import guideline_acknowledge_read
from annotate.services.leasing import (
    MAX_EXCLUDED_LEASES,
    MAX_LIVE_LEASES_PER_LABELER,
    annotation_submit,
    annotation_undo,
    assignment_renew,
    assignment_skip,
    task_claim_lease,
)
from core.access import ProjectApiView
from core.api import validated_input
from core.api_schema import errors


@extend_schema(tags=["Labeling"])
class ClaimNextApi(ProjectApiView):
    capability = "label"
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "claim"

    class ClaimInputSerializer(serializers.Serializer):
        exclude_assignment_ids = serializers.ListField(
            child=serializers.IntegerField(), required=False, default=list, max_length=MAX_EXCLUDED_LEASES
        )

    @extend_schema(
        summary="Claim the next task",
        description="Labelers. Leases you the next task that still needs labels (blind: responses are "
        "named by per-lease handles, never by model); a live lease you already hold comes back first. "
        "List leases you hold in `exclude_assignment_ids` to get a further task while one is on screen "
        f"(to preload it). A labeler holds at most {MAX_LIVE_LEASES_PER_LABELER} live leases per "
        "project: when you already hold that many and exclude them all, the answer is 409 with error "
        "`lease_limit` and `details.assignment_ids` listing the leases you hold: submit or skip "
        "one of them (or let it expire) before claiming again. 204 only when nothing is left for you.",
        request=ClaimInputSerializer,
        responses={200: ClaimedLeaseSerializer, 204: None, **errors(400, 401, 403, 404, 409, 429)},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = self.access.project
        data = validated_input(self.ClaimInputSerializer, request.data)
        lease = task_claim_lease(
            project=project,
            labeler=request.user,
            exclude_assignment_ids=data["exclude_assignment_ids"],
            roles=self.access.roles,
            refuse_at_limit=True,
        )
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(LeaseSerializer(lease_payload(lease)).data)


@extend_schema(tags=["Labeling"])
class SubmitApi(ProjectApiView):
    """Submit the caller's own lease (ProjectPermission resolves it: another labeler's lease, or
    one outside the token's projects, is 404)."""

    capability = "label"
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "submit"

    class SubmitOutputSerializer(serializers.Serializer):
        annotation_id = serializers.IntegerField()
        created = serializers.BooleanField()
        choice = serializers.CharField(allow_null=True)

    @extend_schema(
        summary="Submit a judgment",
        description="Labelers, on their own lease. A/B: `choice` (and `strength` when asked); ranking: "
        "`ranking` as groups of handles, best first; `ratings` per dimension; optional `rationale` and "
        "flag. 201 for a new annotation; 200 with the recorded one when this lease was already submitted.",
        request=SubmissionSerializer,
        responses={
            200: SubmitOutputSerializer,
            201: SubmitOutputSerializer,
            **errors(400, 401, 403, 404, 409, 429),
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        data = validated(SubmissionSerializer, request.data)
        annotation, created = annotation_submit(
            assignment_id=self.assignment.pk,
            labeler=request.user,
            roles=self.access.roles,
            **submission_for(self.assignment, data),
        )
        body = {"annotation_id": annotation.pk, "created": created, "choice": annotation.choice}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema(tags=["Labeling"])
class SkipApi(ProjectApiView):
    capability = "label"

    @extend_schema(
        summary="Skip a task",
        description="Labelers, on their own lease: give it back with a `reason`; you are not offered it again.",
        request=SkipSerializer,
        responses={200: AssignmentStateSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        data = validated(SkipSerializer, request.data)
        assignment = assignment_skip(assignment_id=self.assignment.pk, labeler=request.user, **data)
        return Response({"assignment_id": assignment.pk, "state": assignment.state})


@extend_schema(tags=["Labeling"])
class UndoApi(ProjectApiView):
    capability = "label"

    @extend_schema(
        summary="Undo your last submission",
        description="Labelers: take back a judgment you just submitted on this lease, while the lease "
        "lasts, and label the task again. The lease is live again and counts towards the "
        f"{MAX_LIVE_LEASES_PER_LABELER} live leases you may hold: when you already hold that many others "
        "(the next task and a preloaded one), the newest of them goes back to the pool and "
        "`released_assignment_ids` names it (drop it; submitting it answers 409 `lease_not_live`). "
        "Safe to send again: when the first answer was lost, a second undo of the now live lease "
        "answers 200 the same way, with no lease released. A judgment a manager has already accepted "
        "or rejected stays: 409 `judgment_reviewed`.",
        request=None,
        responses={200: UndoneSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        undone = annotation_undo(assignment_id=self.assignment.pk, labeler=request.user)
        return Response(
            {
                "assignment_id": undone.assignment.pk,
                "state": undone.assignment.state,
                "released_assignment_ids": undone.released_assignment_ids,
            }
        )


@extend_schema(tags=["Labeling"])
class RenewApi(ProjectApiView):
    capability = "label"

    class RenewedSerializer(serializers.Serializer):
        assignment_id = serializers.IntegerField()
        expires_at = serializers.DateTimeField(help_text="The lease's new end: a full lease time from now.")

    @extend_schema(
        summary="Renew a lease",
        description="Labelers, on their own live lease: restart its clock (a full lease time from now), "
        "to keep a task open while it is being worked on or when a preloaded task comes on screen. "
        "409 `lease_expired` when the lease already ended (the task went back to the pool: claim "
        "again), 409 `lease_not_live` when it was submitted, skipped or released.",
        request=None,
        responses={200: RenewedSerializer, **errors(401, 403, 404, 409)},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_renew(assignment_id=self.assignment.pk, labeler=request.user)
        return Response({"assignment_id": assignment.pk, "expires_at": assignment.expires_at})


@extend_schema(tags=["Labeling"])
class AcknowledgeGuidelineApi(ProjectApiView):
    capability = "label"

    class AcknowledgeInputSerializer(serializers.Serializer):
        version = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            min_value=1,
            max_value=2**31 - 1,
            help_text="The guideline version you read.",
        )
        guideline_id = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            min_value=1,
            max_value=2**63 - 1,
            help_text="The id of the guideline version you read (instead of, or with, `version`).",
        )

    @extend_schema(
        summary="Acknowledge the current guidelines",
        description="Labelers: confirm you read the current guideline version (needed before your "
        "next submission after a new version is published). Name the version you read by `version` "
        "(or `guideline_id`, or both when they agree): only the current version can be acknowledged, "
        "so naming an older one is 409 with error `guideline_not_current` and the current version in "
        "`details` (read it, then acknowledge it). A version or id this project does not have is 404; "
        "a `version` and `guideline_id` of different versions is 400. An empty body acknowledges the "
        "current version (kept for older clients; prefer naming it).",
        request=AcknowledgeInputSerializer,
        responses={200: AcknowledgedSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, slug: str) -> Response:
        data = validated_input(self.AcknowledgeInputSerializer, request.data)
        guideline = guideline_acknowledge_read(
            project=self.access.project,
            user=request.user,
            version=data["version"],
            guideline_id=data["guideline_id"],
        )
        return Response({"version": guideline.version})


urlpatterns = [
    path("labeling/<slug:slug>/next", ClaimNextApi.as_view(), name="labeling-next"),
    path(
        "labeling/<slug:slug>/acknowledge-guidelines", AcknowledgeGuidelineApi.as_view(), name="labeling-ack"
    ),
    path("labeling/assignments/<int:assignment_id>/submit", SubmitApi.as_view(), name="labeling-submit"),
    path("labeling/assignments/<int:assignment_id>/skip", SkipApi.as_view(), name="labeling-skip"),
    path("labeling/assignments/<int:assignment_id>/undo", UndoApi.as_view(), name="labeling-undo"),
    path("labeling/assignments/<int:assignment_id>/renew", RenewApi.as_view(), name="labeling-renew"),
]
