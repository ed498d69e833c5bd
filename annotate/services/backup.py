"""Project backup and restore: one gzip'd JSON-lines file per project.

What a dump holds, in this order: the project's settings and rating dimensions and who made it
when; memberships (by username, with when they joined); the project's own model endpoints
(``endpoint``: name, backend, model, config, sampling defaults, on/off, who made it when); its AI
judges (``judge``: name, endpoint by name, sampling overrides, prices, on/off, who made it when,
and the name of the account it labels as); every guideline version and acknowledgement; prompts;
generation jobs (settings, counters, and their endpoints by name); candidates (with provenance:
model, version, sampling, seed, job, endpoint by name); tasks and their slots; finished
assignments (submitted/skipped); annotations; review verdicts; adjudications; the project's audit
log (``audit_event``: actor by username, action, target as recorded, i.e. the dumped project's ids,
details, time), oldest first; and the manifests of its exports (options, counts, content hash; the
data files themselves live under PREFHUB_DATA_DIR and are copied with ordinary file backups). Every
row keeps the time it was made (prompts, candidates, tasks, reviews and adjudications too, and when
a verdict or an adjudication last changed).

Endpoints: only the project's own are dumped. A shared endpoint (``project`` empty) is a server
setting: a reference to one (a judge's, a job's, a candidate's) is its name, and a restore matches
it by name on the target server, refusing with the record's line when there is none. Names are
unique on a server, so a restored endpoint whose name is taken is called "NAME-restored" (then
"-restored-2", ...).

Secrets: a dump never holds one. An endpoint's API key is not in the database at all (its config
holds ``api_key_env``, the *name* of the environment variable with the key, which is dumped). The
one place a secret value could be stored is an OpenAI-compatible base URL's query string (``?key=``,
``api-key=``, ``code=``, ``token=``...): those parameters are left out
(``generation.backends.config_without_secrets``, which also keeps only the backend's known
settings), so the restored copy needs its key set up again where it used one. Users are named,
never their passwords.

Not in a dump, and why: live leases (transient; claims are recomputed); API tokens (credentials:
issue new ones for the copy); training runs (they point at files on the worker's disk, which a dump
does not carry); report snapshots (re-computed from the restored labels); judge jobs, their
suggestions and routing decisions (runs of the judges: run them again); generation batches,
failures and candidate checks (the history of a job's run). ``LEFT_OUT`` and ``TABLES_LEFT_OUT``
list every column and table left out with its reason; a test fails when one is in neither list.

Each line is ``{"type": ..., "data": {...}}``; the first is a header with the format version, the
last (``END``, announced by the header's ``ends_with``) counts the records before it: a dump cut
short, or with records lost or added, is refused (dumps written before end records restore). The
version changes only when a record loses a column or changes its meaning: record types and columns
added since (``_OPTIONAL``) may be absent, so older dumps of the same version still restore.
Restore creates a NEW project (under the dump's slug or another one) with fresh ids, mapping every
reference; users are matched by username (missing ones are created without a usable password); each
judge gets a new inactive account of its own, and the judge's labels in the dump map to it. The
audit log comes back as it was (``core.audit.audit_log_copy``: inserted once, into the new
project's empty log, never updated), followed by the restore's own ``project.restore`` event. An
event's action is any text of 1 to 64 characters (there is no closed list of actions: a dump of a
later version may hold new ones); an empty or null username (an event's actor, a row's author) is
no one, the system. A judge that names a shared endpoint switched off on this server is restored
(switched on or off as dumped); running it is refused until the endpoint is switched on.
It runs in one transaction: a bad file restores nothing, and a bad record is refused with its line.
A time without a time zone is read as UTC; one outside years 1 to 9999 (in UTC) is refused with its
line, and so is a creation time later than the restore (``CLOCK_SKEW`` allowed for two clocks).
"""

from __future__ import annotations

import datetime
import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import IO

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.db.models import Count, Value
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify

from annotate.errors import Conflict, InvalidInput
from annotate.judges.services import PAIRWISE_ONLY, judge_config_clean, judge_username
from annotate.models import (
    Adjudication,
    Annotation,
    AnnotationReview,
    Assignment,
    AssignmentState,
    AuditEvent,
    Candidate,
    Dimension,
    Guideline,
    GuidelineAck,
    Judge,
    Membership,
    Project,
    Prompt,
    Task,
    TaskCandidate,
    TaskKind,
)
from annotate.services.leasing import ASKED, task_target_kept
from annotate.services.projects import (
    NAME_MAX,
    SETTINGS_FIELDS,
    project_kind_clean,
    project_name_clean,
    project_settings_clean,
)
from annotate.services.task_order import task_priorities_request
from annotate.validation import NESTED_TOO_DEEPLY, json_loads_finite, unstorable_error
from core.audit import audit_log_copy, audit_record
from core.jobs import JobState
from generation.backends import config_without_secrets
from generation.models import GenerationJob, ModelEndpoint
from generation.services import endpoint_values_clean

