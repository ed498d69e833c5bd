"""Hand-edited dumps fed back to ``project_backup restore``: every bad value is a command error that
names its line, and nothing is written (the probe of the judges/endpoints/times/audit-log backup)."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.judges.services import judge_create
from annotate.models import AuditEvent, Judge, Project, Task
from generation.models import ModelEndpoint
from tests.annotate.test_backup import _dump, _endpoints, _line_of
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db

MODELS = (Project, ModelEndpoint, Judge, AuditEvent, Task)


def _counts():
    return [m.objects.count() for m in (*MODELS, get_user_model())]


def _project(make_project, make_user):
    boss = make_user("boss")
    project = make_project(actor=boss)
    add_tasks(project, prompts=2)
    own, _shared = _endpoints(project, boss)
    judge_create(project=project, name="j", endpoint=own, sampling={"temperature": 0.2}, actor=boss)
    return project


def _restore_refused(tmp_path, data: bytes, match: str) -> str:
    path = tmp_path / "edited.jsonl.gz"
    path.write_bytes(data)
    before = _counts()
    with pytest.raises(CommandError, match=match) as err:
        call_command("project_backup", "restore", str(path), "--slug", "restored")
    assert _counts() == before and not Project.objects.filter(slug="restored").exists()
    return str(err.value)


def _raw_edit(data: bytes, kind: str, old: bytes, new: bytes) -> bytes:
    """The dump with ``old`` replaced by ``new`` in the text of the first ``kind`` record."""
    lines = gzip.decompress(data).splitlines()
    n = _line_of(data, kind) - 1
    assert old in lines[n]
    lines[n] = lines[n].replace(old, new, 1)
    return gzip.compress(b"\n".join(lines) + b"\n")


# Before: json.loads read NaN/Infinity (PostgreSQL's jsonb refuses them: a DataError traceback,
# "invalid input syntax for type json", when the audit log was copied) and deep nesting raised a
# RecursionError traceback ("maximum recursion depth exceeded while decoding a JSON array").
@pytest.mark.parametrize(
    ("kind", "old", "new", "message"),
    [
        ("audit_event", b'"details": {', b'"details": {"x": NaN, ', "NaN is not a JSON number"),
        ("audit_event", b'"details": {', b'"details": {"x": -Infinity, ', "-Infinity is not a JSON number"),
        ("audit_event", b'"details": {', b'"details": {"x": 1e999, ', "1e999 is too large a number"),
        (
            "audit_event",
            b'"details": {',
            b'"details": {"x": ' + b"[" * 5000 + b"]" * 5000 + b", ",
            "nested too deeply",
        ),
        (
            "judge",
            b'"sampling": {',
            b'"sampling": {"x": ' + b"[" * 5000 + b"]" * 5000 + b", ",
            "nested too deeply",
        ),
        (
            "endpoint",
            b'"config": {',
            b'"config": {"x": ' + b"[" * 5000 + b"]" * 5000 + b", ",
            "nested too deeply",
        ),
    ],
    ids=["nan", "-infinity", "1e999", "deep-details", "deep-sampling", "deep-config"],
)
def test_json_a_database_cannot_hold_is_refused_with_its_line(
    make_project, make_user, tmp_path, kind, old, new, message
):
    data = _dump(_project(make_project, make_user))
    line = _line_of(data, kind)
    _restore_refused(tmp_path, _raw_edit(data, kind, old, new), rf"^line {line}: .*{message}")


def _edit(data: bytes, kind: str, change: dict) -> bytes:
    from tests.annotate.test_backup import _edited

    def edit(record):
        if record["type"] == kind:
            record["data"].update(change)
        return record

    return _edited(data, edit)


# Before: a time whose UTC value falls outside years 1-9999 was stored (PostgreSQL keeps BC and
# year-10000 timestamps) and could not be read back: the restored project's audit page failed with
# DataError: timestamp too large (after year 10K): '10000-01-01 04:59:59+00' (or "too small
# (before year 1): '0001-12-31 19:00:00+00 BC'"). And an event dated in the future was copied:
# the audit page lists the newest 200 events, so 200 events dated 2099 hid every later one.
RECORD_TIMES = [
    ("audit_event", "created_at", "9999-12-31T23:59:59-05:00", "out of range"),
    ("audit_event", "created_at", "0001-01-01T00:00:00+05:00", "out of range"),
    ("prompt", "created_at", "9999-12-31T23:59:59-05:00", "out of range"),
    ("judge", "created_at", "0001-01-01T00:00:00+05:00", "out of range"),
    ("audit_event", "created_at", "2099-01-01T00:00:00+00:00", "later than the restore"),
    ("endpoint", "created_at", "2099-01-01T00:00:00+00:00", "later than the restore"),
    ("review", "updated_at", "9999-12-31T00:00:00+00:00", "later than the restore"),
]
# Before: a generation job's started_at/finished_at/released_at and a finished assignment's
# leased_at/expires_at/finished_at were read with parse_datetime alone: "9999-12-31T23:59:59-05:00"
# was stored as 10000-01-01 04:59:59+00 and reading the restored job failed with "DataError:
# timestamp too large (after year 10K)"; "garbage" in expires_at failed with 'a bad assignment
# record at or before line 30 (NOT NULL ...)', not its line. (These may lie ahead: a lease expires.)
JOB_AND_ASSIGNMENT_TIMES = [
    ("generation_job", "finished_at", "9999-12-31T23:59:59-05:00", "out of range"),
    ("generation_job", "started_at", "0001-01-01T00:00:00+05:00", "out of range"),
    ("generation_job", "released_at", ["x"], "not a date and time"),
    ("assignment", "expires_at", "9999-12-31T23:59:59-05:00", "out of range"),
    ("assignment", "leased_at", "garbage", "not a date and time"),
]


@pytest.mark.parametrize(
    ("kind", "field", "value", "message"), RECORD_TIMES + JOB_AND_ASSIGNMENT_TIMES, ids=lambda v: str(v)[:20]
)
def test_a_time_that_cannot_be_stored_or_is_in_the_future_is_refused_with_its_line(
    make_project, make_user, labeler_in, tmp_path, kind, field, value, message
):
    from annotate.services.leasing import annotation_submit, task_claim_next
    from annotate.services.review import annotation_review
    from generation.models import GenerationJob

    project = _project(make_project, make_user)
    GenerationJob.objects.create(project=project, k=1, state="done")
    user = labeler_in(project, "lab")
    lease = task_claim_next(project=project, labeler=user)
    ann = annotation_submit(assignment_id=lease.pk, labeler=user, choice="left")[0]
    reviewer = labeler_in(project, "rev", role="manager")  # nobody reviews their own judgment
    annotation_review(actor=reviewer, project=project, annotation_id=ann.pk, verdict="accepted")
    data = _dump(project)
    line = _line_of(data, kind)
    _restore_refused(tmp_path, _edit(data, kind, {field: value}), rf"^line {line}: .*{field}.*{message}")


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("2021-03-04T05:06:07", "2021-03-04T05:06:07+00:00"),  # no time zone: UTC
        ("2021-03-04T05:06:07+05:30", "2021-03-03T23:36:07+00:00"),
        ("0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+00:00"),
        ("0001-01-01T00:00:00-05:00", "0001-01-01T05:00:00+00:00"),
    ],
)
def test_times_with_or_without_a_zone_come_back_and_the_audit_page_reads_them(
    make_project, make_user, client, value, stored
):
    from annotate.services.backup import project_restore

    project = _project(make_project, make_user)
    data = _edit(_dump(project), "audit_event", {"created_at": value})
    copy, _ = project_restore(stream=io.BytesIO(data), slug="restored")
    first = AuditEvent.objects.filter(project=copy).order_by("created_at", "id").first()
    assert first.created_at.isoformat() == stored
    client.force_login(get_user_model().objects.get(username="boss"))
    assert client.get(f"/projects/{copy.slug}/manage/audit/").status_code == 200


# Before: a username that was not text was used as one: {"actor__username": 5} (or true, 1.5,
# NaN's text) created an account named "5" ("True", "1.5"); a list failed with "unhashable type:
# 'list'"; a 200-character name with "value too long for type character varying(150)", neither
# naming the field. An empty or null username is no one (the system), as the dump writes it.
@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("audit_event", "actor__username", 5),
        ("audit_event", "actor__username", True),
        ("audit_event", "actor__username", "x" * 200),
        ("endpoint", "created_by__username", ["boss"]),
        ("judge", "created_by__username", 1.5),
        ("membership", "user__username", {"name": "boss"}),
    ],
    ids=lambda v: str(v)[:20],
)
def test_a_username_that_is_not_one_is_refused_naming_its_field(
    make_project, make_user, tmp_path, kind, field, value
):
    data = _dump(_project(make_project, make_user))
    line = _line_of(data, kind)
    _restore_refused(
        tmp_path, _edit(data, kind, {field: value}), rf"^line {line}: .*{field} must be a username"
    )
    assert not get_user_model().objects.filter(username__in=["5", "True", "1.5"]).exists()


def test_an_event_without_an_actor_is_the_system_s(make_project, make_user):
    from annotate.services.backup import project_restore

    data = _edit(_dump(_project(make_project, make_user)), "audit_event", {"actor__username": ""})
    copy, _ = project_restore(stream=io.BytesIO(data), slug="restored")
    log = AuditEvent.objects.filter(project=copy)
    assert log.count() == 4 and not log.exclude(actor=None).exists()  # 3 copied, the restore's own


# Before: the command named its --name option for a judge's or an endpoint's bad name in the dump
# ("--name: line 6: the judge record's name: 'Bad Name' is not a name ..."): the option was not
# given, and is the restored project's name.
@pytest.mark.parametrize("kind", ["judge", "endpoint"])
def test_a_bad_judge_or_endpoint_name_in_the_dump_does_not_blame_the_name_option(
    make_project, make_user, tmp_path, kind
):
    data = _dump(_project(make_project, make_user))
    line = _line_of(data, kind)
    message = _restore_refused(
        tmp_path, _edit(data, kind, {"name": "Bad Name"}), rf"^line {line}: the {kind} record's name"
    )
    assert "--name" not in message


def _move_endpoint_after(data: bytes, kind: str) -> bytes:
    """The dump with its (one) endpoint record moved after the last ``kind`` record."""
    from tests.annotate.test_backup import _records

    records = _records(data)
    endpoint = next(r for r in records if r["type"] == "endpoint")
    records.remove(endpoint)
    last = max(i for i, r in enumerate(records) if r["type"] == kind)
    records.insert(last + 1, endpoint)
    return gzip.compress(b"\n".join(json.dumps(r).encode() for r in records) + b"\n")


# Before: a judge naming the project's endpoint "own-ep" whose record came later in the file was
# bound to the server's shared endpoint of that name when there was one (the project's own then
# restored beside it as "own-ep-restored", serving nothing): the judge silently ran on another
# model. Without one, the error said "the dump holds no endpoint of the project by that name",
# though it did (further down).
def test_an_endpoint_record_after_the_judge_that_uses_it_is_refused(make_project, make_user, tmp_path):
    from generation.services import endpoint_create

    project = _project(make_project, make_user)
    data = _move_endpoint_after(_dump(project), "judge")
    endpoint_line = _line_of(data, "endpoint")
    judge_line = _line_of(data, "judge")
    message = _restore_refused(tmp_path, data, rf"^line {judge_line}: ")
    assert "the dump holds no endpoint" not in message and "before this line" in message

    # on another server, a shared endpoint has the name of the project's own ("box" here)
    endpoint_create(name="box", backend="transformers", model="other-model")
    data = _edit(_edit(data, "endpoint", {"name": "box"}), "judge", {"endpoint__name": "box"})
    _restore_refused(
        tmp_path, data, rf"^line {endpoint_line}: the endpoint record's name: 'box' was taken .*shared"
    )


# Before: an endpoint record's model, config or default_sampling of the wrong type failed inside
# the checks: "line 5: a bad endpoint record ('list' object has no attribute 'strip')", "('int'
# object is not iterable)", "the endpoint record's config: dictionary update sequence element #0
# has length 1; 2 is required": the line, but not the field or what it must be.
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("model", ["x"], "record's model: Give the model"),
        ("model", 5, "record's model: Give the model"),
        ("config", 5, "record's config: config must be a JSON object"),
        ("config", ["x"], "record's config: config must be a JSON object"),
        ("default_sampling", 1.5, "record's default_sampling: default_sampling must be a JSON object"),
        ("default_sampling", ["x"], "record's default_sampling: default_sampling must be a JSON object"),
    ],
    ids=lambda v: str(v)[:20],
)
def test_an_endpoint_field_of_the_wrong_type_is_refused_naming_it(
    make_project, make_user, tmp_path, field, value, message
):
    data = _dump(_project(make_project, make_user))
    line = _line_of(data, "endpoint")
    _restore_refused(
        tmp_path, _edit(data, "endpoint", {field: value}), rf"^line {line}: the endpoint {message}"
    )


# Before: a judge record's user__username (the account its labels in the dump were made by) was
# mapped to the judge's new account whatever it named: a dump whose judge said "boss" (a manager
# of the project, from its memberships) restored with every later record of boss (reviews,
# adjudications, guideline versions, audit events) credited to the judge's inactive account; a
# second judge with the first's username took over the first one's labels.
@pytest.mark.parametrize("claimed", ["boss", "the first judge's"])
def test_a_judge_cannot_claim_a_person_s_or_another_judge_s_username(
    make_project, make_user, tmp_path, claimed
):
    from tests.annotate.test_backup import _edited, _records

    project = _project(make_project, make_user)
    shared = ModelEndpoint.objects.get(name="shared-ep")
    judge_create(
        project=project, name="k", endpoint=shared, actor=get_user_model().objects.get(username="boss")
    )
    data = _dump(project)
    judges = [(n, r["data"]) for n, r in enumerate(_records(data), start=1) if r["type"] == "judge"]
    if claimed == "the first judge's":
        claimed = judges[0][1]["user__username"]

    def edit(record):
        if record["type"] == "judge" and record["data"]["name"] == "k":
            record["data"]["user__username"] = claimed
        return record

    _restore_refused(
        tmp_path,
        _edited(data, edit),
        rf"^line {judges[1][0]}: the judge record's user__username: '{claimed}'",
    )


# Before: json.loads read up to about 950 levels of nesting, but encoding them again for the
# database needed more of Python's stack: a window of depths (944 here) ended in "RecursionError:
# maximum recursion depth exceeded while encoding a JSON object" (a traceback), not a line's error.
@pytest.mark.parametrize(
    ("kind", "column"), [("audit_event", b'"details": {'), ("prompt", b'"metadata": {}')]
)
def test_json_nested_too_deep_for_any_step_of_the_restore_is_refused_with_its_line(
    make_project, make_user, tmp_path, kind, column
):
    from annotate.services.backup import project_restore

    data = _dump(_project(make_project, make_user))
    # 500 levels (an imported prompt's metadata may nest deep) come back; the window does not
    ok = (
        column.replace(b"{}", b"{")
        + b'"x": '
        + b"[" * 495
        + b"]" * 495
        + (b"}" if column.endswith(b"}") else b", ")
    )
    copy, _ = project_restore(stream=io.BytesIO(_raw_edit(data, kind, column, ok)), slug="deep-ok")
    assert Project.objects.filter(pk=copy.pk).exists()
    for depth in range(900, 1000, 4):
        deep = b"[" * depth + b"]" * depth
        new = column.replace(b"{}", b"{") + b'"x": ' + deep + (b"}" if column.endswith(b"}") else b", ")
        _restore_refused(
            tmp_path,
            _raw_edit(data, kind, column, new),
            rf"^line {_line_of(data, kind)}: .*nested too deeply",
        )


# Before: with --slug given, the dump's own slug was not checked, only copied into the restore's
# audit event ({"from_slug": ...}): "a\x00b" failed there with "DataError: unsupported Unicode
# escape sequence" (a traceback), and a list, a number or 100,000 characters were recorded as the
# slug the copy came from.
@pytest.mark.parametrize(
    "slug", ["a\x00b", ["x"], "x" * 100_000, 5, "Not A Slug"], ids=["nul", "list", "long", "number", "spaces"]
)
def test_the_dumped_slug_is_checked_even_when_another_is_given(make_project, make_user, tmp_path, slug):
    data = _edit(_dump(_project(make_project, make_user)), "project", {"slug": slug})
    message = _restore_refused(tmp_path, data, r"^line 2: the dumped slug .* is not a project address")
    assert "--slug" not in message
