"""Every project-scoped page and API route x every role x a project the user is not in.

The routes are discovered from the URL configuration, so a new page is covered the day it is added.
Integer parameters are filled with ids of real objects of the target project (a lease, a membership,
a guideline version, an export, a generation job, a training run), so a 404 means "refused", not
"no such object".
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.models import Membership, Role
from annotate.services.guidelines import guideline_publish
from annotate.services.leasing import task_claim_next
from annotate.services.tokens import token_create
from generation.models import GenerationJob
from tests.conftest import add_tasks
from training.models import Export, TrainingRun
from training.services.exports import exports_root

pytestmark = pytest.mark.django_db

# Pages and API routes a labeler of the project may use; everything else project-scoped is for
# managers and researchers only.
LABELER_ROUTES = re.compile(r"^(projects/<slug:slug>/(label|guidelines)|api/v1/labeling/)")
# API routes any member may read (GET only: publishing guidelines is for managers).
ALLOWED_FOR_ANY_MEMBER = re.compile(r"^api/v1/projects/<slug:slug>/(guidelines/|$)")
# Every method a route may answer: writes through PATCH and DELETE (members) are checked too.
METHODS = ["GET", "POST", "PATCH", "DELETE"]


def _walk_views(patterns, prefix=""):
    """(route, view) for every URL pattern under ``patterns``."""
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk_views(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p.callback


def _walk(patterns, prefix=""):
    for route, _ in _walk_views(patterns, prefix):
        yield route


def _routes():
    for route in _walk(get_resolver().url_patterns):
        if route.startswith(("admin/", "accounts/", "api/schema", "api/docs")):
            continue
        if "slug" in route or "assignment_id" in route or "job_id" in route:
            yield route


# Routes whose ``job_id`` names another kind of job than a generation job.
JOB_ID_OF = {"/judges/jobs/<int:job_id>/": "judge_job_id"}


def _fill(route: str, values: dict[str, object]) -> str:
    path = route
    for part, key in JOB_ID_OF.items():
        if part in route and key in values:
            values = {**values, "job_id": values[key]}
    if path.startswith("^") or "(?P<" in path:  # a regex route
        for name, value in values.items():
            path = re.sub(rf"\(\?P<{name}>[^)]*\)", str(value), path)
        path = path.replace("^", "").replace("$", "").replace("\\.", ".")
        return "/" + path
    for name, value in values.items():
        path = re.sub(rf"<(?:\w+:)?{name}>", str(value), path)
    assert "<" not in path, f"unfilled parameter in {route}"
    return "/" + path


@pytest.fixture
def world(make_project, make_user, labeler_in):
    target = make_project(name="Target")
    other = make_project(name="Other")
    add_tasks(target, prompts=3)
    add_tasks(other, prompts=1)
    boss = make_user()
    guideline_publish(project=target, actor=boss, body="rules")
    victim = labeler_in(target)
    lease = task_claim_next(project=target, labeler=victim)
    now = timezone.now()
    folder = exports_root(target) / "v1"  # real files: a 404 on a download means refused
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text("{}")
    export = Export.objects.create(
        project=target, version=1, format="trl", state="done", finished_at=now, path=str(folder)
    )
    job = GenerationJob.objects.create(project=target, k=2)
    run = TrainingRun.objects.create(project=target, kind="dpo", export=export, base_model="tiny")
    from annotate.models import Judge, JudgeJob, RerouteJob
    from generation.models import ModelEndpoint

    endpoint = ModelEndpoint.objects.create(name="perm-judge-ep", backend="openai", model="m", project=target)
    judge = Judge.objects.create(project=target, name="perm-judge", endpoint=endpoint, user=make_user())
    judge_job = JudgeJob.objects.create(project=target, judge=judge, rubric="r", state="running")
    RerouteJob.objects.create(project=target, state="done")  # judges/reroute/ reads the latest one
    values = {
        "slug": target.slug,
        "assignment_id": lease.pk,
        "membership_id": Membership.objects.get(project=target, user=victim).pk,
        "version": 1,
        "job_id": job.pk,
        "run_id": run.pk,
        "judge_id": judge.pk,
        "judge_job_id": judge_job.pk,
        "name": "manifest.json",
        "table": "labelers",
        "fmt": "csv",
    }
    # a user who holds every role, but in the other project only
    stranger = make_user()
    for role in Role.values:
        Membership.objects.create(project=other, user=stranger, role=role)
    lease.expires_at = now + timedelta(hours=1)
    # a user who holds every role in both projects, with a token narrowed to the other project
    insider = make_user()
    for project in (target, other):
        for role in Role.values:
            Membership.objects.create(project=project, user=insider, role=role)
    own_lease = task_claim_next(project=target, labeler=insider)
    _, other_only = token_create(user=insider, name="other only", projects=[other])
    _, target_only = token_create(user=insider, name="target only", projects=[target])
    return {
        "target": target,
        "other": other,
        "values": values,
        "stranger": stranger,
        "labeler": labeler_in(target),
        "insider": insider,
        "insider_values": {**values, "assignment_id": own_lease.pk},
        "other_only_token": other_only,
        "target_only_token": target_only,
    }


def _request(client, method: str, path: str, data: dict | None = None):
    if method == "GET":
        resp = client.get(path)
    else:
        resp = getattr(client, method.lower())(path, data or {}, format="json")
    if resp.status_code in (301, 302) and "/accounts/login/" not in resp["Location"]:
        # a plain redirect (e.g. an app's home to its first page) must land on a refusal too
        resp = client.get(resp["Location"])
    return resp


def test_routes_are_discovered():
    routes = list(_routes())
    assert any(r.startswith("projects/") for r in routes)
    assert any(r.startswith("api/v1/") for r in routes)
    assert any(r.startswith(("training/", "generation/", "reports/")) for r in routes)


@pytest.mark.parametrize("method", METHODS)
def test_strangers_get_403_or_404_everywhere(world, method):
    client = APIClient()
    client.force_login(world["stranger"])
    failures = []
    for route in _routes():
        resp = _request(client, method, _fill(route, world["values"]))
        if resp.status_code not in (403, 404, 405):
            failures.append(f"{method} {route}: {resp.status_code}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("method", METHODS)
def test_labelers_cannot_reach_manager_or_researcher_routes(world, method):
    client = APIClient()
    client.force_login(world["labeler"])
    failures = []
    checked = 0
    for route in _routes():
        if LABELER_ROUTES.search(route) or (method == "GET" and ALLOWED_FOR_ANY_MEMBER.search(route)):
            continue
        checked += 1
        resp = _request(client, method, _fill(route, world["values"]))
        if resp.status_code not in (403, 404, 405):
            failures.append(f"{method} {route}: {resp.status_code}")
    assert checked > 20
    assert not failures, "\n".join(failures)


def test_anonymous_users_are_sent_to_sign_in(world):
    client = APIClient()
    failures = []
    for route in _routes():
        resp = _request(client, "GET", _fill(route, world["values"]))
        ok = resp.status_code in (401, 403, 405) or (
            resp.status_code == 302 and "/accounts/login/" in resp["Location"]
        )
        if not ok:
            failures.append(f"GET {route}: {resp.status_code}")
    assert not failures, "\n".join(failures)


def test_another_labelers_lease_is_refused(world):
    client = APIClient()
    client.force_login(world["labeler"])  # same project, but the lease belongs to someone else
    lease_id = world["values"]["assignment_id"]
    for path in (
        f"/api/v1/labeling/assignments/{lease_id}/submit",
        f"/api/v1/labeling/assignments/{lease_id}/skip",
        f"/api/v1/labeling/assignments/{lease_id}/undo",
        f"/api/v1/labeling/assignments/{lease_id}/renew",
        f"/projects/{world['target'].slug}/label/{lease_id}/submit/",
        f"/projects/{world['target'].slug}/label/{lease_id}/skip/",
        f"/projects/{world['target'].slug}/label/{lease_id}/undo/",
        f"/projects/{world['target'].slug}/label/{lease_id}/renew/",
    ):
        resp = client.post(path, {"choice": "left", "reason": "x"}, format="json")
        assert resp.status_code in (403, 404), (path, resp.status_code)


# --- API tokens narrowed to some projects ---------------------------------------------------------


def _token_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _refused(resp) -> bool:
    """403/404/405, 401 (token refused), or a page's redirect to sign in (pages take no tokens)."""
    if resp.status_code in (401, 403, 404, 405):
        return True
    return resp.status_code == 302 and "/accounts/login/" in resp["Location"]


