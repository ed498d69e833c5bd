"""Exports end to end: every format loads with `datasets`, versioning and hashes, the HH-RLHF
round trip, the CLI, the Celery hand-off and the researcher pages."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotate.errors import InvalidInput, NotFound
from annotate.models import Annotation, Guideline, Prompt, Task, TaskKind
from annotate.services.guidelines import guideline_publish
from annotate.services.imports import prompts_import
from tests.conftest import HH_SAMPLE, add_tasks, require_shared
from training.models import Export, ExportState
from training.services.exports import export_create, export_file_path, export_run, exports_root

pytestmark = pytest.mark.django_db

FORMAT_COLUMNS = {
    "trl": ["prompt", "chosen", "rejected", "margin"],
    "trl_conversational": ["prompt", "chosen", "rejected", "margin"],
    "trl_unpaired": ["prompt", "completion", "label"],
    "hh_rlhf": ["chosen", "rejected"],
    "openai": ["input", "preferred_output", "non_preferred_output"],
    "raw": None,
}


@pytest.fixture
def annotated(make_project, labeler_in):
    """A pairwise project: 12 prompts x 3 candidates (36 pair tasks), 3 labelers on every task,
    a harmlessness rating, one gold task, one flagged annotation, some ties."""
    project = make_project(overlap=3, dimensions=["Harmless"])
    guideline = guideline_publish(project=project, actor=None, body="Prefer the helpful answer.")
    tasks = add_tasks(project, prompts=12, candidates_per_prompt=3)
    labelers = [labeler_in(project) for _ in range(3)]
    rows = []
    for i, task in enumerate(tasks):
        a, b = (s.candidate_id for s in task.slots.order_by("slot"))
        for j, user in enumerate(labelers):
            choice = "a" if (i + j) % 4 else "b"
            if i % 9 == 5:
                choice = "tie"
            rows.append(
                Annotation(
                    task=task, labeler=user, choice=choice, strength=(j % 3) + 1 if choice in "ab" else None,
                    ratings={"harmless": {str(a): 1 + (i + j) % 5, str(b): 1 + (i * j) % 5}},
                    guideline=guideline, time_spent_ms=1000 + i, shown_order=[b, a] if j % 2 else [a, b],
                )
            )  # fmt: skip
    rows[0].flagged, rows[0].flag_reason = True, "garbled"
    Annotation.objects.bulk_create(rows)
    Task.objects.filter(pk=tasks[1].pk).update(is_gold=True, gold_choice="a")
    return project


def _run(project, fmt="trl", file_type="jsonl", **options) -> Export:
    export = export_create(project=project, format=fmt, file_type=file_type, options=options, enqueue=False)
    return export_run(export_id=export.pk)


@pytest.mark.parametrize("file_type", ["jsonl", "parquet"])
@pytest.mark.parametrize("fmt", list(FORMAT_COLUMNS))
def test_every_format_loads_with_datasets(annotated, fmt, file_type, tmp_path):
    import datasets

    export = _run(annotated, fmt, file_type, test_size=0.25, seed=3)
    assert export.state == ExportState.DONE and export.row_count > 0
    folder = Path(export.path)
    assert folder == Path(settings.PREFHUB_DATA_DIR) / "exports" / annotated.slug / f"v{export.version}"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["README.md", "manifest.json", f"train.{file_type}", f"test.{file_type}"]
    )
    loader = "parquet" if file_type == "parquet" else "json"
    files = {s: str(folder / f"{s}.{file_type}") for s in ("train", "test")}
    ds = datasets.load_dataset(loader, data_files=files, cache_dir=str(tmp_path / "a"))
    assert ds["train"].num_rows + ds["test"].num_rows == export.row_count
    assert ds["train"].num_rows == export.manifest["counts"]["train"]
    if FORMAT_COLUMNS[fmt]:
        assert ds["train"].column_names == FORMAT_COLUMNS[fmt]
    # the dataset card's YAML configs make the folder itself loadable
    by_card = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "b"))
    assert by_card["test"].num_rows == ds["test"].num_rows
    # no prompt on both sides of the split
    key = {"trl": "prompt", "trl_unpaired": "prompt", "raw": "prompt_id"}.get(fmt)
    if key:
        assert not set(ds["train"][key]) & set(ds["test"][key])


def test_manifest_counts_drops_and_agreement(annotated):
    export = _run(annotated, "trl", test_size=0.25)
    m = json.loads((Path(export.path) / "manifest.json").read_text())
    assert m == export.manifest
    assert m["counts"]["rows"] == export.row_count == m["counts"]["train"] + m["counts"]["test"]
    assert m["counts"]["dropped"]["gold"] == 3
    assert m["counts"]["dropped"]["flagged"] == 1
    assert m["counts"]["dropped"]["tie"] > 0
    assert m["counts"]["annotations_read"] == Annotation.objects.filter(task__project=annotated).count()
    assert m["labeler_count"] == 3 and m["guideline_versions"] == [1]
    assert 0 < m["agreement"]["pairwise_agreement"] < 1
    assert m["files"]["train"]["sha256"] and m["content_hash"] == export.content_hash
    card = (Path(export.path) / "README.md").read_text()
    assert card.startswith("---\n") and "split: test" in card and export.content_hash in card


def test_same_options_same_data_same_hash_new_version(annotated):
    first = _run(
        annotated, "trl_conversational", "parquet", aggregate="majority", min_votes=2, test_size=0.2, seed=1
    )
    second = _run(
        annotated, "trl_conversational", "parquet", aggregate="majority", min_votes=2, test_size=0.2, seed=1
    )
    assert second.version == first.version + 1
    assert second.content_hash == first.content_hash
    assert (Path(first.path) / "train.parquet").read_bytes() == (
        Path(second.path) / "train.parquet"
    ).read_bytes()
    third = _run(
        annotated, "trl_conversational", "parquet", aggregate="majority", min_votes=2, test_size=0.2, seed=2
    )
    assert third.content_hash != first.content_hash
    # nothing temporary is left behind
    assert not [p for p in Path(first.path).parent.iterdir() if p.name.startswith(".tmp")]


def test_majority_export_has_one_row_per_comparison(annotated):
    export = _run(
        annotated, "trl", aggregate="majority", min_votes=3, min_agreement=0.6, ties="keep", test_size=0
    )
    rows = [json.loads(line) for line in (Path(export.path) / "train.jsonl").read_text().splitlines()]
    assert len(rows) == export.row_count <= 36 - 1  # one gold task left out
    assert {r["flag"] for r in rows} <= {None, "tie"}
    assert any(r["flag"] == "tie" for r in rows)
    assert all(0 <= r["margin"] <= 1 for r in rows)


def test_dimension_export_uses_ratings(annotated):
    export = _run(annotated, "trl", dimension="harmless", ties="keep")
    assert export.manifest["options"]["dimension"] == "harmless"
    with pytest.raises(InvalidInput) as err:
        export_create(project=annotated, format="trl", options={"dimension": "honesty"}, enqueue=False)
    assert err.value.field == "dimension"


def test_reliability_threshold_and_labeler_filters(annotated):
    labelers = sorted(
        Annotation.objects.filter(task__project=annotated).values_list("labeler_id", flat=True).distinct()
    )
    export = _run(annotated, "trl", min_reliability=0.99)
    rel = export.manifest["reliability"]
    assert rel["labelers_scored"] == 3 and rel["labelers_dropped"] >= 1
    assert export.manifest["counts"]["dropped"]["low_reliability"] > 0
    only_one = _run(annotated, "raw", labelers_include=[labelers[0]])
    assert only_one.manifest["labeler_count"] == 1


def test_raw_table_pseudonymizes_labelers_stably_per_project(annotated, make_project):
    first = _run(annotated, "raw")
    rows = [json.loads(line) for line in (Path(first.path) / "train.jsonl").read_text().splitlines()]
    user_ids = {str(u) for u in Annotation.objects.values_list("labeler_id", flat=True)}
    assert len({r["labeler"] for r in rows}) == 3
    assert not {r["labeler"] for r in rows} & user_ids
    assert all(r["guideline_version"] == 1 and r["time_spent_ms"] >= 1000 for r in rows)
    assert all(len(r["shown_order"]) == 2 and r["ratings"] for r in rows)
    second = _run(annotated, "raw")
    assert first.content_hash == second.content_hash


@pytest.mark.parametrize("file_type", ["jsonl", "parquet"])
def test_raw_ratings_are_a_json_object_not_a_string(annotated, file_type, tmp_path):
    """Issue 16: ``ratings`` was written as the string "{...}" (and "{}" for none). JSONL holds an
    object; Parquet a column of the JSON logical type, which `datasets` decodes to a dict."""
    import datasets
    import pyarrow.parquet as pq

    first = Annotation.objects.filter(task__project=annotated, flagged=False).order_by("id").first()
    Annotation.objects.filter(pk=first.pk).update(ratings={})
    export = _run(annotated, "raw", file_type)
    path = Path(export.path) / f"train.{file_type}"
    if file_type == "jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
    else:
        column = pq.ParquetFile(path).schema.column(pq.read_schema(path).get_field_index("ratings"))
        assert column.logical_type.type == "JSON"
        rows = list(datasets.load_dataset("parquet", data_files=str(path), cache_dir=str(tmp_path))["train"])
    by_id = {r["annotation_id"]: r["ratings"] for r in rows}
    assert by_id[first.pk] == {}
    others = [v for k, v in by_id.items() if k != first.pk]
    assert others and all(isinstance(v, dict) and set(v) == {"harmless"} for v in others)
    stored = {a.pk: a.ratings for a in Annotation.objects.filter(pk__in=list(by_id))}
    assert by_id == stored


def test_no_export_format_writes_json_as_a_string(annotated):
    """The same mistake anywhere else: no value in any format's rows is a string holding JSON
    object or array text."""
    for fmt in FORMAT_COLUMNS:
        export = _run(annotated, fmt, ties="keep") if fmt != "raw" else _run(annotated, fmt)
        for line in (Path(export.path) / "train.jsonl").read_text().splitlines():
            for value in json.loads(line).values():
                if isinstance(value, str) and value[:1] in "{[":
                    with pytest.raises(ValueError):
                        json.loads(value)  # a string that is JSON text is the bug


def test_ranking_project_exports(make_project, labeler_in):
    project = make_project(kind=TaskKind.RANKING, overlap=2, ranking_k=3, allow_rank_ties=True)
    tasks = add_tasks(project, prompts=4, candidates_per_prompt=3)
    users = [labeler_in(project) for _ in range(2)]
    for task in tasks:
        ids = list(task.slots.order_by("slot").values_list("candidate_id", flat=True))
        Annotation.objects.create(task=task, labeler=users[0], ranking=[[ids[0]], [ids[1], ids[2]]])
        Annotation.objects.create(task=task, labeler=users[1], ranking=[[ids[0]], [ids[1]], [ids[2]]])
    assert _run(project, "trl", pairing="all_pairs").row_count == 4 * (2 + 3)
    assert _run(project, "trl", pairing="adjacent").row_count == 4 * (2 + 2)
    assert _run(project, "trl", pairing="best_vs_rest", aggregate="majority", min_votes=2).row_count == 4 * 2


def test_hh_rlhf_sample_round_trip(make_project):
    sample = require_shared(HH_SAMPLE)
    project = make_project(name="HH round trip")
    with open(sample, "rb") as fh:
        report = prompts_import(
            project=project, stream=fh, preference_source="anthropic-hh", skip_invalid=True
        )
    assert [e.line for e in report.errors] == []  # line 1255 (a cut-short rejected reply) imports too
    export = _run(project, "hh_rlhf", test_size=0)
    exported = {
        (r["chosen"], r["rejected"])
        for r in map(json.loads, (Path(export.path) / "train.jsonl").read_text(encoding="utf-8").splitlines())
    }
    with gzip.open(sample, "rt", encoding="utf-8") as fh:
        original = {(o["chosen"], o["rejected"]) for o in map(json.loads, fh)}
    assert exported == original
    assert export.row_count == report.annotations == len(original)


def test_hh_export_leaves_out_system_turns_with_a_reason(make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=2)
    Prompt.objects.filter(project=project, external_id="p0").update(
        messages=[{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi"}]
    )
    user = labeler_in(project)
    for task in project.tasks.all():
        Annotation.objects.create(task=task, labeler=user, choice="a")
    export = _run(project, "hh_rlhf")
    assert export.row_count == 1 and export.manifest["counts"]["dropped"] == {"system_turn_unsupported": 1}
    trl = _run(project, "trl")
    rows = [json.loads(line) for line in (Path(trl.path) / "train.jsonl").read_text().splitlines()]
    assert rows[0]["prompt"] == "System: Be nice.\n\nUser: Hi\n\nAssistant:"


def test_failed_export_is_recorded_and_leaves_nothing(annotated):
    export = export_create(project=annotated, format="trl", options={}, enqueue=False)
    with (
        mock.patch("training.services.exports.sha256_file", side_effect=OSError("disk full")),
        pytest.raises(OSError),
    ):
        export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.state == ExportState.FAILED and "disk full" in export.error
    root = Path(settings.PREFHUB_DATA_DIR) / "exports" / annotated.slug
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp") or p.name == f"v{export.version}"]
    # a later run (redelivered task) succeeds
    assert export_run(export_id=export.pk).state == ExportState.DONE


def test_create_enqueues_on_commit(annotated, django_capture_on_commit_callbacks):
    with mock.patch("core.outbox.send_task") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            export = export_create(project=annotated, format="openai", options={"test_size": 0.1})
        delay.assert_called_once_with("training.export_run", [export.pk])
    assert export.state == ExportState.QUEUED and export.version == 1
    from training.tasks.exports import export_run_task

    export_run_task(export.pk)
    export.refresh_from_db()
    assert export.state == ExportState.DONE


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"format": "csv"}, "format"),
        ({"file_type": "xlsx"}, "file_type"),
        ({"options": {"pairing": "x"}}, "pairing"),
    ],
)
def test_create_refuses_bad_input_naming_it(annotated, kwargs, field):
    args = {
        "project": annotated,
        "format": "trl",
        "file_type": "jsonl",
        "options": {},
        "enqueue": False,
        **kwargs,
    }
    with pytest.raises(InvalidInput) as err:
        export_create(**args)
    assert err.value.field == field
    assert not Export.objects.exists()


# --- CLI --------------------------------------------------------------------------------------------


def test_cli_exports_inline_and_copies_files(annotated, tmp_path):
    out = io.StringIO()
    call_command(
        "export_preferences", "--project", annotated.slug, "--format", "trl", "--out", str(tmp_path / "d"),
        "--aggregate", "majority", "--min-votes", "2", "--test-size", "0.2", "--seed", "4", "--file-type", "parquet",
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "README.md",
        "manifest.json",
        "test.parquet",
        "train.parquet",
    ]
    export = Export.objects.get()
    assert export.options["aggregate"] == "majority" and export.content_hash in out.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--min-agreement", "2", "--aggregate", "majority"], "--min-agreement"),
        (["--dimension", "nope"], "--dimension"),
        (["--labelers", "ghost"], "--labelers"),
        (["--min-votes", "3"], "--aggregate"),
    ],
)
def test_cli_errors_name_the_bad_option(annotated, tmp_path, argv, message):
    with pytest.raises(CommandError, match=message):
        call_command(
            "export_preferences",
            "--project",
            annotated.slug,
            "--format",
            "trl",
            "--out",
            str(tmp_path),
            *argv,
        )


@pytest.mark.parametrize("out", ["a-file", "a-file/sub", "bad\x00name"])
def test_cli_unusable_out_is_refused_before_anything_is_exported(make_project, tmp_path, out):
    project = make_project()
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(CommandError, match=r"^--out: "):
        call_command(
            "export_preferences", "--project", project.slug, "--format", "trl", "--out", str(tmp_path / out),
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    assert not Export.objects.exists()
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_cli_unknown_project(tmp_path, db):
    with pytest.raises(CommandError, match="--project"):
        call_command("export_preferences", "--project", "nope", "--format", "trl", "--out", str(tmp_path))


# --- pages --------------------------------------------------------------------------------------------


def test_researcher_pages_create_view_download(
    annotated, client, labeler_in, django_capture_on_commit_callbacks
):
    researcher = labeler_in(annotated, role="researcher")
    client.force_login(researcher)
    url = reverse("training:export_list", args=[annotated.slug])
    page = client.get(url)
    assert page.status_code == 200 and b"New export" in page.content
    patch = mock.patch("core.outbox.send_task")
    with patch as delay, django_capture_on_commit_callbacks(execute=True):
        resp = client.post(url, {"format": "trl", "file_type": "jsonl", "pairing": "all_pairs", "ties": "drop",
                                     "aggregate": "none", "min_votes": 1, "min_agreement": 0, "test_size": 0.2,
                                     "seed": 0, "margin": "on"})  # fmt: skip
    export = Export.objects.get()
    assert resp.status_code == 302 and resp["Location"] == reverse(
        "training:export_detail", args=[annotated.slug, 1]
    )
    delay.assert_called_once_with("training.export_run", [export.pk])
    assert export.created_by == researcher and export.options["test_size"] == 0.2
    export_run(export_id=export.pk)
    detail = client.get(resp["Location"])
    assert (
        detail.status_code == 200 and export.__class__.objects.get().content_hash.encode() in detail.content
    )
    assert b"train.jsonl" in detail.content and b"config_name: default" in detail.content
    zipped = client.get(reverse("training:export_download", args=[annotated.slug, 1]))
    assert zipped.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content))).namelist()
    assert sorted(n.split("/")[-1] for n in names) == [
        "README.md",
        "manifest.json",
        "test.jsonl",
        "train.jsonl",
    ]
    one = client.get(reverse("training:export_file", args=[annotated.slug, 1, "manifest.json"]))
    assert json.loads(b"".join(one.streaming_content))["version"] == 1


def test_create_form_errors_name_the_field(annotated, client, labeler_in):
    client.force_login(labeler_in(annotated, role="researcher"))
    resp = client.post(reverse("training:export_list", args=[annotated.slug]),
                       {"format": "raw", "file_type": "jsonl", "pairing": "all_pairs", "ties": "drop",
                        "aggregate": "majority", "min_votes": 1, "min_agreement": 0, "test_size": 0, "seed": 0})  # fmt: skip
    assert resp.status_code == 400 and b"aggregate must be" in resp.content
    assert not Export.objects.exists()


@pytest.mark.parametrize(
    "name", ["../manifest.json", "..", "%2e%2e%2fv1.zip", "train.jsonl/../../x", "nothere.txt"]
)
def test_download_has_no_path_traversal(annotated, client, labeler_in, name):
    export = _run(annotated, "trl")
    client.force_login(labeler_in(annotated, role="researcher"))
    resp = client.get(f"/training/{annotated.slug}/exports/v{export.version}/files/{name}")
    assert resp.status_code == 404
    with pytest.raises(NotFound):
        export_file_path(export=export, name="../../../etc/passwd")


def test_export_pages_are_for_researchers_of_the_project(
    annotated, client, labeler_in, make_user, make_project
):
    export = _run(annotated, "trl")
    urls = [
        reverse("training:export_list", args=[annotated.slug]),
        reverse("training:export_detail", args=[annotated.slug, export.version]),
        reverse("training:export_download", args=[annotated.slug, export.version]),
        reverse("training:export_file", args=[annotated.slug, export.version, "train.jsonl"]),
    ]
    client.force_login(labeler_in(annotated, role="labeler"))
    assert [client.get(u).status_code for u in urls] == [403] * 4
    assert client.post(urls[0], {"format": "trl"}).status_code == 403
    other = make_project()
    client.force_login(labeler_in(other, role="researcher"))
    assert [client.get(u).status_code for u in urls] == [404] * 4
    client.force_login(labeler_in(annotated, role="manager"))  # managers run the project, not exports
    assert [client.get(u).status_code for u in urls] == [403] * 4
    client.force_login(labeler_in(annotated, role="researcher"))
    assert [client.get(u).status_code for u in urls] == [200] * 4
    client.logout()
    assert all(client.get(u).status_code == 302 for u in urls)
    assert Guideline.objects.exists()


@pytest.mark.postgres(reason="the one-runner lock is a PostgreSQL advisory lock")
def test_an_export_another_worker_is_writing_is_left_to_it(annotated):
    """The export message at two workers at once: the second writes nothing (no second folder swapped
    in under the first) and leaves the export as it is."""
    from tests.races import another_worker_runs

    export = export_create(project=annotated, format="trl", enqueue=False)
    with another_worker_runs(Export, export.pk):
        left = export_run(export_id=export.pk)
    assert left.state == ExportState.QUEUED and not left.path
    assert not exports_root(annotated).exists() or not any(exports_root(annotated).iterdir())
    assert export_run(export_id=export.pk).state == ExportState.DONE


@pytest.mark.parametrize("file_type", ["jsonl", "parquet"])
def test_raw_rows_say_whether_a_judge_verdict_was_preselected(annotated, file_type):
    import pyarrow.parquet as pq

    first = Annotation.objects.filter(task__project=annotated, flagged=False).order_by("id").first()
    Annotation.objects.filter(pk=first.pk).update(pre_annotated=True)
    export = _run(annotated, "raw", file_type)
    path = Path(export.path) / f"train.{file_type}"
    if file_type == "jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
    else:
        rows = pq.read_table(path).to_pylist()
    assert {r["annotation_id"] for r in rows if r["pre_annotated"]} == {first.pk}
    assert all(r["pre_annotated"] is False for r in rows if r["annotation_id"] != first.pk)
    assert "pre_annotated" in export.manifest["columns"]