FORMAT_VERSION = 1  # records and columns were added since (read as absent in older dumps), none lost
END = "end"  # the last record's type, announced by the header's ``ends_with`` (dumps since December 2026)
SLUG_MAX = Project._meta.get_field("slug").max_length
_CHUNK = 5000
#: How deep a record's JSON may nest: what json.loads reads (about 950 levels) would not always be
#: encoded again for the database (RecursionError). Imports take prompt metadata of any depth JSON
#: can be read at, so the limit leaves room: half of Python's default recursion limit.
MAX_NESTING = 500
#: How far ahead of this server's clock a dumped time may be (the dumping server's clock may run
#: ahead); a later one is refused: the copy's audit log would list it above every event to come.
CLOCK_SKEW = datetime.timedelta(minutes=5)

#: The project record: its address, kind, every setting the settings service knows (one home:
#: ``annotate.services.projects.SETTINGS_FIELDS``), and who made it when.
PROJECT_FIELDS = ("slug", "kind", *SETTINGS_FIELDS)
#: Columns that older dumps (of the same format version) may lack: they restore with their defaults
#: (a setting added since a dump was made included: every setting but the name).
#: Whole record types that older dumps lack (endpoint, judge, audit_event) simply do not occur in them.
_OPTIONAL = {
    "project": {*SETTINGS_FIELDS, "created_by__username", "created_at"} - {"name"},
    "membership": {"created_at"},
    "prompt": {"created_at"},
    "generation_job": {"endpoints"},
    "candidate": {"endpoint__name", "created_at"},
    "task": {"created_at", "kept_slots"},
    "annotation": {"id", "pre_annotated"},
    "review": {"created_at", "updated_at"},
    "adjudication": {"created_at", "updated_at"},
}
_JOB_COLUMNS = (
    "id", "state", "error", "created_by__username", "created_at", "started_at", "finished_at", "prompt_filter",
    "k", "sampling", "task_mode", "pairs_per_prompt", "batch_size", "total_units", "done_units", "failed_units",
    "auto_release", "released", "released_at", "released_by__username", "released_tasks", "excluded_candidates",
    "endpoints",
)  # fmt: skip
#: Columns that are not read with ``values_list``: a job's endpoints, by name (a many-to-many).
_M2M_COLUMNS = {"endpoints"}

#: What a dump holds of each table: ``(record type, model, the columns written)``. A column is
#: named as ``values_list`` reads it (``labeler__username``, ``prompt_id``).
DUMPED = (
    ("project", Project, (*PROJECT_FIELDS, "created_by__username", "created_at")),
    ("dimension", Dimension, ("key", "label", "description", "required", "position")),
    ("membership", Membership, ("user__username", "role", "is_active", "created_at")),
    ("endpoint", ModelEndpoint,
     ("name", "backend", "model", "config", "default_sampling", "is_active", "created_by__username", "created_at")),
    ("judge", Judge,
     ("name", "endpoint__name", "sampling", "price_prompt_per_1k", "price_completion_per_1k", "user__username",
      "is_active", "created_by__username", "created_at")),
    ("guideline", Guideline, ("id", "version", "body", "change_note", "author__username", "created_at")),
    ("guideline_ack", GuidelineAck, ("guideline_id", "user__username", "acknowledged_at")),
    ("prompt", Prompt, ("id", "external_id", "messages", "metadata", "tags", "created_at")),
    ("generation_job", GenerationJob, _JOB_COLUMNS),
    ("candidate", Candidate,
     ("id", "prompt_id", "text", "source", "model_name", "model_version", "sampling_params", "seed",
      "external_id", "metadata", "generation_job_id", "sample_index", "finish_reason", "endpoint__name",
      "created_at")),
    ("task", Task,
     ("id", "prompt_id", "target_labels", "kept_slots", "is_gold", "gold_choice", "gold_ranking",
      "generation_job_id", "created_at")),
    ("task_candidate", TaskCandidate, ("task_id", "candidate_id", "slot")),
    ("assignment", Assignment,
     ("id", "task_id", "labeler__username", "state", "leased_at", "expires_at", "finished_at", "shown_order",
      "skip_reason")),
    ("annotation", Annotation,
     ("id", "task_id", "labeler__username", "assignment_id", "source", "choice", "ranking", "strength",
      "ratings", "rationale", "flagged", "flag_reason", "shown_order", "guideline_id", "time_spent_ms",
      "pre_annotated", "created_at")),
    ("review", AnnotationReview,
     ("annotation_id", "verdict", "reason", "reviewer__username", "created_at", "updated_at")),
    ("adjudication", Adjudication,
     ("task_id", "choice", "ranking", "strength", "rationale", "adjudicator__username", "created_at",
      "updated_at")),
    ("audit_event", AuditEvent, ("actor__username", "action", "target_type", "target_id", "details", "created_at")),
)  # fmt: skip
_COLUMNS = {kind: columns for kind, _, columns in DUMPED}