@pytest.mark.parametrize("method", METHODS)
def test_a_token_narrowed_to_another_project_reaches_nothing_here(world, method):
    """The insider holds every role in the target project, but the token was created for the other
    project only: no route of the target project (pages, API, objects addressed by bare ids such as
    a lease or a generation job) may answer anything but a refusal."""
    client = _token_client(world["other_only_token"])
    failures = []
    checked = 0
    for route in _routes():
        checked += 1
        path = _fill(route, world["insider_values"])
        resp = _request(client, method, path, {"choice": "left", "reason": "x", "role": "manager"})
        if not _refused(resp):
            failures.append(f"{method} {route}: {resp.status_code}")
    assert checked > 40
    assert not failures, "\n".join(failures)


def test_a_token_narrowed_to_this_project_still_works_here(world):
    """The control: the same user's token for the target project reaches it (so the refusals above
    are the scope's doing, not the route's)."""
    client = _token_client(world["target_only_token"])
    slug = world["target"].slug
    assert client.get(f"/api/v1/projects/{slug}/").status_code == 200
    assert client.get(f"/api/v1/projects/{slug}/generation/jobs/").status_code == 200
    assert client.get(f"/api/v1/generation/jobs/{world['values']['job_id']}/").status_code == 200
    assert client.get(f"/api/v1/projects/{slug}/runs/").status_code == 200
    lease = world["insider_values"]["assignment_id"]
    resp = client.post(f"/api/v1/labeling/assignments/{lease}/skip", {"reason": "not for me"}, format="json")
    assert resp.status_code == 200, resp.content
    listed = client.get("/api/v1/projects/").json()
    assert [p["slug"] for p in listed["results"]] == [slug]


