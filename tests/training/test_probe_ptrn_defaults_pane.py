"""The launch form's "Options and their defaults" lists the options a run's config may set, with
their defaults: pasting what it shows for a kind into the config box launches a run with those
options. It listed the options the platform fills in too (base_model, dataset_path, output_dir,
metrics_file, overwrite_output_dir, resume_from, ...), which the same form then refused ("These are
set by the platform, not in config")."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.urls import reverse

from tests.training.conftest import done_export
from training.models import RunKind, TrainingRun
from training.services.runs import PLATFORM_KEYS

pytestmark = pytest.mark.django_db


def _shown_defaults(page: str) -> dict[str, dict]:
    pane = page.split("Options and their defaults", 1)[1].split("</details>", 1)[0]
    return {
        kind: json.loads(html.unescape(text))
        for kind, text in re.findall(r"<h3>(\w+)</h3>\s*<pre>(.*?)</pre>", pane, flags=re.S)
    }


def test_the_defaults_shown_are_options_the_form_accepts(client, project, researcher, dataset, settings):
    settings.PREFHUB_DATASET_DIRS = []
    export = done_export(project, dataset)
    client.force_login(researcher)
    url = reverse("training:run_list", args=[project.slug])
    shown = _shown_defaults(client.get(url).content.decode())
    assert set(shown) == set(RunKind.values)
    for kind, options in shown.items():
        assert "learning_rate" in options  # the options a run sets are there
        assert not PLATFORM_KEYS & set(options), (kind, sorted(PLATFORM_KEYS & set(options)))
        answer = client.post(
            url, {"kind": kind, "base_model": "tiny", "export": export.pk, "config": json.dumps(options)}
        )
        assert b"set by the platform" not in answer.content, kind
    # pasted as shown, the reward defaults launch a run with exactly those options
    run = TrainingRun.objects.get(project=project, kind=RunKind.REWARD)
    assert run.config == shown[RunKind.REWARD]
