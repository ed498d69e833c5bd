"""Agreement and quality reports for a project, computed from the database into NumPy arrays.

What a report holds (``report_build`` returns it as a JSON-ready dict, cached in ``ReportSnapshot``)
---------------------------------------------------------------------------------------------------
* ``overall``, ``by_guideline`` (one block per guideline version, with the tasks whose labels were
  all given under it, and a ``"mixed"`` block for tasks labeled under several versions, so every
  labeled task is in exactly one version row) and ``by_dimension`` (one per rating dimension):
  agreement metrics with the number of tasks, items (tasks with two or more labels) and
  annotations each rests on. Every coefficient ``x`` has a 95% bootstrap interval over items
  (``x_low``/``x_high``, ``CI_RESAMPLES`` seeded resamples, ``agreement.nominal_intervals`` and
  friends), and each block says whether it rests on a small sample (``small_sample``,
  ``warnings``: fewer than ``SMALL_SAMPLE_ITEMS`` items, or Cohen pairs sharing fewer than
  ``SMALL_SAMPLE_PAIR_SHARED`` tasks).
  - Pairwise projects: labels are the canonical choices a / b / tie / both_bad; per dimension the
    preference is derived from the ratings (higher score wins, equal scores are a tie).
    Percent agreement, Krippendorff's nominal alpha, Fleiss' kappa (on the tasks with the most
    common number of labels) and the mean pairwise Cohen's kappa (labeler pairs with at least
    ``MIN_PAIR_SHARED`` shared tasks, weighted by shared tasks).
  - Ranking projects: the same nominal statistics on each labeler's top choice, plus Krippendorff's
    ordinal alpha over (task, response) units with the rank as value and the mean Kendall's W per
    task. Per dimension, the scores are turned into ranks (higher score better, equal = tied).
* ``labelers``: per labeler, agreement with the leave-one-out consensus (majority of the *other*
  labelers of the same task), gold accuracy, position bias (rate of preferring the first-shown
  response, with an exact two-sided binomial p-value), median time, flags and skips.
* ``over_time``: consensus agreement of the annotations created each day (or week, for long
  projects). ``consensus_confusion``: each label against the others' consensus. ``pairs``: the
  labeler pairs with the most shared tasks, with agreement, Cohen's kappa and their confusion matrix.
* ``leaderboard``: Bradley-Terry strengths of ``Candidate.model_name`` on the Elo scale with
  seeded bootstrap intervals; every judgment is a game, ties and "both bad" count half a win each.
* ``low_agreement``: the tasks whose labels split the most, to send back for more labels.
* ``judges``: each AI judge against the human majority, each labeler and per dimension, with
  bootstrap intervals, beside human-vs-majority (``annotate.judges.agreement``). AI judges'
  annotations (``source="judge"``) are left out of every human figure above.
* ``reliability`` (pairwise projects): the reliability model (``annotate.reliability``, the same
  EM fit and the same ``LabelsBuilder`` as the exports) over every annotation not rejected in
  review, AI judges included and marked: per labeler the estimated accuracy, position bias, tie
  propensity, label count and ``flagged`` (accuracy under ``flag_threshold()``), worst first. A
  flag only marks: nothing is left out of any figure or export because of it. Ranking projects get
  ``covered: False`` and a note (the model covers pairwise judgments).

Scale: every column is read once with ``values_list(...).iterator(chunk_size=...)`` into NumPy
arrays; everything after that is vectorised (bincounts over task x label codes, one pass per
label-pair offset for the labeler pairs, stacked MM fits for the bootstrap).
"""

from __future__ import annotations

import gc
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    F,
    FilteredRelation,
    FloatField,
    Func,
    IntegerField,
    Q,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Extract, Least
from django.utils import timezone

from annotate import agreement as ag
from annotate import reliability as rel
from annotate.errors import InvalidInput
from annotate.letters import response_letter
from annotate.models import (
    Annotation,
    AnnotationReview,
    Assignment,
    AssignmentState,
    Candidate,
    Dimension,
    Guideline,
    Project,
    ReportSnapshot,
    ReviewVerdict,
    Task,
    TaskCandidate,
    TaskKind,
)
from annotate.selectors import counted_judgments
from core.audit import audit_actor, audit_record
from core.jobs import job_fail, job_finish
from core.outbox import outbox_enqueue

logger = logging.getLogger(__name__)

REPORT_VERSION = 1
PAIRWISE_CATEGORIES = ("a", "b", "tie", "both_bad")
DIMENSION_CATEGORIES = ("a", "b", "tie")
CHUNK_SIZE = 20_000
MIN_PAIR_SHARED = 5
MAX_PAIRS = 30
MAX_LOW_AGREEMENT = 200
LOW_AGREEMENT_MAX_SHARE = 0.6
BOOTSTRAP_SAMPLES = 200
BOOTSTRAP_SEED = 0
UNKNOWN_MODEL = "(unknown model)"
MAX_SEND_BACK_TASKS = 5000
MAX_SEND_BACK_EXTRA = 10
MAX_TARGET_LABELS = 100
# Pending snapshots older than this are considered lost (worker died) and may be requested again.
PENDING_STALE_SECONDS = 30 * 60


def sync_max_annotations() -> int:
    """Projects with fewer annotations than this are computed in the request; others by Celery."""
    return int(getattr(settings, "PREFHUB_REPORT_SYNC_MAX_ANNOTATIONS", 20_000))


# ------------------------------------------------------------------------------------------------
# loading


@dataclass
class ReportData:
    """The project's annotations as arrays, one entry per annotation (``n``), and its tasks (``t``).

    ``code``: the nominal label used for agreement (pairwise: index into PAIRWISE_CATEGORIES;
    ranking: the slot of the single top-ranked response), -1 when there is none. ``ranks``
    (ranking projects): ``n x K`` average ranks by slot, NaN where absent. ``dims[key]``: per
    dimension, codes into DIMENSION_CATEGORIES (pairwise) or ``n x K`` ranks (ranking).
    """

    kind: str
    task: np.ndarray
    labeler: np.ndarray
    code: np.ndarray
    guideline: np.ndarray
    time_ms: np.ndarray
    flagged: np.ndarray
    created: np.ndarray  # POSIX seconds
    first_pick: np.ndarray  # 1 preferred the first-shown response, 0 not, -1 not decisive
    first_p0: np.ndarray  # the rate expected without position bias, per annotation
    gold_hit: np.ndarray  # 1 right, 0 wrong, -1 not a gold task or nothing to compare
    ranks: np.ndarray | None
    dims: dict[str, np.ndarray] = field(default_factory=dict)
    # per task (sorted ids)
    task_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    task_slots: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    task_target: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    models: list[str] = field(default_factory=list)
    task_models: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    # dense indices, per annotation: into task_ids, and into labeler_ids
    tix: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lix: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    labeler_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n(self) -> int:
        return len(self.task)


def _rank_vector(groups: list, slot_of: dict[int, int], k: int) -> np.ndarray:
    """Average ranks (1 = best) by slot from a ranking given as groups of ids, best first."""
    out = np.full(k, np.nan)
    position = 1
    for group in groups:
        members = group if isinstance(group, list) else [group]
        avg = position + (len(members) - 1) / 2.0
        for cid in members:
            slot = slot_of.get(cid)
            if slot is not None:
                out[slot] = avg
        position += len(members)
    return out


