"""Signal receivers of the annotate app (connected in ``AnnotateConfig.ready``).

One receiver: a newly created annotation hands itself to ``annotation_after_submit``, which
records outbox messages in the same transaction (agreement check, priority refresh). It is a
receiver rather than a call inside ``annotation_submit`` so that the leasing service, which
another change rewrites for speed, needs no edit; it fires for every path that creates a label
with ``Annotation.objects.create`` / ``save`` (not for ``bulk_create``: imports and restores).
"""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from annotate.models import Annotation


@receiver(post_save, sender=Annotation, dispatch_uid="annotate.annotation_after_submit")
def _annotation_created(sender, instance: Annotation, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        from annotate.services.extra_labels import annotation_after_submit

        annotation_after_submit(annotation=instance)
