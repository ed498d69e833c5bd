"""Export options backed by the reliability model: ``aggregate="weighted"`` and ``soft_labels``
(``p_chosen``), on plain records and through the export service and CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from annotate.errors import InvalidInput
from annotate.models import Annotation, Task
from tests.conftest import add_tasks
from training.compiler import (
    AnnotationRecord,
    CompileStats,
    ExportOptions,
    compile_pairs,
    fit_reliability,
)
from training.formats import TrlStandard
from training.models import Export
from training.services.exports import export_create, export_run

TEXTS = {1: "one", 2: "two", 3: "three"}
GOOD, SPAM = (1, 2, 3), (8, 9)
DECIDER = 500  # the task where two spammers outvote one good labeler


def rec(task, labeler, choice, *, cands=(1, 2), **kw) -> AnnotationRecord:
    return AnnotationRecord(
        id=task * 100 + labeler, task_id=task, labeler_id=labeler, prompt_id=task, candidate_ids=tuple(cands),
        choice=choice, prompt=(f"p{task}", [{"role": "user", "content": f"q{task}"}]), texts=TEXTS, **kw,
    )  # fmt: skip


def campaign() -> list[AnnotationRecord]:
    """80 tasks: three good labelers agree with the truth (a on even tasks, b on odd), two spammers
    answer at random; then the decider task: good labeler 1 says a, both spammers say b."""
    rng = np.random.default_rng(11)
    out = []
    for task in range(1, 81):
        truth = "a" if task % 2 == 0 else "b"
        for lab in GOOD:
            out.append(rec(task, lab, truth, strength=3))
        for lab in SPAM:
            out.append(rec(task, lab, str(rng.choice(["a", "b", "tie", "both_bad"])), strength=1))
    out += [
        rec(DECIDER, 1, "a", strength=3),
        rec(DECIDER, 8, "b", strength=1),
        rec(DECIDER, 9, "b", strength=1),
    ]
    return out


def run(records, model=None, **options):
    stats = CompileStats()
    opts = ExportOptions.from_dict(options)
    groups = list(compile_pairs(records, opts, stats=stats, reliability=model))
    return [p for g in groups for p in g], stats


@pytest.fixture(scope="module")
def fitted():
    records = campaign()
    return records, fit_reliability(records, ExportOptions())


def test_weighted_aggregate_overrules_spammers_where_majority_follows_them(fitted):
    records, model = fitted
    plain, _ = run(records, aggregate="majority")
    weighted, _ = run(records, model, aggregate="weighted")
    by_task_plain = {p.record.task_id: p for p in plain}
    by_task_weighted = {p.record.task_id: p for p in weighted}
    assert (by_task_plain[DECIDER].chosen, by_task_plain[DECIDER].rejected) == (2, 1)
    w = by_task_weighted[DECIDER]
    assert (w.chosen, w.rejected, w.votes) == (1, 2, 3)
    expected = model.weight(1) / (model.weight(1) + model.weight(8) + model.weight(9))
    assert w.agreement == pytest.approx(expected, abs=1e-6)
    assert w.agreement > 0.5
    # on the regular tasks the weighted vote follows the good labelers everywhere
    for task in range(1, 81):
        want = (1, 2) if task % 2 == 0 else (2, 1)
        assert (by_task_weighted[task].chosen, by_task_weighted[task].rejected) == want


def test_model_weights_and_flags_the_spammers(fitted):
    _, model = fitted
    assert max(model.weight(s) for s in SPAM) < min(model.weight(g) for g in GOOD)
    summary = model.summary()
    assert sorted(summary["flagged"]) == list(SPAM)
    assert len(summary["labelers"]) == 5  # flagged labelers stay in
    assert model.weight(12345) == 0.0


def test_soft_labels_on_every_row_agree_with_the_posterior(fitted):
    records, model = fitted
    rows, _ = run(records, model, soft_labels=True)
    assert len(rows) == len([r for r in records if r.choice in ("a", "b")])
    assert all(0.0 <= p.p_chosen <= 1.0 for p in rows)
    decider = [p for p in rows if p.record.task_id == DECIDER]
    a_row = next(p for p in decider if p.chosen == 1)
    b_row = next(p for p in decider if p.chosen == 2)
    assert a_row.p_chosen > 0.5
    assert a_row.p_chosen + b_row.p_chosen == pytest.approx(1.0, abs=2e-6)
    even = [p for p in rows if p.record.task_id == 2]
    assert all((p.p_chosen > 0.9) == (p.chosen == 1) for p in even)
    # aggregated rows carry it too, and the TRL format writes it as a column
    agg, _ = run(records, model, aggregate="weighted", soft_labels=True)
    fmt = TrlStandard(ExportOptions.from_dict({"soft_labels": True}))
    assert "p_chosen" in fmt.schema().names
    out = list(fmt.rows(agg))
    assert [r["p_chosen"] for r in out] == [p.p_chosen for p in agg]
    assert "p_chosen" not in TrlStandard(ExportOptions()).schema().names


def test_ranking_records_feed_the_model_by_slot_order():
    records = [
        rec(t, lab, None, cands=(1, 2, 3), ranking=[[3], [1], [2]] if lab != 9 else [[2], [1], [3]])
        for t in range(1, 30)
        for lab in (1, 2, 3, 9)
    ]
    model = fit_reliability(records, ExportOptions())
    rows, _ = run(records, model, aggregate="weighted", soft_labels=True)
    by_pair = {(p.chosen, p.rejected) for p in rows}
    assert by_pair == {(3, 1), (3, 2), (1, 2)}
    assert all(p.p_chosen > 0.9 for p in rows)
    assert model.weight(9) < model.weight(1)


def test_options_need_the_model_and_validate():
    opts = ExportOptions.from_dict({"aggregate": "weighted", "min_votes": 2, "soft_labels": "true"})
    assert opts.aggregate == "weighted" and opts.min_votes == 2 and opts.soft_labels is True
    with pytest.raises(ValueError, match="reliability model"):
        list(compile_pairs([rec(1, 1, "a")], opts, stats=CompileStats()))
    with pytest.raises(InvalidInput) as err:
        ExportOptions.from_dict({"soft_labels": "maybe"})
    assert err.value.field == "soft_labels"
    assert fit_reliability([], ExportOptions()) is None


# --- through the export service and CLI ---------------------------------------------------------------


@pytest.fixture
def spammed(make_project, labeler_in):
    project = make_project(overlap=5)
    tasks = add_tasks(project, prompts=15, candidates_per_prompt=3)
    good = [labeler_in(project) for _ in range(3)]
    spam = [labeler_in(project) for _ in range(2)]
    rng = np.random.default_rng(2)
    rows = []
    for i, task in enumerate(tasks):
        truth = "a" if i % 2 else "b"
        for user in good:
            rows.append(Annotation(task=task, labeler=user, choice=truth, strength=3))
        for user in spam:
            choice = str(rng.choice(["a", "b", "tie"]))
            rows.append(
                Annotation(task=task, labeler=user, choice=choice, strength=1 if choice != "tie" else None)
            )
    Annotation.objects.bulk_create(rows)
    return project, good, spam


@pytest.mark.django_db
def test_export_service_writes_weighted_rows_with_p_chosen(spammed):
    project, _, _ = spammed
    export = export_create(
        project=project,
        format="trl",
        options={"aggregate": "weighted", "soft_labels": True, "test_size": 0},
        enqueue=False,
    )
    export = export_run(export_id=export.pk)
    rows = [json.loads(line) for line in (Path(export.path) / "train.jsonl").read_text().splitlines()]
    assert len(rows) == Task.objects.filter(project=project).count() == 45
    assert all(0 <= r["p_chosen"] <= 1 for r in rows)
    assert all(r["p_chosen"] > 0.9 for r in rows)  # three strong good votes on every task
    manifest = export.manifest
    assert manifest["columns"] == ["prompt", "chosen", "rejected", "margin", "p_chosen"]
    model = manifest["reliability_model"]
    assert len(model["flagged"]) == 2 and len(model["labelers"]) == 5
    # labelers are pseudonymised in the manifest, never raw user ids
    assert all("labeler_id" not in r and isinstance(r["labeler"], str) for r in model["labelers"])


@pytest.mark.django_db
def test_soft_labels_need_a_format_with_the_column(spammed):
    project, _, _ = spammed
    with pytest.raises(InvalidInput) as err:
        export_create(project=project, format="hh_rlhf", options={"soft_labels": True}, enqueue=False)
    assert err.value.field == "soft_labels"


@pytest.mark.django_db
def test_cli_weighted_and_soft_labels(spammed, tmp_path):
    project, _, _ = spammed
    call_command(
        "export_preferences", "--project", project.slug, "--format", "trl", "--out", str(tmp_path / "d"),
        "--aggregate", "weighted", "--min-votes", "3", "--soft-labels",
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    export = Export.objects.get()
    assert export.options["aggregate"] == "weighted" and export.options["soft_labels"] is True
    first = json.loads((tmp_path / "d" / "train.jsonl").read_text().splitlines()[0])
    assert set(first) == {"prompt", "chosen", "rejected", "margin", "p_chosen"}


@pytest.mark.django_db
def test_export_model_sees_the_shown_order(make_project, labeler_in):
    """A labeler who always clicks the left response, with the sides shuffled, shows a strong
    position bias in the export's model: the fit reads each annotation's shown order."""
    project = make_project(overlap=4)
    tasks = add_tasks(project, prompts=15, candidates_per_prompt=3)
    good = [labeler_in(project) for _ in range(3)]
    lefty = labeler_in(project)
    rows = []
    for i, task in enumerate(tasks):
        slots = list(task.slots.order_by("slot").values_list("candidate_id", flat=True))
        truth = "a" if i % 2 else "b"
        for user in good:
            rows.append(Annotation(task=task, labeler=user, choice=truth, shown_order=slots))
        shown = slots if (i // 2) % 2 else slots[::-1]
        rows.append(
            Annotation(
                task=task, labeler=lefty, choice="a" if shown[0] == slots[0] else "b", shown_order=shown
            )
        )
    Annotation.objects.bulk_create(rows)
    export = export_create(project=project, format="trl", options={"soft_labels": True}, enqueue=False)
    model = export_run(export_id=export.pk).manifest["reliability_model"]
    biases = sorted(r["position_bias"] for r in model["labelers"])
    assert biases[-1] > 0.8 and all(abs(b) < 0.5 for b in biases[:-1])