_NEW = "restore gives every row a new id (references are mapped)"
_NOW = "set to the time of the restore"
_OWNER = "the row's project or parent, which the restore creates"
#: Columns of the dumped tables that a dump leaves out, each with why. A test fails when a model
#: gains a column that is in neither list.
LEFT_OUT: dict[type, dict[str, str]] = {
    Project: {"id": _NEW, "updated_at": _NOW},
    Dimension: {"id": _NEW, "project": _OWNER},
    Membership: {"id": _NEW, "project": _OWNER},
    Guideline: {"project": _OWNER},
    GuidelineAck: {"id": _NEW},
    ModelEndpoint: {"id": _NEW, "project": _OWNER},
    Judge: {"id": _NEW, "project": _OWNER},
    Prompt: {"project": _OWNER},
    GenerationJob: {"project": _OWNER},
    Candidate: {},
    Task: {
        "project": _OWNER,
        "claims": "recomputed from the restored annotations (live leases are not restored)",
        "priority": "recomputed: a project with task_order=active asks for a refresh on restore",
    },
    TaskCandidate: {"id": _NEW},
    Assignment: {},
    Annotation: {},
    AnnotationReview: {"id": _NEW},
    Adjudication: {"id": _NEW},
    AuditEvent: {"id": _NEW, "project": _OWNER},
}

#: Tables that refer to a project's rows but are not in a dump, and why.
TABLES_LEFT_OUT: dict[str, str] = {
    "annotate.JudgeJob": "runs of the judges (a job's worker state, costs and the suggestions it wrote): "
    "the judges come back, run them again on the copy",
    "annotate.JudgeSuggestion": "see JudgeJob",
    "generation.GenerationBatch": "a job's units of work; a restored job is finished (see generation_job)",
    "annotate.RoutingDecision": "recomputed when judges run on the copy",
    "annotate.ReportSnapshot": "a cache, re-computed on demand from the restored labels",
    "annotate.RerouteJob": "a re-route run: its outcome is in the copied audit log; nothing to run again",
    "annotate.ApiToken": "tokens are credentials (only a digest of each is stored, and it signs in): "
    "issue new ones for the copy",
    "training.Export": "kept as export_manifest records for the record only; export the copy again",
    "training.TrainingRun": "runs point at files on the worker's disk (checkpoints, logs), which a dump "
    "does not carry; train the copy again",
    "generation.GenerationFailure": "which prompts a job could not answer: history of the job's run",
    "generation.CandidateCheck": "recomputed by generation jobs; not part of the labels",
}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _iso(value):
    if isinstance(value, Decimal):  # a judge's prices: exact, as text
        return str(value)
    return value.isoformat() if value is not None else None


def _rows(qs, fields: tuple[str, ...]) -> Iterator[dict]:
    fields = tuple(f for f in fields if f not in _M2M_COLUMNS)
    for values in qs.values_list(*fields).iterator(chunk_size=_CHUNK):
        yield dict(zip(fields, values, strict=True))


def _job_endpoint_names(project: Project) -> dict[int, list[str]]:
    """Each generation job's endpoints, by name (names are unique on a server)."""
    through = GenerationJob.endpoints.through
    names: dict[int, list[str]] = {}
    for job_id, name in (
        through.objects.filter(generationjob__project=project)
        .order_by("generationjob_id", "modelendpoint__name")
        .values_list("generationjob_id", "modelendpoint__name")
    ):
        names.setdefault(job_id, []).append(name)
    return names


def project_dump(*, project: Project, out: IO[bytes]) -> dict[str, int]:
    """Write the project to ``out`` (a binary stream; gzip'd here). Returns counts per record type."""
    counts: dict[str, int] = {}
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:

        def emit(kind: str, data: dict) -> None:
            gz.write(
                json.dumps({"type": kind, "data": data}, default=_iso, ensure_ascii=False).encode() + b"\n"
            )
            counts[kind] = counts.get(kind, 0) + 1

        emit("header", {"format": "prefhub-project-dump", "version": FORMAT_VERSION, "ends_with": END})
        queries = {
            "project": Project.objects.filter(pk=project.pk),
            "dimension": project.dimensions.all(),
            "membership": Membership.objects.filter(project=project),
            "guideline": Guideline.objects.filter(project=project).order_by("version"),
            "guideline_ack": GuidelineAck.objects.filter(guideline__project=project),
            "endpoint": ModelEndpoint.objects.filter(project=project).order_by("id"),
            "judge": Judge.objects.filter(project=project).order_by("id"),
            "prompt": Prompt.objects.filter(project=project),
            "generation_job": GenerationJob.objects.filter(project=project),
            "candidate": Candidate.objects.filter(prompt__project=project),
            "task": Task.objects.filter(project=project),
            "task_candidate": TaskCandidate.objects.filter(task__project=project),
            "assignment": Assignment.objects.filter(task__project=project).exclude(
                state=AssignmentState.LIVE
            ),
            "annotation": Annotation.objects.filter(task__project=project),
            "review": AnnotationReview.objects.filter(annotation__task__project=project),
            "adjudication": Adjudication.objects.filter(task__project=project),
            "audit_event": AuditEvent.objects.filter(project=project).order_by("created_at", "id"),
        }
        job_endpoints = _job_endpoint_names(project)
        for kind, _model, columns in DUMPED:
            for row in _rows(queries[kind], columns):
                if kind == "endpoint":  # never a secret (an API key is read from the environment)
                    row["config"] = config_without_secrets(row["backend"], row["config"] or {})
                elif kind == "generation_job":
                    row["endpoints"] = job_endpoints.get(row["id"], [])
                emit(kind, row)
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
        # the last line: what came before it, so that a dump cut short is known as one on restore
        emit(END, {"counts": {k: n for k, n in counts.items() if k != "header"}})
    return counts


