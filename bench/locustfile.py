"""Locust user for bench/load_test.py: a labeler who claims the next task and submits it.

Reads API tokens (one per simulated labeler) from the file named by PREFHUB_LOAD_TOKENS and the
project slug from PREFHUB_LOAD_PROJECT. Think time between tasks: PREFHUB_LOAD_THINK seconds
(uniform in [0.5x, 1.5x]).
"""

from __future__ import annotations

import itertools
import os
import random

from locust import HttpUser, between, task

_tokens = itertools.cycle(open(os.environ["PREFHUB_LOAD_TOKENS"]).read().split())  # noqa: SIM115
_project = os.environ["PREFHUB_LOAD_PROJECT"]
_think = float(os.environ.get("PREFHUB_LOAD_THINK", "1.0"))


class Labeler(HttpUser):
    wait_time = between(_think * 0.5, _think * 1.5) if _think > 0 else between(0, 0)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {next(_tokens)}"

    @task
    def label_one(self) -> None:
        with self.client.post(
            f"/api/v1/labeling/{_project}/next", json={}, name="next-task", catch_response=True
        ) as r:
            if r.status_code == 204:
                r.success()
                return
            if r.status_code != 200:
                r.failure(f"next-task {r.status_code}: {r.text[:200]}")
                return
            lease = r.json()
        choice = random.choice(["left", "right", "tie"])
        with self.client.post(
            f"/api/v1/labeling/assignments/{lease['assignment_id']}/submit",
            json={"choice": choice, "time_spent_ms": 4000},
            name="submit",
            catch_response=True,
        ) as r:
            if r.status_code not in (200, 201):
                r.failure(f"submit {r.status_code}: {r.text[:200]}")
