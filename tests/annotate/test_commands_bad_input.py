"""The annotate management commands answer bad input with a CommandError naming the option (never a
traceback) and leave nothing half-written behind."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("a-folder", "Is a directory"),
        ("no-such-folder/dump.jsonl.gz", "No such file or directory"),
        ("bad\x00name.gz", "NUL byte"),
    ],
)
def test_backup_dump_to_an_unusable_path_is_a_command_error_and_leaves_no_temp_file(
    make_project, tmp_path, target, reason
):
    project = make_project()
    (tmp_path / "a-folder").mkdir()
    with pytest.raises(CommandError, match=f"^file: .*{reason}"):
        call_command("project_backup", "dump", project.slug, str(tmp_path / target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder"]
    assert list((tmp_path / "a-folder").iterdir()) == []


def test_backup_restore_of_a_folder_says_so(tmp_path):
    with pytest.raises(CommandError, match=r"^file: .* is not a file"):
        call_command("project_backup", "restore", str(tmp_path))


@pytest.mark.parametrize("days", ["0", "-5", "99999999"])
def test_api_token_days_out_of_range_is_refused_and_creates_no_token(make_user, days):
    from annotate.models import ApiToken

    user = make_user()
    with pytest.raises(CommandError, match=r"^--days: "):
        call_command("api_token", "create", "--user", user.username, "--name", "laptop", "--days", days)
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("where", ["not a member", "membership ended"])
def test_api_token_for_a_project_the_user_is_not_in_is_refused(make_user, make_project, labeler_in, where):
    """A token narrowed to a project its user cannot see reaches nothing: refused, naming --project
    and the project, as the tokens page offers only the user's own projects; nothing is created.
    The user's own project still works."""
    from annotate.models import ApiToken
    from annotate.services.projects import membership_add, membership_deactivate

    theirs, other = make_project(), make_project()
    user = labeler_in(theirs)
    if where == "membership ended":
        membership_add(project=other, user=user, role="labeler")
        membership_deactivate(project=other, user=user)
    with pytest.raises(CommandError, match=rf"^--project: .*{other.slug}"):
        call_command(
            "api_token", "create", "--user", user.username, "--name", "x",
            "--project", theirs.slug, "--project", other.slug,
        )  # fmt: skip
    assert not ApiToken.objects.exists()
    call_command("api_token", "create", "--user", user.username, "--name", "ok", "--project", theirs.slug)
    assert list(ApiToken.objects.get().projects.all()) == [theirs]


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_import_of_a_damaged_gzip_reports_it_and_imports_nothing(make_project, tmp_path, capsys, damage):
    import gzip
    import json

    from annotate.models import Prompt

    project = make_project()
    line = json.dumps({"prompt": "hi", "candidates": ["a", "b"]}) + "\n"
    data = gzip.compress(line.encode() * 200)
    data = data[: len(data) // 2] if damage == "truncated" else b"\x1f\x8b" + b"garbage" * 20
    path = tmp_path / "prompts.jsonl.gz"
    path.write_bytes(data)
    with pytest.raises(CommandError, match=r"^Nothing was imported"):
        call_command("import_prompts", str(path), "--project", project.slug)
    assert "gzip" in capsys.readouterr().err
    assert not Prompt.objects.filter(project=project).exists()


def _dump(project, tmp_path):
    path = tmp_path / "dump.jsonl.gz"
    call_command("project_backup", "dump", project.slug, str(path))
    return path


def _edited(path, edit):
    """The dump at ``path`` with ``edit(records)`` applied, written back gzip'd."""
    import gzip
    import json

    records = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    edit(records)
    path.write_bytes(gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in records)))
    return path


def _set_prompt_field(field, value):
    def edit(records):
        next(r for r in records if r["type"] == "prompt")["data"][field] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda records: records.insert(2, {"type": "prompt", "data": 5}), r"line 3: not a dump record"),
        (_set_prompt_field("messages", None), r"bad prompt record at or before line \d+"),
        pytest.param(
            _set_prompt_field("external_id", "x" * 1000),
            r"bad prompt record at or before line \d+",
            marks=pytest.mark.postgres(reason="SQLite does not enforce a varchar's length"),
        ),
    ],
)
def test_restore_of_a_damaged_record_is_a_command_error_and_restores_nothing(
    make_project, tmp_path, edit, message
):
    from annotate.models import Project
    from tests.conftest import add_tasks

    project = make_project()
    add_tasks(project, prompts=2)
    path = _edited(_dump(project, tmp_path), edit)
    with pytest.raises(CommandError, match=message):
        call_command("project_backup", "restore", str(path), "--slug", "copy")
    assert not Project.objects.filter(slug="copy").exists()


def test_restore_of_a_truncated_dump_restores_nothing(make_project, tmp_path):
    from annotate.models import Project

    path = _dump(make_project(), tmp_path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CommandError, match="gzip"):
        call_command("project_backup", "restore", str(path), "--slug", "copy")
    assert not Project.objects.filter(slug="copy").exists()


@pytest.mark.parametrize("slug", ["Bad Slug!", "x" * 81, ""])
def test_restore_under_an_invalid_slug_is_refused(make_project, tmp_path, slug):
    from annotate.models import Project

    project = make_project()
    path = _dump(project, tmp_path)
    with pytest.raises(CommandError, match=r"^--slug: "):
        call_command("project_backup", "restore", str(path), "--slug", slug)
    assert list(Project.objects.values_list("slug", flat=True)) == [project.slug]


@pytest.mark.parametrize("concurrency", ["0", "-1", "100000"])
def test_run_platform_refuses_a_bad_concurrency_before_starting_anything(monkeypatch, concurrency):
    def refuse(*args, **kwargs):
        raise AssertionError("run_platform started a process despite bad input")

    monkeypatch.setattr("annotate.management.commands.run_platform.subprocess.Popen", refuse)
    with pytest.raises(CommandError, match=r"^--concurrency: "):
        call_command("run_platform", "--concurrency", concurrency)


def test_import_of_an_unreadable_file_is_a_command_error(make_project, tmp_path, monkeypatch):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "hi", "candidates": ["a", "b"]}\n')

    def unreadable(*args, **kwargs):  # what a file without read permission gives a non-root user
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("annotate.management.commands.import_prompts.open", unreadable, raising=False)
    with pytest.raises(CommandError, match=r"^file: .*Permission denied"):
        call_command("import_prompts", str(path), "--project", make_project().slug)
