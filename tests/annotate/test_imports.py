"""Importer: good files, malformed files (all or nothing), HH-RLHF (the real shared sample), the CLI."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.errors import InvalidInput
from annotate.models import Annotation, Candidate, Prompt, Task, TaskCandidate
from annotate.services.imports import ImportFailed, parse_hh_transcript, prompts_import
from tests.conftest import HH_SAMPLE, require_shared

pytestmark = pytest.mark.django_db


def _jsonl(rows) -> io.BytesIO:
    return io.BytesIO("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode() + b"\n")


GOOD = [
    {
        "id": "p1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What is 2+2?"},
        ],
        "metadata": {"topic": "math"},
        "candidates": [
            {"text": "4", "model": "m1", "seed": 1},
            {"text": "Four.", "model": "m2"},
            {"text": "22", "model": "m3"},
        ],
    },
    {"id": "p2", "prompt": "Name a color.", "candidates": ["Red", "Blue"], "tags": ["easy"]},
    {"id": "p3", "prompt": "No candidates yet."},
]


def test_good_jsonl_creates_prompts_candidates_and_all_pairs(make_project):
    project = make_project()
    report = prompts_import(project=project, stream=_jsonl(GOOD))
    assert report.committed and report.format == "jsonl"
    assert (report.prompts, report.candidates, report.tasks) == (3, 5, 4)  # 3 pairs + 1 pair
    p1 = Prompt.objects.get(project=project, external_id="p1")
    assert len(p1.messages) == 4 and p1.metadata == {"topic": "math"}
    assert Candidate.objects.get(prompt=p1, model_name="m1").seed == 1
    assert all(
        TaskCandidate.objects.filter(task=t).count() == 2 for t in Task.objects.filter(project=project)
    )


def test_sampled_pairs_and_ranking_modes(make_project):
    project = make_project()
    report = prompts_import(
        project=project, stream=_jsonl(GOOD), task_mode="sampled_pairs", pairs_per_prompt=1
    )
    assert report.tasks == 2
    ranking = make_project(kind="ranking", ranking_k=3)
    report = prompts_import(project=ranking, stream=_jsonl(GOOD))
    assert report.tasks == 2
    sizes = sorted(TaskCandidate.objects.filter(task__project=ranking).values_list("task_id", flat=True))
    assert sorted([sizes.count(t) for t in set(sizes)]) == [2, 3]


def test_malformed_file_imports_nothing_and_names_every_bad_line(make_project):
    project = make_project()
    rows = [
        GOOD[0],
        "{not json",
        {"id": "x", "messages": [{"role": "robot", "content": "hi"}]},
        {"id": "y", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"id": "p1", "prompt": "duplicate id"},
        ["a", "list"],
        {"id": "z", "prompt": "ok", "candidates": [{"text": 5}]},
        {"id": "w"},
    ]
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=_jsonl(rows))
    errors = {(e.line, e.field) for e in exc.value.report.errors}
    assert errors == {
        (2, None),
        (3, "messages[0].role"),
        (4, "messages"),
        (5, "id"),
        (6, None),
        (7, "candidates[0].text"),
        (8, "messages"),
    }
    assert exc.value.status_code == 400
    assert Prompt.objects.count() == Candidate.objects.count() == Task.objects.count() == 0


def test_skip_invalid_imports_the_good_lines(make_project):
    project = make_project()
    report = prompts_import(project=project, stream=_jsonl([GOOD[1], "oops", GOOD[2]]), skip_invalid=True)
    assert report.committed and report.prompts == 2 and report.skipped_lines == 1
    assert [e.line for e in report.errors] == [2]


def test_reimporting_the_same_ids_is_refused(make_project):
    project = make_project()
    prompts_import(project=project, stream=_jsonl(GOOD))
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=_jsonl(GOOD))
    assert {e.line for e in exc.value.report.errors} == {1, 2, 3}
    assert Prompt.objects.count() == 3


def test_gold_lines_become_gold_tasks(make_project):
    project = make_project()
    prompts_import(
        project=project, stream=_jsonl([{"id": "g", "prompt": "2+2?", "candidates": ["4", "5"], "gold": "a"}])
    )
    task = Task.objects.get()
    assert task.is_gold and task.gold_choice == "a"
    with pytest.raises(ImportFailed):
        prompts_import(
            project=project, stream=_jsonl([{"id": "g2", "prompt": "?", "candidates": ["4"], "gold": "a"}])
        )


HH_LINES = [
    {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello, how can I help?",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Go away.",
    },
    {
        "chosen": "\n\nHuman: A\n\nAssistant: B\n\nHuman: C\n\nAssistant: good",
        "rejected": "\n\nHuman: A\n\nAssistant: B\n\nHuman: C\n\nAssistant: bad",
    },
]


def test_hh_transcript_parsing():
    turns = parse_hh_transcript("\n\nHuman: A\n\nAssistant: B\n\nHuman: C\n\nAssistant: D")
    assert turns == [
        {"role": "user", "content": "A"},
        {"role": "assistant", "content": "B"},
        {"role": "user", "content": "C"},
        {"role": "assistant", "content": "D"},
    ]


def test_hh_gzip_with_recorded_preferences(make_project):
    project = make_project(overlap=2)
    data = gzip.compress(_jsonl(HH_LINES).getvalue())
    report = prompts_import(project=project, stream=io.BytesIO(data), preference_source="hh-rlhf")
    assert report.format == "hh-rlhf" and report.tasks == 2 and report.annotations == 2
    for ann in Annotation.objects.select_related("task"):
        slots = list(
            TaskCandidate.objects.filter(task=ann.task)
            .order_by("slot")
            .values_list("candidate__text", flat=True)
        )
        preferred = slots[0] if ann.choice == "a" else slots[1]
        assert preferred in ("Hello, how can I help?", "good")
        assert ann.labeler.username == "source-hh-rlhf" and not ann.labeler.is_active
        assert ann.task.claims == 1 and ann.task.target_labels == 2
    prompt = Prompt.objects.get(messages__0__content="A")
    assert [t["role"] for t in prompt.messages] == ["user", "assistant", "user"]


def test_hh_rejects_transcripts_that_do_not_share_a_prompt(make_project):
    project = make_project()
    bad = {"chosen": "\n\nHuman: Hi\n\nAssistant: Yo", "rejected": "\n\nHuman: Bye\n\nAssistant: Yo"}
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=_jsonl([HH_LINES[0], bad]))
    assert [(e.line, e.field) for e in exc.value.report.errors] == [(2, "rejected")]


def test_preferences_need_a_pairwise_project(make_project):
    with pytest.raises(InvalidInput):
        prompts_import(project=make_project(kind="ranking"), stream=_jsonl(HH_LINES), preference_source="hh")


def test_shared_hh_rlhf_sample_imports_every_line(make_project):
    """Line 1255 of the published sample has a chosen reply that runs into another turn; TRL's rule
    (core.hh: the prompt is the shared prefix up to the last "\\n\\nAssistant:") keeps it as one reply."""
    path = require_shared(HH_SAMPLE)
    project = make_project(overlap=3)
    with open(path, "rb") as f:
        report = prompts_import(project=project, stream=f, preference_source="hh-rlhf")
    assert (report.lines, report.prompts, report.tasks, report.annotations) == (1500, 1500, 1500, 1500)
    assert not report.errors
    assert Annotation.objects.filter(choice="a").count() not in (0, 1500), (
        "slot A must not always be the chosen one"
    )
    odd = Candidate.objects.get(text__startswith="No. Men who impersonate stereotypical women")
    assert "\n\nAssistant:  I think they call them that because" in odd.text


def test_cli_reports_bad_lines_and_exits_nonzero(make_project, tmp_path, capsys):
    project = make_project()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GOOD[1]) + "\n{broken\n")
    with pytest.raises(CommandError, match="Nothing was imported: 1 bad line"):
        call_command("import_prompts", str(bad), "--project", project.slug)
    assert "line 2" in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in GOOD))
    call_command("import_prompts", str(good), "--project", project.slug)
    assert Prompt.objects.count() == 3
    with pytest.raises(CommandError, match="--project"):
        call_command("import_prompts", str(good), "--project", "nope")


def test_a_gzip_bomb_is_stopped_at_the_decompressed_size_limit(make_project, settings):
    settings.PREFHUB_MAX_IMPORT_DECOMPRESSED_BYTES = 1024 * 1024
    project = make_project()
    line = json.dumps({"prompt": "x" * 500, "candidates": ["a", "b"]}).encode() + b"\n"
    bomb = gzip.compress(line * 20_000)  # ~10 MB of lines in a small file
    assert len(bomb) < 100_000
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=io.BytesIO(bomb))
    assert "once decompressed" in exc.value.report.errors[-1].message
    assert Prompt.objects.count() == 0
