"""``manage.py train`` answers bad input with a CommandError naming the option, before any model is
loaded or any process launched, and leaves nothing behind."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "good", "rejected": "bad"}) + "\n")
    return path


def train(dataset, out, *argv):
    call_command(
        "train", "reward", "--dataset", str(dataset), "--base-model", "tiny", "--out", str(out), *argv
    )


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("missing.json", None, "No such file or directory"),
        ("a-folder", "folder", "Is a directory"),
        ("latin1.json", b'{"seed": "caf\xe9"}', "is not UTF-8 text"),
        ("bad\x00name.json", None, "NUL byte"),
    ],
)
def test_config_file_that_cannot_be_read(tmp_path, dataset, no_training, name, content, reason):
    if content == "folder":
        (tmp_path / name).mkdir()
    elif content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(CommandError, match=f"^--config: .*{reason}"):
        train(dataset, tmp_path / "out", "--config", str(tmp_path / name))


def test_launch_with_a_missing_accelerate_config_leaves_no_temp_file(
    tmp_path, dataset, no_training, monkeypatch
):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    with pytest.raises(CommandError, match=r"^--accelerate-config: .*missing\.yaml"):
        train(dataset, tmp_path / "out", "--launch", "--accelerate-config", str(tmp_path / "missing.yaml"))
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("n", ["0", "-2", "100000"])
def test_launch_num_processes_out_of_range_is_refused_before_launching(tmp_path, dataset, no_training, n):
    with pytest.raises(CommandError, match=r"^--num-processes: must be between 1 and 64"):
        train(dataset, tmp_path / "out", "--launch", "--num-processes", n)


@pytest.mark.parametrize("existing", ["folder", "file"])
def test_an_existing_out_is_refused_before_training(tmp_path, dataset, no_training, existing):
    out = tmp_path / "out"
    if existing == "folder":
        out.mkdir()
        (out / "model.safetensors").write_text("an earlier model")
    else:
        out.write_text("a file")
    with pytest.raises(CommandError, match=r"^--out: .* already exists"):
        train(dataset, out)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "latin1.jsonl",
            b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n',
            r"latin1\.jsonl line 1: not UTF-8",
        ),
        ("cut.jsonl.gz", "truncated", r"cut\.jsonl\.gz line \d+: .*gzip"),
        ("bad.jsonl.gz", b"\x1f\x8b" + b"garbage" * 20, r"bad\.jsonl\.gz line 1: .*gzip"),
    ],
)
def test_evaluate_reward_names_the_dataset_line_it_cannot_read(tmp_path, name, content, message):
    import gzip

    if content == "truncated":
        row = json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n"
        data = gzip.compress(row.encode() * 500)
        content = data[: len(data) // 2]
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CommandError, match=message):
        call_command(
            "evaluate_reward", "--model", str(tmp_path / "no-model"), "--dataset", str(tmp_path / name)
        )
