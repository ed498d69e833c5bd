"""REST API for a project's members (managers): list, add or invite, change role, deactivate.

The same services as the members page (``annotate.services.manage``), which audit every change
with the acting manager. Memberships are rows, one per role; deactivating keeps the row (and the
member's past labels), so DELETE deactivates rather than erases.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotate import selectors
from annotate.errors import InvalidInput, found
from annotate.models import Membership, Project, Role
from annotate.services.manage import member_add, member_deactivate, member_role_change
from core.access import ProjectApiView
from core.api import validated_input
from core.api_lists import ProjectPagedListApi
from core.api_schema import errors


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "role", "is_active", "created_at"]


class MemberAddSerializer(serializers.Serializer):
    username = serializers.CharField(
        max_length=150, help_text="An existing account, or the account to create (letters, digits, @.+-_)."
    )
    email = serializers.EmailField(
        required=False, allow_blank=True, default="", help_text="Only used when a new account is created."
    )
    role = serializers.ChoiceField(choices=Role.choices, default=Role.LABELER)


class MemberAddedSerializer(MembershipSerializer):
    account_created = serializers.BooleanField(help_text="A new account was made for this username.")
    initial_password = serializers.CharField(
        allow_null=True,
        help_text="The new account's password, shown this once and never stored in clear (null when "
        "the account existed). Hand it over privately; the member can change it after signing in.",
    )

    class Meta(MembershipSerializer.Meta):
        fields = [*MembershipSerializer.Meta.fields, "account_created", "initial_password"]


class MemberChangeSerializer(serializers.Serializer):
    role = serializers.ChoiceField(
        choices=Role.choices,
        required=False,
        help_text="Move the member to this role (an active membership only).",
    )
    is_active = serializers.BooleanField(
        required=False, help_text="false deactivates the membership, true reactivates it."
    )

    def validate(self, attrs: dict) -> dict:
        if len(attrs) != 1:
            raise serializers.ValidationError("Give either role or is_active (one change at a time).")
        return attrs


class MemberDeactivatedSerializer(MembershipSerializer):
    leases_released = serializers.IntegerField(
        help_text="Tasks the member held (as a labeler) that went back to the pool."
    )

    class Meta(MembershipSerializer.Meta):
        fields = [*MembershipSerializer.Meta.fields, "leases_released"]


def _deactivated(membership: Membership, released: int) -> dict:
    membership.refresh_from_db(fields=["is_active"])
    return {**MembershipSerializer(membership).data, "leases_released": released}


@extend_schema(tags=["Members"])
class MemberListApi(ProjectPagedListApi):
    capability = "manage"
    row_serializer = MembershipSerializer
    list_summary = "List members"
    list_operation_id = "projects_members_list"
    list_description = "Managers. Every membership of the project, one per role, active or not, by username."

    def rows(self, project: Project) -> QuerySet[Membership]:
        return selectors.memberships_for_project(project=project)

    @extend_schema(
        summary="Add or invite a member",
        description="Managers. Gives `username` a role in the project. An existing account is added "
        "(or its inactive membership in that role reactivated); an unknown username gets a new account "
        "whose initial password is in this response only (`initial_password`): hand it over, the "
        "member signs in and changes it. Refused (400) when the member already holds the role.",
        request=MemberAddSerializer,
        responses={201: MemberAddedSerializer, **errors()},
    )
    def post(self, request: Request, slug: str) -> Response:
        data = validated_input(MemberAddSerializer, request.data)
        membership, password = member_add(project=self.access.project, actor=request.user, **data)
        body = {
            **MembershipSerializer(membership).data,
            "account_created": password is not None,
            "initial_password": password,
        }
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"  # a password: never cached
        return response


@extend_schema(tags=["Members"])
class MemberDetailApi(ProjectApiView):
    capability = "manage"

    def _membership(self, membership_id: int) -> Membership:
        membership = (
            Membership.objects.select_related("user")
            .filter(pk=membership_id, project=self.access.project)
            .first()
        )
        return found(membership, "No such member in this project.")

    @extend_schema(
        summary="Read a membership",
        description="Managers. One member's role in the project and whether it is active.",
        responses={200: MembershipSerializer, **errors(401, 403, 404)},
    )
    def get(self, request: Request, slug: str, membership_id: int) -> Response:
        return Response(MembershipSerializer(self._membership(membership_id)).data)

    @extend_schema(
        summary="Change a member's role, or (re)activate it",
        description="Managers. Send one change: `role` moves an active member to another role (roles "
        "are rows: the answer is the new role's membership, and this one is deactivated; a labeler's "
        "held tasks go back to the pool), or `is_active` deactivates or reactivates this membership. "
        "You cannot give up your own manager role.",
        request=MemberChangeSerializer,
        responses={200: MembershipSerializer, **errors()},
    )
    def patch(self, request: Request, slug: str, membership_id: int) -> Response:
        project = self.access.project
        membership = self._membership(membership_id)
        data = validated_input(MemberChangeSerializer, request.data)
        if "role" in data:
            membership = member_role_change(
                project=project, actor=request.user, membership=membership, role=data["role"]
            )
        elif data["is_active"]:
            if membership.is_active:
                raise InvalidInput(
                    f"{membership.user} is already active as {membership.role}.", field="is_active"
                )
            membership, _ = member_add(
                project=project,
                actor=request.user,
                username=membership.user.get_username(),
                role=membership.role,
            )
        else:
            member_deactivate(project=project, actor=request.user, membership=membership)
            membership.refresh_from_db(fields=["is_active"])
        return Response(MembershipSerializer(membership).data)

    @extend_schema(
        summary="Deactivate a membership",
        description="Managers. The member loses this role here (their past labels stay); a labeler's "
        "held tasks go back to the pool at once. Reactivate with PATCH `is_active: true`.",
        responses={200: MemberDeactivatedSerializer, **errors()},
    )
    def delete(self, request: Request, slug: str, membership_id: int) -> Response:
        membership = self._membership(membership_id)
        released = member_deactivate(project=self.access.project, actor=request.user, membership=membership)
        return Response(_deactivated(membership, released))


urlpatterns = [
    path("projects/<slug:slug>/members/", MemberListApi.as_view(), name="api-members"),
    path("projects/<slug:slug>/members/<int:membership_id>/", MemberDetailApi.as_view(), name="api-member"),
]