def test_scoped_token_cannot_create_generation_jobs_or_claim_tasks_elsewhere(world):
    """The HIGH finding, spelled out: writes through a token narrowed to another project."""
    client = _token_client(world["other_only_token"])
    slug = world["target"].slug
    before = GenerationJob.objects.filter(project=world["target"]).count()
    resp = client.post(f"/api/v1/projects/{slug}/generation/jobs/", {"endpoints": ["x"]}, format="json")
    assert resp.status_code == 404
    resp = client.post(
        f"/api/v1/projects/{slug}/generation/endpoints/",
        {"name": "sneaky", "backend": "transformers", "model": "tiny"},
        format="json",
    )
    assert resp.status_code == 404
    assert GenerationJob.objects.filter(project=world["target"]).count() == before
    resp = client.post(f"/api/v1/labeling/{slug}/next", {}, format="json")
    assert resp.status_code == 404
    lease = world["insider_values"]["assignment_id"]
    resp = client.post(f"/api/v1/labeling/assignments/{lease}/submit", {"choice": "left"}, format="json")
    assert resp.status_code == 404
    resp = client.get(f"/api/v1/generation/jobs/{world['values']['job_id']}/")
    assert resp.status_code == 404


def test_project_members_and_guidelines_api_through_scoped_tokens(world):
    """The API routes of issue 14 through the insider's tokens (every role in both projects): the
    token narrowed to the other project starts nothing, manages no member and publishes nothing
    here; the one narrowed to this project manages members and publishes, but starts no project
    (narrowed tokens never do)."""
    from django.contrib.auth import get_user_model

    from annotate.models import Guideline

    slug = world["target"].slug
    membership_id = world["values"]["membership_id"]
    members = f"/api/v1/projects/{slug}/members/"
    member = f"{members}{membership_id}/"
    guidelines = f"/api/v1/projects/{slug}/guidelines/"
    elsewhere = _token_client(world["other_only_token"])
    assert elsewhere.post("/api/v1/projects/", {"name": "Via token"}, format="json").status_code == 403
    assert elsewhere.get(members).status_code == 404
    assert (
        elsewhere.post(members, {"username": "sneaky", "role": "manager"}, format="json").status_code == 404
    )
    assert elsewhere.patch(member, {"role": "manager"}, format="json").status_code == 404
    assert elsewhere.delete(member).status_code == 404
    assert elsewhere.post(guidelines, {"body": "New rules"}, format="json").status_code == 404
    assert Membership.objects.get(pk=membership_id).is_active
    assert not get_user_model().objects.filter(username="sneaky").exists()
    assert Guideline.objects.filter(project=world["target"]).count() == 1

    here = _token_client(world["target_only_token"])
    assert here.post("/api/v1/projects/", {"name": "Via token"}, format="json").status_code == 403
    assert here.get(members).status_code == 200
    assert here.post(guidelines, {"body": "New rules"}, format="json").status_code == 201
    assert here.delete(member).status_code == 200
    assert not Membership.objects.get(pk=membership_id).is_active