def _deeper_than(value: object, limit: int) -> bool:
    """Is ``value`` (parsed JSON) nested more than ``limit`` levels deep? Iterative."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


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
                # NaN, Infinity and 1e999 would reach PostgreSQL's jsonb (which refuses them) and
                # deep nesting would exhaust Python's stack: both are the line's error
                record = json_loads_finite(line)
                kind, data = record["type"], record["data"]
            except RecursionError:
                raise InvalidInput(f"line {number}: not a dump record ({NESTED_TOO_DEEPLY})") from None
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidInput(f"line {number}: not a dump record ({exc})") from None
            if _deeper_than(record, MAX_NESTING):
                raise InvalidInput(
                    f"line {number}: not a dump record ({NESTED_TOO_DEEPLY}: more than {MAX_NESTING} levels)"
                )
            if not isinstance(kind, str) or not isinstance(data, dict):
                raise InvalidInput(f"line {number}: not a dump record (type must be text, data an object)")
            yield number, kind, data


def _check_end(number: int, data: dict, read: dict[str, int]) -> None:
    """The end record's counts against the records read before it (a dump that lost or gained
    records since it was written is refused)."""
    dumped = data.get("counts")
    if not isinstance(dumped, dict):
        raise InvalidInput(f"line {number}: the end record has no counts")
    for kind in sorted(set(dumped) | set(read)):
        if dumped.get(kind, 0) != read.get(kind, 0):
            raise InvalidInput(
                f"line {number}: the end record counts {dumped.get(kind, 0)!r} {kind} records, "
                f"the dump holds {read.get(kind, 0)}"
            )


def _present(kind: str, data: dict, fields: tuple[str, ...]) -> dict:
    """``data``'s values of ``fields``; a column older dumps lack may be absent (its default then)."""
    optional = _OPTIONAL.get(kind, set())
    return {f: data[f] for f in fields if f in data or f not in optional}


def _mapped(ids: dict[int, int], old: int | None) -> int | None:
    return ids[old] if old is not None else None


def _map_ranking(ranking, cmap: dict[int, int]):
    return [[cmap[c] for c in group] for group in ranking] if ranking else ranking


def _restored_name(dumped: str, name: str | None) -> str:
    """``name`` (already clean), else the dumped name, else "NAME (restored copy)" when taken."""
    max_length = NAME_MAX
    if name is not None:
        return name
    try:
        dumped = project_name_clean(dumped)
    except InvalidInput as exc:  # the dump's, not an option's: no field for the command to name
        raise InvalidInput(f"the dumped project name: {exc.message}") from None
    if not Project.objects.filter(name=dumped).exists():
        return dumped
    for n in range(1, 1000):
        suffix = " (restored copy)" if n == 1 else f" (restored copy {n})"
        candidate = dumped[: max_length - len(suffix)] + suffix
        if not Project.objects.filter(name=candidate).exists():
            return candidate
    raise Conflict("Too many restored copies of this project's name; restore with a --name.")


def _free_endpoint_name(name: str) -> str:
    """``name``, else "NAME-restored" ("-restored-2", ...): endpoint names are unique on a server."""
    max_length = ModelEndpoint._meta.get_field("name").max_length
    for n in range(1000):
        suffix = "" if n == 0 else "-restored" if n == 1 else f"-restored-{n}"
        candidate = name[: max_length - len(suffix)] + suffix
        if not ModelEndpoint.objects.filter(name=candidate).exists():
            return candidate
    raise Conflict(f"Too many restored copies of the endpoint {name!r}.")


def _fields_exactly(kind: str, data: dict) -> None:
    """A record of a type with a fixed set of columns: none unknown, none missing but the optional."""
    columns = set(_COLUMNS[kind])
    unknown = sorted(set(data) - columns)
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(map(repr, unknown))}.")
    missing = sorted(columns - set(data) - _OPTIONAL.get(kind, set()))
    if missing:
        raise InvalidInput(f"missing field(s) {', '.join(map(repr, missing))}.", field=missing[0])
    bad = unstorable_error(data, name=f"the {kind} record")
    if bad is not None:
        raise InvalidInput(bad)


def _text(data: dict, field: str, *, max_length: int, blank: bool = True) -> str:
    value = data[field]
    if not isinstance(value, str) or (not blank and not value) or len(value) > max_length:
        raise InvalidInput(
            f"must be text of at most {max_length} characters{'' if blank else ', not empty'} "
            f"(not {str(value)[:40]!r}).",
            field=field,
        )
    return value


def _flag(data: dict, field: str) -> bool:
    if not isinstance(data[field], bool):
        raise InvalidInput("must be true or false.", field=field)
    return data[field]


