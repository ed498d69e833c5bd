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
