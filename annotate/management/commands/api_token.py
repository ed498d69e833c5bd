"""Create, list and revoke researcher API tokens.

python manage.py api_token create --user alice --name laptop [--project slug ...] [--days 90]
python manage.py api_token list [--user alice]
python manage.py api_token revoke --id 12
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.utils import timezone

from annotate.models import ApiToken, Project
from annotate.services.tokens import MAX_EXPIRY_DAYS, token_create, token_revoke
from core.cli import ServiceCommand, option_in_range


class Command(ServiceCommand):
    field_options = {"expires_at": "--days", "projects": "--project"}
    help = "Create, list or revoke API tokens (Authorization: Bearer <token>)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create")
        create.add_argument("--user", required=True)
        create.add_argument("--name", required=True)
        create.add_argument(
            "--project", action="append", default=[], help="Narrow to this project (repeatable)."
        )
        create.add_argument(
            "--days", type=int, help=f"Expire after this many days (1 to {MAX_EXPIRY_DAYS}; default never)."
        )
        lst = sub.add_parser("list")
        lst.add_argument("--user")
        revoke = sub.add_parser("revoke")
        revoke.add_argument("--id", type=int, required=True)

    def handle(self, *args, **opts):
        action = opts["action"]
        if action == "create":
            user = get_user_model().objects.filter(username=opts["user"]).first()
            if user is None:
                raise CommandError(f"--user: no user {opts['user']!r}.")
            projects = []
            for slug in opts["project"]:
                project = Project.objects.filter(slug=slug).first()
                if project is None:
                    raise CommandError(f"--project: no project {slug!r}.")
                projects.append(project)
            days = opts["days"]
            option_in_range("--days", days, 1, MAX_EXPIRY_DAYS)
            expires = timezone.now() + timedelta(days=days) if days is not None else None
            token, secret = token_create(user=user, name=opts["name"], projects=projects, expires_at=expires)
            self.stderr.write(f"Token {token.pk} ({token.name}) for {user}; shown once:")
            self.stdout.write(secret)
        elif action == "list":
            qs = ApiToken.objects.select_related("user").prefetch_related("projects")
            if opts["user"]:
                if not get_user_model().objects.filter(username=opts["user"]).exists():
                    raise CommandError(f"--user: no user {opts['user']!r}.")
                qs = qs.filter(user__username=opts["user"])
            now = timezone.now()
            for t in qs:
                state = _state(t, now)
                scope = ",".join(p.slug for p in t.projects.all()) or "all projects"
                self.stdout.write(
                    f"{t.pk}\t{t.user}\t{t.name}\t{t.prefix}…\t{state}\t{scope}\tlast used {t.last_used_at or '-'}"
                )
        else:
            token = ApiToken.objects.filter(pk=opts["id"]).first()
            if token is None:
                raise CommandError(f"--id: no token {opts['id']}.")
            token_revoke(token=token)
            self.stdout.write(f"Token {token.pk} revoked.")


def _state(token: ApiToken, now) -> str:
    """As the tokens page says it: revoked, expired, or live (until its expiry)."""
    if token.revoked_at:
        return "revoked"
    if token.expires_at is None:
        return "live"
    if token.expires_at <= now:
        return "expired"
    return f"live until {timezone.localtime(token.expires_at):%Y-%m-%d}"
