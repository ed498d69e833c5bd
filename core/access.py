"""Access: the one place that decides who may do what in a project.

``project_access(principal, project, capability)`` applies both rules that every page, API view
and service needs, so no copy of them can miss one:

- roles: the principal's user must hold an active membership whose role grants ``capability``
  (site superusers hold every role);
- token scope: a principal that is an API token created for some projects reaches only those.

Outside the project (no membership, or the token does not reach it) the answer is ``NotFound``,
so a project's existence is not revealed; a member whose role does not grant the capability gets
``Forbidden``, and so does one whose memberships were all deactivated (``MembershipEnded``, saying
they were removed: they know the project exists, e.g. from a labeling page still open). Pages use it through :func:`project_page`, DRF views through
:class:`ProjectPermission`; objects addressed by a bare id (a lease, a generation job) are resolved
to their project by :func:`assignment_access` / :func:`job_access` and checked the same way.

The roles table in the README is generated from :data:`CAPABILITIES` (``roles_table()``; a test
asserts the README carries it), so the code and the documentation say the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404, JsonResponse
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from annotate.errors import Forbidden, MembershipEnded, NotFound, ServiceError
from annotate.models import ApiToken, Assignment, Membership, Project, Role
from core.api import ServiceRefusal
from core.db import JSONList

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    from generation.models import GenerationJob

    Principal = AbstractBaseUser | AnonymousUser | ApiToken


@dataclass(frozen=True)
class Capability:
    roles: frozenset[str]
    allows: str  # what it allows, as the README's roles table says it


# Roles -> capabilities, defined once. Managers run the project (settings, guidelines, members,
# imports, progress, reports); researchers turn its data into datasets and models; labelers label.
CAPABILITIES: dict[str, Capability] = {
    "view": Capability(
        frozenset({Role.LABELER, Role.MANAGER, Role.RESEARCHER}),
        "see the project, its settings and its guidelines",
    ),
    "label": Capability(
        frozenset({Role.LABELER}),
        "label the project's tasks (blind: never sees others' labels, agreement figures or model names)",
    ),
    "manage": Capability(
        frozenset({Role.MANAGER}),
        "edit settings and guidelines, add/deactivate members, follow progress, read the audit log, "
        "send tasks back for more labels",
    ),
    "import": Capability(frozenset({Role.MANAGER, Role.RESEARCHER}), "import prompts and responses"),
    "view_reports": Capability(frozenset({Role.MANAGER, Role.RESEARCHER}), "read agreement reports"),
    "research": Capability(
        frozenset({Role.RESEARCHER}),
        "read tasks and annotations, export datasets, run generation jobs and training runs",
    ),
    "judge": Capability(
        frozenset({Role.MANAGER, Role.RESEARCHER}),
        "create AI judges, run judge jobs, read their suggestions, costs and routing decisions",
    ),
    "release": Capability(
        frozenset({Role.MANAGER, Role.RESEARCHER}),
        "review a generation job's staged candidates (checks, sample outputs, its settings read-only) "
        "and release all, the passing ones or none into the labeling queue",
    ),
}

# The project navigation's flags (templates: can_label, can_manage, can_reports, can_research, ...).
NAV_FLAGS = {
    "can_label": "label",
    "can_manage": "manage",
    "can_reports": "view_reports",
    "can_research": "research",
    "can_judge": "judge",
    "can_release": "release",
}


def roles_table() -> str:
    """The README's roles table, generated from CAPABILITIES."""
    roles = [Role.LABELER, Role.MANAGER, Role.RESEARCHER]
    lines = [
        "| capability | allows | " + " | ".join(str(r) for r in roles) + " |",
        "| --- | --- | " + " | ".join(":---:" for _ in roles) + " |",
    ]
    for name, cap in CAPABILITIES.items():
        marks = " | ".join("yes" if r in cap.roles else "" for r in roles)
        lines.append(f"| `{name}` | {cap.allows} | {marks} |")
    return "\n".join(lines)


# What a former member is told (``MembershipEnded``) wherever the project refuses them.
REMOVED_MESSAGE = "You are no longer a member of this project; ask its manager."


# --- the rule ------------------------------------------------------------------------------------