# --- object ids of another project ----------------------------------------------------------------

OBJECT_PARAMS = ("assignment_id", "membership_id", "version", "job_id", "run_id", "judge_id", "judge_job_id")


@pytest.mark.parametrize("method", METHODS)
def test_object_ids_of_another_project_are_refused(world, method):
    """A user with every role in the other project names it in the URL, with the ids of the target
    project's objects (its lease, member, guideline/export version, job, run): refused everywhere."""
    client = APIClient()
    client.force_login(world["stranger"])
    values = {**world["values"], "slug": world["other"].slug}
    failures = []
    checked = 0
    for route in _routes():
        if not any(f"{name}>" in route for name in OBJECT_PARAMS):
            continue
        checked += 1
        resp = _request(client, method, _fill(route, values))
        if resp.status_code not in (403, 404, 405):
            failures.append(f"{method} {route}: {resp.status_code}")
    assert checked > 15
    assert not failures, "\n".join(failures)


# --- one definition of the roles --------------------------------------------------------------------


def test_readme_roles_table_is_the_one_in_the_code():
    """The README's roles table is generated from core.access.CAPABILITIES: they cannot disagree."""
    from pathlib import Path

    from core.access import roles_table

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("<!-- roles-table:")[1].split("<!-- /roles-table -->")[0]
    table = block.split("-->", 1)[1].strip()
    assert table == roles_table(), "regenerate the README table with core.access.roles_table()"


def test_managers_run_the_project_not_models(world, make_user):
    """The README's table, enforced: a manager reaches guidelines, members and reports, and a
    generation job's page and API (capability "release": its staged candidates and their release),
    but not the generation jobs list, new jobs, cancelling, training or exports."""
    manager = make_user()
    Membership.objects.create(project=world["target"], user=manager, role=Role.MANAGER)
    client = APIClient()
    client.force_login(manager)
    slug = world["target"].slug
    job_id = world["values"]["job_id"]
    for path in (
        f"/projects/{slug}/manage/guidelines/",
        f"/projects/{slug}/manage/members/",
        f"/reports/{slug}/",
        f"/generation/{slug}/jobs/{job_id}/",
        f"/generation/{slug}/jobs/{job_id}/status.json",
        f"/api/v1/generation/jobs/{job_id}/",
    ):
        assert client.get(path).status_code == 200, path
    # a queued job cannot be released yet (409), but the manager may ask
    release = client.post(f"/api/v1/generation/jobs/{job_id}/release", {"which": "all"}, format="json")
    assert release.status_code == 409, release.content
    for path in (f"/generation/{slug}/jobs/{job_id}/cancel/", f"/api/v1/generation/jobs/{job_id}/cancel/"):
        assert client.post(path).status_code == 403, path
    assert GenerationJob.objects.get(pk=job_id).state == "queued"
    for path in (
        f"/generation/{slug}/",
        f"/training/{slug}/runs/",
        f"/training/{slug}/exports/",
        f"/api/v1/projects/{slug}/exports/",
        f"/api/v1/projects/{slug}/runs/",
        f"/api/v1/projects/{slug}/generation/jobs/",
    ):
        assert client.get(path).status_code == 403, path