def _ranks_from_scores(scores: dict, slots: list[int], k: int) -> np.ndarray:
    """Higher score is better; equal scores tie. Unrated slots stay NaN."""
    vals = np.array([float(scores.get(str(c), np.nan)) for c in slots] + [np.nan] * (k - len(slots)))
    rated = ~np.isnan(vals)
    out = np.full(k, np.nan)
    if rated.sum() >= 2:
        from scipy.stats import rankdata

        out[rated] = rankdata(-vals[rated])
    return out


def load_report_data(project: Project, *, chunk_size: int = CHUNK_SIZE) -> ReportData:
    """Read the project's tasks, slots and annotations into arrays (a handful of queries)."""
    kind = project.kind
    dim_keys = list(Dimension.objects.filter(project=project).values_list("key", flat=True))

    task_rows = list(
        Task.objects.filter(project=project)
        .order_by("id")
        .values_list("id", "target_labels", "is_gold", "gold_choice", "gold_ranking")
    )
    task_ids = np.array([r[0] for r in task_rows], dtype=np.int64)
    task_target = np.array([r[1] for r in task_rows], dtype=np.int64)
    n_tasks = len(task_ids)

    slot_rows = np.array(
        list(
            TaskCandidate.objects.filter(task__project=project)
            .order_by()
            .values_list("task_id", "slot", "candidate_id")
            .iterator(chunk_size=chunk_size * 4)
        ),
        dtype=np.int64,
    ).reshape(-1, 3)
    k_max = int(slot_rows[:, 1].max()) + 1 if len(slot_rows) else 2
    task_slots = np.full((n_tasks, max(k_max, 2)), -1, dtype=np.int64)
    if len(slot_rows):
        t_idx = np.searchsorted(task_ids, slot_rows[:, 0])
        task_slots[t_idx, slot_rows[:, 1]] = slot_rows[:, 2]

    model_rows = Candidate.objects.filter(prompt__project=project).order_by().values_list("id", "model_name")
    cand_ids, cand_model = [], []
    for cid, name in model_rows.iterator(chunk_size=chunk_size * 4):
        cand_ids.append(cid)
        cand_model.append(name or UNKNOWN_MODEL)
    models = sorted(set(cand_model))
    model_code = {m: i for i, m in enumerate(models)}
    cand_ids_arr = np.array(cand_ids, dtype=np.int64)
    order = np.argsort(cand_ids_arr)
    cand_ids_arr = cand_ids_arr[order]
    cand_code = np.array([model_code[cand_model[i]] for i in order], dtype=np.int64)
    task_models = np.full(task_slots.shape, -1, dtype=np.int64)
    filled = task_slots >= 0
    if filled.any():
        task_models[filled] = cand_code[np.searchsorted(cand_ids_arr, task_slots[filled])]

    gold_choice_code = {c: i for i, c in enumerate(PAIRWISE_CATEGORIES)}
    task_gold = np.full(n_tasks, -1, dtype=np.int64)
    gold_rank_by_task: dict[int, list] = {}
    for i, (_, _, is_gold, gold_choice, gold_ranking) in enumerate(task_rows):
        if is_gold and gold_choice:
            task_gold[i] = gold_choice_code.get(gold_choice, -1)
        if is_gold and gold_ranking:
            gold_rank_by_task[i] = gold_ranking

    versions = dict(Guideline.objects.filter(project=project).values_list("id", "version"))
    # Built in SQL so that a million rows cost no datetime or JSON objects in Python: the first
    # shown candidate id as an integer, epoch seconds (PostgreSQL), each dimension's ratings as text.
    exprs: dict = {"first_shown": Cast(KeyTextTransform("0", "shown_order"), BigIntegerField())}
    epoch = connection.vendor == "postgresql"
    if epoch:
        exprs["created_s"] = Cast(Extract("created_at", "epoch"), FloatField())
    # people's judgments not rejected in review (AI judges' labels have their own block, ``judges``)
    qs = counted_judgments(project=project).order_by()
    sql_dims = epoch and kind == TaskKind.PAIRWISE and bool(dim_keys)
    if sql_dims:
        # Each dimension's score of slot A and of slot B, looked up in SQL through the task's slots.
        qs = qs.annotate(
            slot_a=FilteredRelation("task__slots", condition=Q(task__slots__slot=0)),
            slot_b=FilteredRelation("task__slots", condition=Q(task__slots__slot=1)),
        )
        for i, key in enumerate(dim_keys):
            for side in ("a", "b"):
                path = Cast(F(f"slot_{side}__candidate_id"), TextField())
                score = Func(F("ratings"), Value(key), path, function="jsonb_extract_path_text")
                exprs[f"dim_{i}_{side}"] = Cast(score, FloatField())
    else:
        for i, key in enumerate(dim_keys):
            exprs[f"dim_{i}"] = KeyTextTransform(key, "ratings")
    exprs["choice_code"] = Case(
        *[When(choice=c, then=Value(i)) for i, c in enumerate(PAIRWISE_CATEGORIES)],
        default=Value(-1),
        output_field=IntegerField(),
    )
    fields = ["task_id", "labeler_id", "guideline_id", "time_spent_ms", "flagged", *exprs]
    if not epoch:
        fields.append("created_at")
    if kind == TaskKind.RANKING:
        fields.append("ranking")
    qs = qs.annotate(**exprs).values_list(*fields)
    # Every column is a plain scalar on PostgreSQL (dates as epochs, scores cast in SQL), so the rows
    # can skip Django's per-row conversion and stream from a server-side cursor.
    raw = connection.vendor == "postgresql" and epoch and kind != TaskKind.RANKING
    cols = _read_columns(qs, len(fields), chunk_size, raw=raw)
    col = dict(zip(fields, cols, strict=True))

    task = np.array(col["task_id"], dtype=np.int64)
    n = len(task)
    tix = np.searchsorted(task_ids, task)
    shown_first = np.nan_to_num(np.array(col["first_shown"], dtype=float), nan=-1).astype(np.int64)
    created = (
        np.array(col["created_s"], dtype=float)
        if epoch
        else np.array([d.timestamp() for d in col["created_at"]])
    )
    dim_texts = {} if sql_dims else {key: col[f"dim_{i}"] for i, key in enumerate(dim_keys)}
    rankings = col.get("ranking", [])
    labeler = np.array(col["labeler_id"], dtype=np.int64)
    labeler_ids, lix = np.unique(labeler, return_inverse=True)
    data = ReportData(
        kind=kind,
        task=task,
        labeler=labeler,
        code=np.full(n, -1, dtype=np.int64),
        guideline=np.array([versions.get(g, 0) for g in col["guideline_id"]], dtype=np.int64),
        time_ms=np.array(col["time_spent_ms"], dtype=float),
        flagged=np.array(col["flagged"], dtype=bool),
        created=created.reshape(-1),
        first_pick=np.full(n, -1, dtype=np.int64),
        first_p0=np.full(n, 0.5),
        gold_hit=np.full(n, -1, dtype=np.int64),
        ranks=None,
        task_ids=task_ids,
        task_slots=task_slots,
        task_target=task_target,
        models=models,
        task_models=task_models,
        tix=tix,
        lix=lix.astype(np.int64),
        labeler_ids=labeler_ids,
    )
    if n == 0:  # nothing labeled yet: empty columns of the right shape (a ranking's are (0, K))
        k = task_slots.shape[1]
        if kind == TaskKind.RANKING:
            data.ranks = np.full((0, k), np.nan)
        data.dims = {
            key: np.full((0, k), np.nan) if kind == TaskKind.RANKING else np.full(0, -1, dtype=np.int64)
            for key in dim_keys
        }
        return data

    slot0 = task_slots[tix, 0]
    slot1 = task_slots[tix, 1]
    if kind == TaskKind.PAIRWISE:
        choice = np.array(col["choice_code"], dtype=np.int64)
        data.code = choice
        decisive = (choice == 0) | (choice == 1)
        known = shown_first >= 0
        data.first_pick = np.where(
            decisive & known, ((choice == 0) == (shown_first == slot0)).astype(np.int64), -1
        )
        gold = task_gold[tix]
        data.gold_hit = np.where((gold >= 0) & (choice >= 0), (gold == choice).astype(np.int64), -1)
        for i, key in enumerate(dim_keys):
            if sql_dims:
                a = np.array(col[f"dim_{i}_a"], dtype=float)
                b = np.array(col[f"dim_{i}_b"], dtype=float)
            else:
                a, b = _pair_scores(dim_texts[key], slot0, slot1)
            both = ~np.isnan(a) & ~np.isnan(b)
            data.dims[key] = np.where(both, np.select([a > b, a < b], [0, 1], 2), -1).astype(np.int64)
        return data

    # ranking projects
    k = task_slots.shape[1]
    ranks = np.full((n, k), np.nan)
    dim_ranks = {key: np.full((n, k), np.nan) for key in dim_keys}
    for i in range(n):
        slots = [int(c) for c in task_slots[tix[i]] if c >= 0]
        slot_of = {c: s for s, c in enumerate(slots)}
        if rankings[i]:
            ranks[i] = _rank_vector(rankings[i], slot_of, k)
        for key in dim_keys:
            text = dim_texts[key][i]
            if text:
                dim_ranks[key][i] = _ranks_from_scores(json.loads(text), slots, k)
    data.ranks = ranks
    data.dims = dim_ranks
    data.code = _top_slot(ranks)
    n_slots = (task_slots[tix] >= 0).sum(axis=1)
    has_first = shown_first >= 0
    first_slot = np.where(has_first, np.argmax(task_slots[tix] == shown_first[:, None], axis=1), -1)
    top = data.code
    data.first_pick = np.where((top >= 0) & has_first, (top == first_slot).astype(np.int64), -1)
    data.first_p0 = 1.0 / np.maximum(n_slots, 2)
    for i in np.flatnonzero(np.isin(tix, list(gold_rank_by_task))):
        if np.isnan(ranks[i]).all():
            continue
        slots = [int(c) for c in task_slots[tix[i]] if c >= 0]
        gold_vec = _rank_vector(gold_rank_by_task[int(tix[i])], {c: s for s, c in enumerate(slots)}, k)
        data.gold_hit[i] = int(
            np.array_equal(np.nan_to_num(gold_vec, nan=-1), np.nan_to_num(ranks[i], nan=-1))
        )
    return data


