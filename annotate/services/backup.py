"""Project backup and restore: one gzip'd JSON-lines file per project.

What a dump holds: the project's settings and rating dimensions, memberships (by username),
every guideline version and acknowledgement, prompts, candidates (with provenance), tasks and their
slots, finished assignments (submitted/skipped), annotations, and the manifests of its exports
(options, counts, content hash; the data files themselves live under PREFHUB_DATA_DIR and are copied
with ordinary file backups). Live leases are not dumped: they are transient.

Each line is ``{"type": ..., "data": {...}}``; the first is a header with the format version.
Restore creates a NEW project (under the dump's slug or another one) with fresh ids, mapping every
reference; users are matched by username (missing ones are created without a usable password).
It runs in one transaction: a bad file restores nothing.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from typing import IO

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.db.models import Count
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify

from annotate.errors import Conflict, InvalidInput
from annotate.models import (
    Annotation,
    Assignment,
    AssignmentState,
    Candidate,
    Dimension,
    Guideline,
    GuidelineAck,
    Membership,
    Project,
    Prompt,
    Task,
    TaskCandidate,
)

FORMAT_VERSION = 1
SLUG_MAX = Project._meta.get_field("slug").max_length
_CHUNK = 5000

PROJECT_FIELDS = (
    "name", "slug", "description", "kind", "overlap", "lease_ttl_seconds", "allow_tie", "allow_both_bad",
    "strength_scale", "ranking_k", "allow_rank_ties", "rating_scale_max",
)  # fmt: skip


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _iso(value):
    return value.isoformat() if value is not None else None


def _rows(qs, fields: tuple[str, ...]) -> Iterator[dict]:
    for values in qs.values_list(*fields).iterator(chunk_size=_CHUNK):
        yield dict(zip(fields, values, strict=True))


def project_dump(*, project: Project, out: IO[bytes]) -> dict[str, int]:
    """Write the project to ``out`` (a binary stream; gzip'd here). Returns counts per record type."""
    counts: dict[str, int] = {}
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:

        def emit(kind: str, data: dict) -> None:
            gz.write(
                json.dumps({"type": kind, "data": data}, default=_iso, ensure_ascii=False).encode() + b"\n"
            )
            counts[kind] = counts.get(kind, 0) + 1

        emit("header", {"format": "prefhub-project-dump", "version": FORMAT_VERSION})
        emit("project", {f: getattr(project, f) for f in PROJECT_FIELDS})
        for row in _rows(project.dimensions.all(), ("key", "label", "description", "required", "position")):
            emit("dimension", row)
        for row in _rows(Membership.objects.filter(project=project), ("user__username", "role", "is_active")):
            emit("membership", row)
        for row in _rows(
            Guideline.objects.filter(project=project).order_by("version"),
            ("id", "version", "body", "change_note", "author__username", "created_at"),
        ):
            emit("guideline", row)
        for row in _rows(
            GuidelineAck.objects.filter(guideline__project=project),
            ("guideline_id", "user__username", "acknowledged_at"),
        ):
            emit("guideline_ack", row)
        for row in _rows(
            Prompt.objects.filter(project=project), ("id", "external_id", "messages", "metadata", "tags")
        ):
            emit("prompt", row)
        for row in _rows(
            Candidate.objects.filter(prompt__project=project),
            ("id", "prompt_id", "text", "source", "model_name", "model_version", "sampling_params", "seed",
             "external_id", "metadata", "sample_index", "finish_reason"),
        ):  # fmt: skip
            emit("candidate", row)
        for row in _rows(
            Task.objects.filter(project=project),
            ("id", "prompt_id", "target_labels", "is_gold", "gold_choice", "gold_ranking"),
        ):
            emit("task", row)
        for row in _rows(
            TaskCandidate.objects.filter(task__project=project), ("task_id", "candidate_id", "slot")
        ):
            emit("task_candidate", row)
        for row in _rows(
            Assignment.objects.filter(task__project=project).exclude(state=AssignmentState.LIVE),
            (
                "id",
                "task_id",
                "labeler__username",
                "state",
                "leased_at",
                "expires_at",
                "finished_at",
                "shown_order",
                "skip_reason",
            ),
        ):
            emit("assignment", row)
        for row in _rows(
            Annotation.objects.filter(task__project=project),
            ("task_id", "labeler__username", "assignment_id", "source", "choice", "ranking", "strength", "ratings",
             "rationale", "flagged", "flag_reason", "shown_order", "guideline_id", "time_spent_ms", "created_at"),
        ):  # fmt: skip
            emit("annotation", row)
        from training.models import Export

        for row in _rows(
            Export.objects.filter(project=project),
            (
                "version",
                "format",
                "file_type",
                "options",
                "state",
                "manifest",
                "content_hash",
                "path",
                "row_count",
                "created_at",
            ),
        ):
            emit("export_manifest", row)
    return counts


def _read(stream: IO[bytes]) -> Iterator[tuple[int, str, dict]]:
    with gzip.GzipFile(fileobj=stream, mode="rb") as gz:
        lines = enumerate(gz, start=1)
        number = 0
        while True:
            try:
                number, line = next(lines)
            except StopIteration:
                return
            except (EOFError, zlib.error) as exc:  # BadGzipFile, an OSError, is the caller's
                raise InvalidInput(
                    f"line {number + 1}: the gzip data is damaged or cut short ({exc}); nothing was restored."
                ) from None
            try:
                record = json.loads(line)
                kind, data = record["type"], record["data"]
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidInput(f"line {number}: not a dump record ({exc})") from None
            if not isinstance(kind, str) or not isinstance(data, dict):
                raise InvalidInput(f"line {number}: not a dump record (type must be text, data an object)")
            yield number, kind, data


def _check_slug(slug: object) -> None:
    if not isinstance(slug, str) or not slug or slugify(slug) != slug or len(slug) > SLUG_MAX:
        raise InvalidInput(
            f"{slug!r} is not a project address: lowercase letters, digits and dashes, at most {SLUG_MAX}.",
            field="slug",
        )


@transaction.atomic
def project_restore(
    *, stream: IO[bytes], slug: str | None = None, progress: Callable[[int], None] | None = None
) -> tuple[Project, dict[str, int]]:
    """Restore a dump as a new project. Refuses (writing nothing) if the slug is taken."""
    User = get_user_model()
    users: dict[str, object] = {}

    def user(username: str | None):
        if not username:
            return None
        if username not in users:
            u, created = User.objects.get_or_create(username=username, defaults={"is_active": False})
            if created:
                u.set_unusable_password()
                u.save(update_fields=["password"])
            users[username] = u
        return users[username]

    ids: dict[str, dict[int, int]] = {
        k: {} for k in ("guideline", "prompt", "candidate", "task", "assignment")
    }
    counts: dict[str, int] = {}
    project: Project | None = None
    pending: dict[str, list] = {}
    created_at: list[tuple[Annotation, object]] = []

    def flush(kind: str) -> None:
        rows = pending.pop(kind, [])
        if not rows:
            return
        model, olds = rows[0][0], [r[1] for r in rows]
        try:
            created = model.objects.bulk_create([r[2] for r in rows], batch_size=2000)
        except (TypeError, ValueError, DatabaseError, ValidationError) as exc:  # a record edited by hand
            raise InvalidInput(
                f"a bad {kind} record at or before line {at_line[0]} ({_first_line(exc)})"
            ) from None
        if kind in ids:
            ids[kind].update({old: obj.pk for old, obj in zip(olds, created, strict=True)})

    order = ["guideline", "prompt", "candidate", "task", "task_candidate", "assignment", "annotation"]

    def queue(kind: str, model, old_id, obj) -> None:
        # Flush every earlier kind first so references resolve.
        for earlier in order[: order.index(kind)]:
            flush(earlier)
        pending.setdefault(kind, []).append((model, old_id, obj))
        if len(pending[kind]) >= 2000:
            flush(kind)

    at_line = [0]  # the line read last, for flush()'s errors
    for number, kind, data in _read(stream):
        at_line[0] = number
        counts[kind] = counts.get(kind, 0) + 1
        if progress is not None and number % 10000 == 0:
            progress(number)
        try:
            if kind == "header":
                if data.get("format") != "prefhub-project-dump" or data.get("version") != FORMAT_VERSION:
                    raise InvalidInput(
                        f"line {number}: not a PrefHub project dump of version {FORMAT_VERSION}"
                    )
            elif kind == "project":
                values = {f: data[f] for f in PROJECT_FIELDS}
                values["slug"] = slug if slug is not None else values["slug"]
                _check_slug(values["slug"])
                if Project.objects.filter(slug=values["slug"]).exists():
                    raise Conflict(
                        f"A project with slug {values['slug']!r} already exists; restore under another --slug."
                    )
                project = Project.objects.create(**values)
            elif project is None:
                raise InvalidInput(f"line {number}: the project record must come first")
            elif kind == "dimension":
                Dimension.objects.create(project=project, **data)
            elif kind == "membership":
                Membership.objects.create(
                    project=project,
                    user=user(data["user__username"]),
                    role=data["role"],
                    is_active=data["is_active"],
                )
            elif kind == "guideline":
                g = Guideline(
                    project=project, version=data["version"], body=data["body"], change_note=data["change_note"],
                    author=user(data["author__username"]),
                )  # fmt: skip
                queue("guideline", Guideline, data["id"], g)
            elif kind == "guideline_ack":
                flush("guideline")
                GuidelineAck.objects.create(
                    guideline_id=ids["guideline"][data["guideline_id"]], user=user(data["user__username"])
                )
            elif kind == "prompt":
                old = data.pop("id")
                queue("prompt", Prompt, old, Prompt(project=project, **data))
            elif kind == "candidate":
                old = data.pop("id")
                flush("prompt")
                data["prompt_id"] = ids["prompt"][data["prompt_id"]]
                queue("candidate", Candidate, old, Candidate(**data))
            elif kind == "task":
                old = data.pop("id")
                flush("prompt")
                data["prompt_id"] = ids["prompt"][data["prompt_id"]]
                queue("task", Task, old, Task(project=project, claims=0, **data))
            elif kind == "task_candidate":
                flush("task")
                flush("candidate")
                obj = TaskCandidate(
                    task_id=ids["task"][data["task_id"]],
                    candidate_id=ids["candidate"][data["candidate_id"]],
                    slot=data["slot"],
                )
                queue("task_candidate", TaskCandidate, None, obj)
            elif kind == "assignment":
                old = data.pop("id")
                flush("task")
                flush("candidate")
                obj = Assignment(
                    task_id=ids["task"][data["task_id"]],
                    labeler=user(data["labeler__username"]),
                    state=data["state"],
                    leased_at=parse_datetime(data["leased_at"]),
                    expires_at=parse_datetime(data["expires_at"]),
                    finished_at=parse_datetime(data["finished_at"]) if data["finished_at"] else None,
                    shown_order=[ids["candidate"][c] for c in data["shown_order"]],
                    skip_reason=data["skip_reason"],
                )
                queue("assignment", Assignment, old, obj)
            elif kind == "annotation":
                for earlier in order[:-1]:
                    flush(earlier)
                cmap = ids["candidate"]
                ranking = (
                    [[cmap[c] for c in group] for group in data["ranking"]]
                    if data["ranking"]
                    else data["ranking"]
                )
                ratings = {
                    dim: {str(cmap[int(c)]): s for c, s in row.items()}
                    for dim, row in (data["ratings"] or {}).items()
                }
                obj = Annotation(
                    task_id=ids["task"][data["task_id"]],
                    labeler=user(data["labeler__username"]),
                    assignment_id=ids["assignment"].get(data["assignment_id"])
                    if data["assignment_id"]
                    else None,
                    source=data["source"],
                    choice=data["choice"],
                    ranking=ranking,
                    strength=data["strength"],
                    ratings=ratings,
                    rationale=data["rationale"],
                    flagged=data["flagged"],
                    flag_reason=data["flag_reason"],
                    shown_order=[cmap[c] for c in data["shown_order"]] if data["shown_order"] else None,
                    guideline_id=ids["guideline"].get(data["guideline_id"]) if data["guideline_id"] else None,
                    time_spent_ms=data["time_spent_ms"],
                )
                created_at.append((obj, parse_datetime(data["created_at"])))
                queue("annotation", Annotation, None, obj)
            elif kind == "export_manifest":
                pass  # kept in the dump for the record; exports are re-created from the data, not restored
            else:
                raise InvalidInput(f"line {number}: unknown record type {kind!r}")
        except KeyError as exc:
            raise InvalidInput(f"line {number}: {kind} record refers to a missing {exc}") from None
        except (TypeError, ValueError, AttributeError, DatabaseError, ValidationError) as exc:
            raise InvalidInput(f"line {number}: a bad {kind} record ({_first_line(exc)})") from None
    for kind in order:
        flush(kind)
    if project is None:
        raise InvalidInput("The dump holds no project.")
    # claims = labelers who submitted (live leases are not restored)
    for task_id, n in (
        Annotation.objects.filter(task__project=project)
        .values_list("task_id")
        .annotate(n=Count("id"))
        .iterator()
    ):
        Task.objects.filter(pk=task_id).update(claims=n)
    # annotations keep the time they were made (agreement over time depends on it)
    for obj, when in created_at:
        obj.created_at = when
    Annotation.objects.bulk_update([obj for obj, _ in created_at], ["created_at"], batch_size=2000)
    return project, counts
