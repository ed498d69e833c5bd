"""Probe: registering a trained policy that has no chat template (a DPO/PPO run of a base model).

Before: the register API answered 201 and made a ``transformers`` endpoint, and every generation job
on it then failed ("The tokenizer of ... has no chat template, so conversations cannot be
formatted"): the loop looked closed and was not. Now the registration is refused (400) saying why,
and nothing is made; a policy with a chat template (in ``tokenizer_config.json`` or the
``chat_template.jinja`` transformers 5 saves) still registers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from generation.models import ModelEndpoint
from tests.training.conftest import make_run
from training.models import RunState

pytestmark = pytest.mark.django_db


def _policy_run(project, source: str, name: str):
    out = Path(settings.PREFHUB_DATA_DIR) / "runs" / project.slug / name
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out)
    return make_run(project, kind="dpo", state=RunState.DONE, output_path=str(out))


def _register(client, project, run):
    return client.post(
        f"/api/v1/projects/{project.slug}/runs/{run.pk}/register/", {}, content_type="application/json"
    )


def test_a_policy_without_a_chat_template_is_refused(client, project, researcher, zoo_model):
    run = _policy_run(project, zoo_model("base"), "base-policy")
    client.force_login(researcher)
    resp = _register(client, project, run)
    assert resp.status_code == 400, resp.content
    assert "chat template" in resp.json()["detail"]
    assert not ModelEndpoint.objects.exists()
    run.refresh_from_db()
    assert run.registered_endpoint is None


@pytest.mark.parametrize("name", ["qwen", "llama3"])
def test_a_policy_with_a_chat_template_registers(client, project, researcher, zoo_model, name):
    run = _policy_run(project, zoo_model(name), f"{name}-policy")
    client.force_login(researcher)
    assert _register(client, project, run).status_code == 201


def test_a_template_kept_in_tokenizer_config_registers(client, project, researcher, zoo_model):
    run = _policy_run(project, zoo_model("qwen"), "qwen-inline-template")
    folder = Path(run.output_path)
    template = (folder / "chat_template.jinja").read_text()
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": template}))
    client.force_login(researcher)
    assert _register(client, project, run).status_code == 201
