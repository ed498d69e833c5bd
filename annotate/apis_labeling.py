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

from annotate import selectors
from annotate.errors import NotFound
from annotate.labeling_protocol import (
    LeaseSerializer,
    SkipSerializer,
    SubmissionSerializer,
    lease_payload,
    submission_for,
    validated,
)
from annotate.services.guidelines import guideline_acknowledge
from annotate.services.leasing import annotation_submit, annotation_undo, assignment_skip, task_claim_lease
from core.access import ProjectApiView


class ClaimNextApi(ProjectApiView):
    capability = "label"
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "claim"

    class ClaimInputSerializer(serializers.Serializer):
        exclude_assignment_ids = serializers.ListField(
            child=serializers.IntegerField(), required=False, default=list
        )

    @extend_schema(request=ClaimInputSerializer, responses={200: LeaseSerializer, 204: None})
    def post(self, request: Request, slug: str) -> Response:
        project = self.access.project
        data = self.ClaimInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lease = task_claim_lease(
            project=project,
            labeler=request.user,
            exclude_assignment_ids=data.validated_data["exclude_assignment_ids"],
            roles=self.access.roles,
        )
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(LeaseSerializer(lease_payload(lease)).data)


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
        request=SubmissionSerializer, responses={200: SubmitOutputSerializer, 201: SubmitOutputSerializer}
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


class SkipApi(ProjectApiView):
    capability = "label"

    @extend_schema(request=SkipSerializer, responses={200: None})
    def post(self, request: Request, assignment_id: int) -> Response:
        data = validated(SkipSerializer, request.data)
        assignment = assignment_skip(assignment_id=self.assignment.pk, labeler=request.user, **data)
        return Response({"assignment_id": assignment.pk, "state": assignment.state})


class UndoApi(ProjectApiView):
    capability = "label"

    @extend_schema(request=None, responses={200: None})
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = annotation_undo(assignment_id=self.assignment.pk, labeler=request.user)
        return Response({"assignment_id": assignment.pk, "state": assignment.state})


class AcknowledgeGuidelineApi(ProjectApiView):
    capability = "label"

    @extend_schema(request=None, responses={200: None})
    def post(self, request: Request, slug: str) -> Response:
        project = self.access.project
        current = selectors.guideline_current(project=project)
        if current is None:
            raise NotFound("This project has no guidelines yet.")
        guideline_acknowledge(guideline=current, user=request.user)
        return Response({"version": current.version})


urlpatterns = [
    path("labeling/<slug:slug>/next", ClaimNextApi.as_view(), name="labeling-next"),
    path(
        "labeling/<slug:slug>/acknowledge-guidelines", AcknowledgeGuidelineApi.as_view(), name="labeling-ack"
    ),
    path("labeling/assignments/<int:assignment_id>/submit", SubmitApi.as_view(), name="labeling-submit"),
    path("labeling/assignments/<int:assignment_id>/skip", SkipApi.as_view(), name="labeling-skip"),
    path("labeling/assignments/<int:assignment_id>/undo", UndoApi.as_view(), name="labeling-undo"),
]