def _slug_name(data: dict, max_length: int) -> str:
    name = data["name"]
    if not isinstance(name, str) or not name or slugify(name)[:max_length] != name:
        raise InvalidInput(
            f"{str(name)[:40]!r} is not a name of lowercase letters, digits and dashes.", field="name"
        )
    return name


def _check_slug(slug: object) -> None:
    if not isinstance(slug, str) or not slug or slugify(slug) != slug or len(slug) > SLUG_MAX:
        raise InvalidInput(
            f"{slug!r} is not a project address: lowercase letters, digits and dashes, at most {SLUG_MAX}.",
            field="slug",
        )


@transaction.atomic
def project_restore(
    *,
    stream: IO[bytes],
    slug: str | None = None,
    name: str | None = None,
    progress: Callable[[int], None] | None = None,
    actor: AbstractBaseUser | None = None,
) -> tuple[Project, dict[str, int]]:
    """Restore a dump as a new project. Refuses (writing nothing) if the slug is taken.

    ``name`` replaces the dumped name (refused when another project has it); without it the dumped
    name is kept unless another project already has it, in which case the copy is called
    "NAME (restored copy)" (then "... copy 2", ...).
    The copied audit log is followed by the restore's own event (``project.restore``, by ``actor``).
    """
    if name is not None:
        name = project_name_clean(name)
        if Project.objects.filter(name=name).exists():  # two projects never share a name after a restore
            raise Conflict(
                f"A project named {name!r} already exists; restore under another --name.", field="name"
            )
    User = get_user_model()
    USERNAME_MAX = User._meta.get_field(User.USERNAME_FIELD).max_length
    users: dict[str, object] = {}

    def user(username: object, field: str):
        """The account of a dumped username (made, unable to sign in, if there is none); an empty
        or null one is no one (the system). Anything but text a username can be is refused."""
        if username is None or username == "":
            return None
        if not isinstance(username, str) or len(username) > USERNAME_MAX:
            raise ValueError(
                f"{field} must be a username (text of at most {USERNAME_MAX} characters), "
                f"not {str(username)[:40]!r}"
            )
        if username not in users:
            u, created = User.objects.get_or_create(username=username, defaults={"is_active": False})
            if created:
                u.set_unusable_password()
                u.save(update_fields=["password"])
            users[username] = u
        return users[username]

    ids: dict[str, dict[int, int]] = {
        k: {}
        for k in ("guideline", "prompt", "generation_job", "candidate", "task", "assignment", "annotation")
    }
    counts: dict[str, int] = {}
    project: Project | None = None
    dumped_slug = None
    pending: dict[str, list] = {}
    restored_endpoints: dict[str, ModelEndpoint] = {}  # the dump's name -> the project's new endpoint
    shared_endpoints: dict[str, ModelEndpoint] = {}
    job_endpoints: list[tuple[int, list[int]]] = []  # (dumped job id, endpoint ids)
    audit_events: list[AuditEvent] = []
    # columns Django sets on insert (auto_now_add), written back once every row exists
    times: dict[tuple[type, str], list[tuple[object, object]]] = {}

    latest = timezone.now() + CLOCK_SKEW

    def a_time(field: str, value, *, ahead: bool = False):
        """The time a dumped value spells, in UTC (ValueError naming ``field``); ``ahead``: it may
        lie in the future (a lease's expiry), where a time something was made may not."""
        when = parse_datetime(value) if isinstance(value, str) else None
        if when is None:  # a dump edited by hand: refused with the record's line
            raise ValueError(f"{field} is not a date and time: {str(value)[:40]!r}")
        if timezone.is_naive(when):  # a dump writes every time with its zone; one without is UTC
            when = when.replace(tzinfo=datetime.UTC)
        try:  # PostgreSQL would store year 0 or 10000, which no one could read back
            when = when.astimezone(datetime.UTC)
        except OverflowError:
            raise ValueError(f"{field} is out of range (years 1 to 9999 in UTC): {value[:40]!r}") from None
        if when > latest and not ahead:  # it would sort above every later event of the copy's log
            raise ValueError(f"{field} is later than the restore (now): {value[:40]!r}")
        return when

    def keep_time(obj, field: str, value) -> None:
        if value:
            times.setdefault((type(obj), field), []).append((obj, a_time(field, value)))

    def endpoint(name: object, field: str) -> ModelEndpoint:
        """The endpoint a dumped name means: the project's own (restored from the dump), else the
        shared one of that name on this server."""
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"must name a model endpoint (not {str(name)[:40]!r}).", field=field)
        if name in restored_endpoints:
            return restored_endpoints[name]
        if name not in shared_endpoints:
            found = ModelEndpoint.objects.filter(name=name, project__isnull=True).first()
            if found is None:
                raise InvalidInput(
                    f"there is no shared model endpoint {name!r} on this server (and no endpoint of "
                    "the project by that name comes before this line in the dump). Create it, under "
                    "that name, then restore again.",
                    field=field,
                )
            shared_endpoints[name] = found
        return shared_endpoints[name]

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

    order = [
        "guideline", "prompt", "generation_job", "candidate", "task", "task_candidate", "assignment", "annotation", "review",
        "adjudication",
    ]  # fmt: skip

    def queue(kind: str, model, old_id, obj) -> None:
        # Flush every earlier kind first so references resolve.
        for earlier in order[: order.index(kind)]:
            flush(earlier)
        pending.setdefault(kind, []).append((model, old_id, obj))
        if len(pending[kind]) >= 2000:
            flush(kind)

    def queue_made(kind: str, model, old_id, data: dict, **fields) -> None:
        """Queue a new ``model(**fields, **data)`` as the record of ``kind`` dumped with ``old_id``,
        keeping the time it was made (``data``'s optional ``created_at``)."""
        created_at = data.pop("created_at", None)
        obj = model(**fields, **data)
        keep_time(obj, "created_at", created_at)
        queue(kind, model, old_id, obj)

    def queue_changed(kind: str, obj, data: dict) -> None:
        """Queue ``obj`` as a record of ``kind`` nothing in the dump refers to by id, keeping the
        times it was made and last changed (``data``'s optional ``created_at`` and ``updated_at``)."""
        keep_time(obj, "created_at", data.get("created_at"))
        keep_time(obj, "updated_at", data.get("updated_at"))
        queue(kind, type(obj), None, obj)

    def map_prompt_and_job(data: dict) -> None:
        """Point a dumped candidate's or task's ``prompt_id`` and ``generation_job_id`` at the
        restored rows (both kinds are flushed first, so that their new ids are known)."""
        flush("prompt")
        flush("generation_job")
        data["prompt_id"] = ids["prompt"][data["prompt_id"]]
        data["generation_job_id"] = _mapped(ids["generation_job"], data.get("generation_job_id"))

    at_line = [0]  # the line read last, for flush()'s errors
    ends_with = None  # the header's promise of an end record (dumps written before it have none)
    ended = False
    for number, kind, data in _read(stream):
        at_line[0] = number
        if ended:
            raise InvalidInput(f"line {number}: a {kind} record after the end record")
        counts[kind] = counts.get(kind, 0) + 1
        if progress is not None and number % 10000 == 0:
            progress(number)
        try:
            if kind == "header":
                if data.get("format") != "prefhub-project-dump" or data.get("version") != FORMAT_VERSION:
                    raise InvalidInput(
                        f"line {number}: not a PrefHub project dump of version {FORMAT_VERSION}"
                    )
                ends_with = data.get("ends_with")
            elif kind == END:
                _check_end(number, data, {k: n for k, n in counts.items() if k not in ("header", END)})
                ended = True
            elif kind == "project":
                if project is not None:
                    raise InvalidInput(f"line {number}: a second project record")
                values = _present(kind, data, PROJECT_FIELDS)
                try:  # the settings' one rule (a dump edited by hand, or of a laxer version)
                    settings_values = {
                        k: v for k, v in values.items() if k in SETTINGS_FIELDS and k != "name"
                    }
                    values.update(project_settings_clean(settings_values))
                    project_kind_clean(values.get("kind"))
                    values["name"] = _restored_name(values["name"], name)
                except InvalidInput as exc:
                    raise InvalidInput(f"line {number}: {exc.message}", field=exc.field) from None
                dumped_slug = values["slug"]  # the restore's event records it, --slug or not
                try:
                    _check_slug(dumped_slug)
                except InvalidInput:
                    raise InvalidInput(
                        f"line {number}: the dumped slug {str(dumped_slug)[:40]!r} is not a project address "
                        f"(lowercase letters, digits and dashes, at most {SLUG_MAX})."
                    ) from None
                values["slug"] = slug if slug is not None else values["slug"]
                _check_slug(values["slug"])
                if Project.objects.filter(slug=values["slug"]).exists():
                    raise Conflict(
                        f"A project with slug {values['slug']!r} already exists; restore under another --slug."
                    )
                project = Project.objects.create(
                    **values, created_by=user(data.get("created_by__username"), "created_by__username")
                )
                keep_time(project, "created_at", data.get("created_at"))
            elif project is None:
                raise InvalidInput(f"line {number}: the project record must come first")
            elif kind == "dimension":
                Dimension.objects.create(project=project, **data)
            elif kind == "membership":
                m = Membership.objects.create(
                    project=project,
                    user=user(data["user__username"], "user__username"),
                    role=data["role"],
                    is_active=data["is_active"],
                )
                keep_time(m, "created_at", data.get("created_at"))
            elif kind == "endpoint":
                _fields_exactly(kind, data)
                name = _slug_name(data, ModelEndpoint._meta.get_field("name").max_length)
                if name in restored_endpoints:
                    raise InvalidInput(f"a second endpoint named {name!r}", field="name")
                if name in shared_endpoints:  # a judge, job or candidate above already runs on that one
                    raise InvalidInput(
                        f"{name!r} was taken above for this server's shared endpoint of that name: the "
                        "project's endpoints must come before the records that use them.",
                        field="name",
                    )
                values = endpoint_values_clean(
                    backend=data["backend"],
                    model=data["model"],
                    config=data["config"],
                    default_sampling=data["default_sampling"],
                )
                ep = ModelEndpoint.objects.create(
                    name=_free_endpoint_name(name),
                    project=project,
                    is_active=_flag(data, "is_active"),
                    created_by=user(data["created_by__username"], "created_by__username"),
                    **values,
                )
                keep_time(ep, "created_at", data["created_at"])
                restored_endpoints[name] = ep
            elif kind == "judge":
                _fields_exactly(kind, data)
                if project.kind != TaskKind.PAIRWISE:
                    raise InvalidInput(PAIRWISE_ONLY)
                name = _slug_name(data, Judge._meta.get_field("name").max_length)
                served_by = endpoint(data["endpoint__name"], "endpoint__name")
                values = judge_config_clean(
                    endpoint=served_by,
                    sampling=data["sampling"],
                    price_prompt_per_1k=data["price_prompt_per_1k"],
                    price_completion_per_1k=data["price_completion_per_1k"],
                )
                is_active = _flag(data, "is_active")
                labels_as = data["user__username"]
                if isinstance(labels_as, str) and labels_as in users:
                    # a person of an earlier record (a judge's account is never a member, nor
                    # anyone's author), or another judge's: its records would become this judge's
                    raise InvalidInput(
                        f"{labels_as[:40]!r} is a person or another judge of an earlier record; "
                        "a judge labels as an account of its own.",
                        field="user__username",
                    )
                if Judge.objects.filter(project=project, name=name).exists():
                    raise InvalidInput(f"a second judge named {name!r}", field="name")
                # its own new account (a judge's is one-to-one), which its dumped labels map to
                username = judge_username(project=project, name=name)
                if User.objects.filter(username=username).exists():
                    raise InvalidInput(f"an account named {username!r} already exists.", field="name")
                account = User(username=username, is_active=False)
                account.set_unusable_password()
                account.save()
                judge = Judge.objects.create(
                    project=project, name=name, endpoint=served_by, user=account, is_active=is_active,
                    created_by=user(data["created_by__username"], "created_by__username"), **values,
                )  # fmt: skip
                keep_time(judge, "created_at", data["created_at"])
                if isinstance(labels_as, str) and labels_as:
                    users[labels_as] = account
            elif kind == "audit_event":
                _fields_exactly(kind, data)
                if not isinstance(data["details"], dict):
                    raise InvalidInput("must be a JSON object.", field="details")
                audit_events.append(
                    AuditEvent(
                        actor=user(data["actor__username"], "actor__username"),
                        action=_text(data, "action", max_length=64, blank=False),
                        target_type=_text(data, "target_type", max_length=64),
                        target_id=_text(data, "target_id", max_length=64),
                        details=data["details"],
                        created_at=a_time("created_at", data["created_at"]),
                    )
                )
            elif kind == "guideline":
                g = Guideline(
                    project=project, version=data["version"], body=data["body"], change_note=data["change_note"],
                    author=user(data["author__username"], "author__username"),
                )  # fmt: skip
                keep_time(g, "created_at", data["created_at"])
                queue("guideline", Guideline, data["id"], g)
            elif kind == "guideline_ack":
                flush("guideline")
                ack = GuidelineAck.objects.create(
                    guideline_id=ids["guideline"][data["guideline_id"]],
                    user=user(data["user__username"], "user__username"),
                )
                keep_time(ack, "acknowledged_at", data["acknowledged_at"])
            elif kind == "prompt":
                old = data.pop("id")
                queue_made("prompt", Prompt, old, data, project=project)
            elif kind == "generation_job":
                old = data.pop("id")
                names = data.pop("endpoints", None)  # older dumps lack them
                if names is not None:
                    if not isinstance(names, list):
                        raise InvalidInput("must be a list of endpoint names.", field="endpoints")
                    used = [endpoint(n, "endpoints").pk for n in names]
                    job_endpoints.append((old, list(dict.fromkeys(used))))
                job = GenerationJob(
                    project=project,
                    created_by=user(data.pop("created_by__username"), "created_by__username"),
                    released_by=user(data.pop("released_by__username"), "released_by__username"),
                    **{k: v for k, v in data.items() if k != "created_at"},
                )
                for field in ("started_at", "finished_at", "released_at"):
                    setattr(job, field, a_time(field, data[field], ahead=True) if data[field] else None)
                if job.state in (JobState.QUEUED, JobState.RUNNING):  # no worker resumes it
                    job.error = (
                        f"It was {job.state} when the project was dumped; a restore does not resume it."
                    )
                    job.state = JobState.CANCELLED
                keep_time(job, "created_at", data["created_at"])
                queue("generation_job", GenerationJob, old, job)
            elif kind == "candidate":
                old = data.pop("id")
                map_prompt_and_job(data)
                served_by = data.pop("endpoint__name", None)
                data["endpoint_id"] = (
                    endpoint(served_by, "endpoint__name").pk if served_by is not None else None
                )
                queue_made("candidate", Candidate, old, data)
            elif kind == "task":
                old = data.pop("id")
                map_prompt_and_job(data)
                # created asking for what the task asked for; its kept slots come back below, with
                # the claims, for the labels that hold them (live leases are not restored)
                kept = data.pop("kept_slots", 0)
                if not isinstance(kept, int) or isinstance(kept, bool) or kept < 0:
                    raise InvalidInput("must be a whole number of at least 0.", field="kept_slots")
                if isinstance(data["target_labels"], int):
                    if kept >= data["target_labels"]:
                        raise InvalidInput("must be below target_labels.", field="kept_slots")
                    data["target_labels"] -= kept
                queue_made("task", Task, old, data, project=project, claims=0)
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
                    labeler=user(data["labeler__username"], "labeler__username"),
                    state=data["state"],
                    leased_at=a_time("leased_at", data["leased_at"], ahead=True),
                    expires_at=a_time("expires_at", data["expires_at"], ahead=True),
                    finished_at=a_time("finished_at", data["finished_at"], ahead=True)
                    if data["finished_at"]
                    else None,
                    shown_order=[ids["candidate"][c] for c in data["shown_order"]],
                    skip_reason=data["skip_reason"],
                )
                queue("assignment", Assignment, old, obj)
            elif kind == "annotation":
                for earlier in order[: order.index("annotation")]:
                    flush(earlier)
                cmap = ids["candidate"]
                ranking = _map_ranking(data["ranking"], cmap)
                ratings = {
                    dim: {str(cmap[int(c)]): s for c, s in row.items()}
                    for dim, row in (data["ratings"] or {}).items()
                }
                obj = Annotation(
                    task_id=ids["task"][data["task_id"]],
                    labeler=user(data["labeler__username"], "labeler__username"),
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
                    pre_annotated=data.get("pre_annotated", False),
                )
                keep_time(obj, "created_at", data["created_at"])
                queue("annotation", Annotation, data.get("id"), obj)
            elif kind == "review":
                flush("annotation")
                obj = AnnotationReview(
                    annotation_id=ids["annotation"][data["annotation_id"]],
                    verdict=data["verdict"],
                    reason=data["reason"],
                    reviewer=user(data["reviewer__username"], "reviewer__username"),
                )
                queue_changed("review", obj, data)
            elif kind == "adjudication":
                flush("task")
                flush("candidate")
                obj = Adjudication(
                    task_id=ids["task"][data["task_id"]],
                    choice=data["choice"],
                    ranking=_map_ranking(data["ranking"], ids["candidate"]),
                    strength=data["strength"],
                    rationale=data["rationale"],
                    adjudicator=user(data["adjudicator__username"], "adjudicator__username"),
                )
                queue_changed("adjudication", obj, data)
            elif kind == "export_manifest":
                pass  # kept in the dump for the record; exports are re-created from the data, not restored
            else:
                raise InvalidInput(f"line {number}: unknown record type {kind!r}")
        except InvalidInput as exc:
            if exc.message.startswith("line ") or kind in ("header", "project"):
                raise  # already names its line, or names an option (--slug)
            where = f"the {kind} record's {exc.field}" if exc.field else f"the {kind} record"
            # the message names the field; as the error's field it would read as the command's
            # option of that name (a judge's "name" is not --name, the restored project's)
            raise InvalidInput(f"line {number}: {where}: {exc.message}") from None
        except KeyError as exc:
            raise InvalidInput(f"line {number}: {kind} record refers to a missing {exc}") from None
        except (TypeError, ValueError, AttributeError, DatabaseError, ValidationError) as exc:
            raise InvalidInput(f"line {number}: a bad {kind} record ({_first_line(exc)})") from None
    if ends_with == END and not ended:
        raise InvalidInput(
            f"The dump is cut short: it stops at line {at_line[0]} without its end record; nothing was restored."
        )
    for kind in order:
        flush(kind)
    if project is None:
        raise InvalidInput("The dump holds no project.")
    through = GenerationJob.endpoints.through
    through.objects.bulk_create(
        [
            through(generationjob_id=ids["generation_job"][old], modelendpoint_id=endpoint_id)
            for old, endpoint_ids in job_endpoints
            for endpoint_id in endpoint_ids
        ],
        batch_size=2000,
    )
    # claims = labelers who submitted (live leases are not restored); a slot the task kept for a
    # label when its overlap was lowered is kept again (``leasing.task_target_kept``), one kept
    # only for a live lease is gone with the lease
    for task_id, n in (
        Annotation.objects.filter(task__project=project)
        .values_list("task_id")
        .annotate(n=Count("id"))
        .iterator()
    ):
        Task.objects.filter(pk=task_id).update(claims=n, **task_target_kept(ASKED, Value(n)))
    # annotations keep the time they were made (agreement over time depends on it), guidelines,
    # acknowledgements and memberships theirs
    for (model, field), rows in times.items():
        for obj, when in rows:
            setattr(obj, field, when)
        model.objects.bulk_update([obj for obj, _ in rows], [field], batch_size=2000)
    task_priorities_request(project=project)  # task_order=active: priorities are recomputed
    # the log as it was (each event's actor, time and details), then the restore's own event
    audit_log_copy(project=project, events=audit_events)
    audit_record(
        actor=actor,
        project=project,
        action="project.restore",
        target=project,
        details={"from_slug": dumped_slug, "audit_events": len(audit_events)},
    )
    return project, counts
