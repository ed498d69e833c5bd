"""A backend that starts a child process when it loads, the way vLLM's engine does (used by the
worker-pool tests through ``pool_worker_settings``). It generates fixed texts after a delay read
from PREFHUB_FAKE_DELAY_S, and its ``close`` stops the child (the "GPU memory" it holds)."""

from __future__ import annotations

import multiprocessing
import os
import time

from generation.backends.base import FINISH_STOP, Generation


def _engine(stop) -> None:  # the "engine core" child: holds the model until told to stop
    stop.wait()


class SpawningBackend:
    def __init__(self, model: str) -> None:
        self.model_name = model
        self.model_version = "fake-engine"
        self._stop = multiprocessing.Event()
        # AssertionError "daemonic processes are not allowed to have children" in a prefork child.
        self.engine = multiprocessing.Process(target=_engine, args=(self._stop,), daemon=True)
        self.engine.start()
        self.delay = float(os.environ.get("PREFHUB_FAKE_DELAY_S", "0"))

    def generate(self, conversations, params):
        assert self.engine.is_alive(), "the engine child died"
        time.sleep(self.delay)
        return [
            [Generation(text=f"{c[-1]['content']} #{i}", finish_reason=FINISH_STOP) for i in range(params.n)]
            for c in conversations
        ]

    def close(self) -> None:
        self._stop.set()
        self.engine.join(timeout=10)
        if self.engine.is_alive():
            self.engine.kill()
            self.engine.join(timeout=10)


def validate_config(config: dict, **kwargs) -> dict:
    return dict(config)


def build(model: str, config: dict) -> SpawningBackend:
    return SpawningBackend(model)
