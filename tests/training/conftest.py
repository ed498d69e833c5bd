"""Fixtures shared by the training runner tests: one torch thread and the tiny offline model."""

from __future__ import annotations

import pytest


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