def _raw_rows(qs, chunk_size: int):
    """The queryset's rows straight from a PostgreSQL server-side cursor, in blocks."""
    sql, params = qs.query.sql_with_params()
    with transaction.atomic():
        connection.ensure_connection()
        with connection.connection.cursor(name=f"report_{uuid.uuid4().hex}") as cur:
            cur.itersize = chunk_size
            cur.execute(sql, params)
            while rows := cur.fetchmany(chunk_size):
                yield from rows


def _read_columns(qs, width: int, chunk_size: int, *, raw: bool = False) -> list[list]:
    """Stream ``values_list`` rows and transpose them a block at a time (no per-row appends)."""
    cols: list[list] = [[] for _ in range(width)]
    buf: list[tuple] = []

    def flush() -> None:
        if buf:
            for target, values in zip(cols, zip(*buf, strict=True), strict=True):
                target.extend(values)
            buf.clear()

    # Millions of fresh tuples make the cyclic garbage collector rescan a growing heap over and
    # over; none of them can form a cycle, so it is paused while they stream in.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for row in _raw_rows(qs, chunk_size) if raw else qs.iterator(chunk_size=chunk_size):
            buf.append(row)
            if len(buf) >= 5 * chunk_size:
                flush()
        flush()
    finally:
        if was_enabled:
            gc.enable()
    return cols


