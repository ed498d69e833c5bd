"""Who may do what in a project. Superusers may do everything; others need an active membership."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from annotate.errors import Forbidden, NotFound
from annotate.models import Membership, Project, Role

# What each role may do. Managers administer a project (guidelines, members, reports, settings,
# imports); researchers export, generate and train; labelers label.
CAPABILITIES: dict[str, frozenset[str]] = {
    "label": frozenset({Role.LABELER}),
    "manage": frozenset({Role.MANAGER}),
    "view_reports": frozenset({Role.MANAGER, Role.RESEARCHER}),
    "import": frozenset({Role.MANAGER, Role.RESEARCHER}),
    "research": frozenset({Role.RESEARCHER, Role.MANAGER}),
    "view": frozenset({Role.LABELER, Role.MANAGER, Role.RESEARCHER}),
}


def user_roles(*, user: AbstractBaseUser | AnonymousUser, project: Project) -> set[str]:
    if not user.is_authenticated or not user.is_active:
        return set()
    if user.is_superuser:
        return set(Role.values)
    return set(
        Membership.objects.filter(project=project, user=user, is_active=True).values_list("role", flat=True)
    )


def has_capability(*, user: AbstractBaseUser | AnonymousUser, project: Project, capability: str) -> bool:
    return bool(user_roles(user=user, project=project) & CAPABILITIES[capability])


def require_capability(
    *, user: AbstractBaseUser | AnonymousUser, project: Project, capability: str
) -> set[str]:
    """Raise NotFound for users outside the project (its existence is not revealed), Forbidden for
    members whose role does not allow ``capability``. Returns the user's roles."""
    roles = user_roles(user=user, project=project)
    if not roles:
        raise NotFound("No such project.")
    if not roles & CAPABILITIES[capability]:
        raise Forbidden("Your role in this project does not allow this.")
    return roles


def project_for_request(request, slug: str, capability: str) -> tuple[Project, set[str]]:
    """For pages: the project named by ``slug`` if the signed-in user may ``capability`` in it, with
    the user's roles. Http404 outside the project (its existence is not revealed), PermissionDenied
    (403) for a member whose role does not allow it."""
    from django.core.exceptions import PermissionDenied
    from django.http import Http404

    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    try:
        roles = require_capability(user=request.user, project=project, capability=capability)
    except NotFound:
        raise Http404("No such project.") from None
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    return project, roles


def can_create_projects(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Who may start a new project (and becomes its manager): site staff, or every signed-in user
    when ``PREFHUB_ANYONE_CAN_CREATE_PROJECTS`` is on."""
    from django.conf import settings

    if not user.is_authenticated or not user.is_active:
        return False
    return bool(user.is_staff or user.is_superuser or settings.PREFHUB_ANYONE_CAN_CREATE_PROJECTS)
