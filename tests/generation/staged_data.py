"""A generation job whose outputs fail each automatic check somewhere: two fake endpoints, four
prompts, k=2 (16 candidates), run batch by batch. Shared by the staged-candidates tests and the
browser test of the release.

    prompt  endpoint e1 (samples 0, 1)              endpoint e2 (samples 0, 1)
    q0      "Paris is the capital." | "Paris."      "Paris is the capital." (duplicate) | "Lyon."
    q1      "  " (empty) | "A fine answer."         "bell \\x07" (control chars) | "<b>bold</b> & fine"
    q2      "same" | "same"                         "same" | "same"          (identical pair: all four)
    q3      "bad \\ufffd" | "cut off" (length)       "filtered" (content_filter) | "ok answer"

Passing: q0 3, q1 2, q2 0, q3 1 (makes no task) -> 6 candidates, 3 + 1 = 4 all-pairs tasks;
10 candidates left out. All: 16 candidates, 4 x C(4, 2) = 24 tasks.
"""

from __future__ import annotations

from generation import backends, services
from generation.backends.base import FINISH_LENGTH, FINISH_STOP, Generation
from generation.models import GenerationBatch
from tests.generation.conftest import FakeBackend, add_prompts

MAX_NEW_TOKENS = 16

OUTPUTS = {
    "e1": {
        0: [("Paris is the capital.", "stop"), ("Paris.", "stop")],
        1: [("  ", "stop"), ("A fine answer.", "stop")],
        2: [("same", "stop"), ("same", "stop")],
        3: [("bad \ufffd", "stop"), ("cut off", "length")],
    },
    "e2": {
        0: [("Paris is the capital.", "stop"), ("Lyon.", "stop")],
        1: [("bell \x07", "stop"), ("<b>bold</b> & fine", "stop")],
        2: [("same", "stop"), ("same", "stop")],
        3: [("filtered", "content_filter"), ("ok answer", "stop")],
    },
}


def _backend(name: str) -> FakeBackend:
    backend = FakeBackend()

    def outputs(content: str, i: int) -> Generation:
        number = int(content.split("number ")[1].rstrip("?"))
        text, native = OUTPUTS[name][number][i]
        length = native == "length"
        return Generation(
            text=text,
            finish_reason=FINISH_LENGTH if length else FINISH_STOP,
            prompt_tokens=5,
            completion_tokens=MAX_NEW_TOKENS if length else 3,
            native_finish_reason=native,
        )

    backend.outputs = outputs
    return backend


def staged_job(
    project, monkeypatch, *, auto_release: str = "", run: bool = True, actor=None, suffix: str = ""
):
    """Create the job (endpoints e1, e2, their names + ``suffix``) and, with ``run``, commit its
    batches one by one."""
    add_prompts(project, 4)
    fakes = {name: _backend(name) for name in OUTPUTS}
    monkeypatch.setattr(backends, "get_backend", lambda endpoint: fakes[endpoint.model.rsplit("/", 1)[1]])
    endpoints = [
        services.endpoint_create(
            name=f"{name}{suffix}", backend="transformers", model=f"/models/{name}", project=project
        )
        for name in OUTPUTS
    ]
    job = services.job_create(
        project=project,
        endpoints=endpoints,
        k=2,
        sampling={"max_new_tokens": MAX_NEW_TOKENS, "seed": 1},
        enqueue=False,
        auto_release=auto_release,
        actor=actor,
    )
    if run:
        for batch in GenerationBatch.objects.filter(job=job).order_by("index"):
            services.batch_run(batch_id=batch.pk)
        job.refresh_from_db()
    return job
