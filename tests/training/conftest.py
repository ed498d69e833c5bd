"""Fixtures shared by the training tests: one torch thread, the tiny offline model, a researcher
of the module's project, and training run rows."""

from __future__ import annotations

import pytest

from training.models import TrainingRun


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from a second thread, and spinning OpenMP threads on shared cores
    cost ~10x (see training.services.runs)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny Llama built offline, once per test module."""
    from generation.tiny_model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny")))


@pytest.fixture
def researcher(project, labeler_in):
    """A researcher in the test module's ``project`` fixture."""
    return labeler_in(project, role="researcher")


def make_run(project, **values) -> TrainingRun:
    """A training run row: a reward run of "tiny" on a placeholder dataset unless ``values`` say
    otherwise."""
    return TrainingRun.objects.create(
        project=project, **{"kind": "reward", "base_model": "tiny", "dataset_path": "/x.jsonl", **values}
    )
