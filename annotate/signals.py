"""Signal receivers of the annotate app (connected in ``AnnotateConfig.ready``).

* The token cache (``annotate.services.tokens``) must never outlive a change to what a token may
  do: its revocation or expiry, its projects, its user's account (deactivated; a deleted user's
  tokens are deleted with it). The receivers cover changes made outside the services (the admin).
* A project's files (``core.paths.project_folders``: its exports and runs) go with it: removed once
  its deletion commits, and a new project finds none at its slug (leftovers are moved aside), so a
  slug used again never opens a deleted project's labels or models to the new one's users.
* A newly created annotation hands itself to ``annotation_after_submit``, which records outbox
  messages in the same transaction (agreement check, priority refresh); it fires for every path that
  creates a label with ``Annotation.objects.create`` / ``save`` (not for COPY imports and restores).
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from annotate.models import Annotation, ApiToken, Project
from annotate.services.tokens import token_cache_forget


@receiver(post_delete, sender=Project, dispatch_uid="project_folders_remove")
def _project_deleted(sender, instance: Project, **kwargs) -> None:
    from core.paths import remove_project_folders

    slug = instance.slug
    transaction.on_commit(lambda: remove_project_folders(slug))


@receiver(post_save, sender=Project, dispatch_uid="project_folders_retire")
def _project_created(sender, instance: Project, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        from core.paths import retire_project_folders

        retire_project_folders(instance.slug)


@receiver(post_save, sender=ApiToken, dispatch_uid="apitoken_cache_save")
@receiver(post_delete, sender=ApiToken, dispatch_uid="apitoken_cache_delete")
def _token_changed(sender, instance: ApiToken, created: bool = False, **kwargs) -> None:
    if not created:  # a new token has no entry to drop (and should be cached at once)
        token_cache_forget(instance.digest)


@receiver(m2m_changed, sender=ApiToken.projects.through, dispatch_uid="apitoken_cache_projects")
def _token_projects_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if not action.startswith("post_"):
        return
    if reverse:  # project.<reverse>.add(token): instance is the project
        token_cache_forget(*ApiToken.objects.filter(pk__in=pk_set or ()).values_list("digest", flat=True))
    else:
        token_cache_forget(instance.digest)


def _user_changed(sender, instance, **kwargs) -> None:
    if kwargs.get("created"):
        return
    token_cache_forget(*ApiToken.objects.filter(user_id=instance.pk).values_list("digest", flat=True))


post_save.connect(_user_changed, sender=settings.AUTH_USER_MODEL, dispatch_uid="apitoken_cache_user_save")


@receiver(post_save, sender=Annotation, dispatch_uid="annotate.annotation_after_submit")
def _annotation_created(sender, instance: Annotation, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        from annotate.services.extra_labels import annotation_after_submit

        annotation_after_submit(annotation=instance)