def principal_of(request: Any) -> Principal:
    """The request's API token when it authenticated with one (DRF), else its user."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiToken) else request.user


def token_scope(token: ApiToken) -> set[int] | None:
    """The project ids a token is narrowed to (None: all its user's projects), read once per token
    instance (the token cache keeps it with the token, so a cached token needs no query)."""
    scope = getattr(token, "_project_scope", False)
    if scope is False:
        scope = set(token.projects.values_list("id", flat=True)) or None
        token._project_scope = scope
    return scope


def _user_and_scope(principal: Principal) -> tuple[Any, set[int] | None]:
    if isinstance(principal, ApiToken):
        return principal.user, token_scope(principal)
    return principal, None


def _roles_without_membership(user: Any) -> set[str] | None:
    """The roles that do not depend on memberships: none for an anonymous or deactivated account,
    all of them for a superuser; None when the active memberships decide."""
    if user is None or not user.is_authenticated or not user.is_active:
        return set()
    if user.is_superuser:
        return set(Role.values)
    return None


def user_roles(user: Any, project: Project) -> set[str]:
    fixed = _roles_without_membership(user)
    if fixed is not None:
        return fixed
    return set(
        Membership.objects.filter(project=project, user=user, is_active=True).values_list("role", flat=True)
    )


def _roles_subquery(user: Any, project_ref: Any) -> Subquery:
    """The user's active roles in the outer row's project as one JSON list (NULL when none), so
    the row and the roles come back in one query."""
    return Subquery(
        Membership.objects.filter(project_id=project_ref, user_id=user.pk, is_active=True)
        .order_by()
        .values("project_id")
        .annotate(roles=JSONList("role"))
        .values("roles")[:1]
    )


def _roles_from(user: Any, value: object) -> set[str]:
    """``user_roles`` from what ``_roles_subquery`` brought along (no query)."""
    fixed = _roles_without_membership(user)
    return set(value or ()) if fixed is None else fixed


def roles_in(principal: Principal, project: Project, *, roles: set[str] | None = None) -> set[str]:
    """The roles the principal may act with in ``project`` (empty outside it or its token's scope).
    ``roles``: the user's roles when a query already read them (see ``_roles_subquery``)."""
    user, scope = _user_and_scope(principal)
    if scope is not None and project.pk not in scope:
        return set()
    return user_roles(user, project) if roles is None else roles


def membership_ended(principal: Principal, project: Project) -> bool:
    """Was the principal a member of ``project`` whose memberships were deactivated (it holds none
    now; a token must reach the project, the account must be active)? Asked only once the
    principal is refused, so a granted request never runs this query."""
    user, scope = _user_and_scope(principal)
    if scope is not None and project.pk not in scope:
        return False
    if _roles_without_membership(user) is not None:
        return False
    return Membership.objects.filter(project=project, user=user, is_active=False).exists()


def grants(roles: set[str], capability: str) -> bool:
    return bool(roles & CAPABILITIES[capability].roles)


@dataclass
class ProjectAccess:
    """What ``project_access`` found: the project, the principal's roles in it."""

    project: Project
    roles: set[str]
    principal: Any = field(repr=False)

    def can(self, capability: str) -> bool:
        return grants(self.roles, capability)

    def nav(self, active: str = "") -> dict:
        """The context the project navigation needs."""
        return {"project": self.project, "active_tab": active, **nav_flags(self.roles)}


def nav_flags(roles: set[str]) -> dict[str, bool]:
    return {flag: grants(roles, cap) for flag, cap in NAV_FLAGS.items()}


def project_access(
    principal: Principal, project: Project | None, capability: str, *, roles: set[str] | None = None
) -> ProjectAccess:
    """May ``principal`` (a user or an API token) do ``capability`` in ``project``?

    NotFound outside the project or its token's scope (and for ``project`` None), Forbidden for a
    member whose roles do not grant it, MembershipEnded (a 403 saying so) for a former member. ``roles``: the user's roles in ``project`` when the query
    that found the project already read them (no second query)."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}")
    roles = roles_in(principal, project, roles=roles) if project is not None else set()
    if not roles:
        if project is not None and membership_ended(principal, project):
            raise MembershipEnded(REMOVED_MESSAGE)
        raise NotFound("No such project.")
    if not grants(roles, capability):
        raise Forbidden("Your role in this project does not allow this.")
    return ProjectAccess(project=project, roles=roles, principal=principal)


# The project named by a slug and the user's active roles in it, in one statement. Hand-written
# (run through ``Project.objects.raw``, which applies the fields' converters) because every
# request under a project runs it, and compiling the equivalent ORM query cost more than running it.
_PROJECT_ROLES_SQL = (
    "SELECT p.*, (SELECT {agg}(m.role) FROM {membership} m"
    " WHERE m.project_id = p.id AND m.user_id = %s AND m.is_active) AS access_roles"
    " FROM {project} p WHERE p.slug = %s"
)


def _project_with_roles(user: Any, slug: str) -> Project | None:
    from django.db import connection

    qn = connection.ops.quote_name
    sql = _PROJECT_ROLES_SQL.format(
        agg="JSONB_AGG" if connection.vendor == "postgresql" else "JSON_GROUP_ARRAY",
        membership=qn(Membership._meta.db_table),
        project=qn(Project._meta.db_table),
    )
    project = next(iter(Project.objects.raw(sql, [user.pk, slug])), None)
    if project is not None and isinstance(project.access_roles, str | bytes):
        project.access_roles = json.loads(project.access_roles)
    return project


def project_access_by_slug(principal: Principal, slug: str, capability: str) -> ProjectAccess:
    """``project_access`` for the project named by ``slug``: the project and the user's roles in it
    are read in one query."""
    user, _ = _user_and_scope(principal)
    if user.is_authenticated:
        project = _project_with_roles(user, slug)
    else:
        project = Project.objects.filter(slug=slug).first()
    roles = _roles_from(user, getattr(project, "access_roles", None)) if project is not None else None
    return project_access(principal, project, capability, roles=roles)


def visible_projects(principal: Principal) -> QuerySet[Project]:
    """The projects the principal is an active member of (superusers: all), within its token's scope."""
    user, scope = _user_and_scope(principal)
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    qs = Project.objects.all()
    if not user.is_superuser:
        qs = qs.filter(memberships__user=user, memberships__is_active=True).distinct()
    if scope is not None:
        qs = qs.filter(id__in=scope)
    return qs.order_by("name")


def is_site_admin(principal: Principal) -> bool:
    """Site-wide actions (sharing an endpoint with every project) are for superusers, and not
    through a token narrowed to some projects."""
    user, scope = _user_and_scope(principal)
    return bool(user.is_authenticated and user.is_active and user.is_superuser and scope is None)


def can_create_projects(principal: Principal) -> bool:
    """Who may start a new project (and becomes its manager): site staff, or every signed-in user
    when ``PREFHUB_ANYONE_CAN_CREATE_PROJECTS`` is on. Never through an API token narrowed to
    some projects."""
    from django.conf import settings

    user, scope = _user_and_scope(principal)
    if not user.is_authenticated or not user.is_active or scope is not None:
        return False
    return bool(user.is_staff or user.is_superuser or settings.PREFHUB_ANYONE_CAN_CREATE_PROJECTS)


def assignment_access(
    principal: Principal, assignment_id: int, *, project: Project | None = None
) -> Assignment:
    """The principal's own lease ``assignment_id``, in a project it may label (and, when given, in
    ``project``). NotFound otherwise: another labeler's lease, another project's or a token's
    out-of-scope project answer the same."""
    return assignment_access_checked(principal, assignment_id, project=project)[0]


def assignment_access_checked(
    principal: Principal,
    assignment_id: int,
    *,
    capability: str = "label",
    project: Project | None = None,
) -> tuple[Assignment, ProjectAccess]:
    """``assignment_access`` and the ``ProjectAccess`` it checked (``capability`` on top of
    "label"): the lease, its task, its project and the user's roles come back in one query."""
    user, _ = _user_and_scope(principal)
    assignment = None
    if user.is_authenticated:
        qs = Assignment.objects.select_related("task__project").filter(pk=assignment_id, labeler_id=user.pk)
        if not user.is_superuser:
            qs = qs.annotate(access_roles=_roles_subquery(user, OuterRef("task__project_id")))
        assignment = next(iter(qs.order_by()[:1]), None)
    if assignment is None or (project is not None and assignment.task.project_id != project.pk):
        raise NotFound("That task is not one of yours.")
    roles = _roles_from(user, getattr(assignment, "access_roles", None))
    try:
        access = project_access(principal, assignment.task.project, "label", roles=roles)
    except NotFound:
        raise NotFound("That task is not one of yours.") from None
    if capability != "label" and not access.can(capability):
        raise Forbidden("Your role in this project does not allow this.")
    return assignment, access


def job_access(principal: Principal, job_id: int, capability: str = "research") -> GenerationJob:
    from generation.models import GenerationJob

    job = GenerationJob.objects.select_related("project").filter(pk=job_id).first()
    try:
        project_access(principal, job.project if job else None, capability)
    except NotFound:
        raise NotFound("No such generation job.") from None
    return job


# --- pages ---------------------------------------------------------------------------------------


def project_page(capability: str, *, json: bool = False) -> Callable:
    """Decorate a page view taking ``slug``: the view is called as ``view(request, access, ...)``.

    Anonymous users are sent to sign in; outside the project 404, a role that does not grant
    ``capability`` or a membership that was deactivated 403 (as JSON ``{"error", "detail"}`` for ``json=True`` endpoints). A
    ``NotFound`` the view raises (``annotate.errors.found``) is a 404 too."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, slug: str, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            try:
                access = project_access_by_slug(request.user, slug, capability)
            except ServiceError as exc:
                if json:
                    return JsonResponse(exc.as_dict(), status=exc.status_code)
                if isinstance(exc, NotFound):
                    raise Http404(exc.message) from None
                raise PermissionDenied(exc.message) from None
            try:
                return view(request, access, *args, **kwargs)
            except NotFound as exc:  # an object of the project the view looked up (``found``)
                if json:
                    return JsonResponse(exc.as_dict(), status=exc.status_code)
                raise Http404(exc.message) from None

        wrapper.capability = capability  # type: ignore[attr-defined]
        return wrapper

    return decorator


# --- DRF -----------------------------------------------------------------------------------------


class ProjectPermission(BasePermission):
    """DRF permission built on ``project_access``. The view names its ``capability`` (and, where
    methods differ, ``method_capabilities``: ``{"POST": "manage"}``); the object it addresses comes
    from the URL: ``slug`` (a project), ``assignment_id`` (the caller's own lease,
    capability "label") or ``job_id`` (a generation job). The view finds what was checked in
    ``self.access`` (and ``self.assignment`` / ``self.job``). Refusals (NotFound/Forbidden) are
    raised as ``core.api.ServiceRefusal``, the APIException DRF expects from a permission, which
    the API's exception handler answers with 404/403 in the error schema."""

    def has_permission(self, request, view) -> bool:
        try:
            return self._has_permission(request, view)
        except ServiceError as exc:
            raise ServiceRefusal(exc) from exc

    def _has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # 401 (token) / 403 (session), as DRF's IsAuthenticated
        principal = principal_of(request)
        kwargs = view.kwargs
        capability = getattr(view, "method_capabilities", {}).get(
            request.method, getattr(view, "capability", None)
        )
        if capability is None:
            raise ImproperlyConfiguredView(f"{type(view).__name__} sets no capability")
        if "slug" in kwargs:
            view.access = project_access_by_slug(principal, kwargs["slug"], capability)
        elif "assignment_id" in kwargs:
            view.assignment, view.access = assignment_access_checked(
                principal, kwargs["assignment_id"], capability=capability
            )
        elif "job_id" in kwargs:
            view.job = job_access(principal, kwargs["job_id"], capability)
            view.access = project_access(principal, view.job.project, capability)
        else:
            raise ImproperlyConfiguredView(f"{type(view).__name__} addresses no project")
        return True


class ImproperlyConfiguredView(Exception):
    pass


class ProjectCreatePermission(BasePermission):
    """DRF permission of the project list: any signed-in user reads it (their own projects); only
    those :func:`can_create_projects` allows start one with POST (403 otherwise)."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method == "POST" and not can_create_projects(principal_of(request)):
            raise ServiceRefusal(
                Forbidden(
                    "You may not start projects: ask an administrator (tokens narrowed to some "
                    "projects never can)."
                )
            )
        return True


class ProjectApiView(APIView):
    """An API view under one project (``slug``), a lease (``assignment_id``) or a generation job
    (``job_id``): ``capability`` is what it needs; ``self.access`` is what ProjectPermission found."""

    permission_classes = [ProjectPermission]
    capability: str = "view"
    method_capabilities: dict[str, str] = {}
    access: ProjectAccess


def roles_by_project(principal: Principal) -> dict[int, set[str]]:
    """Active roles per project id, in one query (a superuser holds every role everywhere), within
    the token's scope."""
    user, scope = _user_and_scope(principal)
    if not user.is_authenticated or not user.is_active:
        return {}
    if user.is_superuser:
        ids = Project.objects.values_list("pk", flat=True)
        roles = {pk: set(Role.values) for pk in ids}
    else:
        roles = {}
        rows = Membership.objects.filter(user=user, is_active=True).values_list("project_id", "role")
        for project_id, role in rows:
            roles.setdefault(project_id, set()).add(role)
    return {pk: r for pk, r in roles.items() if scope is None or pk in scope}
