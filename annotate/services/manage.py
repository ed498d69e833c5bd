"""Manager actions on members and settings, checked and audited.

Each validates the manager's input, calls the domain service in ``projects`` and records an audit
event in the same transaction, so the trail never claims a change that was rolled back, nor misses
one. (Guidelines and imports audit themselves in their own services.)
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from annotate.errors import InvalidInput
from annotate.models import Membership, Project, Role
from annotate.services.projects import (
    SETTINGS_FIELDS,
    membership_add,
    membership_deactivate,
    project_update_settings,
)
from core.audit import audit_record


def _initial_password() -> str:
    # 16 characters from a URL-safe alphabet: ~96 bits, easy to copy, shown to the manager once.
    return secrets.token_urlsafe(12)


@transaction.atomic
def member_add(
    *, project: Project, actor: AbstractBaseUser, username: str, role: str, email: str = ""
) -> tuple[Membership, str | None]:
    """Give ``username`` a role in the project, creating the account if there is none.

    Returns the membership and, for a new account, its generated initial password (shown once,
    never stored in clear). Locks the project's row (FOR NO KEY UPDATE: rows that merely refer to
    the project are not held up), so two managers adding the same person at once add them once: the
    second is told they are already a member. An account created meanwhile by a manager of another
    project (the username's unique index) is used as an existing account. A new username that
    differs only in case from an existing one is refused."""
    username = (username or "").strip()
    email = (email or "").strip()
    if not username:
        raise InvalidInput("Give the person's username.", field="username")
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        raise InvalidInput(
            "Usernames may contain letters, digits and @ . + - _ only.", field="username"
        ) from None
    if len(username) > 150:
        raise InvalidInput("Usernames are at most 150 characters.", field="username")
    User = get_user_model()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidInput("That email address does not look right.", field="email") from None
        max_email = User._meta.get_field(User.get_email_field_name()).max_length
        if max_email and len(email) > max_email:
            raise InvalidInput(f"Email addresses are at most {max_email} characters.", field="email")
    if role not in Role.values:
        raise InvalidInput(f"role must be one of {', '.join(Role.values)}.", field="role")

    Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
    user = User.objects.filter(username=username).first()
    password = None
    if user is None:
        # Django's user creation form refuses such a name too: "Alice" beside "alice" is a second
        # account, and the person meant never gets the role.
        twin = User.objects.filter(username__iexact=username).values_list("username", flat=True).first()
        if twin is not None:
            raise InvalidInput(
                f"There is already an account {twin!r} (usernames that differ only in case are the same "
                "person): give that username.",
                field="username",
            )
        password = _initial_password()
        try:
            with transaction.atomic():
                user = User.objects.create_user(username=username, email=email, password=password)
        except IntegrityError:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise
            password = None  # made meanwhile (another project's manager): an existing account
    if not user.is_active:
        raise InvalidInput(
            f"The account {username!r} is disabled; an administrator must re-enable it.", field="username"
        )
    existing = Membership.objects.filter(project=project, user=user, role=role).first()
    if existing is not None and existing.is_active:
        raise InvalidInput(f"{username} is already a {role} in this project.", field="username")
    membership = membership_add(project=project, user=user, role=role)
    audit_record(
        actor=actor,
        project=project,
        action="membership.reactivate" if existing is not None else "membership.add",
        target=membership,
        details={"username": username, "role": role, "account_created": password is not None},
    )
    return membership, password


@transaction.atomic
def member_deactivate(*, project: Project, actor: AbstractBaseUser, membership: Membership) -> int:
    """Deactivate one role of one member; a labeler's live leases go back to the pool at once.
    Returns how many leases were released. Decides on the membership's row as locked now, not
    on the caller's copy: two managers removing the same member at once remove them once."""
    if membership.project_id != project.pk:
        raise InvalidInput("That membership belongs to another project.")
    membership = (
        Membership.objects.select_for_update(of=("self",)).select_related("user").get(pk=membership.pk)
    )
    if not membership.is_active:
        raise InvalidInput(f"{membership.user} is already inactive as {membership.role}.")
    if membership.user_id == actor.pk and membership.role == Role.MANAGER:
        raise InvalidInput("You cannot remove your own manager role; ask another manager.")
    released = membership_deactivate(project=project, user=membership.user, role=membership.role)
    audit_record(
        actor=actor,
        project=project,
        action="membership.deactivate",
        target=membership,
        details={
            "username": membership.user.get_username(),
            "role": membership.role,
            "leases_released": released,
        },
    )
    return released


@transaction.atomic
def member_role_change(
    *, project: Project, actor: AbstractBaseUser, membership: Membership, role: str
) -> Membership:
    """Move an active member from ``membership``'s role to ``role``: the new role is granted
    (``member_add``) and the old one deactivated (``member_deactivate``, which releases a labeler's
    leases), each audited, all or nothing. Returns the new role's membership (roles are rows)."""
    if role not in Role.values:
        raise InvalidInput(f"role must be one of {', '.join(Role.values)}.", field="role")
    if membership.project_id != project.pk:
        raise InvalidInput("That membership belongs to another project.")
    if role == membership.role:
        raise InvalidInput(f"{membership.user} is already a {role} in this project.", field="role")
    if not membership.is_active:
        raise InvalidInput(
            f"{membership.user} is inactive as {membership.role}; reactivate them first.", field="role"
        )
    if Membership.objects.filter(
        project=project, user_id=membership.user_id, role=role, is_active=True
    ).exists():
        raise InvalidInput(f"{membership.user} is already a {role} in this project.", field="role")
    new, _ = member_add(project=project, actor=actor, username=membership.user.get_username(), role=role)
    member_deactivate(project=project, actor=actor, membership=membership)
    return new


def _dimension_snapshot(project: Project) -> list[dict]:
    return [
        {"key": d.key, "label": d.label, "description": d.description, "required": d.required}
        for d in project.dimensions.all()
    ]


@transaction.atomic
def project_settings_change(
    *, project: Project, actor: AbstractBaseUser, values: dict, dimensions: list[dict] | None = None
) -> tuple[Project, dict]:
    """Apply settings (and optionally replace the rating dimensions); audit what actually changed.
    Returns the project and ``{field: [old, new]}`` (empty when nothing changed). The old values
    are read from the project's row once locked, not from the caller's copy: a change committed
    meanwhile is what this one replaced."""
    values = {k: v for k, v in values.items() if k in SETTINGS_FIELDS}
    project = Project.objects.select_for_update().get(pk=project.pk)
    before = {field: getattr(project, field) for field in values}
    dims_before = _dimension_snapshot(project)
    project = project_update_settings(project=project, dimensions=dimensions, **values)
    changes = {
        field: [before[field], getattr(project, field)]
        for field in values
        if before[field] != getattr(project, field)
    }
    dims_after = _dimension_snapshot(project)
    if dims_after != dims_before:
        changes["dimensions"] = [dims_before, dims_after]
    if changes:
        audit_record(
            actor=actor,
            project=project,
            action="project.settings",
            target=project,
            details={"changes": changes},
        )
    return project, changes
