"""A ``--dataset`` (evaluate_reward, train) that is a folder or an empty file of the user's own.

Before: a folder was answered "Dataset file not found: /path", though the path is there (it is a
folder); an empty file the user wrote was answered "The dataset x.jsonl is empty: the export has no
comparisons yet.", about an export the user never made.
Now: a folder is "Dataset /path is a folder, not a file."; an empty file says it has no rows (an
export with no comparisons yet is one such file); a missing file is still "not found". The
messages come from the runners' data reader, so training runs on the platform read the same.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


def test_a_folder_is_named_a_folder(tmp_path):
    with pytest.raises(CommandError, match=rf"^Dataset {tmp_path} is a folder, not a file\.$"):
        call_command("evaluate_reward", "--model", "unused", "--dataset", str(tmp_path))


def test_an_empty_file_says_it_has_no_rows(tmp_path):
    empty = tmp_path / "mine.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(CommandError, match=r"^The dataset mine\.jsonl has no rows") as err:
        call_command("evaluate_reward", "--model", "unused", "--dataset", str(empty))
    assert "\n" not in str(err.value)


def test_a_missing_file_is_still_not_found(tmp_path):
    with pytest.raises(CommandError, match=r"^Dataset file not found: .*nope\.jsonl$"):
        call_command("evaluate_reward", "--model", "unused", "--dataset", str(tmp_path / "nope.jsonl"))
