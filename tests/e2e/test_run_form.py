"""The training run form in Chromium: the base-model field offers the project's registered models
and earlier runs, and a typo is a form error at submit (issue 14), not a failure 80 s later."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from generation.models import ModelEndpoint
from tests.e2e.conftest import login, settle
from tests.hub_cache import write_model_folder
from training.models import Export, ExportState, RunState, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_base_model_options_and_a_typo_refused_at_submit(
    page, make_project, labeler_in, screenshot, tmp_path
):
    project = make_project(name="Run form")
    labeler_in(project, "rita", role="researcher")
    folder = Path(settings.PREFHUB_DATA_DIR) / "exports" / project.slug / "v1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text(
        json.dumps({"prompt": "Q?", "chosen": "yes", "rejected": "no"}) + "\n"
    )
    export = Export.objects.create(
        project=project, version=1, format="trl", state=ExportState.DONE, path=str(folder), row_count=1
    )
    demo = write_model_folder(tmp_path / "models" / "tiny-demo")
    ModelEndpoint.objects.create(name="tiny-demo", backend="transformers", model=str(demo))
    earlier = write_model_folder(Path(settings.PREFHUB_DATA_DIR) / "runs" / project.slug / "run-dpo")
    TrainingRun.objects.create(
        project=project,
        kind="dpo",
        base_model="tiny",
        export=export,
        state=RunState.DONE,
        output_path=str(earlier),
    )

    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, "rita")
    page.goto(f"/training/{project.slug}/runs/")
    field = page.locator("input[name=base_model]")
    assert field.get_attribute("list") == "base-model-options"
    offered = page.eval_on_selector_all(
        "#base-model-options option", "els => els.map(e => [e.value, e.getAttribute('label')])"
    )
    assert [str(demo), "endpoint tiny-demo"] in offered
    assert [str(earlier), f"run #{TrainingRun.objects.get().pk} (DPO) output"] in offered
    assert ["tiny", "Hugging Face cache"] in offered  # the tests' offline cache holds "tiny"

    page.select_option("select[name=export]", str(export.pk))
    field.fill("gpt2x")
    with page.expect_navigation():
        page.click(".run-form button[type=submit]")
    settle(page)
    error = page.locator("input[name=base_model] ~ .errorlist")
    assert "model 'gpt2x' not found locally" in error.inner_text()
    assert page.locator("input[name=base_model]").input_value() == "gpt2x"  # kept to correct
    assert TrainingRun.objects.count() == 1
    field.scroll_into_view_if_needed()
    screenshot(page, "run-form-base-model-error", full_page=False)
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []

    # the offered model launches
    page.locator("input[name=base_model]").fill(str(demo))
    page.select_option("select[name=export]", str(export.pk))
    with page.expect_navigation():
        page.click(".run-form button[type=submit]")
    run = TrainingRun.objects.latest("pk")
    assert run.base_model == str(demo.resolve()) and f"/runs/{run.pk}/" in page.url
    assert page.recorder.csp_violations == []


def test_a_failed_run_is_resumed_from_its_page(page, make_project, labeler_in, screenshot):
    """The run page of a failed run that left a checkpoint offers to resume it; the button queues
    a new run and opens its page, which says where it took over."""
    from training.runners.models import checkpoints_dir

    project = make_project(name="Resume")
    labeler_in(project, "rita", role="researcher")
    data = Path(settings.PREFHUB_DATA_DIR) / "datasets" / "resume-e2e.jsonl"  # still there: resumable
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text('{"prompt": "Q?", "chosen": "yes", "rejected": "no"}\n')
    run = TrainingRun.objects.create(
        project=project,
        kind="reward",
        base_model="tiny",
        dataset_path=str(data),
        state=RunState.FAILED,
        error="The worker running this run stopped answering. Resume it from its checkpoint at step 40.",
        config={"save_steps": 20},
    )
    run.output_path = str(Path(settings.PREFHUB_DATA_DIR) / "runs" / project.slug / f"run-{run.pk}")
    run.save(update_fields=["output_path"])
    checkpoint = checkpoints_dir(run.output_path) / "checkpoint-40"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")

    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, "rita")
    page.goto(f"/training/{project.slug}/runs/{run.pk}/")
    button = page.get_by_role("button", name="Resume from step 40")
    assert button.is_visible()
    screenshot(page, "run-page-resume-button", full_page=False)
    with page.expect_navigation():
        button.click()
    settle(page)
    new = TrainingRun.objects.get(resumed_from=run)
    assert page.url.endswith(f"/runs/{new.pk}/")
    assert f"continues run #{run.pk} from its checkpoint at step 40" in page.inner_text("body")
    assert page.get_by_role("link", name=f"run #{run.pk}").is_visible()
    assert page.get_by_role("button", name="Resume from step 40").count() == 0  # queued, not resumable
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
