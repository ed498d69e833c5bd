"""``train --launch --accelerate-config FILE`` where FILE exists but is no accelerate config.

Before: any existing file was passed to ``accelerate launch``, which died on it with a yaml
traceback ("yaml.parser.ParserError: expected '<document start>' ...") and the command ended with
"The run failed (exit code 1); see the error line above.", the line being a traceback.
Now: the file is read first: one that is not YAML (JSON for a .json name), not UTF-8, or holds no
mapping of settings is a one-line CommandError naming ``--accelerate-config`` and why; nothing is
launched and no temporary config is left. A real config file still goes to accelerate as it is.
"""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from training.runners.launch import command


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "good", "rejected": "bad"}) + "\n")
    return path


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bad.yaml", b'{"a": 1}\n{"b": 2}\n', "not YAML"),
        ("bad.json", b'{"a": 1,', "not JSON"),
        ("list.yaml", b"- 1\n- 2\n", "no mapping"),
        ("empty.yaml", b"", "no mapping"),
        ("latin1.yaml", b"name: caf\xe9\n", "not UTF-8"),
    ],
)
def test_a_file_that_is_no_accelerate_config_is_refused_before_launching(
    tmp_path, dataset, no_training, monkeypatch, name, content, reason
):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CommandError, match=rf"^--accelerate-config: .*{name}.*{reason}") as err:
        call_command(
            "train", "reward", "--dataset", str(dataset), "--base-model", "tiny", "--out",
            str(tmp_path / "out"), "--launch", "--accelerate-config", str(tmp_path / name),
        )  # fmt: skip
    assert "\n" not in str(err.value)
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "content"),
    [("own.yaml", "compute_environment: LOCAL_MACHINE\n"), ("own.json", '{"distributed_type": "NO"}')],
)
def test_a_config_file_goes_to_accelerate(tmp_path, name, content):
    own = tmp_path / name
    own.write_text(content)
    assert command("reward", "/c.json", accelerate_config=str(own))[3:5] == ["--config_file", str(own)]
