"""``create_tiny_model OUT_DIR`` where OUT_DIR's parent is a file.

Before: "out_dir: cannot use '.../a-file/model': File exists." (the mkdir of the parent met the
file), which reads as if the model folder were taken; a path one level deeper said "Not a
directory".
Now: both say "Not a directory", naming out_dir, and nothing is made; the file is left alone.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.mark.parametrize("below", ["model", "deeper/model"])
def test_an_out_dir_under_a_file_is_not_a_directory(tmp_path, below):
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(CommandError, match=r"^out_dir: cannot use .*: Not a directory\.$"):
        call_command("create_tiny_model", str(tmp_path / "a-file" / below))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    assert (tmp_path / "a-file").read_text() == "mine"
