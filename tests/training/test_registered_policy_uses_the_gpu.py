"""A trained policy registered as an endpoint generates on the worker's GPU when it has one.

The defect: ``run_register_endpoint`` created a transformers endpoint with no settings, and the
transformers backend's device defaulted to "cpu": on a GPU worker the next round of candidates was
generated on its CPU (a 7B policy: hours instead of minutes). A transformers endpoint without a
``device`` now takes "auto" (the GPU when the worker has one, else the CPU), as the registered
policy does; "cpu" stays for whoever asks for it."""

from __future__ import annotations

import pytest

from generation.backends import transformers as hf
from tests.training.test_runs_services import _done_run
from training.services.runs import run_register_endpoint

pytestmark = pytest.mark.django_db


def test_the_registered_policy_endpoint_generates_on_any_gpu(project, make_user):
    endpoint = run_register_endpoint(run=_done_run(project, "dpo"), actor=make_user())
    assert endpoint.config["device"] == "auto"


def test_a_transformers_endpoint_without_a_device_takes_auto():
    assert hf.validate_config({})["device"] == "auto"
    assert hf.validate_config({"device": "cpu"})["device"] == "cpu"


def test_auto_is_the_gpu_when_the_worker_has_one(monkeypatch, tmp_path):
    """The backend asks for the GPU: no CUDA build here, so moving the model there fails, naming it."""
    import torch

    from generation.tiny_model import build_tiny_model

    path = build_tiny_model(tmp_path / "m")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    moved = []
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: moved.append(a[0] if a else k) or self)
    backend = hf.TransformersBackend(str(path))
    assert backend.device == "cuda" and "cuda" in moved