def _pair_scores(texts: list, slot0: np.ndarray, slot1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of slot A and slot B from each annotation's ``{candidate_id: score}`` JSON text."""
    n = len(texts)
    a = np.full(n, np.nan)
    b = np.full(n, np.nan)
    keys0 = slot0.astype(str).tolist()
    keys1 = slot1.astype(str).tolist()
    loads = json.loads
    for i, text in enumerate(texts):
        if text:
            scores = loads(text)
            x = scores.get(keys0[i])
            y = scores.get(keys1[i])
            if x is not None and y is not None:
                a[i] = x
                b[i] = y
    return a, b


def _top_slot(ranks: np.ndarray) -> np.ndarray:
    """The slot ranked first, when exactly one response holds the best rank; -1 otherwise."""
    filled = ~np.isnan(ranks)
    safe = np.where(filled, ranks, np.inf)
    best = safe.min(axis=1)
    single = (safe == best[:, None]).sum(axis=1) == 1
    return np.where(single & (filled.sum(axis=1) >= 2), safe.argmin(axis=1), -1).astype(np.int64)


# ------------------------------------------------------------------------------------------------
# metric blocks


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# Below these a block's coefficients are flagged as resting on a small sample (page and CSV).
SMALL_SAMPLE_ITEMS = 30
SMALL_SAMPLE_PAIR_SHARED = 30
CI_RESAMPLES = ag.CI_RESAMPLES
CI_SEED = 0
# Every agreement coefficient of a block, with a bootstrap interval (``<name>_low``/``<name>_high``).
COEFFICIENTS = (
    "percent_agreement",
    "krippendorff_alpha",
    "krippendorff_alpha_ordinal",
    "fleiss_kappa",
    "cohen_kappa_mean",
    "kendall_w_mean",
)


def _set_interval(block: dict, name: str, interval: tuple[float | None, float | None]) -> None:
    low, high = interval
    if block.get(name) is None:
        low = high = None
    block[f"{name}_low"], block[f"{name}_high"] = _finite_or_none(low), _finite_or_none(high)


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None else _finite(x)


def nominal_block(
    tix: np.ndarray,
    lix: np.ndarray,
    code: np.ndarray,
    k: int,
    n_tasks: int,
    n_labelers: int,
    *,
    resamples: int = CI_RESAMPLES,
    seed: int = CI_SEED,
) -> dict:
    """Agreement on nominal labels in long format: ``tix``/``lix`` dense task and labeler indices
    (0..n_tasks-1, 0..n_labelers-1), ``code`` label codes 0..k-1 (-1 = no label). Each coefficient
    has a seeded bootstrap interval over items (``resamples``; 0 for none)."""
    keep = code >= 0
    tix, lix, code = tix[keep], lix[keep], code[keep]
    block: dict = {
        "tasks": len(np.unique(tix)),
        "items": 0,
        "annotations": 0,
        "labelers": int(np.count_nonzero(np.bincount(lix, minlength=n_labelers))),
        "percent_agreement": None,
        "krippendorff_alpha": None,
        "fleiss_kappa": None,
        "fleiss_items": 0,
        "fleiss_raters": None,
        "cohen_kappa_mean": None,
        "cohen_pairs": 0,
        "cohen_min_shared": None,
    }
    for name in ("percent_agreement", "krippendorff_alpha", "fleiss_kappa", "cohen_kappa_mean"):
        _set_interval(block, name, (None, None))
    if len(code) == 0:
        return block
    counts = np.bincount(tix * k + code, minlength=n_tasks * k).reshape(n_tasks, k)
    m = counts.sum(axis=1)
    pairable = m >= 2
    block["items"] = int(pairable.sum())
    block["annotations"] = int(m[pairable].sum())
    if not pairable.any():
        return block
    c = counts[pairable]
    mp = m[pairable]
    block["percent_agreement"] = _finite(float((c * (c - 1)).sum() / (mp * (mp - 1)).sum()))
    block["krippendorff_alpha"] = _finite(ag.krippendorff_alpha_from_counts(c, np.arange(k), "nominal"))
    freq = np.bincount(mp)
    modal = int(np.argmax(freq))
    rows = c[mp == modal]
    block["fleiss_raters"] = modal
    block["fleiss_items"] = len(rows)
    block["fleiss_kappa"] = _finite(ag.fleiss_kappa(rows))
    pt = ag.pair_tables(tix, lix, code, k, n_labelers)
    shared = pt.shared
    ok = shared >= MIN_PAIR_SHARED
    kappas = ag.cohen_kappa_tables(pt.tables[ok])
    good = np.isfinite(kappas)
    if good.any():
        block["cohen_kappa_mean"] = _finite(float(np.average(kappas[good], weights=shared[ok][good])))
        block["cohen_pairs"] = int(good.sum())
        block["cohen_min_shared"] = int(shared[ok][good].min())
    if resamples:
        for name, interval in ag.nominal_intervals(
            c, fleiss_raters=modal, resamples=resamples, seed=seed
        ).items():
            _set_interval(block, name, interval)
        if block["cohen_kappa_mean"] is not None:
            _set_interval(
                block,
                "cohen_kappa_mean",
                ag.cohen_mean_interval(
                    tix, lix, code, k, n_labelers, min_shared=MIN_PAIR_SHARED, resamples=resamples, seed=seed
                ),
            )
    return block


def _add_warnings(block: dict) -> dict:
    """``small_sample`` and readable ``warnings``: too few items with two or more labels, or
    labeler pairs behind Cohen's kappa that share too few tasks."""
    warnings = []
    if block.get("items", 0) < SMALL_SAMPLE_ITEMS:
        warnings.append(
            f"Small sample: {block.get('items', 0)} items with 2+ labels (fewer than {SMALL_SAMPLE_ITEMS}); "
            "the coefficients and their intervals are unreliable."
        )
    if block.get("cohen_min_shared") is not None and block["cohen_min_shared"] < SMALL_SAMPLE_PAIR_SHARED:
        warnings.append(
            f"Cohen's κ includes labeler pairs sharing only {block['cohen_min_shared']} tasks "
            f"(fewer than {SMALL_SAMPLE_PAIR_SHARED})."
        )
    block["small_sample"] = bool(warnings)
    block["warnings"] = warnings
    return block


def _units_from_ranks(task: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(task, slot) units and rank values of every ranked response, long format."""
    rows, slots = np.nonzero(~np.isnan(ranks))
    k = ranks.shape[1]
    return task[rows] * k + slots, ranks[rows, slots]


def ranking_block(
    tix: np.ndarray,
    lix: np.ndarray,
    ranks: np.ndarray,
    n_tasks: int,
    n_labelers: int,
    *,
    resamples: int = CI_RESAMPLES,
    seed: int = CI_SEED,
) -> dict:
    """Top-choice nominal statistics, ordinal alpha over (task, response) units, mean Kendall's W,
    each with a bootstrap interval over tasks."""
    complete = (~np.isnan(ranks)).sum(axis=1) >= 2
    task, lix, ranks = tix[complete], lix[complete], ranks[complete]
    block = nominal_block(
        task, lix, _top_slot(ranks), ranks.shape[1], n_tasks, n_labelers, resamples=resamples, seed=seed
    )
    block["krippendorff_alpha_ordinal"] = None
    block["kendall_w_mean"] = None
    block["kendall_w_items"] = 0
    # tasks with two or more rankings (the ordinal alpha's items); ``items`` counts only the
    # judgments with a single best response (the top-choice statistics), which leaves out a tie
    block["ranked_items"] = int((np.bincount(task) >= 2).sum()) if len(task) else 0
    _set_interval(block, "krippendorff_alpha_ordinal", (None, None))
    _set_interval(block, "kendall_w_mean", (None, None))
    if len(task) == 0:
        return block
    units, values = _units_from_ranks(task, ranks)
    uniq_units, u_idx = np.unique(units, return_inverse=True)
    vals, v_idx = np.unique(values, return_inverse=True)
    from scipy import sparse

    counts = sparse.csr_matrix((np.ones(len(u_idx)), (u_idx, v_idx)), shape=(len(uniq_units), len(vals)))
    counts.sum_duplicates()
    block["krippendorff_alpha_ordinal"] = _finite(ag.krippendorff_alpha_from_counts(counts, vals, "ordinal"))
    w = ag.kendall_w_by_task(task, ranks)
    block["kendall_w_mean"], block["kendall_w_items"] = (float(w.mean()) if len(w) else None), len(w)
    if resamples:
        _set_interval(
            block,
            "krippendorff_alpha_ordinal",
            ag.ordinal_alpha_interval(task, ranks, resamples=resamples, seed=seed),
        )
        _set_interval(block, "kendall_w_mean", ag.mean_interval(w, resamples=resamples, seed=seed))
    return block


# ------------------------------------------------------------------------------------------------
# the report


def _dimension_block(data: ReportData, key: str, *, resamples: int = CI_RESAMPLES) -> dict:
    values = data.dims[key]
    sizes = (len(data.task_ids), len(data.labeler_ids))
    if data.kind == TaskKind.PAIRWISE:
        block = nominal_block(
            data.tix, data.lix, values, len(DIMENSION_CATEGORIES), *sizes, resamples=resamples
        )
    else:
        block = ranking_block(data.tix, data.lix, values, *sizes, resamples=resamples)
    return _add_warnings(block)


def _agreement_block(
    data: ReportData, mask: np.ndarray | None = None, *, resamples: int = CI_RESAMPLES
) -> dict:
    sel = slice(None) if mask is None else mask
    sizes = (len(data.task_ids), len(data.labeler_ids))
    if data.kind == TaskKind.PAIRWISE:
        block = nominal_block(
            data.tix[sel],
            data.lix[sel],
            data.code[sel],
            len(PAIRWISE_CATEGORIES),
            *sizes,
            resamples=resamples,
        )
    else:
        block = ranking_block(data.tix[sel], data.lix[sel], data.ranks[sel], *sizes, resamples=resamples)
    block["tasks"] = len(np.unique(data.tix[sel]))  # labeled tasks in this row, with or without a label code
    return _add_warnings(block)


MIXED_VERSIONS = "mixed"


def _guideline_blocks(data: ReportData, *, resamples: int = CI_RESAMPLES) -> list[dict]:
    """One row per guideline version with the tasks whose labels were all given under it, and a
    ``"mixed"`` row for the tasks labeled under two or more versions (each version alone would see
    too few labels to count them): every labeled task is in exactly one row."""
    if data.n == 0:
        return []
    n_tasks = len(data.task_ids)
    lo = np.full(n_tasks, np.iinfo(np.int64).max)
    hi = np.full(n_tasks, np.iinfo(np.int64).min)
    np.minimum.at(lo, data.tix, data.guideline)
    np.maximum.at(hi, data.tix, data.guideline)
    mixed = (lo != hi)[data.tix]  # per annotation: its task has labels under several versions
    blocks = [
        {"version": int(v), **_agreement_block(data, (data.guideline == v) & ~mixed, resamples=resamples)}
        for v in np.unique(data.guideline[~mixed])
    ]
    if mixed.any():
        blocks.append({"version": MIXED_VERSIONS, **_agreement_block(data, mixed, resamples=resamples)})
    return blocks


def _categories(data: ReportData) -> list[str]:
    if data.kind == TaskKind.PAIRWISE:
        return list(PAIRWISE_CATEGORIES)
    # ranking: the response ranked first, by the letter of its slot (as the review page names it)
    return [response_letter(i) for i in range(data.task_slots.shape[1])]


def _median_by_group(idx: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    out = np.full(groups, np.nan)
    ok = ~np.isnan(values)
    idx, values = idx[ok], values[ok]
    if len(values) == 0:
        return out
    if values.min() >= 0 and values.max() < 2**40 and np.all(values == np.round(values)):
        # whole non-negative numbers (milliseconds): one sort of a combined integer key
        base = int(values.max()) + 1
        key = np.sort(idx.astype(np.int64) * base + values.astype(np.int64))
        idx, values = key // base, (key % base).astype(float)
    else:
        order = np.lexsort((values, idx))
        idx, values = idx[order], values[order]
    counts = np.bincount(idx, minlength=groups)
    keys = np.flatnonzero(counts)
    counts = counts[keys]
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lo = values[start + (counts - 1) // 2]
    hi = values[start + counts // 2]
    out[keys] = (lo + hi) / 2
    return out


# The labelers table's columns, in the order the page shows them. A stored report is jsonb on
# PostgreSQL, which does not keep an object's key order, so downloads take the order from here.
LABELER_COLUMNS = [
    "labeler_id",
    "username",
    "annotations",
    "consensus_agreement",
    "consensus_items",
    "gold_accuracy",
    "gold_items",
    "first_shown_rate",
    "first_shown_items",
    "position_p_value",
    "median_time_ms",
    "flags",
    "skips",
    "alerts",
]


def _labelers_table(data: ReportData, loo: ag.LabelerAgreement, skips: dict[int, int]) -> list[dict]:
    users = dict(
        get_user_model()
        .objects.filter(pk__in=set(np.unique(data.labeler).tolist()) | set(skips))
        .values_list("pk", "username")
    )
    labs = np.array(sorted(set(np.unique(data.labeler).tolist()) | set(skips)), dtype=np.int64)
    n_lab = len(labs)
    idx = np.searchsorted(labs, data.labeler)
    count = np.bincount(idx, minlength=n_lab)
    flags = np.bincount(idx, weights=data.flagged, minlength=n_lab)
    gold = data.gold_hit >= 0
    gold_n = np.bincount(idx[gold], minlength=n_lab)
    gold_ok = np.bincount(idx[gold], weights=data.gold_hit[gold], minlength=n_lab)
    median_ms = _median_by_group(idx, data.time_ms, n_lab)
    loo_pos = np.searchsorted(labs, loo.labelers)
    loo_agree = np.zeros(n_lab)
    loo_total = np.zeros(n_lab)
    loo_agree[loo_pos] = loo.agree
    loo_total[loo_pos] = loo.total
    # position bias, against the rate expected without bias (1/2 for pairs, 1/K for rankings)
    bias_first = np.zeros(n_lab, dtype=np.int64)
    bias_total = np.zeros(n_lab, dtype=np.int64)
    bias_p = np.full(n_lab, np.nan)
    decisive = data.first_pick >= 0
    if decisive.any():  # each judgment against its own chance rate (a ranking task may have fewer than K)
        res = ag.position_bias(
            data.labeler[decisive], data.first_pick[decisive] == 1, p0=data.first_p0[decisive]
        )
        pos = np.searchsorted(labs, res.labelers)
        bias_first[pos], bias_total[pos], bias_p[pos] = res.first, res.total, res.p_value
    rows = []
    for i, lab in enumerate(labs.tolist()):
        rows.append(
            {
                "labeler_id": lab,
                "username": users.get(lab, f"user {lab}"),
                "annotations": int(count[i]),
                "consensus_agreement": _finite(loo_agree[i] / loo_total[i]) if loo_total[i] else None,
                "consensus_items": int(loo_total[i]),
                "gold_accuracy": _finite(gold_ok[i] / gold_n[i]) if gold_n[i] else None,
                "gold_items": int(gold_n[i]),
                "first_shown_rate": _finite(bias_first[i] / bias_total[i]) if bias_total[i] else None,
                "first_shown_items": int(bias_total[i]),
                "position_p_value": _finite(bias_p[i]),
                "median_time_ms": _finite(median_ms[i]),
                "flags": int(flags[i]),
                "skips": int(skips.get(lab, 0)),
            }
        )
    rows.sort(key=lambda r: (-r["annotations"], r["username"]))
    return rows


ALERT_MIN_ITEMS = 20
ALERT_POSITION_P = 0.01
ALERT_GOLD_MIN_ITEMS = 5
ALERT_GOLD_ACCURACY = 0.6
ALERT_AGREEMENT_GAP = 0.15
ALERT_FAST_SHARE = 0.25


def _add_alerts(rows: list[dict], loo: ag.LabelerAgreement, data: ReportData) -> None:
    """Short reasons to look at a labeler: position bias (p < 0.01 over 20+ judgments), gold
    accuracy under 60% (5+ gold tasks), consensus agreement 15 points under the project's, or a
    median time under a quarter of the project's median."""
    overall = loo.agree.sum() / loo.total.sum() if loo.total.sum() else None
    times = data.time_ms[~np.isnan(data.time_ms)]
    project_median = float(np.median(times)) if len(times) else None
    for r in rows:
        alerts = []
        if (
            r["first_shown_items"] >= ALERT_MIN_ITEMS
            and r["position_p_value"] is not None
            and r["position_p_value"] < ALERT_POSITION_P
        ):
            alerts.append("position bias")
        if r["gold_items"] >= ALERT_GOLD_MIN_ITEMS and (r["gold_accuracy"] or 0) < ALERT_GOLD_ACCURACY:
            alerts.append("low gold accuracy")
        if (
            overall is not None
            and r["consensus_items"] >= ALERT_MIN_ITEMS
            and r["consensus_agreement"] is not None
            and r["consensus_agreement"] < overall - ALERT_AGREEMENT_GAP
        ):
            alerts.append("low agreement")
        if (
            project_median
            and r["median_time_ms"] is not None
            and r["median_time_ms"] < ALERT_FAST_SHARE * project_median
        ):
            alerts.append("very fast")
        r["alerts"] = alerts


def _over_time(data: ReportData, loo: ag.LabelerAgreement) -> dict:
    comparable = loo.per_annotation >= 0
    if not comparable.any():
        return {"bucket": "day", "rows": []}
    created = data.created[comparable]
    agrees = loo.per_annotation[comparable] == 1
    day = np.floor(created / 86400).astype(np.int64)
    span = int(day.max() - day.min())
    if span > 120:
        # weeks starting on Monday (1970-01-01 was a Thursday)
        bucket, start = "week", (day - (day + 3) % 7)
    else:
        bucket, start = "day", day
    keys, inv = np.unique(start, return_inverse=True)
    n = np.bincount(inv)
    agree = np.bincount(inv, weights=agrees)
    rows = [
        {
            "start": datetime.fromtimestamp(int(k) * 86400, tz=UTC).date().isoformat(),
            "agreement": _finite(a / c),
            "annotations": int(c),
        }
        for k, a, c in zip(keys.tolist(), agree, n, strict=True)
    ]
    return {"bucket": bucket, "rows": rows}


def _pairs(data: ReportData, usernames: dict[int, str]) -> list[dict]:
    k = len(_categories(data))
    pt = ag.pair_tables(data.tix, data.lix, data.code, k, len(data.labeler_ids))
    shared = pt.shared
    ok = np.flatnonzero(shared >= MIN_PAIR_SHARED)
    ok = ok[np.argsort(-shared[ok], kind="stable")][:MAX_PAIRS]
    kappas = ag.cohen_kappa_tables(pt.tables[ok])
    rows = []
    for pos, kappa in zip(ok.tolist(), kappas.tolist(), strict=True):
        a, b = data.labeler_ids[pt.a[pos]], data.labeler_ids[pt.b[pos]]
        table = pt.tables[pos]
        rows.append(
            {
                "labeler_a": usernames.get(int(a), str(a)),
                "labeler_b": usernames.get(int(b), str(b)),
                "shared": int(shared[pos]),
                "agreement": _finite(float(np.trace(table) / shared[pos])),
                "cohen_kappa": _finite(kappa),
                "matrix": table.astype(int).tolist(),
            }
        )
    return rows


def _leaderboard(data: ReportData, *, bootstrap: int, seed: int) -> dict:
    if data.n == 0 or not data.models:
        return {"rows": [], "games": 0, "bootstrap": bootstrap}
    tix = data.tix
    if data.kind == TaskKind.PAIRWISE:
        code = data.code
        ok = code >= 0
        ma = data.task_models[tix, 0]
        mb = data.task_models[tix, 1]
        outcome = np.select([code == 0, code == 1], [1.0, 0.0], 0.5)
        keep = ok & (ma >= 0) & (mb >= 0) & (ma != mb)
        a, b, out = ma[keep], mb[keep], outcome[keep]
    else:
        ranks = data.ranks
        k = ranks.shape[1]
        parts_a, parts_b, parts_o = [], [], []
        for i in range(k):
            for j in range(i + 1, k):
                ri, rj = ranks[:, i], ranks[:, j]
                mi, mj = data.task_models[tix, i], data.task_models[tix, j]
                keep = ~np.isnan(ri) & ~np.isnan(rj) & (mi >= 0) & (mj >= 0) & (mi != mj)
                parts_a.append(mi[keep])
                parts_b.append(mj[keep])
                parts_o.append(np.select([ri[keep] < rj[keep], ri[keep] > rj[keep]], [1.0, 0.0], 0.5))
        a, b, out = np.concatenate(parts_a), np.concatenate(parts_b), np.concatenate(parts_o)
    if len(out) == 0:
        return {"rows": [], "games": 0, "bootstrap": bootstrap}
    res = ag.bradley_terry(a, b, out, bootstrap=bootstrap, seed=seed)
    # Outright results per model (the fit itself counts a tie as half a win for each side).
    n_models = len(data.models)
    wins = np.bincount(np.concatenate([a[out == 1.0], b[out == 0.0]]), minlength=n_models)
    losses = np.bincount(np.concatenate([a[out == 0.0], b[out == 1.0]]), minlength=n_models)
    ties = np.bincount(np.concatenate([a[out == 0.5], b[out == 0.5]]), minlength=n_models)
    # equal ratings (within half the 0.1 Elo shown) share a rank: 1 + the models rated above
    rank = 1 + (res.elo[None, :] > res.elo[:, None] + 0.05).sum(axis=1)
    rows = []
    for i, r in enumerate(res.rows()):
        rows.append(
            {
                "rank": int(rank[i]),
                "model": data.models[int(r["player"])],
                "elo": r["elo"],
                "elo_low": _finite(r["elo_low"]),
                "elo_high": _finite(r["elo_high"]),
                "strength": r["theta"],
                "games": int(r["games"]),
                "wins": int(wins[int(r["player"])]),
                "ties": int(ties[int(r["player"])]),
                "losses": int(losses[int(r["player"])]),
            }
        )
    return {"rows": rows, "games": len(out), "bootstrap": bootstrap, "seed": seed, "confidence": 0.95}


def _low_agreement(data: ReportData, k: int, categories: list[str]) -> dict:
    keep = data.code >= 0
    if not keep.any():
        return {"rows": [], "total": 0, "max_share": LOW_AGREEMENT_MAX_SHARE}
    tasks = data.task_ids
    counts = np.bincount(data.tix[keep] * k + data.code[keep], minlength=len(tasks) * k).reshape(
        len(tasks), k
    )
    m = counts.sum(axis=1)
    share = counts.max(axis=1) / np.maximum(m, 1)
    low = np.flatnonzero((m >= 2) & (share <= LOW_AGREEMENT_MAX_SHARE + 1e-9))
    low = low[np.lexsort((tasks[low], -m[low], share[low]))][:MAX_LOW_AGREEMENT]
    ids = tasks[low].tolist()
    info = {
        tid: (ext, msgs)
        for tid, ext, msgs in Task.objects.filter(pk__in=ids).values_list(
            "id", "prompt__external_id", "prompt__messages"
        )
    }
    target = data.task_target[low]
    rows = []
    for pos, tid, tgt in zip(low.tolist(), ids, target.tolist(), strict=True):
        ext, msgs = info.get(tid, ("", []))
        last_user = next((t.get("content", "") for t in reversed(msgs or []) if t.get("role") == "user"), "")
        rows.append(
            {
                "task_id": tid,
                "prompt_id": ext,
                "prompt": last_user[:160],
                "labels": int(m[pos]),
                "counts": {c: int(n) for c, n in zip(categories, counts[pos].tolist(), strict=True) if n},
                "majority_share": _finite(share[pos]),
                "target_labels": int(tgt),
            }
        )
    total = int(((m >= 2) & (share <= LOW_AGREEMENT_MAX_SHARE + 1e-9)).sum())
    return {"rows": rows, "total": total, "max_share": LOW_AGREEMENT_MAX_SHARE}


def report_build(
    project: Project,
    *,
    data: ReportData | None = None,
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
    ci_resamples: int = CI_RESAMPLES,
) -> dict:
    """The full report as a JSON-ready dict (no NaN: undefined numbers are ``None``).
    ``bootstrap``: resamples of the leaderboard; ``ci_resamples``: of the agreement intervals."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if data is None:
        data = load_report_data(project)
    timings["load_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    categories = _categories(data)
    k = len(categories)
    dimensions = list(Dimension.objects.filter(project=project).values_list("key", "label"))
    skips = dict(
        Assignment.objects.filter(task__project=project, state=AssignmentState.SKIPPED)
        .order_by()
        .values_list("labeler_id")
        .annotate(n=Count("id"))
    )
    valid = data.code >= 0
    dense = ag.leave_one_out_agreement(data.tix[valid], data.lix[valid], data.code[valid])
    loo = ag.LabelerAgreement(
        data.labeler_ids[dense.labelers], dense.agree, dense.total, dense.per_annotation, dense.consensus
    )
    per_annotation = np.full(data.n, -1, dtype=np.int8)
    per_annotation[valid] = loo.per_annotation
    consensus = np.full(data.n, -1, dtype=np.int64)
    consensus[valid] = loo.consensus
    loo_all = ag.LabelerAgreement(loo.labelers, loo.agree, loo.total, per_annotation, consensus)

    labelers = _labelers_table(data, loo, skips)
    _add_alerts(labelers, loo, data)
    usernames = {r["labeler_id"]: r["username"] for r in labelers}
    confusion = np.zeros((k, k), dtype=np.int64)
    comparable = per_annotation >= 0
    np.add.at(confusion, (data.code[comparable], consensus[comparable]), 1)

    report = {
        "version": REPORT_VERSION,
        "kind": data.kind,
        "project": {"id": project.pk, "slug": project.slug, "name": project.name},
        "categories": categories,
        "totals": {
            "annotations": data.n,
            "tasks": len(data.task_ids),
            "labeled_tasks": int(np.count_nonzero(np.bincount(data.tix, minlength=len(data.task_ids)))),
            "labelers": len(data.labeler_ids),
            "flagged": int(data.flagged.sum()),
            "skips": int(sum(skips.values())),
            "gold_annotations": int((data.gold_hit >= 0).sum()),
        },
        "overall": _agreement_block(data, resamples=ci_resamples),
        "by_guideline": _guideline_blocks(data, resamples=ci_resamples),
        "by_dimension": [
            {"key": key, "label": label, **_dimension_block(data, key, resamples=ci_resamples)}
            for key, label in dimensions
        ],
        "labelers": labelers,
        "over_time": _over_time(data, loo_all),
        "consensus_confusion": {"categories": categories, "matrix": confusion.tolist()},
        "pairs": _pairs(data, usernames),
        "leaderboard": _leaderboard(data, bootstrap=bootstrap, seed=seed),
        "low_agreement": _low_agreement(data, k, categories),
        "judges": _judges_block(project, data, bootstrap=bootstrap, seed=seed),
        "reliability": _reliability_block(project, data),
        "settings": {
            "min_pair_shared": MIN_PAIR_SHARED,
            "low_agreement_max_share": LOW_AGREEMENT_MAX_SHARE,
            "bootstrap": bootstrap,
            "ci_resamples": ci_resamples,
            "ci_level": ag.CI_LEVEL,
            "small_sample_items": SMALL_SAMPLE_ITEMS,
            "small_sample_pair_shared": SMALL_SAMPLE_PAIR_SHARED,
        },
    }
    timings["compute_s"] = time.perf_counter() - t1
    report["timings"] = {k2: round(v, 4) for k2, v in timings.items()}
    return report


def _judges_block(project: Project, data: ReportData, *, bootstrap: int, seed: int) -> dict:
    """AI judges against the humans (``annotate.judges.agreement``); pairwise projects only."""
    if data.kind != TaskKind.PAIRWISE:
        return {"judges": [], "human_vs_majority": None, "bootstrap": bootstrap}
    from annotate.judges.agreement import judge_agreement

    return judge_agreement(project, bootstrap=bootstrap, seed=seed)


RELIABILITY_NOTE_RANKING = (
    "The reliability model covers pairwise judgments (A / B / tie / both bad); it is not fitted on rankings."
)


def _reliability_block(project: Project, data: ReportData, *, chunk_size: int = CHUNK_SIZE) -> dict:
    """The reliability model's labeler estimates (see the module docstring). One query for the
    labels (the report's arrays hold no strength), one for the names."""
    threshold = rel.flag_threshold()
    block: dict = {"covered": data.kind == TaskKind.PAIRWISE, "threshold": threshold, "rows": []}
    if data.kind != TaskKind.PAIRWISE:
        return {**block, "note": RELIABILITY_NOTE_RANKING}
    rejected = AnnotationReview.objects.filter(
        annotation__task__project=project, verdict=ReviewVerdict.REJECTED
    ).values("annotation_id")
    rows = (
        Annotation.objects.filter(task__project=project, choice__in=rel.CLASS_NAMES)
        .exclude(pk__in=rejected)
        .order_by()
        .values_list("task_id", "labeler_id", "choice", "strength", "shown_order", "source")
        .iterator(chunk_size=chunk_size)
    )
    builder = rel.LabelsBuilder()
    task_ids, slots = data.task_ids, data.task_slots
    for task_id, labeler_id, choice, strength, shown, source in rows:
        t = int(np.searchsorted(task_ids, task_id))
        if t >= len(task_ids) or task_ids[t] != task_id or slots[t, 0] < 0 or slots[t, 1] < 0:
            continue
        builder.add(
            task_id=task_id,
            labeler_id=labeler_id,
            first=int(slots[t, 0]),
            second=int(slots[t, 1]),
            verdict=choice,
            strength=strength,
            shown_order=shown,
            judge=source == "judge",
        )
    result = builder.fit(threshold=threshold)
    if result is None:
        return block
    estimates = result.labeler_estimates()
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[r["labeler_id"] for r in estimates])
        .values_list("pk", "username")
    )
    block["rows"] = [
        {
            "rank": i + 1,
            "labeler_id": r["labeler_id"],
            "username": names.get(r["labeler_id"], f"user {r['labeler_id']}"),
            "is_judge": r["labeler_id"] in builder.judges,
            "accuracy": r["accuracy"],
            "position_bias": r["position_bias"],
            "tie_propensity": r["tie_propensity"],
            "labels": r["labels"],
            "weight": r["weight"],
            "flagged": r["flagged"],
        }
        for i, r in enumerate(estimates)
    ]
    block.update(
        items=len(builder.items),
        labels=len(builder),
        iterations=result.iterations,
        converged=result.converged,
        flagged=sum(1 for r in block["rows"] if r["flagged"]),
    )
    return block


# ------------------------------------------------------------------------------------------------
# tables (downloads and page sections share these)

TABLES = (
    "metrics",
    "labelers",
    "reliability",
    "over_time",
    "pairs",
    "leaderboard",
    "low_agreement",
    "consensus_confusion",
)
RELIABILITY_COLUMNS = [
    "rank",
    "labeler_id",
    "username",
    "is_judge",
    "accuracy",
    "position_bias",
    "tie_propensity",
    "labels",
    "weight",
    "flagged",
    "threshold",
]

_METRIC_COLUMNS = [
    "scope",
    "tasks",
    "items",
    "annotations",
    "labelers",
    *[col for name in COEFFICIENTS for col in (name, f"{name}_low", f"{name}_high")],
    "fleiss_items",
    "fleiss_raters",
    "cohen_pairs",
    "cohen_min_shared",
    "kendall_w_items",
    "warning",
]


def _version_scope(version: int | str) -> str:
    if version == MIXED_VERSIONS:
        return "guideline mixed versions"
    return f"guideline v{version}" if version else "guideline (none)"


def report_table(report: dict, name: str) -> tuple[list[str], list[dict]]:
    """One table of a report as (columns, rows of plain values), for CSV/JSON downloads."""
    if name not in TABLES:
        raise InvalidInput(f"Unknown table {name!r}; choose one of {', '.join(TABLES)}.")
    if name == "metrics":
        rows = [{"scope": "overall", **report["overall"]}]
        rows += [{"scope": _version_scope(b["version"]), **b} for b in report["by_guideline"]]
        rows += [{"scope": f"dimension {b['key']}", **b} for b in report["by_dimension"]]
        rows = [{**r, "warning": " ".join(r.get("warnings") or [])} for r in rows]
        return _METRIC_COLUMNS, [{c: r.get(c) for c in _METRIC_COLUMNS} for r in rows]
    if name == "labelers":
        return LABELER_COLUMNS, [{c: r.get(c) for c in LABELER_COLUMNS} for r in report["labelers"]]
    if name == "reliability":  # snapshots from before the block have none: an empty table
        block = report.get("reliability") or {}
        rows = [{**r, "threshold": block.get("threshold")} for r in block.get("rows", [])]
        return RELIABILITY_COLUMNS, [{c: r.get(c) for c in RELIABILITY_COLUMNS} for r in rows]
    if name == "over_time":
        return ["start", "agreement", "annotations"], report["over_time"]["rows"]
    if name == "pairs":
        cols = ["labeler_a", "labeler_b", "shared", "agreement", "cohen_kappa", "matrix"]
        return cols, report["pairs"]
    if name == "leaderboard":
        cols = ["rank", "model", "elo", "elo_low", "elo_high", "strength", "games", "wins", "ties", "losses"]
        # reports stored before rows carried their rank: the position
        return cols, [{"rank": i + 1, **r} for i, r in enumerate(report["leaderboard"]["rows"])]
    if name == "low_agreement":
        cols = ["task_id", "prompt_id", "labels", "majority_share", "target_labels", "counts", "prompt"]
        return cols, report["low_agreement"]["rows"]
    cats = report["consensus_confusion"]["categories"]
    rows = [
        {"label": cat, **{f"consensus_{c}": n for c, n in zip(cats, row, strict=True)}}
        for cat, row in zip(cats, report["consensus_confusion"]["matrix"], strict=True)
    ]
    return ["label", *[f"consensus_{c}" for c in cats]], rows


# ------------------------------------------------------------------------------------------------
# snapshots (the cache) and the Celery path


def report_latest(*, project: Project) -> ReportSnapshot | None:
    return (
        ReportSnapshot.objects.filter(project=project, state=ReportSnapshot.State.READY)
        .order_by("-computed_at")
        .first()
    )


def report_pending(*, project: Project) -> ReportSnapshot | None:
    cutoff = timezone.now() - timedelta(seconds=PENDING_STALE_SECONDS)
    return (
        ReportSnapshot.objects.filter(
            project=project, state=ReportSnapshot.State.PENDING, requested_at__gte=cutoff
        )
        .order_by("-requested_at")
        .first()
    )


def report_snapshot_compute(*, snapshot_id: int) -> ReportSnapshot | None:
    """Compute a requested snapshot (what the Celery task runs). Idempotent: a snapshot that is
    not pending any more is left alone. Failures are recorded on the snapshot and re-raised."""
    snapshot = ReportSnapshot.objects.select_related("project").filter(pk=snapshot_id).first()
    if snapshot is None or snapshot.state != ReportSnapshot.State.PENDING:
        return snapshot
    started = time.perf_counter()
    try:
        data = report_build(snapshot.project)
    except Exception as exc:
        job_fail(snapshot, exc)
        logger.exception("report %s for project %s failed", snapshot.pk, snapshot.project_id)
        raise
    job_finish(
        snapshot,
        data=data,
        annotation_count=data["totals"]["annotations"],
        duration_ms=int((time.perf_counter() - started) * 1000),
    )
    return snapshot


@transaction.atomic
def report_request(*, project: Project, actor: AbstractBaseUser | None) -> ReportSnapshot:
    """Ask for a fresh report, computed by the Celery worker (enqueued when this commits). A
    request while another is still pending returns that one instead of queueing twice."""
    Project.objects.select_for_update().filter(pk=project.pk).first()
    pending = report_pending(project=project)
    if pending is not None:
        return pending
    snapshot = ReportSnapshot.objects.create(
        project=project,
        state=ReportSnapshot.State.PENDING,
        requested_by=audit_actor(actor),
    )
    outbox_enqueue("annotate.report_compute", snapshot.pk)
    return snapshot


def report_compute_now(*, project: Project, actor: AbstractBaseUser | None) -> ReportSnapshot:
    """Compute a report in this process (small projects) and store it as the latest snapshot."""
    snapshot = ReportSnapshot.objects.create(
        project=project,
        state=ReportSnapshot.State.PENDING,
        requested_by=audit_actor(actor),
    )
    return report_snapshot_compute(snapshot_id=snapshot.pk)


def report_refresh(*, project: Project, actor: AbstractBaseUser | None) -> ReportSnapshot:
    """Recompute: in the request for small projects, through Celery for large ones."""
    if Annotation.objects.filter(task__project=project).count() < sync_max_annotations():
        return report_compute_now(project=project, actor=actor)
    return report_request(project=project, actor=actor)


def report_for_page(
    *, project: Project, user: AbstractBaseUser
) -> tuple[ReportSnapshot | None, ReportSnapshot | None]:
    """(latest ready snapshot, pending one). A project with no report yet gets one: computed at
    once when small, requested from the worker when large."""
    latest = report_latest(project=project)
    pending = report_pending(project=project)
    if latest is None and pending is None:
        snap = report_refresh(project=project, actor=user)
        if snap.state == ReportSnapshot.State.READY:
            latest = snap
        else:
            pending = snap
    return latest, pending


# ------------------------------------------------------------------------------------------------
# sending tasks back for more labels


@dataclass(frozen=True)
class SentBack:
    """What a send-back did: tasks whose target rose, and tasks left as they were because they
    already ask for ``MAX_TARGET_LABELS`` labels."""

    changed: int
    at_most: int


@transaction.atomic
def tasks_send_back(
    *, project: Project, task_ids: list[int], extra_labels: int, actor: AbstractBaseUser | None
) -> SentBack:
    """Raise ``target_labels`` by ``extra_labels`` on the chosen tasks of ``project`` (never above
    ``MAX_TARGET_LABELS``), so the leasing service hands them to more labelers: their overlap grows.
    Raising a target never breaks ``claims <= target_labels``. An id that is not one of the
    project's tasks is refused (named in the error) and nothing changes; a send-back in which every
    task already asks for the most labels is refused too."""
    if (
        isinstance(extra_labels, bool)
        or not isinstance(extra_labels, int)
        or not 1 <= extra_labels <= MAX_SEND_BACK_EXTRA
    ):
        raise InvalidInput(f"Ask for 1 to {MAX_SEND_BACK_EXTRA} more labels per task.", field="extra_labels")
    ids = sorted({int(t) for t in task_ids})
    if not ids:
        raise InvalidInput("Choose at least one task to send back.", field="task_ids")
    if len(ids) > MAX_SEND_BACK_TASKS:
        raise InvalidInput(f"Send back at most {MAX_SEND_BACK_TASKS} tasks at a time.", field="task_ids")
    chosen = Task.objects.select_for_update().filter(project=project, pk__in=ids)
    targets = dict(chosen.values_list("pk", "target_labels"))
    missing = [t for t in ids if t not in targets]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise InvalidInput(f"No task {shown} in this project; nothing was sent back.", field="task_ids")
    at_most = sum(1 for target in targets.values() if target >= MAX_TARGET_LABELS)
    if at_most == len(ids):
        raise InvalidInput(
            f"The chosen task(s) already ask for the most labels ({MAX_TARGET_LABELS}); nothing was sent back.",
            field="task_ids",
        )
    # more labels than the task's target as the manager sees it: slots kept from an overlap decrease
    # (``Task.kept_slots``) become ordinary ones, so no lease ending later takes the send-back back
    changed = chosen.filter(target_labels__lt=MAX_TARGET_LABELS).update(
        target_labels=Least(F("target_labels") + extra_labels, MAX_TARGET_LABELS), kept_slots=0
    )
    audit_record(
        actor=actor,
        project=project,
        action="tasks.send_back",
        details={
            "tasks": changed,
            "requested": len(ids),
            "extra_labels": extra_labels,
            "task_ids": ids[:100],
        },
    )
    return SentBack(changed=changed, at_most=at_most)
