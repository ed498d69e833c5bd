"""The base model of a training run is checked when it is submitted (issue 14: a typo failed 80 s
later with a Hub connection error), by the one service the form and the API share: a local folder
must be one the user may name (``core.paths``) and hold a config and a tokenizer; a Hub name must be
in the local Hugging Face cache unless online Hub names are allowed. The form offers the models the
project can use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from annotate.errors import InvalidInput
from generation.models import ModelEndpoint
from tests.hub_cache import seed_hub_cache, write_model_folder
from tests.training.conftest import make_run
from training.models import Export, ExportState, RunState, TrainingRun
from training.services.runs import run_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(make_project):
    return make_project(name="Base models")


@pytest.fixture
def hub(tmp_path, settings):
    """An empty offline Hugging Face cache of our own; online Hub names off (the default)."""
    settings.PREFHUB_HF_HUB_CACHE = str(tmp_path / "hf-hub")
    settings.PREFHUB_HUB_ONLINE = False
    return tmp_path / "hf-hub"


@pytest.fixture
def export(project):
    folder = Path(settings.PREFHUB_DATA_DIR) / "exports" / project.slug / "v1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text(
        json.dumps({"prompt": "Q?", "chosen": "yes", "rejected": "no"}) + "\n"
    )
    return Export.objects.create(
        project=project, version=1, format="trl", state=ExportState.DONE, path=str(folder), row_count=1
    )


def _post_form(client, project, **values):
    return client.post(reverse("training:run_list", args=[project.slug]), {"kind": "reward", **values})


def test_a_typo_in_a_hub_name_is_a_form_error_at_submit(client, project, researcher, export, hub):
    """The reported case: "gpt2x" was queued, then failed 80 s later with a connection error."""
    client.force_login(researcher)
    resp = _post_form(client, project, base_model="gpt2x", export=export.pk)
    assert resp.status_code == 400
    html = resp.content.decode()
    assert "model &#x27;gpt2x&#x27; not found locally" in html
    assert not TrainingRun.objects.exists()


def test_the_api_gives_the_same_answer(client, project, researcher, export, hub):
    client.force_login(researcher)
    resp = client.post(
        f"/api/v1/projects/{project.slug}/runs/",
        {"kind": "reward", "base_model": "gpt2x", "export": export.version},
        content_type="application/json",
    )
    assert resp.status_code == 400
    assert resp.json()["field"] == "base_model"
    assert "model 'gpt2x' not found locally" in resp.json()["detail"]
    assert not TrainingRun.objects.exists()


def test_a_cached_hub_name_is_accepted_and_online_names_only_when_allowed(project, export, hub, settings):
    seed_hub_cache(hub, "Qwen/Qwen2.5-0.5B-Instruct")
    run = run_create(project=project, kind="reward", base_model="Qwen/Qwen2.5-0.5B-Instruct", export=export)
    assert run.base_model == "Qwen/Qwen2.5-0.5B-Instruct"
    with pytest.raises(InvalidInput, match="not found locally"):
        run_create(project=project, kind="reward", base_model="Qwen/Qwen2.5-7B", export=export)
    settings.PREFHUB_HUB_ONLINE = True
    assert run_create(project=project, kind="reward", base_model="Qwen/Qwen2.5-7B", export=export).pk
    # HF_HUB_OFFLINE on the workers wins over the setting: they could not download it
    settings.HF_HUB_OFFLINE = True
    with pytest.raises(InvalidInput, match="not found locally"):
        run_create(project=project, kind="reward", base_model="Qwen/Qwen2.5-7B", export=export)


def test_a_cached_hub_repo_without_a_tokenizer_is_refused(project, export, hub):
    seed_hub_cache(hub, "org/no-tokenizer", tokenizer=False)
    with pytest.raises(InvalidInput) as err:
        run_create(project=project, kind="reward", base_model="org/no-tokenizer", export=export)
    assert err.value.field == "base_model" and "tokenizer" in err.value.message


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(parents=True), "no config.json"),
        (lambda p: write_model_folder(p, tokenizer=False), "no tokenizer"),
        (lambda p: (write_model_folder(p), (p / "config.json").write_text("{oops")), "not valid JSON"),
        (lambda p: write_model_folder(p, config={"hidden_size": 8}), "model_type"),
        (lambda p: None, "No model folder"),
    ],
    ids=["empty", "no-tokenizer", "bad-json", "no-model-type", "missing"],
)
def test_a_local_folder_must_hold_a_loadable_model(project, export, hub, make, message, tmp_path):
    folder = Path(settings.PREFHUB_DATA_DIR) / "runs" / project.slug / tmp_path.name
    make(folder)
    with pytest.raises(InvalidInput) as err:
        run_create(project=project, kind="reward", base_model=str(folder), export=export)
    assert err.value.field == "base_model" and message in err.value.message
    write_model_folder(folder / "ok")
    run = run_create(project=project, kind="reward", base_model=str(folder / "ok"), export=export)
    assert run.base_model == str((folder / "ok").resolve())


def test_a_reward_model_path_gets_the_same_check(project, export, hub):
    folder = Path(settings.PREFHUB_DATA_DIR) / "runs" / project.slug / "rm-without-tokenizer"
    write_model_folder(folder, tokenizer=False)
    with pytest.raises(InvalidInput) as err:
        run_create(
            project=project, kind="ppo", base_model=str(folder), reward_model=str(folder), export=export
        )
    assert err.value.field in ("base_model", "reward_model") and "tokenizer" in err.value.message


def test_registered_endpoint_models_may_be_named_but_not_another_projects(
    project, export, hub, make_project, tmp_path
):
    shared = write_model_folder(tmp_path / "models" / "tiny-demo")
    ModelEndpoint.objects.create(name="tiny-demo", backend="transformers", model=str(shared))
    other = make_project(name="Someone else")
    theirs = write_model_folder(tmp_path / "models" / "theirs")
    ModelEndpoint.objects.create(name="theirs", backend="transformers", model=str(theirs), project=other)
    assert run_create(project=project, kind="reward", base_model=str(shared), export=export).pk
    with pytest.raises(InvalidInput) as err:
        run_create(project=project, kind="reward", base_model=str(theirs), export=export)
    assert err.value.field == "base_model" and "must be" in err.value.message


def test_an_endpoint_may_be_named_by_its_name(
    client, project, researcher, export, hub, make_project, tmp_path
):
    """The README's promise: "the model folder of a generation endpoint the project can use (the
    demo's tiny-demo)". Typing the endpoint's name was taken for a Hub name and refused with advice
    to download it from the Hub; now the name stands for the endpoint's model. Another project's
    endpoint is not found by its name either."""
    folder = write_model_folder(tmp_path / "models" / "tiny-demo")
    ModelEndpoint.objects.create(name="tiny-demo", backend="transformers", model=str(folder))
    seed_hub_cache(hub, "Qwen/Qwen2.5-0.5B-Instruct")
    ModelEndpoint.objects.create(name="qwen-small", backend="vllm", model="Qwen/Qwen2.5-0.5B-Instruct")
    other = make_project(name="Someone else")
    theirs = write_model_folder(tmp_path / "models" / "theirs")
    ModelEndpoint.objects.create(name="theirs", backend="transformers", model=str(theirs), project=other)

    run = run_create(project=project, kind="reward", base_model="tiny-demo", export=export)
    assert run.base_model == str(folder.resolve())
    run = run_create(project=project, kind="reward", base_model="qwen-small", export=export)
    assert run.base_model == "Qwen/Qwen2.5-0.5B-Instruct"
    with pytest.raises(InvalidInput) as err:
        run_create(project=project, kind="reward", base_model="theirs", export=export)
    assert err.value.field == "base_model" and "not found locally" in err.value.message
    assert "tiny-demo" in err.value.message  # the refusal names the endpoints that may be used
    client.force_login(researcher)
    resp = _post_form(client, project, base_model="tiny-demo", export=export.pk)
    assert resp.status_code == 302, resp.content.decode()[:2000]


def test_the_form_offers_registered_models_and_earlier_runs(client, project, researcher, hub, tmp_path):
    seed_hub_cache(hub, "Qwen/Qwen2.5-0.5B-Instruct")
    endpoint_model = write_model_folder(tmp_path / "models" / "tiny-demo")
    ModelEndpoint.objects.create(name="tiny-demo", backend="transformers", model=str(endpoint_model))
    ModelEndpoint.objects.create(name="remote", backend="openai", model="gpt-4o-mini")
    out = write_model_folder(Path(settings.PREFHUB_DATA_DIR) / "runs" / project.slug / "run-41")
    make_run(project, kind="dpo", state=RunState.DONE, output_path=str(out))
    failed = make_run(project, kind="dpo", state=RunState.FAILED, output_path="/nowhere/run-42")
    client.force_login(researcher)
    html = client.get(reverse("training:run_list", args=[project.slug])).content.decode()
    assert 'list="base-model-options"' in html and '<datalist id="base-model-options">' in html
    datalist = html.split('<datalist id="base-model-options">', 1)[1].split("</datalist>", 1)[0]
    assert f'value="{endpoint_model}"' in datalist and "endpoint tiny-demo" in datalist
    assert f'value="{out}"' in datalist and "DPO" in datalist
    assert 'value="Qwen/Qwen2.5-0.5B-Instruct"' in datalist
    assert "gpt-4o-mini" not in datalist  # an OpenAI-compatible server's model is no base model
    assert failed.output_path not in datalist