def test_every_project_route_checks_access_through_the_core():
    """No view checks access on its own: every page with a project, lease or job in its URL is
    wrapped by core.access.project_page, every such API view uses core.access.ProjectPermission."""
    from django.urls import get_resolver
    from django.views.generic import RedirectView

    from core.access import ProjectPermission

    missing = []
    for route, callback in _walk_views(get_resolver().url_patterns):
        if route.startswith(("admin/", "accounts/", "api/schema", "api/docs")):
            continue
        if not any(k in route for k in ("slug", "assignment_id", "job_id")):
            continue
        view_class = getattr(callback, "view_class", None)
        if view_class is not None and issubclass(view_class, RedirectView):
            continue  # answers the same redirect for any slug, real or not; the target checks access
        if view_class is not None:
            ok = ProjectPermission in getattr(view_class, "permission_classes", []) and hasattr(
                view_class, "capability"
            )
        else:
            ok = hasattr(callback, "capability")
        if not ok:
            missing.append(route)
    assert not missing, missing


def test_no_access_check_outside_the_core():
    """Roles, superuser status and token scopes are read in core/access.py only (the services that
    keep a role-based data rule are listed: a creator becomes the project's manager, a manager may
    not deactivate their own last manager role)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    allowed = {
        "core/access.py",
        "annotate/services/projects.py",  # a superuser who creates a project is not made its manager
        "annotate/management/commands/seed_demo.py",  # creates the demo's superuser
    }
    needles = (
        "is_superuser",
        'projects.values_list("id"',
        "CAPABILITIES[",
        "_token_scope",
        "require_capability",
    )
    offenders = []
    for app in ("annotate", "generation", "training", "config", "core"):
        for path in (root / app).rglob("*.py"):
            rel = path.relative_to(root).as_posix()
            if "/migrations/" in rel or rel in allowed:
                continue
            text = path.read_text()
            offenders += [f"{rel}: {n}" for n in needles if n in text]
    assert not offenders, offenders


def test_the_filled_ids_name_real_objects(world, make_user):
    """The control of the sweeps above: a superuser reading every route filled with the target's
    ids never gets a 404, so the refusals above are refusals, not missing objects."""
    admin = make_user(is_superuser=True, is_staff=True)
    client = APIClient()
    client.force_login(admin)
    missing = []
    for route in _routes():
        if "assignment_id" in route:
            continue  # a lease answers its own labeler only (test_another_labelers_lease_is_refused)
        resp = _request(client, "GET", _fill(route, world["values"]))
        if resp.status_code == 404:
            missing.append(route)
    assert not missing, missing


def _route_capabilities() -> dict[str, dict[str, str]]:
    """Each project-scoped route's capability per method, read off its view (``project_page`` sets
    ``capability``; API views set ``capability`` and ``method_capabilities``)."""
    from django.views.generic import RedirectView

    out = {}
    routes = set(_routes())
    for route, callback in _walk_views(get_resolver().url_patterns):
        if route not in routes:
            continue
        view_class = getattr(callback, "view_class", None)
        if view_class is not None and issubclass(view_class, RedirectView):
            continue
        if view_class is not None:
            default = view_class.capability
            per_method = getattr(view_class, "method_capabilities", {})
            out[route] = {m: per_method.get(m, default) for m in METHODS}
        else:
            out[route] = dict.fromkeys(METHODS, callback.capability)
    return out


@pytest.mark.parametrize("role", ["labeler", "manager", "researcher"])
@pytest.mark.parametrize("method", METHODS)
def test_each_role_reaches_only_what_its_capabilities_grant(world, make_user, role, method):
    """Every role, derived from core.access.CAPABILITIES: a member holding only ``role`` is refused
    on every route whose capability the role does not grant (the researcher on the managers'
    pages, the manager on training and exports, ...)."""
    from core.access import CAPABILITIES

    user = make_user()
    Membership.objects.create(project=world["target"], user=user, role=role)
    client = APIClient()
    client.force_login(user)
    failures = []
    checked = 0
    for route, caps in _route_capabilities().items():
        if role in CAPABILITIES[caps[method]].roles:
            continue
        checked += 1
        resp = _request(client, method, _fill(route, world["values"]), {"choice": "left", "role": "manager"})
        if resp.status_code not in (403, 404, 405):
            failures.append(f"{method} {route} ({caps[method]}): {resp.status_code}")
    assert checked > 5
    assert not failures, "\n".join(failures)
