"""Probe of exports: every format and file type on a project holding preferences with strengths,
ties, "both bad", a flagged judgment, per-dimension ratings, unicode and control characters, empty
texts and rationale, and a deactivated labeler. The files must be valid UTF-8 JSON lines / readable
Parquet, the count on the page and in the API must equal the rows written, and the rows must equal
an independent recomputation written here (from the ORM rows, not the compiler)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.urls import reverse

from annotate.models import Annotation, Candidate, Prompt, Task, TaskCandidate
from annotate.services.projects import membership_deactivate
from annotate.services.tasks import TaskSpec, tasks_bulk_create
from tests.conftest import bearer
from training.models import Export
from training.services.exports import export_create, export_run

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert(1)</script> "q" \\ é 😀 \u2028 \u2029 \x01\x1b[31m \x7f \u0085 \ufeff \t\r\n end'
PROMPTS = [
    [{"role": "user", "content": "Plain " + HOSTILE}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello </pre>"},
     {"role": "user", "content": "Again \u202e RTL"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "System turn 漢字"}],
]  # fmt: skip
TEXTS = [["", "B " + HOSTILE], ["A \U0001f600 \x0b\x0c", "B\u2028"], ["\u03b1", "\u03b2"]]


@pytest.fixture
def world(make_project, labeler_in):
    project = make_project(name="Probe export", overlap=3, dimensions=["Harmless"])
    cand = []
    for i, messages in enumerate(PROMPTS):
        p = Prompt.objects.create(project=project, external_id=f"p{i}", messages=messages)
        cand.append([Candidate.objects.create(prompt=p, text=t) for t in TEXTS[i]])
    tasks_bulk_create(
        project=project,
        specs=[TaskSpec(prompt_id=c[0].prompt_id, candidate_ids=[x.pk for x in c]) for c in cand],
    )
    tasks = list(Task.objects.filter(project=project).order_by("id"))
    u1, u2, u3 = (labeler_in(project, f"lab{i}") for i in (1, 2, 3))

    def ann(task, user, choice=None, **kw):
        a, b = task_slots(task)
        ratings = kw.pop("r", None)
        if ratings is not None:
            kw["ratings"] = {"harmless": {str(a): ratings[0], str(b): ratings[1]}}
        Annotation.objects.create(task=task, labeler=user, choice=choice, **kw)

    t1, t2, t3 = tasks
    ann(t1, u1, "a", strength=3, r=(5, 1))
    ann(t1, u2, "tie", r=(3, 3))
    ann(t1, u3, "b", rationale="", r=(1, 4))
    ann(t2, u1, "both_bad")
    ann(t2, u2, "a", flagged=True, flag_reason="<b>bad</b> \u2028")
    ann(t2, u3, "a", rationale="why é")
    ann(t3, u1, "b", strength=1, r=(2, 2))
    ann(t3, u2, "a")
    ann(t3, u3, None, flagged=True, flag_reason="cannot judge")
    # lab3 leaves: their judgments stay in the data
    membership_deactivate(project=project, user=u3)
    u3.is_active = False
    u3.save(update_fields=["is_active"])
    return project


def task_slots(task) -> list[int]:
    return list(
        TaskCandidate.objects.filter(task=task).order_by("slot").values_list("candidate_id", flat=True)
    )


# --- the independent recomputation ----------------------------------------------------------------


def _prompt_str(messages):
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    label = {"user": "User", "assistant": "Assistant", "system": "System"}
    return "\n\n".join(f"{label[m['role']]}: {m['content']}" for m in messages) + "\n\nAssistant:"


def _judgments(project, *, dimension=False, include_flagged=False):
    """(task, messages, first, second, outcome, margin) per kept annotation, in (task, labeler) order;
    the dropped ones counted by reason."""
    out, dropped = [], Counter()
    for a in Annotation.objects.filter(task__project=project).order_by("task_id", "labeler_id"):
        if a.flagged and not include_flagged:
            dropped["flagged"] += 1
            continue
        slots = task_slots(a.task)
        texts = dict(Candidate.objects.filter(pk__in=slots).values_list("pk", "text"))
        x, y = slots
        if dimension:
            s = (a.ratings or {}).get("harmless")
            if not s:
                dropped["missing_rating"] += 1
                continue
            sx, sy = s[str(x)], s[str(y)]
            if sx == sy:
                out.append((a.task, texts, x, y, "tie", None))
            else:
                w, lo = (x, y) if sx > sy else (y, x)
                out.append((a.task, texts, w, lo, "pref", round(abs(sx - sy) / 4, 6)))
            continue
        if a.choice is None:
            dropped["no_judgment"] += 1
            continue
        margin = {None: 0.0, 1: round(1 / 3, 6), 2: round(2 / 3, 6), 3: 1.0}[a.strength]
        if a.choice == "a":
            out.append((a.task, texts, x, y, "pref", margin))
        elif a.choice == "b":
            out.append((a.task, texts, y, x, "pref", margin))
        else:
            out.append((a.task, texts, x, y, a.choice, None))
    return out, dropped


def expected_rows(project, fmt, *, ties="drop", dimension=False, include_flagged=False):
    js, dropped = _judgments(project, dimension=dimension, include_flagged=include_flagged)
    keep = ties == "keep" and fmt in ("trl", "trl_conversational", "trl_unpaired")
    rows = []
    kto_seen = set()
    for task, texts, c, r, outcome, margin in js:
        messages = task.prompt.messages
        if outcome != "pref" and not keep:
            dropped[outcome] += 1
            continue
        if fmt in ("trl", "trl_conversational"):
            conv = fmt == "trl_conversational"
            row = {
                "prompt": messages if conv else _prompt_str(messages),
                "chosen": [{"role": "assistant", "content": texts[c]}] if conv else texts[c],
                "rejected": [{"role": "assistant", "content": texts[r]}] if conv else texts[r],
                "margin": margin if outcome == "pref" else 0.0,
            }
            if keep:
                row["flag"] = None if outcome == "pref" else outcome
            rows.append(row)
        elif fmt == "trl_unpaired":
            if outcome == "tie":  # KTO rows cannot hold a tie: counted dropped
                dropped["tie"] += 1
                continue
            labels = ((c, True), (r, False)) if outcome == "pref" else ((c, False), (r, False))
            for cid, label in labels:
                if (task.pk, cid, label) not in kto_seen:
                    kto_seen.add((task.pk, cid, label))
                    rows.append({"prompt": _prompt_str(messages), "completion": texts[cid], "label": label})
        elif fmt == "hh_rlhf":
            if any(m["role"] == "system" for m in messages):
                dropped["system_turn_unsupported"] += 1
                continue
            head = "".join(
                f"\n\n{'Human' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in messages
            )
            rows.append(
                {"chosen": f"{head}\n\nAssistant: {texts[c]}", "rejected": f"{head}\n\nAssistant: {texts[r]}"}
            )
        elif fmt == "openai":
            rows.append({
                "input": {"messages": messages},
                "preferred_output": [{"role": "assistant", "content": texts[c]}],
                "non_preferred_output": [{"role": "assistant", "content": texts[r]}],
            })  # fmt: skip
    return rows, dropped


def expected_raw(project, *, include_flagged=False):
    rows = []
    for a in Annotation.objects.filter(task__project=project).order_by("task_id", "labeler_id"):
        if a.flagged and not include_flagged:
            continue
        rows.append({
            "annotation_id": a.pk, "task_id": a.task_id, "prompt_id": a.task.prompt.external_id,
            "candidate_ids": task_slots(a.task), "choice": a.choice, "strength": a.strength,
            "ratings": a.ratings, "flagged": a.flagged, "flag_reason": a.flag_reason,
        })  # fmt: skip
    return rows


# --- reading the files back -----------------------------------------------------------------------


def read_rows(export: Export) -> list[dict]:
    path = Path(export.path) / f"train.{export.file_type}"
    if export.file_type == "parquet":
        rows = pq.read_table(path).to_pylist()
        for row in rows:
            if isinstance(row.get("ratings"), str):
                row["ratings"] = json.loads(row["ratings"])
        return rows
    data = path.read_bytes()
    text = data.decode("utf-8")  # strict: the bytes must be UTF-8
    assert data.endswith(b"\n") and not data.startswith(b"\xef\xbb\xbf")
    lines = text.split("\n")[:-1]
    assert all(lines), "a blank line in the JSON lines"
    # a JSON-lines reader splits on \n only: no raw control character may sit in a line
    assert not any(ch in line for line in lines for ch in "\r\x00\x01\x1b")
    return [json.loads(line) for line in lines]


def _run(project, fmt, file_type, **options):
    export = export_create(
        project=project, format=fmt, file_type=file_type, options={"test_size": 0, **options}, enqueue=False
    )
    export_run(export_id=export.pk)
    export.refresh_from_db()
    return export


def _canon(rows):
    return sorted(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in rows)


PAIR_FORMATS = ["trl", "trl_conversational", "trl_unpaired", "hh_rlhf", "openai"]


@pytest.mark.parametrize("file_type", ["jsonl", "parquet"])
@pytest.mark.parametrize("ties", ["drop", "keep"])
@pytest.mark.parametrize("fmt", PAIR_FORMATS)
def test_pair_formats_write_the_recomputed_rows(world, fmt, ties, file_type):
    export = _run(world, fmt, file_type, ties=ties)
    rows = read_rows(export)
    want, dropped = expected_rows(world, fmt, ties=ties)
    assert _canon(rows) == _canon(want)
    assert export.row_count == len(rows) == export.manifest["counts"]["rows"]
    assert export.manifest["files"]["train"]["rows"] == len(rows)
    assert (
        export.manifest["counts"]["annotations_read"]
        == Annotation.objects.filter(task__project=world).count()
    )
    assert export.manifest["counts"]["dropped"] == dict(dropped)


@pytest.mark.parametrize("file_type", ["jsonl", "parquet"])
@pytest.mark.parametrize("fmt", ["trl", "trl_conversational"])
def test_dimension_ratings_give_the_recomputed_rows(world, fmt, file_type):
    export = _run(world, fmt, file_type, dimension="harmless", ties="keep")
    rows = read_rows(export)
    want, dropped = expected_rows(world, fmt, ties="keep", dimension=True)
    assert _canon(rows) == _canon(want)
    assert export.row_count == len(rows)
    assert export.manifest["counts"]["dropped"] == dict(dropped)


@pytest.mark.parametrize("file_type", ["jsonl", "parquet"])
@pytest.mark.parametrize("include_flagged", [False, True])
def test_raw_rows_are_every_annotation_kept(world, file_type, include_flagged):
    export = _run(world, "raw", file_type, include_flagged=include_flagged)
    rows = read_rows(export)
    keys = ["annotation_id", "task_id", "prompt_id", "candidate_ids", "choice", "strength", "ratings", "flagged",
            "flag_reason"]  # fmt: skip
    assert _canon([{k: r[k] for k in keys} for r in rows]) == _canon(
        expected_raw(world, include_flagged=include_flagged)
    )
    assert export.row_count == len(rows) == export.manifest["counts"]["rows"]
    # one pseudonym per labeler, the deactivated one included
    assert len({r["labeler"] for r in rows}) == 3
    assert export.manifest["labeler_count"] == 3


def test_page_and_api_show_the_rows_written(world, client, labeler_in):
    researcher = labeler_in(world, "res", role="researcher")
    export = _run(world, "trl", "jsonl", ties="keep")
    n = len(read_rows(export))
    client.force_login(researcher)
    page = client.get(reverse("training:export_detail", args=[world.slug, export.version]))
    assert page.status_code == 200
    assert f"<dt>Rows</dt><dd>{n}</dd>" in page.content.decode()
    assert b"<script>alert(1)" not in page.content
    api = bearer(researcher)
    listed = api.get(f"/api/v1/projects/{world.slug}/exports/").json()
    items = listed["results"] if isinstance(listed, dict) and "results" in listed else listed
    assert [e["row_count"] for e in items if e["version"] == export.version] == [n]


@pytest.mark.parametrize("file_type", ["jsonl", "parquet"])
def test_a_test_split_holds_whole_prompts_and_the_counts_add_up(world, file_type):
    export = _run(world, "raw", file_type, test_size=0.5, seed=3)  # seed 3: p1 is held out
    by_split = {}
    for split in ("train", "test"):
        path = Path(export.path) / f"{split}.{file_type}"
        if file_type == "parquet":
            by_split[split] = pq.read_table(path).to_pylist()
        else:
            by_split[split] = [json.loads(x) for x in path.read_bytes().decode("utf-8").split("\n")[:-1]]
    sizes = {s: len(rows) for s, rows in by_split.items()}
    assert sizes["train"] and sizes["test"]
    assert sum(sizes.values()) == export.row_count == len(expected_raw(world))
    assert {s: f["rows"] for s, f in export.manifest["files"].items()} == sizes
    assert (export.manifest["counts"]["train"], export.manifest["counts"]["test"]) == (
        sizes["train"],
        sizes["test"],
    )
    assert {r["prompt_id"] for r in by_split["test"]} == {"p1"}
    assert not {r["prompt_id"] for r in by_split["train"]} & {"p1"}


@pytest.mark.parametrize("fmt", ["trl", "trl_unpaired", "openai"])
def test_flagged_judgments_included_on_request(world, fmt):
    export = _run(world, fmt, "jsonl", ties="keep", include_flagged=True)
    rows = read_rows(export)
    want, dropped = expected_rows(world, fmt, ties="keep", include_flagged=True)
    assert _canon(rows) == _canon(want)
    assert export.row_count == len(rows)
    assert export.manifest["counts"]["dropped"] == dict(dropped)
