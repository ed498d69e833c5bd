"""Reports: the service's numbers equal agreement.py's on the same data, permissions, send-back,
downloads, and the Celery path (eager here; a real worker is exercised elsewhere)."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import defaultdict
from datetime import timedelta

import numpy as np
import pytest
from django.template.defaultfilters import floatformat
from django.urls import reverse
from django.utils import timezone

from annotate import agreement as ag
from annotate.models import (
    Annotation,
    Assignment,
    AssignmentState,
    AuditEvent,
    Guideline,
    Prompt,
    ReportSnapshot,
    Task,
    TaskKind,
)
from annotate.services import reports
from tests.conftest import add_tasks

CATS = ["a", "b", "tie", "both_bad"]


def seed_pairwise(project, labelers, *, seed=0, days=5):
    """Annotate every task of ``project`` by 2-4 of ``labelers`` with a noisy 'true' preference,
    a left-leaning labeler, ratings on every dimension, gold tasks, flags, skips and two
    guideline versions. Returns the annotations (ORM objects)."""
    rng = random.Random(seed)
    g1 = Guideline.objects.create(project=project, version=1, body="v1")
    g2 = Guideline.objects.create(project=project, version=2, body="v2")
    tasks = list(Task.objects.filter(project=project).prefetch_related("slots").order_by("id"))
    for t in tasks[:4]:
        t.is_gold = True
        t.gold_choice = "a"
        t.save(update_fields=["is_gold", "gold_choice"])
    dims = list(project.dimensions.values_list("key", flat=True))
    now = timezone.now()
    rows = []
    for i, task in enumerate(tasks):
        slots = [s.candidate_id for s in sorted(task.slots.all(), key=lambda s: s.slot)]
        truth = rng.choice(["a", "a", "b", "b", "tie"])
        for lab in rng.sample(labelers, rng.randint(2, min(4, len(labelers)))):
            shown = slots[:] if rng.random() < 0.5 else slots[::-1]
            if lab == labelers[0]:
                choice = "a" if shown[0] == slots[0] else "b"  # always picks the left one
            else:
                choice = truth if rng.random() < 0.7 else rng.choice(CATS)
            flagged = rng.random() < 0.05
            ratings = {d: {str(c): rng.randint(1, 5) for c in slots} for d in dims}
            rows.append(
                Annotation(
                    task=task,
                    labeler=lab,
                    choice=choice,
                    ratings=ratings,
                    shown_order=shown,
                    flagged=flagged,
                    flag_reason="odd" if flagged else "",
                    guideline=g1 if i % 3 else g2,
                    time_spent_ms=rng.randint(2000, 60000),
                )
            )
    created = Annotation.objects.bulk_create(rows)
    for j, ann in enumerate(created):
        Annotation.objects.filter(pk=ann.pk).update(created_at=now - timedelta(days=j % days, hours=1))
    for lab in labelers[:2]:
        Assignment.objects.create(
            task=tasks[-1],
            labeler=lab,
            state=AssignmentState.SKIPPED,
            leased_at=now - timedelta(minutes=5),
            expires_at=now + timedelta(minutes=5),
            shown_order=[],
            skip_reason="expertise",
        )
    return list(Annotation.objects.filter(task__project=project).select_related("task", "labeler"))


@pytest.fixture
def seeded(make_project, labeler_in):
    project = make_project(name="Report project", overlap=3, dimensions=["Helpfulness", "Harmlessness"])
    add_tasks(project, prompts=12, candidates_per_prompt=3, seed=1)  # 36 pairwise tasks
    labelers = [labeler_in(project, f"lab{i}") for i in range(5)]
    manager = labeler_in(project, "boss", role="manager")
    anns = seed_pairwise(project, labelers)
    return project, labelers, manager, anns


def slots_of(task):
    return [s.candidate_id for s in task.slots.order_by("slot")]


def reliability(anns, value):
    """labelers x tasks matrix (NaN = missing) of value(annotation); None values are missing."""
    labs = sorted({a.labeler_id for a in anns})
    tasks = sorted({a.task_id for a in anns})
    data = np.full((len(labs), len(tasks)), np.nan)
    for a in anns:
        v = value(a)
        if v is not None:
            data[labs.index(a.labeler_id), tasks.index(a.task_id)] = v
    return data


def test_pairwise_report_numbers_equal_the_agreement_module(seeded):
    project, labelers, _, anns = seeded
    report = reports.report_build(project, bootstrap=50, seed=3)
    code = {c: i for i, c in enumerate(CATS)}

    # overall agreement
    data = reliability(anns, lambda a: code.get(a.choice))
    ov = report["overall"]
    assert ov["krippendorff_alpha"] == pytest.approx(ag.krippendorff_alpha(data, "nominal"), abs=1e-12)
    assert ov["percent_agreement"] == pytest.approx(ag.percent_agreement(data), abs=1e-12)
    labelled = (~np.isnan(data)).sum(axis=0)
    assert ov["items"] == int((labelled >= 2).sum())
    modal = np.bincount(labelled[labelled >= 2]).argmax()
    table = np.array(
        [[np.sum(col == c) for c in range(4)] for col, m in zip(data.T, labelled, strict=True) if m == modal]
    )
    assert ov["fleiss_raters"] == modal and ov["fleiss_items"] == len(table)
    assert ov["fleiss_kappa"] == pytest.approx(ag.fleiss_kappa(table), abs=1e-12)

    # pairwise Cohen's kappa between the two labelers who share the most tasks
    by_lab = defaultdict(dict)
    for a in anns:
        if a.choice:
            by_lab[a.labeler.username][a.task_id] = a.choice
    top = report["pairs"][0]
    shared = sorted(set(by_lab[top["labeler_a"]]) & set(by_lab[top["labeler_b"]]))
    assert top["shared"] == len(shared)
    expected_kappa = ag.cohen_kappa(
        [by_lab[top["labeler_a"]][t] for t in shared],
        [by_lab[top["labeler_b"]][t] for t in shared],
        categories=CATS,
    )
    assert top["cohen_kappa"] == pytest.approx(expected_kappa, abs=1e-12)

    # per guideline version
    for block in report["by_guideline"]:
        sub = [a for a in anns if a.guideline.version == block["version"]]
        expected = ag.krippendorff_alpha(reliability(sub, lambda a: code.get(a.choice)), "nominal")
        assert block["krippendorff_alpha"] == pytest.approx(expected, abs=1e-12)
    assert [b["version"] for b in report["by_guideline"]] == [1, 2]

    # per dimension: preference derived from the ratings
    def dim_pref(key):
        def f(a):
            s = slots_of(a.task)
            x, y = a.ratings[key][str(s[0])], a.ratings[key][str(s[1])]
            return 0 if x > y else 1 if x < y else 2

        return f

    for block in report["by_dimension"]:
        expected = ag.krippendorff_alpha(reliability(anns, dim_pref(block["key"])), "nominal")
        assert block["krippendorff_alpha"] == pytest.approx(expected, abs=1e-12)
    assert {b["key"] for b in report["by_dimension"]} == {"helpfulness", "harmlessness"}

    # per labeler
    choice_anns = [a for a in anns if a.choice]
    loo = ag.leave_one_out_agreement(
        [a.task_id for a in choice_anns],
        [a.labeler_id for a in choice_anns],
        [code[a.choice] for a in choice_anns],
    )
    rows = {r["labeler_id"]: r for r in report["labelers"]}
    for lab, agree, total in zip(loo.labelers, loo.agree, loo.total, strict=True):
        assert rows[lab]["consensus_items"] == total
        assert rows[lab]["consensus_agreement"] == pytest.approx(agree / total)
    decisive = [a for a in anns if a.choice in ("a", "b")]
    picked_first = [(a.choice == "a") == (a.shown_order[0] == slots_of(a.task)[0]) for a in decisive]
    bias = ag.position_bias([a.labeler_id for a in decisive], picked_first)
    for lab, rate, p in zip(bias.labelers, bias.rate, bias.p_value, strict=True):
        assert rows[lab]["first_shown_rate"] == pytest.approx(rate)
        assert rows[lab]["position_p_value"] == pytest.approx(p)
    left_lover = rows[labelers[0].pk]
    assert left_lover["first_shown_rate"] > 0.7
    gold = [a for a in anns if a.task.is_gold]
    g_labs, g_ok, g_total = ag.gold_accuracy(
        [a.labeler_id for a in gold], [a.choice for a in gold], ["a"] * len(gold)
    )
    for lab, ok, total in zip(g_labs, g_ok, g_total, strict=True):
        assert rows[lab]["gold_items"] == total
        assert rows[lab]["gold_accuracy"] == pytest.approx(ok / total)
    for lab in labelers:
        mine = [a for a in anns if a.labeler_id == lab.pk]
        assert rows[lab.pk]["annotations"] == len(mine)
        assert rows[lab.pk]["median_time_ms"] == pytest.approx(
            float(np.median([a.time_spent_ms for a in mine]))
        )
        assert rows[lab.pk]["flags"] == sum(a.flagged for a in mine)
    assert rows[labelers[0].pk]["skips"] == 1 and rows[labelers[4].pk]["skips"] == 0

    # Bradley-Terry leaderboard by model name, same seed and resamples
    games = [a for a in anns if a.choice]
    model_of = {}
    for a in games:
        s = a.task.slots.order_by("slot").select_related("candidate")
        model_of[a.pk] = [x.candidate.model_name for x in s]
    keep = [a for a in games if model_of[a.pk][0] != model_of[a.pk][1]]
    bt = ag.bradley_terry(
        [model_of[a.pk][0] for a in keep],
        [model_of[a.pk][1] for a in keep],
        [{"a": 1.0, "b": 0.0}.get(a.choice, 0.5) for a in keep],
        bootstrap=50,
        seed=3,
    )
    board = report["leaderboard"]["rows"]
    assert [r["model"] for r in board] == bt.players
    assert [r["elo"] for r in board] == pytest.approx(bt.elo.tolist())
    assert [r["elo_low"] for r in board] == pytest.approx(bt.elo_low.tolist())
    assert report["leaderboard"]["games"] == len(keep)

    # over time and the consensus confusion matrix cover the same comparable annotations
    assert sum(r["annotations"] for r in report["over_time"]["rows"]) == int(loo.total.sum())
    assert np.array(report["consensus_confusion"]["matrix"]).sum() == int(loo.total.sum())
    assert len(report["over_time"]["rows"]) == 5

    # low-agreement tasks really split
    for row in report["low_agreement"]["rows"]:
        labels = [a.choice for a in anns if a.task_id == row["task_id"] and a.choice]
        assert len(labels) == row["labels"]
        assert (
            max(labels.count(c) for c in set(labels)) / len(labels) <= reports.LOW_AGREEMENT_MAX_SHARE + 1e-9
        )
    json.dumps(report, allow_nan=False)  # storable as JSON: no NaN anywhere


def test_ranking_report_numbers_equal_the_agreement_module(make_project, labeler_in, client):
    project = make_project(kind=TaskKind.RANKING, ranking_k=3, allow_rank_ties=True, overlap=3)
    add_tasks(project, prompts=15, candidates_per_prompt=3, seed=2)
    labelers = [labeler_in(project, f"r{i}") for i in range(4)]
    rng = random.Random(5)
    rows = []
    for task in Task.objects.filter(project=project):
        slots = slots_of(task)
        base = slots[:]
        rng.shuffle(base)
        for lab in rng.sample(labelers, 3):
            order = base[:] if rng.random() < 0.6 else rng.sample(slots, len(slots))
            ranking = [[order[0], order[1]], [order[2]]] if rng.random() < 0.2 else [[c] for c in order]
            rows.append(Annotation(task=task, labeler=lab, ranking=ranking, shown_order=slots))
    Annotation.objects.bulk_create(rows)
    anns = list(Annotation.objects.filter(task__project=project).select_related("task"))
    report = reports.report_build(project, bootstrap=0)

    def rank_vec(a):
        s = slots_of(a.task)
        out = [0.0] * len(s)
        pos = 1
        for group in a.ranking:
            for c in group:
                out[s.index(c)] = pos + (len(group) - 1) / 2
            pos += len(group)
        return out

    labs = sorted({a.labeler_id for a in anns})
    tasks = sorted({a.task_id for a in anns})
    data = np.full((len(labs), len(tasks) * 3), np.nan)
    per_task = defaultdict(list)
    for a in anns:
        r = rank_vec(a)
        t = tasks.index(a.task_id)
        data[labs.index(a.labeler_id), t * 3 : t * 3 + 3] = r
        per_task[a.task_id].append(r)
    ov = report["overall"]
    assert ov["krippendorff_alpha_ordinal"] == pytest.approx(
        ag.krippendorff_alpha(data, "ordinal"), abs=1e-12
    )
    assert ov["kendall_w_mean"] == pytest.approx(
        np.mean([ag.kendall_w(v) for v in per_task.values()]), abs=1e-12
    )
    assert ov["kendall_w_items"] == len(per_task)
    assert report["leaderboard"]["rows"]

    client.force_login(labeler_in(project, "rank-manager", role="manager"))
    page = client.get(reverse("reports:project", args=[project.slug]))
    assert page.status_code == 200
    assert b"Kendall" in page.content and page.content.count(b"<svg") >= 3


# ---------------------------------------------------------------------------------- pages


def test_report_page_permissions(client, seeded, make_user, labeler_in):
    project, labelers, manager, _ = seeded
    url = reverse("reports:project", args=[project.slug])
    assert client.get(url).status_code == 302  # anonymous: to the login page
    client.force_login(labelers[1])
    assert client.get(url).status_code == 403
    assert (
        client.post(reverse("reports:send_back", args=[project.slug]), {"task_ids": [1]}).status_code == 403
    )
    client.force_login(make_user("outsider"))
    assert client.get(url).status_code == 404
    assert client.get(reverse("reports:download", args=[project.slug, "labelers", "csv"])).status_code == 404
    assert client.get(reverse("reports:project", args=["no-such-project"])).status_code == 404
    researcher = labeler_in(project, "res", role="researcher")
    client.force_login(researcher)
    assert client.get(url).status_code == 200
    # researchers see reports but may not send tasks back (that is the manager's call)
    assert (
        client.post(reverse("reports:send_back", args=[project.slug]), {"task_ids": [1]}).status_code == 403
    )
    client.force_login(manager)
    resp = client.get(url)
    assert resp.status_code == 200
    assert resp.headers["Content-Security-Policy"]
    assert b'style="' not in resp.content and b"<script>" not in resp.content


def test_report_page_shows_the_numbers_and_escapes_names(client, seeded):
    project, labelers, manager, _ = seeded
    labelers[2].username = "<b>mallory</b>"
    labelers[2].save()
    from annotate.models import Candidate

    Candidate.objects.filter(prompt__project=project, model_name="model-2").update(
        model_name="<script>x</script>"
    )
    client.force_login(manager)
    resp = client.get(reverse("reports:project", args=[project.slug]))
    html = resp.content.decode()
    snap = reports.report_latest(project=project)
    assert floatformat(snap.data["overall"]["krippendorff_alpha"], 3) in html
    assert "&lt;b&gt;mallory&lt;/b&gt;" in html and "<b>mallory</b>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x</script>" not in html
    assert html.count("<svg") >= 4


def test_downloads_parse_as_csv_and_json(client, seeded):
    project, _, manager, _ = seeded
    client.force_login(manager)
    client.get(reverse("reports:project", args=[project.slug]))
    snap = reports.report_latest(project=project)
    for table in reports.TABLES:
        resp = client.get(reverse("reports:download", args=[project.slug, table, "json"]))
        assert resp.status_code == 200, table
        assert resp["Content-Type"].startswith("application/json")
        body = json.loads(resp.content)
        columns, rows = reports.report_table(snap.data, table)
        assert body["columns"] == columns and len(body["rows"]) == len(rows)
        resp = client.get(reverse("reports:download", args=[project.slug, table, "csv"]))
        assert resp.status_code == 200
        assert "attachment" in resp["Content-Disposition"]
        parsed = list(csv.DictReader(io.StringIO(resp.content.decode())))
        assert len(parsed) == len(rows)
    labelers = json.loads(
        client.get(reverse("reports:download", args=[project.slug, "labelers", "json"])).content
    )
    assert {r["username"] for r in labelers["rows"]} >= {"lab0", "lab1"}
    assert client.get(f"/reports/{project.slug}/download/nope.csv").status_code == 404
    assert client.get(f"/reports/{project.slug}/download/labelers.xml").status_code == 404


def test_send_back_raises_targets_and_is_audited(client, seeded):
    project, _, manager, _ = seeded
    tasks = list(Task.objects.filter(project=project).order_by("id")[:3])
    before = {t.pk: t.target_labels for t in tasks}
    client.force_login(manager)
    resp = client.post(
        reverse("reports:send_back", args=[project.slug]),
        {"task_ids": [t.pk for t in tasks[:2]], "extra_labels": "2"},
    )
    assert resp.status_code == 302
    after = dict(Task.objects.filter(pk__in=before).values_list("pk", "target_labels"))
    assert after[tasks[0].pk] == before[tasks[0].pk] + 2
    assert after[tasks[1].pk] == before[tasks[1].pk] + 2
    assert after[tasks[2].pk] == before[tasks[2].pk]
    assert AuditEvent.objects.filter(project=project, action="tasks.send_back").exists()
    # another project's tasks are untouched even if their ids are posted
    with pytest.raises(reports.InvalidInput):
        reports.tasks_send_back(project=project, task_ids=[tasks[0].pk], extra_labels=0, actor=manager)
    with pytest.raises(reports.InvalidInput):
        reports.tasks_send_back(project=project, task_ids=[], extra_labels=1, actor=manager)
    resp = client.post(
        reverse("reports:send_back", args=[project.slug]), {"task_ids": [], "extra_labels": "1"}
    )
    assert resp.status_code == 302  # with an error message, nothing changed


def test_send_back_refuses_tasks_of_other_projects_and_changes_nothing(client, seeded, make_project):
    """Ids that are not this project's tasks are named in the error and nothing is sent back
    (before: they were dropped in silence and the page said "0 task(s) sent back")."""
    project, _, manager, _ = seeded
    other = make_project(name="Other")
    other_tasks = add_tasks(other, prompts=1)
    ours = Task.objects.filter(project=project).order_by("id").first()
    before = ours.target_labels
    with pytest.raises(reports.InvalidInput) as err:
        reports.tasks_send_back(
            project=project, task_ids=[ours.pk, other_tasks[0].pk, 10**9], extra_labels=1, actor=manager
        )
    assert err.value.field == "task_ids"
    assert f"{other_tasks[0].pk}, {10**9}" in err.value.message
    assert Task.objects.get(pk=other_tasks[0].pk).target_labels == other.overlap
    assert Task.objects.get(pk=ours.pk).target_labels == before
    client.force_login(manager)
    resp = client.post(
        reverse("reports:send_back", args=[project.slug]),
        {"task_ids": [other_tasks[0].pk], "extra_labels": "1"},
        follow=True,
    )
    shown = [str(m) for m in resp.context["messages"]]
    assert any(f"No task {other_tasks[0].pk} in this project" in m for m in shown), shown
    assert not any("sent back for" in m for m in shown), shown


def test_send_back_says_which_tasks_already_ask_for_the_most_labels(client, seeded):
    project, _, manager, _ = seeded
    capped, open_task = list(Task.objects.filter(project=project).order_by("id")[:2])
    Task.objects.filter(pk=capped.pk).update(target_labels=reports.MAX_TARGET_LABELS)
    client.force_login(manager)
    resp = client.post(
        reverse("reports:send_back", args=[project.slug]),
        {"task_ids": [capped.pk, open_task.pk], "extra_labels": "1"},
        follow=True,
    )
    shown = " ".join(str(m) for m in resp.context["messages"])
    assert "1 task(s) sent back for 1 more label(s) each" in shown
    assert f"1 already ask(s) for the most labels ({reports.MAX_TARGET_LABELS})" in shown
    resp = client.post(
        reverse("reports:send_back", args=[project.slug]),
        {"task_ids": [capped.pk], "extra_labels": "1"},
        follow=True,
    )
    shown = [str(m) for m in resp.context["messages"]]
    assert not any("sent back for" in m for m in shown), shown
    assert any("already ask" in m for m in shown), shown


def test_recompute_through_celery(seeded, celery_eager, django_capture_on_commit_callbacks):
    """The Celery path: report_request stores a pending snapshot and enqueues the task on commit;
    run eagerly here, the task fills the snapshot in."""
    project, _, manager, anns = seeded
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        snap = reports.report_request(project=project, actor=manager)
        assert snap.state == ReportSnapshot.State.PENDING
    assert len(callbacks) == 1
    snap.refresh_from_db()
    assert snap.state == ReportSnapshot.State.READY
    assert snap.annotation_count == len(anns)
    assert snap.duration_ms is not None and snap.computed_at is not None
    assert snap.data["overall"]["items"] > 0
    assert reports.report_latest(project=project) == snap


def test_pending_request_is_not_queued_twice(seeded, django_capture_on_commit_callbacks):
    project, _, manager, _ = seeded
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = reports.report_request(project=project, actor=manager)
        second = reports.report_request(project=project, actor=manager)
    assert first == second and len(callbacks) == 1


def test_failed_computation_is_recorded(seeded, monkeypatch):
    project, *_ = seeded
    snap = ReportSnapshot.objects.create(project=project)

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(reports, "report_build", boom)
    with pytest.raises(RuntimeError):
        reports.report_snapshot_compute(snapshot_id=snap.pk)
    snap.refresh_from_db()
    assert snap.state == ReportSnapshot.State.FAILED and "disk on fire" in snap.error


def test_recompute_view_small_project_computes_at_once(client, seeded):
    project, _, manager, _ = seeded
    client.force_login(manager)
    resp = client.post(reverse("reports:recompute", args=[project.slug]))
    assert resp.status_code == 302
    assert ReportSnapshot.objects.filter(project=project, state="ready").count() == 1


def test_recompute_view_large_project_goes_to_the_worker(
    client, seeded, settings, django_capture_on_commit_callbacks
):
    project, _, manager, _ = seeded
    settings.PREFHUB_REPORT_SYNC_MAX_ANNOTATIONS = 1
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = client.post(reverse("reports:recompute", args=[project.slug]))
    assert resp.status_code == 302 and len(callbacks) == 1
    assert ReportSnapshot.objects.filter(project=project, state="pending").count() == 1
    page = client.get(reverse("reports:project", args=[project.slug]))
    assert b"being computed" in page.content


def test_empty_project_report(make_project, labeler_in, client):
    project = make_project(name="Empty")
    manager = labeler_in(project, "mgr", role="manager")
    report = reports.report_build(project)
    assert report["totals"]["annotations"] == 0
    assert report["overall"]["krippendorff_alpha"] is None
    client.force_login(manager)
    assert client.get(reverse("reports:project", args=[project.slug])).status_code == 200


def test_leaderboard_counts_outright_wins_ties_and_losses(make_project, labeler_in):
    """19 wins, 4 ties and 1 loss for model-0 over 24 games: "Wins" used to show 21 (ties counted as
    half wins) beside "Ties 4", which reads as 25 outcomes from 24 games."""
    project = make_project(name="Arena")
    add_tasks(project, prompts=24, candidates_per_prompt=2)
    lab = labeler_in(project, "judge")
    outcomes = ["x"] * 19 + ["tie"] * 4 + ["y"]  # x: model-0 wins, y: model-1 wins
    rows = []
    tasks = Task.objects.filter(project=project).order_by("id").prefetch_related("slots__candidate")
    for task, outcome in zip(tasks, outcomes, strict=True):
        slots = sorted(task.slots.all(), key=lambda s: s.slot)
        x_slot = "a" if slots[0].candidate.model_name == "model-0" else "b"
        choice = {"x": x_slot, "y": "b" if x_slot == "a" else "a", "tie": "tie"}[outcome]
        rows.append(
            Annotation(task=task, labeler=lab, choice=choice, shown_order=[s.candidate_id for s in slots])
        )
    Annotation.objects.bulk_create(rows)
    board = {r["model"]: r for r in reports.report_build(project, bootstrap=10)["leaderboard"]["rows"]}
    assert (board["model-0"]["wins"], board["model-0"]["ties"], board["model-0"]["losses"]) == (19, 4, 1)
    assert (board["model-1"]["wins"], board["model-1"]["ties"], board["model-1"]["losses"]) == (1, 4, 19)
    assert all(r["wins"] + r["ties"] + r["losses"] == r["games"] for r in board.values())


def test_position_bias_over_ranking_tasks_of_different_sizes(make_project, labeler_in):
    """A ranking project of K=4 whose smaller prompts give 3-response tasks: a labeler who always
    ranks the first-shown response on top (7 tasks of 3, 5 of 4) gets the exact p-value over all
    12, (1/3)^7 (1/4)^5; the report showed the 3-response group's alone (about 1000 times larger)."""
    project = make_project(kind=TaskKind.RANKING, ranking_k=4, overlap=1)
    add_tasks(project, prompts=7, candidates_per_prompt=3, seed=1)
    for prompt in Prompt.objects.filter(project=project):  # the second batch reuses the ids p0, p1...
        Prompt.objects.filter(pk=prompt.pk).update(external_id=f"small-{prompt.external_id}")
    add_tasks(project, prompts=5, candidates_per_prompt=4, seed=2)
    lab = labeler_in(project, "firsty")
    rows = []
    for task in Task.objects.filter(project=project):
        slots = slots_of(task)
        rows.append(Annotation(task=task, labeler=lab, ranking=[[c] for c in slots], shown_order=slots))
    Annotation.objects.bulk_create(rows)
    row = next(r for r in reports.report_build(project, bootstrap=0)["labelers"] if r["username"] == "firsty")
    assert (row["first_shown_rate"], row["first_shown_items"]) == (1.0, 12)
    assert row["position_p_value"] == pytest.approx((1 / 3) ** 7 * (1 / 4) ** 5, rel=1e-6)
