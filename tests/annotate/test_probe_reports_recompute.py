"""Probe: the report's coefficients on small hand-made projects equal a direct recomputation written
here with NumPy/SciPy from the textbook formulas (Krippendorff's ordinal alpha over (task,
response) units, Kendall's W with the tie correction, Fleiss' kappa, the shared-task-weighted mean
Cohen's kappa, exact binomial position-bias p-values), through the JSON download."""

from __future__ import annotations

import json
import random
from itertools import combinations

import numpy as np
import pytest
from django.urls import reverse
from scipy.stats import binomtest, rankdata

from annotate.models import Annotation, Task, TaskKind
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _download(client, project, table):
    resp = client.get(reverse("reports:download", args=[project.slug, table, "json"]))
    assert resp.status_code == 200, resp.content[:500]
    return json.loads(resp.content, parse_constant=lambda t: pytest.fail(f"{t} in JSON"))["rows"]


def _alpha_ordinal(units):
    """units: list of lists of values (each unit's values); Krippendorff (2011)."""
    units = [u for u in units if len(u) >= 2]
    vals = sorted({v for u in units for v in u})
    idx = {v: i for i, v in enumerate(vals)}
    nv = len(vals)
    o = np.zeros((nv, nv))
    for u in units:
        m = len(u)
        for i, x in enumerate(u):
            for j, y in enumerate(u):
                if i != j:
                    o[idx[x], idx[y]] += 1 / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    delta = np.zeros((nv, nv))
    for c in range(nv):
        for k in range(nv):
            lo, hi = min(c, k), max(c, k)
            delta[c, k] = (n_c[lo : hi + 1].sum() - (n_c[c] + n_c[k]) / 2) ** 2
    d_o = (o * delta).sum()
    d_e = (np.outer(n_c, n_c) * delta).sum() / (n - 1)
    return 1 - d_o / d_e


def _kendall_w(rank_rows):
    r = np.asarray(rank_rows, dtype=float)
    m, n = r.shape
    s = ((r.sum(axis=0) - r.sum() / n) ** 2).sum()
    t = 0.0
    for row in r:
        _, counts = np.unique(row, return_counts=True)
        t += (counts**3 - counts).sum()
    den = m * m * (n**3 - n) - m * t
    return None if den == 0 else 12 * s / den


def test_ranking_ordinal_alpha_and_kendall_w(client, make_project, labeler_in):
    rng = random.Random(3)
    k = 4
    project = make_project(kind=TaskKind.RANKING, ranking_k=k, allow_rank_ties=True)
    add_tasks(project, prompts=8, candidates_per_prompt=k)
    labs = [labeler_in(project, f"ord{i}") for i in range(3)]
    manager = labeler_in(project, "ordmgr", role="manager")
    tasks = list(Task.objects.filter(project=project).prefetch_related("slots").order_by("id"))
    rows, ranks_by_task = [], {}
    for task in tasks:
        ids = [s.candidate_id for s in sorted(task.slots.all(), key=lambda s: s.slot)]
        for lab in labs[: rng.choice([2, 3])]:
            order = ids[:]
            rng.shuffle(order)
            tied = rng.random() < 0.4
            ranking = [order[:2], *[[c] for c in order[2:]]] if tied else [[c] for c in order]
            rows.append(Annotation(task=task, labeler=lab, ranking=ranking, shown_order=ids, time_spent_ms=9))
            place, pos = {}, 1
            for group in ranking:
                for c in group:
                    place[c] = pos + (len(group) - 1) / 2
                pos += len(group)
            ranks_by_task.setdefault(task.pk, []).append([place[c] for c in ids])
    Annotation.objects.bulk_create(rows)
    client.force_login(manager)
    overall = _download(client, project, "metrics")[0]
    units = [[r[s] for r in rr] for rr in ranks_by_task.values() for s in range(k)]
    assert overall["krippendorff_alpha_ordinal"] == pytest.approx(_alpha_ordinal(units))
    ws = [w for w in (_kendall_w(rr) for rr in ranks_by_task.values() if len(rr) >= 2) if w is not None]
    assert overall["kendall_w_items"] == len(ws)
    assert overall["kendall_w_mean"] == pytest.approx(np.mean(ws))
    # sanity: the tie-corrected W formula equals scipy's rankdata of the same rows
    assert all(np.allclose(rankdata(r), r) for rr in ranks_by_task.values() for r in rr)


def test_pairwise_fleiss_cohen_and_position_bias(client, make_project, labeler_in):
    rng = random.Random(5)
    project = make_project()
    add_tasks(project, prompts=12)
    labs = [labeler_in(project, f"pw{i}") for i in range(3)]
    manager = labeler_in(project, "pwmgr", role="manager")
    tasks = list(Task.objects.filter(project=project).prefetch_related("slots").order_by("id"))
    rows, labels, first = [], {}, {}
    cats = ["a", "b", "tie", "both_bad"]
    for ti, task in enumerate(tasks):
        ids = [s.candidate_id for s in sorted(task.slots.all(), key=lambda s: s.slot)]
        who = labs if ti % 3 else labs[:2]
        for lab in who:
            choice = rng.choice(["a", "a", "b", "tie", "both_bad"])
            shown = ids if rng.random() < 0.5 else ids[::-1]
            rows.append(Annotation(task=task, labeler=lab, choice=choice, shown_order=shown, time_spent_ms=9))
            labels.setdefault(task.pk, {})[lab.username] = choice
            if choice in ("a", "b"):
                picked_first = (choice == "a") == (shown[0] == ids[0])
                first.setdefault(lab.username, []).append(picked_first)
    Annotation.objects.bulk_create(rows)
    client.force_login(manager)
    overall = _download(client, project, "metrics")[0]

    # Fleiss on the tasks with the modal number of labels
    sizes = [len(v) for v in labels.values()]
    modal = max(set(sizes), key=lambda s: (sizes.count(s), -s))
    table = np.array([[list(v.values()).count(c) for c in cats] for v in labels.values() if len(v) == modal])
    p_i = ((table * (table - 1)).sum(axis=1) / (modal * (modal - 1))).mean()
    p_j = table.sum(axis=0) / table.sum()
    assert overall["fleiss_raters"] == modal and overall["fleiss_items"] == len(table)
    assert overall["fleiss_kappa"] == pytest.approx((p_i - (p_j**2).sum()) / (1 - (p_j**2).sum()))

    # mean Cohen's kappa over labeler pairs sharing 5+ tasks, weighted by shared tasks
    kappas, weights = [], []
    for x, y in combinations([u.username for u in labs], 2):
        both = [(v[x], v[y]) for v in labels.values() if x in v and y in v]
        if len(both) < 5:
            continue
        conf = np.zeros((4, 4))
        for u, w in both:
            conf[cats.index(u), cats.index(w)] += 1
        n = conf.sum()
        po = np.trace(conf) / n
        pe = (conf.sum(axis=1) * conf.sum(axis=0)).sum() / n**2
        kappas.append((po - pe) / (1 - pe))
        weights.append(n)
    assert overall["cohen_pairs"] == len(kappas)
    assert overall["cohen_kappa_mean"] == pytest.approx(np.average(kappas, weights=weights))

    by_name = {r["username"]: r for r in _download(client, project, "labelers")}
    for name, picks in first.items():
        row = by_name[name]
        assert row["first_shown_items"] == len(picks)
        assert row["first_shown_rate"] == pytest.approx(sum(picks) / len(picks))
        assert row["position_p_value"] == pytest.approx(binomtest(sum(picks), len(picks), 0.5).pvalue)
