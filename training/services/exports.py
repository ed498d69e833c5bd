"""Exports: immutable, versioned preference datasets compiled from a project's annotations.

``export_create`` validates the options and records a queued ``Export`` (version = last + 1 under a
project row lock); the worker (or the CLI, inline) calls ``export_run``, which streams the
annotations out of the database in task order, compiles them (``training.compiler``), writes the
data files row by row (``training.formats``), then ``manifest.json`` and a dataset card
``README.md``, all in a temporary folder renamed to
``PREFHUB_DATA_DIR/exports/<project slug>/v<version>/`` at the end (atomic: a reader sees a whole
export or none).

Memory does not grow with the export: annotations are read with a server-side cursor
(``.values_list(...).iterator(chunk_size=5000)``); each chunk fetches the slots, candidate texts
and prompts of its own tasks, and the writers flush every few thousand rows.

The data files carry no timestamps and are written in a deterministic order (task id, annotation
id), so the same options on the same annotations give the same ``content_hash`` (SHA-256 over
the data files' names and SHA-256s).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, connections, transaction
from django.db.models import Max
from django.utils import timezone

from annotate.errors import Conflict, InvalidInput, NotFound
from annotate.models import (
    Adjudication,
    Annotation,
    AnnotationReview,
    Dimension,
    Guideline,
    Project,
    Prompt,
    ReviewVerdict,
    TaskCandidate,
    TaskKind,
)
from annotate.selectors import project_people_ids
from core.audit import audit_create
from core.jobs import Heartbeat, job_fail, job_finish, run_alone
from core.outbox import outbox_enqueue
from core.read_ahead import read_ahead
from training.compiler import (
    FINAL_LABEL_SOURCE,
    AnnotationRecord,
    CompileStats,
    ExportOptions,
    compile_pairs,
    fit_reliability,
    labeler_reliability,
    low_reliability_labelers,
    record_excluded,
    split_of,
)
from training.formats import (
    COLUMN_MEANINGS,
    FILE_TYPES,
    format_for,
    labeler_pseudonymizer,
    open_sink,
    sha256_file,
)
from training.models import Export, ExportFormat, ExportState

logger = logging.getLogger(__name__)

CHUNK_SIZE = 5000
MANIFEST = "manifest.json"
CARD = "README.md"

# Always read; the optional fields below are read only when the export needs them (decoding JSON
# and datetimes is most of the cost of reading a row).
_BASE_FIELDS = (
    "id",
    "task_id",
    "labeler_id",
    "task__prompt_id",
    "choice",
    "strength",
    "flagged",
    "task__is_gold",
    "guideline_id",
)
_OPTIONAL_FIELDS = (
    "ranking",
    "ratings",
    "shown_order",
    "flag_reason",
    "time_spent_ms",
    "source",
    "created_at",
    "pre_annotated",
)


FALLBACK_PROMPT_ID = "prompt-"


def fallback_prompt_id(pk: int, imported: set[str]) -> str:
    """The exported id of a prompt imported without one: ``prompt-<pk>``, or, when another prompt
    of the project was imported with exactly that id, ``prompt-<pk>-internal`` (again, until no
    imported id has it). Unique: two database ids never give the same name."""
    name = f"{FALLBACK_PROMPT_ID}{pk}"
    while name in imported:
        name += "-internal"
    return name


def annotation_records(
    *,
    project: Project,
    with_texts: bool = True,
    fields: tuple[str, ...] | None = None,
    chunk_size: int = CHUNK_SIZE,
    adjudications: bool = False,
) -> Iterator[AnnotationRecord]:
    """Every annotation of the project as an ``AnnotationRecord``, ordered by (task, labeler).

    Review: annotations rejected by a manager come with ``rejected`` set (the compiler drops them).
    ``adjudications``: a task with a manager's final label yields that label as one record of
    source ``adjudication`` by the adjudicator (no guideline version: it is not an annotation), and
    its labelers' annotations come with ``replaced`` set (the compiler drops them and counts them
    as ``replaced_by_final_label``, so they are still counted as read).

    ``fields``: which of ``_OPTIONAL_FIELDS`` to read (None: all); the others keep their defaults.
    Per chunk (a contiguous range of task ids, since rows come in task order): one query for the
    slots of those tasks with their candidates' texts (without ``with_texts``: ids only) and one for
    their prompts. Nothing is kept from one chunk to the next.
    """
    extra = _OPTIONAL_FIELDS if fields is None else tuple(f for f in _OPTIONAL_FIELDS if f in fields)
    imported_names = set(
        Prompt.objects.filter(project_id=project.pk, external_id__startswith=FALLBACK_PROMPT_ID).values_list(
            "external_id", flat=True
        )
    )  # usually none: only those can meet a fallback name
    guideline_versions = dict(Guideline.objects.filter(project=project).values_list("id", "version"))
    rows = (
        Annotation.objects.filter(task__project_id=project.pk)
        .order_by("task_id", "labeler_id")  # the unique (task, labeler) index: no sort, rows stream
        .values_list(*_BASE_FIELDS, *extra)
        .iterator(chunk_size=chunk_size)
    )
    n_base = len(_BASE_FIELDS)
    while True:
        chunk = list(itertools.islice(rows, chunk_size))
        if not chunk:
            return
        lo, hi = chunk[0][1], chunk[-1][1]
        # The chunk's tasks are the ids lo..hi of this project (rows come in task order); a range
        # scan avoids thousands of IN parameters. Slots of another project's tasks in the range are
        # simply never looked up.
        slot_rows = TaskCandidate.objects.filter(task_id__gte=lo, task_id__lte=hi).order_by("task_id", "slot")
        slot_lists: dict[int, list[int]] = {}
        texts: dict[int, str] = {}
        if with_texts:
            for task_id, cand_id, text in slot_rows.values_list("task_id", "candidate_id", "candidate__text"):
                slot_lists.setdefault(task_id, []).append(cand_id)
                texts[cand_id] = text
        else:
            for task_id, cand_id in slot_rows.values_list("task_id", "candidate_id"):
                slot_lists.setdefault(task_id, []).append(cand_id)
        slots = {task_id: tuple(ids) for task_id, ids in slot_lists.items()}
        rejected = set(
            AnnotationReview.objects.filter(
                annotation__task_id__gte=lo, annotation__task_id__lte=hi, verdict=ReviewVerdict.REJECTED
            ).values_list("annotation_id", flat=True)
        )
        final_labels = (
            {
                a.task_id: a
                for a in Adjudication.objects.filter(
                    task_id__gte=lo, task_id__lte=hi, task__project_id=project.pk
                )
            }
            if adjudications
            else {}
        )
        prompt_ids = {row[3] for row in chunk}
        p_lo, p_hi = min(prompt_ids), max(prompt_ids)
        prompt_qs = Prompt.objects.filter(project_id=project.pk)
        if p_hi - p_lo < 4 * len(prompt_ids) + 1000:  # prompts of consecutive tasks are usually close
            prompt_qs = prompt_qs.filter(id__gte=p_lo, id__lte=p_hi)
        else:
            prompt_qs = prompt_qs.filter(id__in=prompt_ids)
        prompts = {
            pid: (ext or fallback_prompt_id(pid, imported_names), messages)
            for pid, ext, messages in prompt_qs.values_list("id", "external_id", "messages")
            if pid in prompt_ids
        }
        record = AnnotationRecord
        versions = guideline_versions.get
        adjudicated_done: set[int] = set()
        for row in chunk:
            ann_id, task_id, labeler_id, prompt_id, choice, strength, flagged, is_gold, guideline_id = row[
                :n_base
            ]
            final = final_labels.get(task_id)
            if final is not None and task_id not in adjudicated_done:
                adjudicated_done.add(task_id)
                yield record(
                    -final.pk, task_id, final.adjudicator_id or 0, prompt_id, slots.get(task_id, ()),
                    final.choice, final.ranking, final.strength, None, False, "", is_gold, None, None, None,
                    FINAL_LABEL_SOURCE, final.updated_at.isoformat(), prompts[prompt_id], texts,
                )  # fmt: skip
            rec = record(
                ann_id, task_id, labeler_id, prompt_id, slots.get(task_id, ()), choice, None, strength, None,
                flagged, "", is_gold, None, versions(guideline_id), None, "human", "", prompts[prompt_id], texts,
            )  # fmt: skip
            if ann_id in rejected:
                rec.rejected = True
            if final is not None:
                rec.replaced = True
            if extra:
                for name, value in zip(extra, row[n_base:], strict=True):
                    setattr(rec, name, value)
                if "created_at" in extra and rec.created_at:
                    rec.created_at = rec.created_at.isoformat()
            yield rec


def _prefetched(make_records: Callable[[], Iterator[AnnotationRecord]], *, batch: int = 1000, depth: int = 8):
    """Iterate ``make_records()`` in a background thread with its own database connection, so the
    database's work (and the wait for it) overlaps the compiling and writing done here. Memory
    stays bounded: at most ``depth`` batches wait in the queue. Used on PostgreSQL outside a
    transaction only (another connection would not see a transaction's rows)."""

    def batches() -> Iterator[list[AnnotationRecord]]:
        records = make_records()
        while buf := list(itertools.islice(records, batch)):
            yield buf

    with closing(
        read_ahead(
            batches(),
            depth=depth,
            name="export-prefetch",
            poll=0.5,
            join_timeout=30,
            on_exit=connections.close_all,
        )
    ) as chunks:
        for chunk in chunks:
            yield from chunk


def records_stream(**kwargs) -> Iterator[AnnotationRecord]:
    """``annotation_records(**kwargs)``, read ahead in a thread where that is safe (PostgreSQL,
    outside a transaction)."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        return _prefetched(lambda: annotation_records(**kwargs))
    return annotation_records(**kwargs)


# --- create -------------------------------------------------------------------------------------


SOFT_LABEL_FORMATS = ("trl", "trl_conversational")  # formats with p_chosen and labeled_by columns


def export_option_defaults() -> dict:
    """Every export option's default, as stored in ``Export.options``. ``ExportOptions`` is their
    one home: the service applies it to what a request leaves out, the page's form shows it as its
    initial values and the API documents it (``export_options_help``)."""
    return ExportOptions().as_dict()


def export_options_help() -> str:
    """The API's description of ``options``: every option with its default."""
    defaults = export_option_defaults()
    listed = ", ".join(f"{name} ({json.dumps(value)})" for name, value in defaults.items())
    return (
        "Compiler options, each optional; the default is in brackets and applies to what is left out "
        f"(the export page shows the same defaults): {listed}. test_size is the share of prompts held "
        "out as the test split (0: everything is train). labelers_include / labelers_exclude name the "
        "project's labelers by username, or by user id where no username is that text (a list, or "
        "text separated by commas); anybody else is a 400 naming them."
    )


def export_options_validate(
    *, project: Project, format: str, file_type: str, options: dict | None
) -> ExportOptions:
    """Check format, file type and options; raise ``InvalidInput`` naming the bad one."""
    if format not in ExportFormat.values:
        raise InvalidInput(
            f"format must be one of {', '.join(ExportFormat.values)} (got {format!r}).", field="format"
        )
    if file_type not in FILE_TYPES:
        raise InvalidInput(
            f"file_type must be one of {', '.join(FILE_TYPES)} (got {file_type!r}).", field="file_type"
        )
    if options is not None and not isinstance(options, dict):
        raise InvalidInput("options must be an object.", field="options")
    options = dict(options or {})
    for name in ("labelers_include", "labelers_exclude"):  # usernames or ids, of this project's people
        if options.get(name) not in (None, ""):
            options[name] = project_people_ids(project=project, names=options[name], field=name)
    opts = ExportOptions.from_dict(options)
    both = set(opts.labelers_include) & set(opts.labelers_exclude)
    if both:  # the export would hold none of their labels and not say why
        names = sorted(get_user_model().objects.filter(pk__in=both).values_list("username", flat=True))
        raise InvalidInput(
            f"Named both to include and to exclude: {', '.join(names)}.", field="labelers_exclude"
        )
    if opts.dimension and not Dimension.objects.filter(project=project, key=opts.dimension).exists():
        raise InvalidInput(f"This project has no rating dimension {opts.dimension!r}.", field="dimension")
    if project.kind == TaskKind.PAIRWISE and opts.pairing != ExportOptions.pairing:
        raise InvalidInput(
            f"pairing turns a ranking's groups into pairs; the tasks of a pairwise project are pairs "
            f"already: leave pairing at {ExportOptions.pairing} (got {opts.pairing!r}).",
            field="pairing",
        )
    if format == ExportFormat.RAW and opts.aggregate != "none":
        raise InvalidInput(
            "The raw table has one row per annotation: aggregate must be 'none'.", field="aggregate"
        )
    for name, column in (("soft_labels", "p_chosen"), ("labeled_by", "labeled_by")):
        if getattr(opts, name) and format not in SOFT_LABEL_FORMATS:
            raise InvalidInput(
                f"{name} adds a {column} column, which only {', '.join(SOFT_LABEL_FORMATS)} have.",
                field=name,
            )
    return opts


@transaction.atomic
def export_create(
    *,
    project: Project,
    format: str,
    file_type: str = "jsonl",
    options: dict | None = None,
    actor: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> Export:
    """Record a queued export (the next version of the project) and, with ``enqueue``, hand it to
    the training queue once the transaction commits. Locks the project row so concurrent creates
    get consecutive versions."""
    opts = export_options_validate(project=project, format=format, file_type=file_type, options=options)
    Project.objects.select_for_update().filter(pk=project.pk).first()
    version = (Export.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0) + 1
    export = audit_create(
        Export,
        actor=actor,
        action="export.create",
        details={"version": version, "format": format, "file_type": file_type, "options": opts.as_dict()},
        project=project,
        version=version,
        format=format,
        file_type=file_type,
        options=opts.as_dict(),
        state=ExportState.QUEUED,
    )
    if enqueue:
        outbox_enqueue("training.export_run", export.pk)
    return export


# --- run ----------------------------------------------------------------------------------------


def exports_root(project: Project) -> Path:
    return Path(settings.PREFHUB_DATA_DIR) / "exports" / project.slug


def _counting(records: Iterator[AnnotationRecord], progress: Callable[[int], None] | None, every: int = 5000):
    if progress is None:
        yield from records
        return
    n = 0
    for rec in records:
        yield rec
        n += 1
        if n % every == 0:
            progress(every)
    progress(n % every)


def export_run(
    *, export_id: int, progress: Callable[[int], None] | None = None, heartbeat_s: float | None = None
) -> Export:
    """Compile and write an export. Idempotent: a finished export is returned as it is; a run that
    died half-way (redelivered task, or sent again by the stalled-jobs sweep) starts again from
    scratch. On failure the export is marked ``failed`` with the error and the exception
    propagates. An export that another worker is writing now is left to it. With ``heartbeat_s``
    its ``progress_at`` is stamped that often while it runs (the worker's task does), so the sweep
    tells a long export from one whose worker died."""
    with run_alone(Export, export_id) as alone:
        if not alone:
            export = Export.objects.filter(pk=export_id).first()
            if export is None:
                raise NotFound(f"No export {export_id}.")
            return export
        with Heartbeat(Export, export_id, "progress_at", heartbeat_s):
            return _export_run(export_id=export_id, progress=progress)


def _export_run(*, export_id: int, progress: Callable[[int], None] | None) -> Export:
    export = Export.objects.select_related("project").filter(pk=export_id).first()
    if export is None:
        raise NotFound(f"No export {export_id}.")
    if export.state == ExportState.DONE:
        return export
    Export.objects.filter(pk=export.pk).update(state=ExportState.RUNNING, error="")
    root = exports_root(export.project)
    tmp = root / f".tmp-v{export.version}-{uuid.uuid4().hex[:12]}"
    try:
        tmp.mkdir(parents=True)
        manifest = _write_export(export, tmp, progress)
        final = _export_folder(export, root)
        tmp.rename(final)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        job_fail(export, exc)
        logger.exception("export %s failed", export.pk)
        raise
    job_finish(
        export,
        manifest=manifest,
        content_hash=manifest["content_hash"],
        path=str(final),
        row_count=manifest["counts"]["rows"],
    )
    return export


def _export_folder(export: Export, root: Path) -> Path:
    """Where ``export`` goes: ``v<N>``, emptied first when it is a leftover of this export's own run
    (one that died between moving its folder into place and recording it). A folder that holds
    another export (a project of the same slug deleted since, or another database's sharing this
    data folder) is never touched: exports are immutable, so this one goes to ``v<N>-2`` (``-3``...)
    and its ``path`` says so."""
    for n in range(1, 1000):
        folder = root / (f"v{export.version}" if n == 1 else f"v{export.version}-{n}")
        if not folder.exists():
            return folder
        if _is_leftover_of(export, folder):
            shutil.rmtree(folder)
            return folder
    raise Conflict(f"Too many folders named v{export.version} in {root}; move the old ones away.")


def _is_leftover_of(export: Export, folder: Path) -> bool:
    """Whether ``folder`` was written by ``export`` itself: its manifest names the export's version
    and creation time (what ``_manifest`` records), as a run that died after moving it into place
    leaves it."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(manifest, dict)
        and export.created_at is not None
        and manifest.get("version") == export.version
        and manifest.get("created_at") == export.created_at.isoformat()
    )


def _write_export(export: Export, out: Path, progress: Callable[[int], None] | None) -> dict:
    project = export.project
    opts = ExportOptions.from_dict(export.options)
    fmt = format_for(export.format, opts)
    scale_max = project.rating_scale_max

    judgment_fields = ("ranking",) if project.kind == TaskKind.RANKING else ()
    judgment_fields += ("source",)  # AI judges' labels: marked, excluded on request, judges in the model
    if opts.dimension:
        judgment_fields += ("ratings",)
    reliability: dict[int, dict] = {}
    dropped_labelers: set[int] = set()
    if opts.min_reliability is not None:
        reliability = labeler_reliability(
            records_stream(project=project, with_texts=False, fields=judgment_fields),
            opts,
            scale_max=scale_max,
        )
        dropped_labelers = low_reliability_labelers(reliability, opts.min_reliability)
    model = None
    if fmt.pairwise and (opts.aggregate == "weighted" or opts.soft_labels):
        model = fit_reliability(  # the shown order lets the model find position bias
            records_stream(project=project, with_texts=False, fields=(*judgment_fields, "shown_order")),
            opts,
            scale_max=scale_max,
        )

    splits = ("train", "test") if opts.test_size > 0 else ("train",)
    ext = export.file_type
    schema = fmt.schema()
    sinks = {s: open_sink(out / f"{s}.{ext}", schema, ext) for s in splits}
    stats = CompileStats()
    split_cache: dict[str, str] = {}

    def split_for(key: str) -> str:
        split = split_cache.get(key)
        if split is None:
            split = split_of(key, seed=opts.seed, test_size=opts.test_size)
            if len(split_cache) > 100_000:  # bounded: tasks of a prompt are usually close together
                split_cache.clear()
            split_cache[key] = split
        return split

    records = _counting(
        records_stream(
            project=project,
            with_texts=fmt.pairwise,
            fields=judgment_fields if fmt.pairwise else None,
            adjudications=opts.adjudication == "prefer",
        ),
        progress,
    )
    try:
        if fmt.pairwise:
            for pairs in compile_pairs(
                records,
                opts,
                stats=stats,
                scale_max=scale_max,
                dropped_labelers=dropped_labelers,
                keep_ties=fmt.keep_ties,
                reliability=model,
            ):
                reason = fmt.drop_reason(pairs[0].record)
                if reason is not None:
                    stats.dropped[reason] += len(pairs)
                    continue
                sink = sinks[split_for(pairs[0].record.prompt[0])]
                for row in fmt.rows(pairs):
                    sink.write(row)
        else:
            pseudonym = labeler_pseudonymizer(secret_key=settings.SECRET_KEY, project_id=project.pk)
            for rec in records:
                stats.read(rec)
                reason = record_excluded(rec, opts, dropped_labelers)
                if reason is not None:
                    stats.dropped[reason] += 1
                    continue
                stats.kept(rec)
                sinks[split_for(rec.prompt[0])].write(fmt.annotation_row(rec, pseudonym(rec.labeler_id)))
    finally:
        for sink in sinks.values():
            sink.close()
    stats.dropped.update(fmt.dropped)  # what the format could not write (a tie in KTO rows)

    files = {}
    for split, sink in sinks.items():
        stats.rows_by_split[split] = sink.rows
        stats.rows += sink.rows
        if sink.rows == 0 and split == "test":
            sink.path.unlink()
            continue
        files[split] = {
            "path": sink.path.name,
            "rows": sink.rows,
            "sha256": sha256_file(sink.path),
            "bytes": sink.path.stat().st_size,
        }
    content_hash = content_hash_of(files)
    counts = stats.as_dict()
    manifest = {
        "prefhub_export": 1,
        "project": {"slug": project.slug, "name": project.name, "kind": project.kind},
        "version": export.version,
        "format": export.format,
        "file_type": export.file_type,
        "options": opts.as_dict(),
        "columns": schema.names,
        "files": files,
        "content_hash": content_hash,
        "counts": {
            "annotations_read": counts["annotations_read"],
            "judgments": counts["judgments"],
            "rows": counts["rows"],
            "train": counts["rows_by_split"].get("train", 0),
            "test": counts["rows_by_split"].get("test", 0),
            "dropped": counts["dropped"],
        },
        "agreement": counts["agreement"],
        "review": {
            "rejected": AnnotationReview.objects.filter(
                annotation__task__project=project, verdict=ReviewVerdict.REJECTED
            ).count(),
            "adjudicated_tasks": Adjudication.objects.filter(task__project=project).count(),
            "adjudication": opts.adjudication,
            # final labels in the export, in place of their tasks' annotations, and who set them
            # (adjudicators are not counted in labeler_count)
            "final_labels_exported": counts["final_labels"],
            "adjudicator_count": counts["adjudicators"],
        },
        "labeler_count": counts["labelers"],
        "guideline_versions": counts["guideline_versions"],
        "annotations_without_guideline": counts["annotations_without_guideline"],
        "reliability": _reliability_summary(reliability, dropped_labelers, opts) if reliability else None,
        "reliability_model": _model_summary(model, project) if model is not None else None,
        "created_at": (export.created_at or timezone.now()).isoformat(),
        "created_by": export.created_by.get_username() if export.created_by else None,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / CARD).write_text(dataset_card(manifest, fmt), encoding="utf-8")
    return manifest


def content_hash_of(files: dict) -> str:
    """SHA-256 over the data files' names and SHA-256s, in split order (train, test)."""
    h = hashlib.sha256()
    for split in sorted(files):
        h.update(f"{files[split]['path']}\0{files[split]['sha256']}\n".encode())
    return h.hexdigest()


def _model_summary(model, project: Project) -> dict:
    """The reliability model's labeler estimates, with labelers pseudonymised as in the raw table."""
    pseudonym = labeler_pseudonymizer(secret_key=settings.SECRET_KEY, project_id=project.pk)
    summary = model.summary()
    by_id = {r["labeler_id"]: pseudonym(r["labeler_id"]) for r in summary["labelers"]}
    summary["labelers"] = [{**{k: v for k, v in r.items() if k != "labeler_id"}, "labeler": by_id[r["labeler_id"]]}
                           for r in summary["labelers"]]  # fmt: skip
    summary["flagged"] = [by_id[lid] for lid in summary["flagged"]]
    summary["judges"] = [by_id[lid] for lid in summary.get("judges", []) if lid in by_id]
    return summary


def _reliability_summary(reliability: dict[int, dict], dropped: set[int], opts: ExportOptions) -> dict:
    values = sorted(r["reliability"] for r in reliability.values() if r["reliability"] is not None)
    return {
        "threshold": opts.min_reliability,
        "labelers_scored": len(values),
        "labelers_without_overlap": sum(1 for r in reliability.values() if r["reliability"] is None),
        "labelers_dropped": len(dropped),
        "min": values[0] if values else None,
        "median": values[len(values) // 2] if values else None,
        "max": values[-1] if values else None,
    }


def dataset_card(manifest: dict, fmt) -> str:
    """A Hugging Face dataset card: YAML header with the split files, then what the export holds."""
    files = manifest["files"]
    yaml = [
        "---",
        f"pretty_name: {json.dumps(manifest['project']['name'] + ' preferences v' + str(manifest['version']))}",
    ]
    yaml += [
        "tags:",
        "- preference",
        "- rlhf",
        "- prefhub",
        "configs:",
        "- config_name: default",
        "  data_files:",
    ]
    for split in ("train", "test"):
        if split in files:
            yaml += [f"  - split: {split}", f"    path: {files[split]['path']}"]
    yaml.append("---")
    counts = manifest["counts"]
    dropped = ", ".join(f"{k}: {v}" for k, v in counts["dropped"].items()) or "none"
    options = "\n".join(f"| `{k}` | `{json.dumps(v)}` |" for k, v in manifest["options"].items())
    loader = "parquet" if manifest["file_type"] == "parquet" else "json"
    data_files = ", ".join(f'"{s}": "{f["path"]}"' for s, f in files.items())
    review = manifest.get("review") or {}
    final_labels = review.get("final_labels_exported") or 0
    final_row = ""
    if final_labels:
        adjudicators = review.get("adjudicator_count") or 0
        final_row = (
            f"| final labels | {final_labels} (adjudicated task{'s' if final_labels != 1 else ''} whose "
            f"final label replaces the labelers' votes; set by {adjudicators} "
            f"adjudicator{'s' if adjudicators != 1 else ''}, not counted as labelers) |\n"
        )
    meanings = "".join(
        f"\n* `{c}`: {COLUMN_MEANINGS[c]}." for c in manifest["columns"] if c in COLUMN_MEANINGS
    )
    meanings += "\n" if meanings else ""
    agreement = manifest["agreement"]["pairwise_agreement"]  # 0.0 (all disagree) is a figure; None is none
    body = f"""
# {manifest["project"]["name"]}: preference export v{manifest["version"]}

Exported by PrefHub from project `{manifest["project"]["slug"]}` ({manifest["project"]["kind"]}).
Format **{manifest["format"]}** ({manifest["file_type"]}): {fmt.describe().strip()}

Columns: {", ".join(f"`{c}`" for c in manifest["columns"])}.
{meanings}
## Counts

| | |
|---|---|
| annotations read | {counts["annotations_read"]} |
| rows | {counts["rows"]} (train {counts["train"]}, test {counts["test"]}) |
| labelers | {manifest["labeler_count"]} |
| guideline versions | {", ".join(map(str, manifest["guideline_versions"])) or "none recorded"} |
{final_row}| pairwise agreement | {"n/a" if agreement is None else agreement} over {manifest["agreement"]["comparisons_with_2plus_votes"]} comparisons with 2+ votes |
| dropped | {dropped} |

Labelers are the people whose annotations are in the export, and the guideline versions are those
of their annotations. A task's final label (set in review) is not an annotation: it replaces the
task's annotations (dropped as `replaced_by_final_label`) and its adjudicator is not a labeler.

Content hash (SHA-256 of the data files): `{manifest["content_hash"]}`.

## Options

| option | value |
|---|---|
{options}

## Loading

```python
from datasets import load_dataset
ds = load_dataset("path/to/this/folder")                       # uses the configs above
ds = load_dataset("{loader}", data_files={{{data_files}}})     # or name the files
```

The split is by prompt (no prompt is on both sides), stable for a given seed. See
`manifest.json` for the full options, counts and per-file SHA-256.
"""
    return "\n".join(yaml) + "\n" + body


# --- reading back -------------------------------------------------------------------------------


def export_dir(export: Export) -> Path:
    if export.state != ExportState.DONE or not export.path:
        raise Conflict("This export is not finished.")
    path = Path(export.path)
    root = exports_root(export.project).resolve()
    if path.resolve().parent != root or not path.is_dir():
        raise NotFound("The export's files are missing.")
    return path


def export_files(*, export: Export) -> list[str]:
    """Names of the export's files (data files, manifest, card)."""
    path = export_dir(export)
    return sorted(p.name for p in path.iterdir() if p.is_file())


def export_file_path(*, export: Export, name: str) -> Path:
    """The path of one file of the export; only names listed in the export folder are served."""
    if name not in export_files(export=export):
        raise NotFound("No such file in this export.")
    return export_dir(export) / name


def export_zip_path(*, export: Export) -> Path:
    """A zip of the export folder, built once beside it (the export itself is immutable). A zip found
    there is served only when it holds this folder's files (``_zip_matches``); any other (left by an
    earlier export of that folder name, or cut short) is built again."""
    path = export_dir(export)
    target = path.parent / f"{path.name}.zip"
    arc = f"{export.project.slug}-v{export.version}"
    names = export_files(export=export)
    if not _zip_matches(target, path, arc, names):
        tmp = path.parent / f".{path.name}-{uuid.uuid4().hex[:8]}.zip"
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in names:
                zf.write(path / name, arcname=f"{arc}/{name}")
        tmp.replace(target)
    return target


def _zip_matches(target: Path, folder: Path, arc: str, names: list[str]) -> bool:
    """Whether the zip at ``target`` is the zip of ``folder``: the same file names and sizes under
    ``arc``, and the same manifest (its content hash names the data files' contents)."""
    if not target.is_file():
        return False
    try:
        with zipfile.ZipFile(target) as zf:
            sizes = {info.filename: info.file_size for info in zf.infolist()}
            if sizes != {f"{arc}/{name}": (folder / name).stat().st_size for name in names}:
                return False
            manifest = f"{arc}/manifest.json"
            return manifest not in sizes or zf.read(manifest) == (folder / "manifest.json").read_bytes()
    except (zipfile.BadZipFile, OSError, EOFError):
        return False
