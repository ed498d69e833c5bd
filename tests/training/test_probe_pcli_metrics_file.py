"""``train --metrics-file`` naming a path no metric line can be appended to.

Before: the path was first opened when the run emitted its first metric line, after the data and
models were loaded (and, for a real run, after the first logging steps had trained), and the
command ended with "IsADirectoryError: [Errno 21] Is a directory: '...'" or "FileNotFoundError:
..." that named no option.
Now: it is checked before anything runs: a folder, a path under a file or under a folder that does
not exist is a one-line CommandError naming ``--metrics-file``; nothing is trained or launched and
no output folder is made. A new file in an existing folder, or an existing file, is still fine.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.training.conftest import write_jsonl

ROWS = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": "bad"} for i in range(4)]


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("a-folder", "Is a directory"),
        ("a-file/metrics.jsonl", "Not a directory"),
        ("missing/metrics.jsonl", "No such file or directory"),
    ],
)
def test_an_unusable_metrics_file_is_refused_before_the_run(tmp_path, tiny, no_training, where, reason):
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    with pytest.raises(CommandError, match=rf"^--metrics-file: cannot use .*{reason}\.$"):
        call_command(
            "train", "reward", "--dataset", data, "--base-model", tiny, "--out", str(tmp_path / "out"),
            "--metrics-file", str(tmp_path / where),
        )  # fmt: skip
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("existing", [False, True])
def test_a_usable_metrics_file_gets_to_the_run(tmp_path, tiny, monkeypatch, existing):
    seen = []
    monkeypatch.setattr(
        "training.management.commands.train.run_python", lambda **kw: seen.append(kw["config"])
    )
    metrics = tmp_path / "metrics.jsonl"
    if existing:
        metrics.write_text('{"step": 1}\n')
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    call_command(
        "train", "reward", "--dataset", data, "--base-model", tiny, "--out", str(tmp_path / "out"),
        "--metrics-file", str(metrics),
    )  # fmt: skip
    assert seen[0]["metrics_file"] == str(metrics)
    assert metrics.exists() == existing
