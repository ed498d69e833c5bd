"""AI judge writes: judges, judge jobs (run on the generation queue), suggestions and routing.

How a judge job runs
--------------------
``judge_job_create`` renders the rubric from the project's current guideline version and
dimensions, records the tasks to judge and enqueues ``generation.judge_job_run`` through the
outbox. The worker runs ``judge_job_run``: it claims the job (queued -> running, or finds it
running again after a redelivery), then judges the tasks in chunks *outside* any transaction. Each
pair is judged twice, with the responses' positions swapped; each chunk's suggestions and the
job's counters are written in one transaction (``ignore_conflicts`` on the unique (job, task): a
redelivered job skips what it already wrote). Cancelling the job stops it between chunks.

Untrusted answers: the parser (``rubric.parse_judgment``) turns any answer into a verdict or
``unparseable``; anything else it might raise is recorded as unparseable too, so no model output
fails a job. Token counts the server does not report (or reports absurdly) are None, unknown, and
so is the cost: the job's totals add the known ones and count the unknown (``usage_missing_units``).
A failed suggestion forgotten to judge its task again keeps its spend in the totals (the answered
ordering of a pair whose other one failed was billed): ``retried_prompt_tokens`` and the like.

Verdicts the project does not allow (``allow_tie`` / ``allow_both_bad`` off; the rubric does not
offer them, but a model may answer them anyway) are recorded as ``not_allowed`` and never become a
label or a preselection; routing sends such a task to humans (``verdict_not_allowed``), also when
the project switched ties off after the job judged.

Transient failures (the server down or overloaded after the backend's own retries) are recorded as
``failed`` with ``transient=True``. After its pass the job judges those tasks once more per delay of
``TRANSIENT_RETRY_DELAYS_S`` (15 s), without holding its worker meanwhile (``_retry_later``): under
the job's row lock it forgets those failures, counts the pass (``retry_passes``), records that it
waits (``retry_at``, ``retry_units``: the job page says so) and enqueues the same job through the
outbox with that countdown; the job stays ``running`` and the worker is free for other work until
the message comes back. The wait is as safe as the sleep it replaced: no sweep ends a running judge
job; the message is in the outbox until the broker has it, then held by the broker (Redis restores
it after a worker dies, as it did the sleeping job's); a cancel meanwhile leaves the message
nothing to do; ``run_alone`` keeps a duplicate from running beside it. What still fails after the
last extra pass stays failed, *unrouted* (the task keeps its human slots and can be routed once
judged), and ``judge_job_retry_failed`` re-queues the finished job for exactly those tasks once the
server is back (with its extra passes again). A permanent failure (the server refused the prompt)
is not retried.

Routing (``routing_apply``, at the end of a job when the project has ``judge_routing`` on): per
task without a decision, one suggestion of every *active* judge decides (``latest_suggestions``:
the judge's newest that is not a failure, else its newest failure; a switched-off judge does not
count). A judge without an answer (failed or unparseable) is left out when another judge answered,
so a broken judge does not decide for the others:

* nothing yet, when no judge answered and one failed transiently (judge it again first);
* humans, when a judge is unsure (``inconsistent``: the verdict moved with the positions;
  ``unparsed``: no judge answered (unparseable or failed); ``low_strength``: an A/B verdict weaker than
  ``project.judge_min_strength``), a judge's verdict is one the project does not allow
  (``verdict_not_allowed``), the judges disagree (``judges_disagree``), the task is gold
  (``gold``), a seeded draw puts it in the audit share (``audit``), or people already hold
  every slot of it (``human_slots_taken``: labeled or leased to its target; no judge label is added);
* otherwise the judges (``confident``).

The judges' verdicts on a confident task are written as annotations (``source="judge"``, by each
judge's own inactive user), each counting as a claim, and the task's ``target_labels`` is lowered
to its claims so no human claims it (``claims <= target_labels`` holds: both move together under
the row lock). On an audit task the judge annotations are added *beside* the humans'
(``target_labels`` and ``claims`` both grow by the judges' count), so humans keep every slot and
the reliability model sees judges and humans on the same items. Each decision records the task's
target before and after routing (``details``), so that ``routing_reroute`` can undo exactly that.

Re-routing (``routing_reroute``, a manager's button): the decisions of the tasks no human worked on
yet are withdrawn (judge labels deleted, target given back) and made again with the active judges
and the current settings; tasks with human work keep theirs.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Count, F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.text import slugify

from annotate.errors import Conflict, InvalidInput
from annotate.judges import rubric as rb
from annotate.judges import selectors
from annotate.models import (
    Annotation,
    AnnotationSource,
    Dimension,
    Guideline,
    Judge,
    JudgeJob,
    JudgeSuggestion,
    Project,
    RerouteJob,
    RoutingDecision,
    Task,
    TaskCandidate,
    TaskKind,
)
from annotate.models_judges import Route, SuggestionStatus
from annotate.selectors import guideline_current
from annotate.validation import storable_text, unstorable_at
from core import jobs
from core.audit import audit_create, audit_record
from core.db import unique_or_conflict
from core.jobs import JobState
from core.outbox import outbox_enqueue
from generation.backends.base import token_count

log = logging.getLogger(__name__)

TASK_NAME = JudgeJob.RESUME_TASK
CHUNK_TASKS = 8
MAX_TASKS_PER_JOB = 100_000
DEFAULT_SAMPLING = {"temperature": 0.0, "max_new_tokens": 300}
MAX_PRICE = Decimal("1000000")
#: Seconds to wait before each extra pass over the tasks that failed transiently (one pass each;
#: the job is delivered again after each, its worker free meanwhile).
TRANSIENT_RETRY_DELAYS_S: tuple[float, ...] = (15.0,)


_VERDICT_WORDS = {"tie": "a tie", "both_bad": '"both bad"'}

#: Why nothing judge-related runs on a ranking project (the page says it up front).
PAIRWISE_ONLY = "AI judges compare pairs: this project ranks responses."


def _require_pairwise(project: Project, field: str | None = "judge") -> None:
    if project.kind != TaskKind.PAIRWISE:
        raise InvalidInput(PAIRWISE_ONLY, field=field)


# --- judges ----------------------------------------------------------------------------------------


def _clean_price(value, field: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        price = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{field} must be a number (a price per 1,000 tokens).", field=field) from None
    if not price.is_finite() or price < 0 or price > MAX_PRICE:
        raise InvalidInput(f"{field} must be a non-negative price per 1,000 tokens.", field=field)
    return price.quantize(Decimal("0.000001"))


def _clean_sampling(endpoint, sampling: dict | None) -> dict:
    from generation.backends.base import InvalidSamplingParams, SamplingParams

    if sampling is None:
        sampling = {}
    if not isinstance(sampling, dict):
        raise InvalidInput("Sampling must be a JSON object.", field="sampling")
    if "n" in sampling:
        raise InvalidInput("A judge samples one answer per ordering; leave n out.", field="sampling")
    known = [k for k in SamplingParams.FIELDS if k != "n"]
    unknown = sorted(str(k) for k in set(sampling) - set(known))
    if unknown:  # listed here, not by SamplingParams: a judge's keys are its fields less n
        raise InvalidInput(
            f"Unknown sampling parameter(s): {', '.join(unknown)}. Known: {', '.join(known)}.",
            field="sampling",
        )
    bad = unstorable_at(sampling)
    if bad is not None:
        where, message = bad
        raise InvalidInput(f"sampling{'.' + where if where else ''} {message}", field="sampling")
    try:
        SamplingParams.from_dict({**DEFAULT_SAMPLING, **(endpoint.default_sampling or {}), **sampling})
    except InvalidSamplingParams as exc:
        raise InvalidInput(str(exc), field="sampling") from exc
    return dict(sampling)


def judge_sampling(judge: Judge):
    """The effective sampling parameters of a judge: judge defaults < endpoint defaults < judge's."""
    from generation.backends.base import SamplingParams

    endpoint = judge.endpoint
    merged = {**DEFAULT_SAMPLING, **{k: v for k, v in (endpoint.default_sampling or {}).items() if k != "n"}}
    return SamplingParams.from_dict({**merged, **(judge.sampling or {})}, n=1)


def judge_config_clean(*, endpoint, sampling, price_prompt_per_1k, price_completion_per_1k) -> dict:
    """A judge's sampling overrides and prices, checked (InvalidInput naming the field) and returned
    as stored: the one rule for creating a judge and restoring one from a backup."""
    return {
        "sampling": _clean_sampling(endpoint, sampling),
        "price_prompt_per_1k": _clean_price(price_prompt_per_1k, "price_prompt_per_1k"),
        "price_completion_per_1k": _clean_price(price_completion_per_1k, "price_completion_per_1k"),
    }


def judge_username(*, project: Project, name: str) -> str:
    """The account a judge of ``project`` named ``name`` (a slug) labels as."""
    return f"judge.{project.pk}.{name}"[:150]


@transaction.atomic
def judge_create(
    *,
    project: Project,
    name: str,
    endpoint,
    sampling: dict | None = None,
    price_prompt_per_1k=None,
    price_completion_per_1k=None,
    actor: AbstractBaseUser | None = None,
) -> Judge:
    """A judge for ``project`` served by ``endpoint`` (a shared endpoint or one of the project's).
    It labels as its own inactive account, which can never sign in."""
    _require_pairwise(project, field=None)
    slug = slugify(name or "")[:80]
    if not slug:
        raise InvalidInput("A judge needs a name (letters, digits, dashes).", field="name")
    if endpoint is None or (endpoint.project_id not in (None, project.pk)) or not endpoint.is_active:
        raise InvalidInput("Choose an active model endpoint available to this project.", field="endpoint")
    values = judge_config_clean(
        endpoint=endpoint,
        sampling=sampling,
        price_prompt_per_1k=price_prompt_per_1k,
        price_completion_per_1k=price_completion_per_1k,
    )
    User = get_user_model()
    username = judge_username(project=project, name=slug)
    # The account and the judge in one savepoint: a judge of that name made meanwhile (another
    # manager's request committing) is a unique violation on either.
    with unique_or_conflict(
        (
            Judge.objects.filter(project=project, name=slug),
            Conflict(f"This project already has a judge named {slug!r}.", field="name"),
        ),
        (
            User.objects.filter(username=username),
            Conflict(f"An account named {username!r} already exists.", field="name"),
        ),
    ):
        user = User(username=username, is_active=False)
        user.set_unusable_password()
        user.save()
        return audit_create(
            Judge,
            actor=actor,
            action="judge.create",
            details={"name": slug, "endpoint": endpoint.name, "model": endpoint.model},
            project=project,
            name=slug,
            endpoint=endpoint,
            user=user,
            **values,
        )


@transaction.atomic
def judge_set_active(
    *, judge: Judge, active: bool, actor: AbstractBaseUser | None = None
) -> tuple[Judge, int]:
    """Switch a judge off (or on again). A switched-off judge cannot run, its queued and running
    jobs are cancelled (what they judged so far is kept), and its suggestions no longer count for
    routing or pre-annotation; its judge labels already written stay (re-routing withdraws them
    where no human labeled the task yet). Returns the judge and the number of jobs cancelled."""
    judge = Judge.objects.select_for_update().get(pk=judge.pk)
    cancelled = 0
    if judge.is_active != active:
        judge.is_active = active
        judge.save(update_fields=["is_active"])
        if not active:
            for job in JudgeJob.objects.select_for_update().filter(judge=judge, state__in=jobs.ACTIVE_STATES):
                jobs.job_finish(job, state=JobState.CANCELLED, retry_at=None, retry_units=0)
                cancelled += 1
        audit_record(
            actor=actor,
            project=judge.project,
            action="judge.activate" if active else "judge.deactivate",
            target=judge,
            details={"name": judge.name, "jobs_cancelled": cancelled},
        )
    return judge, cancelled


def judge_settings_change(*, project: Project, actor: AbstractBaseUser, values: dict):
    """The project's judge settings (pre-annotation, routing, audit share, minimum strength);
    refused on a ranking project, where no judge can run."""
    from annotate.services.manage import project_settings_change

    _require_pairwise(project, field=None)
    return project_settings_change(project=project, actor=actor, values=values)


# --- jobs ------------------------------------------------------------------------------------------


def rubric_label(version: int | None) -> str:
    """What a rubric was rendered from, in words: "guidelines v3" or "no guidelines"."""
    return f"guidelines v{version}" if version is not None else "no guidelines"


def rubric_for(project: Project) -> tuple[str, int | None]:
    guideline = guideline_current(project=project)
    dims = list(Dimension.objects.filter(project=project))
    return rb.render_rubric(project=project, guideline=guideline, dimensions=dims), (
        guideline.version if guideline else None
    )


@transaction.atomic
def judge_job_create(
    *,
    judge: Judge,
    actor: AbstractBaseUser | None = None,
    task_ids: list[int] | None = None,
    limit: int | None = None,
    only_unjudged: bool = False,
) -> JudgeJob:
    """Queue a job judging the project's pairwise tasks (all, ``task_ids``, or the first ``limit``).
    ``only_unjudged``: only the tasks this judge has no answer for yet (no suggestion, or only
    failed ones), so a rerun is not billed again for what it already judged."""
    project = judge.project
    _require_pairwise(project)
    if not judge.is_active:
        raise InvalidInput("This judge is switched off.", field="judge")
    if not judge.endpoint.is_active:
        raise InvalidInput(f"Endpoint {judge.endpoint.name} is switched off.", field="judge")
    qs = Task.objects.filter(project=project).order_by("id")
    if task_ids is not None:
        if not isinstance(task_ids, list) or not all(isinstance(t, int) for t in task_ids):
            raise InvalidInput("task_ids must be a list of task ids.", field="task_ids")
        qs = qs.filter(pk__in=task_ids)
        if not qs.exists():  # not "already judged": nothing asked for is the project's
            raise InvalidInput("None of task_ids is a task of this project.", field="task_ids")
    if limit is not None and (
        not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_TASKS_PER_JOB
    ):
        raise InvalidInput(f"limit must be between 1 and {MAX_TASKS_PER_JOB}.", field="limit")
    busy_jobs: list[int] = []
    if only_unjudged:
        Judge.objects.select_for_update().filter(pk=judge.pk).first()  # one such job of a judge at a time
        busy_jobs, busy_tasks = selectors.judging_now(judge)
        qs = qs.exclude(pk__in=selectors.judged_task_ids(judge)).exclude(pk__in=busy_tasks)
    ids = list(qs.values_list("id", flat=True)[: limit or MAX_TASKS_PER_JOB])
    if not ids and only_unjudged:
        if busy_jobs:
            jobs_named = ", ".join(f"job {pk}" for pk in busy_jobs)
            raise InvalidInput(
                f"Judge {judge.name} already judged, or is judging ({jobs_named}), every task.",
                field="task_ids",
            )
        raise InvalidInput(f"Judge {judge.name} already judged every task.", field="task_ids")
    if not ids:
        raise InvalidInput("There are no tasks to judge.", field="task_ids")
    rubric, version = rubric_for(project)
    job = audit_create(
        JudgeJob,
        actor=actor,
        action="judge_job.create",
        details={
            "judge": judge.name,
            "tasks": len(ids),
            "only_unjudged": only_unjudged,
            "rubric": rubric_label(version),
        },
        project=project,
        judge=judge,
        rubric=rubric,
        rubric_version=version,
        sampling=judge_sampling(judge).to_dict(),
        task_ids=ids,
        total_units=len(ids),
    )
    outbox_enqueue(TASK_NAME, job.pk)
    return job


@transaction.atomic
def judge_job_cancel(*, job: JudgeJob, actor: AbstractBaseUser | None = None) -> JudgeJob:
    job = JudgeJob.objects.select_for_update().get(pk=job.pk)
    if not job.job_active:
        raise Conflict("This job has already finished.")
    jobs.job_finish(job, state=JobState.CANCELLED, retry_at=None, retry_units=0)
    audit_record(actor=actor, project=job.project, action="judge_job.cancel", target=job)
    return job


def _claim(job_id: int) -> bool:
    """Queued -> running, or a running job delivered again (a redelivery, or the message of its
    extra pass: no longer waiting); False when the job ended."""
    return jobs.job_claim(JudgeJob, job_id, retry_at=None, retry_units=0, progress_at=timezone.now())


def _cost(judge: Judge, prompt_tokens: int | None, completion_tokens: int | None) -> Decimal | None:
    """The price of the tokens; None when the judge is not priced or a priced count is unknown."""
    if not judge.priced:
        return None
    total = Decimal(0)
    if judge.price_prompt_per_1k is not None:
        if prompt_tokens is None:
            return None
        total += judge.price_prompt_per_1k * prompt_tokens / 1000
    if judge.price_completion_per_1k is not None:
        if completion_tokens is None:
            return None
        total += judge.price_completion_per_1k * completion_tokens / 1000
    return total.quantize(Decimal("0.000001"))


def _add(total: int | None, value) -> int | None:
    value = token_count(value)
    return None if total is None or value is None else token_count(total + value)


def _tasks_input(task_ids: list[int]) -> dict[int, dict]:
    """Per task: slot candidate ids and texts, and the prompt's messages (two queries)."""
    out: dict[int, dict] = {}
    for task_id, messages in Task.objects.filter(pk__in=task_ids).values_list("id", "prompt__messages"):
        out[task_id] = {"messages": messages if isinstance(messages, list) else [], "slots": []}
    rows = (
        TaskCandidate.objects.filter(task_id__in=task_ids)
        .order_by("task_id", "slot")
        .values_list("task_id", "candidate_id", "candidate__text")
    )
    for task_id, cid, text in rows:
        out[task_id]["slots"].append((cid, text))
    return out


def _suggestion(
    *,
    job: JudgeJob,
    task_id: int,
    slots: list,
    results: tuple,
    dims: list[str],
    scale_max: int,
    seconds: float,
    model: tuple[str, str],
) -> JudgeSuggestion:
    """Combine the two orderings' answers into one suggestion."""
    from generation.backends.base import PromptError

    judge = job.judge
    first, swapped = results
    raws, parsed, errors = [], [], []
    # a call that failed is not billed (0 tokens); one that answered without usage is unknown
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    for result in (first, swapped):
        if isinstance(result, PromptError):
            raws.append("")
            parsed.append(None)
            errors.append(result.message)
            continue
        gen = result[0]
        prompt_tokens = _add(prompt_tokens, gen.prompt_tokens)
        completion_tokens = _add(completion_tokens, gen.completion_tokens)
        text = gen.text if isinstance(gen.text, str) else ""
        raws.append(storable_text(text))
        try:
            parsed.append(rb.parse_judgment(text, dimensions=dims, scale_max=scale_max))
        except rb.UnparseableJudgment as exc:
            parsed.append(None)
            errors.append(str(exc))
        except Exception as exc:  # a parser bug on some answer must not fail the job
            log.warning("judge answer could not be parsed: %r", exc)
            parsed.append(None)
            errors.append(f"The answer could not be read ({type(exc).__name__}).")
    (c0, _), (c1, _) = slots[0], slots[1]
    v_first = parsed[0].verdict if parsed[0] else ""
    v_swapped = rb.unswap(parsed[1].verdict) if parsed[1] else ""
    status = SuggestionStatus.OK
    prompt_errors = [r for r in (first, swapped) if isinstance(r, PromptError)]
    if prompt_errors:
        status = SuggestionStatus.FAILED
    elif None in parsed:
        status = SuggestionStatus.UNPARSEABLE
    elif v_first != v_swapped:
        status = SuggestionStatus.INCONSISTENT
    elif v_first not in rb.allowed_verdicts(job.project):
        status = SuggestionStatus.NOT_ALLOWED
        errors.append(f"The judge answered {_VERDICT_WORDS[v_first]}, which this project does not allow.")
    choice = v_first if status == SuggestionStatus.OK else ""
    strength = None
    if choice in ("a", "b"):
        ss = [p.strength for p in parsed if p and p.strength]
        strength = min(ss) if len(ss) == 2 else None
    scores: dict[str, dict[str, float]] = {}
    for key in dims:
        vals: dict[int, list[float]] = {c0: [], c1: []}
        if parsed[0] and key in parsed[0].scores:
            vals[c0].append(parsed[0].scores[key]["A"])
            vals[c1].append(parsed[0].scores[key]["B"])
        if parsed[1] and key in parsed[1].scores:
            vals[c1].append(parsed[1].scores[key]["A"])
            vals[c0].append(parsed[1].scores[key]["B"])
        if vals[c0] and vals[c1]:
            scores[key] = {str(c): round(sum(v) / len(v), 3) for c, v in vals.items()}
    rationale = next((p.rationale for p in parsed if p and p.rationale), "")
    return JudgeSuggestion(
        job=job,
        judge=judge,
        task_id=task_id,
        status=status,
        choice=choice,
        strength=strength,
        scores=scores,
        rationale=storable_text(rationale),
        verdict_first=v_first,
        verdict_swapped=v_swapped,
        raw_first=raws[0][:20_000],
        raw_swapped=raws[1][:20_000],
        error=storable_text("; ".join(errors))[:2000],
        transient=bool(prompt_errors) and all(e.transient for e in prompt_errors),
        endpoint=judge.endpoint,
        model_name=model[0][:300],
        model_version=model[1][:200],
        rubric_version=job.rubric_version,
        sampling=job.sampling,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        seconds=round(seconds, 4),
        cost=_cost(judge, prompt_tokens, completion_tokens),
    )


def _write_chunk(job: JudgeJob, suggestions: list[JudgeSuggestion]) -> None:
    with transaction.atomic():
        locked = JudgeJob.objects.select_for_update().get(pk=job.pk)
        if locked.state != JobState.RUNNING:
            return
        JudgeSuggestion.objects.bulk_create(suggestions, ignore_conflicts=True)
        _job_totals(job.pk)
        JudgeJob.objects.filter(pk=job.pk).update(progress_at=timezone.now())


def _cost_plus(field: str, amount: Decimal):
    """``field`` (a nullable cost of the job: none counts as 0) plus ``amount``, in the database."""
    cost = JudgeJob._meta.get_field("cost")
    return Coalesce(F(field), Value(Decimal(0)), output_field=cost) + Value(amount, output_field=cost)


def _job_totals(job_id: int) -> None:
    """The job's counters from its suggestions: the known tokens and costs summed, the suggestions
    without reported usage counted (``usage_missing_units``)."""
    counts = JudgeSuggestion.objects.filter(job_id=job_id)
    totals = counts.aggregate(
        pt=Coalesce(Sum("prompt_tokens"), 0),
        ct=Coalesce(Sum("completion_tokens"), 0),
        s=Coalesce(Sum("seconds"), 0.0),
        cost=Sum("cost"),
    )
    # the answers of forgotten failures (``_forget_failures``) stay billed
    cost = F("retried_cost") if totals["cost"] is None else _cost_plus("retried_cost", totals["cost"])
    JudgeJob.objects.filter(pk=job_id).update(
        done_units=counts.count(),
        failed_units=counts.filter(status=SuggestionStatus.FAILED).count(),
        usage_missing_units=counts.filter(
            Q(prompt_tokens__isnull=True) | Q(completion_tokens__isnull=True)
        ).count(),
        prompt_tokens=F("retried_prompt_tokens") + totals["pt"],
        completion_tokens=F("retried_completion_tokens") + totals["ct"],
        seconds=round(totals["s"], 4),
        cost=cost,
    )


def _forget_failures(job_id: int, failed) -> int:
    """Delete the job's ``failed`` suggestions (to judge those tasks again) and recount the job;
    how many. What they were billed (the answered ordering of a pair whose other one failed) moves
    to the job's ``retried_*`` counters, so the totals keep it. The caller holds the job's row lock."""
    spent = failed.aggregate(
        pt=Coalesce(Sum("prompt_tokens"), 0),
        ct=Coalesce(Sum("completion_tokens"), 0),
        cost=Sum("cost"),
        n=Count("id"),
    )
    if not spent["n"]:
        return 0
    values = {
        "retried_prompt_tokens": F("retried_prompt_tokens") + spent["pt"],
        "retried_completion_tokens": F("retried_completion_tokens") + spent["ct"],
    }
    if spent["cost"] is not None:
        values["retried_cost"] = _cost_plus("retried_cost", spent["cost"])
    JudgeJob.objects.filter(pk=job_id).update(**values)
    failed.delete()
    _job_totals(job_id)
    return spent["n"]


def _fail(job_id: int, error: BaseException | str) -> JudgeJob:
    with transaction.atomic():
        locked = JudgeJob.objects.select_for_update().get(pk=job_id)
        if locked.job_active:
            jobs.job_fail(locked, error)
    return locked


def _judge_tasks(job: JudgeJob, *, backend, params, model: tuple[str, str], dims: list[str], chunk: int):
    """Judge the job's remaining tasks chunk by chunk; returns the job when it stopped early
    (cancelled, its endpoint switched off, or the endpoint failed), None when every task has a suggestion."""
    from generation.backends.base import BackendConfigError, PromptError, TransientBackendError
    from generation.models import ModelEndpoint

    project = job.project
    done = set(JudgeSuggestion.objects.filter(job=job).values_list("task_id", flat=True))
    todo = [t for t in job.task_ids if t not in done]
    for start in range(0, len(todo), chunk):
        if JudgeJob.objects.filter(pk=job.pk).values_list("state", flat=True).first() != JobState.RUNNING:
            return JudgeJob.objects.get(pk=job.pk)
        if not ModelEndpoint.objects.filter(pk=job.judge.endpoint_id, is_active=True).exists():
            # switched off since the job started: it takes no more work (generation batches alike)
            stopped = JudgeJob.objects.get(pk=job.pk)
            jobs.job_finish(
                stopped,
                state=JobState.CANCELLED,
                error=f"Endpoint {job.judge.endpoint.name} was switched off; the tasks judged so far keep "
                "their suggestions.",
                retry_at=None,
                retry_units=0,
            )
            return stopped
        ids = todo[start : start + chunk]
        inputs = _tasks_input(ids)
        ids = [t for t in ids if t in inputs]
        convs, keep = [], []
        skipped = []
        for t in ids:
            slots = inputs[t]["slots"]
            if len(slots) != 2:
                skipped.append(t)
                continue
            (_, text0), (_, text1) = slots
            messages = inputs[t]["messages"]
            convs.append(
                rb.judge_conversation(rubric=job.rubric, messages=messages, first=text0, second=text1)
            )
            convs.append(
                rb.judge_conversation(rubric=job.rubric, messages=messages, first=text1, second=text0)
            )
            keep.append(t)
        t0 = time.perf_counter()
        try:
            results = backend.generate(convs, params) if convs else []
        except BackendConfigError as exc:
            return _fail(job.pk, exc)
        except TransientBackendError as exc:
            results = [PromptError(str(exc), transient=True)] * len(convs)
        per_task = (time.perf_counter() - t0) / max(len(keep), 1)
        # the version of the model that answered (a server may be redeployed mid-job): each answer's
        # own, else the backend's after this call
        model = (model[0], str(getattr(backend, "model_version", "") or model[1]))
        suggestions = [
            _suggestion(
                job=job,
                task_id=t,
                slots=inputs[t]["slots"],
                results=(results[2 * i], results[2 * i + 1]),
                dims=dims,
                scale_max=project.rating_scale_max,
                seconds=per_task,
                model=(model[0], _answered_version((results[2 * i], results[2 * i + 1]), model[1])),
            )
            for i, t in enumerate(keep)
        ]
        suggestions += [
            JudgeSuggestion(
                job=job,
                judge=job.judge,
                task_id=t,
                status=SuggestionStatus.FAILED,
                error="Only pairwise tasks (two responses) can be judged.",
                prompt_tokens=0,
                completion_tokens=0,
                endpoint=job.judge.endpoint,
                rubric_version=job.rubric_version,
                sampling=job.sampling,
            )
            for t in skipped
        ]
        _write_chunk(job, suggestions)
    return None


def judge_job_run(*, job_id: int, chunk: int = CHUNK_TASKS) -> JudgeJob | None:
    """Run (or resume) a judge job. Idempotent: a finished job is left alone; a redelivered one
    judges only the tasks it has no suggestion for yet; one that another worker is running now is
    left to it (no task is judged, and paid for, twice)."""
    with jobs.run_alone(JudgeJob, job_id) as alone:
        if not alone:
            return JudgeJob.objects.filter(pk=job_id).first()
        return _judge_job_run(job_id=job_id, chunk=chunk)


def _judge_job_run(*, job_id: int, chunk: int) -> JudgeJob | None:
    from generation import backends

    if not _claim(job_id):
        return JudgeJob.objects.filter(pk=job_id).first()
    job = JudgeJob.objects.select_related("judge__endpoint", "project").get(pk=job_id)
    project = job.project
    dims = list(Dimension.objects.filter(project=project).values_list("key", flat=True))
    try:
        backend = backends.get_backend(job.judge.endpoint)
        from generation.backends.base import SamplingParams

        params = SamplingParams.from_dict(job.sampling)
    except Exception as exc:  # an endpoint that cannot work at all fails the job with its message
        return _fail(job_id, exc)
    model = (
        str(getattr(backend, "model_name", "") or job.judge.endpoint.model),
        str(getattr(backend, "model_version", "") or ""),
    )
    try:
        stopped = _judge_tasks(job, backend=backend, params=params, model=model, dims=dims, chunk=chunk)
    except (OperationalError, InterfaceError):
        raise  # the Celery task retries; the job resumes with the tasks it has not judged
    except Exception as exc:  # anything else ends the job with its message instead of leaving it running
        log.exception("judge job %s failed", job.pk)
        return _fail(job.pk, exc)
    if stopped is not None:
        return stopped
    waiting = _retry_later(job.pk)
    if waiting is not None:
        return waiting
    if project.judge_routing:
        stopped = _route_job_tasks(job.pk, project, list(job.task_ids))
        if stopped is not None:
            return stopped
    with transaction.atomic():
        locked = JudgeJob.objects.select_for_update().get(pk=job.pk)
        if locked.state != JobState.RUNNING:
            return locked
        routed = RoutingDecision.objects.filter(job=locked).count()
        everything_failed = locked.total_units and locked.failed_units >= locked.total_units
        transient = _transient_failures(locked.pk).count()
        if everything_failed and transient == locked.failed_units:
            jobs.job_fail(
                locked,
                "Every task failed to be judged: the model server could not be reached (down or "
                "overloaded). Retry the failed tasks once it is back.",
            )
        elif everything_failed:
            jobs.job_fail(locked, "Every task failed to be judged; see the suggestions' errors.")
        else:
            jobs.job_finish(locked)
        audit_record(
            actor=None,
            project=project,
            action="judge_job.finish",
            target=locked,
            details={
                "state": locked.state,
                "routed": routed,
                "done": locked.done_units,
                "failed_transient": transient,
            },
        )
    return locked


#: Tasks a finished judge job routes per transaction: its rows (and the project's) are locked
#: only that long, not for the whole job (a 100,000-task job's routing takes minutes).
ROUTING_BATCH = 500


def _route_job_tasks(job_id: int, project: Project, task_ids: list[int]) -> JudgeJob | None:
    """Route a judged job's tasks (``routing_apply``), ``ROUTING_BATCH`` per transaction, each
    under the job's row lock; the job if it stopped running meanwhile (cancelled), else None. A
    redelivered job routes again only what is still undecided."""
    for i in range(0, len(task_ids), ROUTING_BATCH):
        with transaction.atomic():
            locked = JudgeJob.objects.select_for_update().get(pk=job_id)
            if locked.state != JobState.RUNNING:
                return locked
            routing_apply(project=project, job=locked, task_ids=task_ids[i : i + ROUTING_BATCH])
            JudgeJob.objects.filter(pk=job_id).update(progress_at=timezone.now())
    return None


def _answered_version(results, fallback: str) -> str:
    """The model version the server reported with the first answer of ``results``, else
    ``fallback``."""
    for result in results:
        if isinstance(result, list) and result and result[0].model_version:  # not a PromptError
            return result[0].model_version
    return fallback


def _transient_failures(job_id: int):
    return JudgeSuggestion.objects.filter(job_id=job_id, status=SuggestionStatus.FAILED, transient=True)


def _forget_transient_failures(job_id: int) -> int:
    """Delete the job's transient failures so its next pass judges those tasks again, and recount
    the job; how many. The caller holds the job's row lock, and the job runs."""
    return _forget_failures(job_id, _transient_failures(job_id))


def _retry_later(job_id: int) -> JudgeJob | None:
    """After a pass: when tasks failed transiently and an extra pass is left (one per
    ``TRANSIENT_RETRY_DELAYS_S``), forget those failures and have the same job delivered again
    after the pass's delay (an outbox message with that countdown). The job stays ``running``,
    waiting (``retry_at``, ``retry_units``), and its worker is free meanwhile. One transaction
    under the job's row lock: a cancel comes before (nothing is scheduled) or after (the message
    finds the job cancelled). Returns the job when it waits or ended meanwhile, None when it is to
    finish now."""
    with transaction.atomic():
        locked = JudgeJob.objects.select_for_update().get(pk=job_id)
        if locked.state != JobState.RUNNING:
            return locked
        if locked.retry_passes >= len(TRANSIENT_RETRY_DELAYS_S):
            return None
        n = _forget_transient_failures(job_id)
        if not n:
            return None
        delay = TRANSIENT_RETRY_DELAYS_S[locked.retry_passes]
        message = outbox_enqueue(TASK_NAME, job_id, countdown=delay)
        JudgeJob.objects.filter(pk=job_id).update(
            retry_passes=F("retry_passes") + 1,
            retry_at=message.not_before,
            retry_units=n,
            progress_at=timezone.now(),
        )
        locked.refresh_from_db()
    log.info("judge job %s: %d task(s) failed transiently, judged again in %s s", job_id, n, delay)
    return locked


@transaction.atomic
def judge_job_retry_failed(*, job: JudgeJob, actor: AbstractBaseUser | None = None) -> JudgeJob:
    """Queue a finished job again for the tasks whose judging failed transiently (the server was
    down or overloaded): their failed suggestions are deleted and the job, back in ``queued``,
    judges just those tasks (and routes them, under routing). Permanent failures stay."""
    job = JudgeJob.objects.select_for_update().get(pk=job.pk)
    if not job.job_finished or job.state == JobState.CANCELLED:
        raise Conflict("Only a finished (done or failed) judge job can retry its failed tasks.")
    failed = _transient_failures(job.pk)
    n = failed.count()
    if not n:
        raise InvalidInput("No task of this job failed for a transient reason (server down or overloaded).")
    if not job.judge.is_active or not job.judge.endpoint.is_active:
        raise InvalidInput("This judge or its endpoint is switched off.", field="judge")
    _forget_failures(job.pk, failed)
    # the row lock above: it is done or failed still; its run gets its extra passes again
    jobs.job_reopen(job, retry_passes=0, retry_at=None, retry_units=0)
    job.refresh_from_db()
    audit_record(actor=actor, project=job.project, action="judge_job.retry", target=job, details={"tasks": n})
    outbox_enqueue(TASK_NAME, job.pk)
    return job


# --- routing ---------------------------------------------------------------------------------------


#: Statuses that are no answer from the judge: it says nothing about the pair.
NO_ANSWER = (SuggestionStatus.FAILED, SuggestionStatus.UNPARSEABLE)
#: Routing reasons that say the judges are unsure of the pair (no preselection for labelers).
#: ``low_strength`` is not one: the judges agree, weakly, and a preselection shows that strength.
UNSURE_REASONS = frozenset({"inconsistent", "unparsed", "judges_disagree", "verdict_not_allowed"})


def latest_suggestions(*, project: Project, task_ids: list[int]) -> dict[int, list[JudgeSuggestion]]:
    """Per task, one suggestion of each active judge of the project: its newest that is not a
    failure (a failure says nothing about the pair: a server down after an earlier answer leaves
    that answer standing), else its newest failure."""
    qs = (
        JudgeSuggestion.objects.filter(task_id__in=task_ids, judge__project=project, judge__is_active=True)
        .select_related("judge")
        .order_by("task_id", "judge_id", "-job_id")
    )
    return {t: list(per.values()) for t, per in selectors.newest_answers(qs).items()}


def audit_draw(project: Project, task_id: int) -> bool:
    """A seeded draw (stable per project and task): is this confident pair in the audit share?"""
    return random.Random(f"judge-audit:{project.pk}:{task_id}").random() < project.judge_audit_share


def judges_unsure(project: Project, suggestions: list[JudgeSuggestion]) -> str | None:
    """Why the judges are unsure of a pair (a routing reason), or None when they agree on an
    allowed verdict. A judge without an answer (failed, or unparseable) is left out when another
    judge answered: a broken judge does not decide for the others; nobody answered: ``unparsed``."""
    answered = [s for s in suggestions if s.status not in NO_ANSWER]
    if not answered:
        return "unparsed"
    statuses = {s.status for s in answered}
    if SuggestionStatus.INCONSISTENT in statuses:
        return "inconsistent"
    allowed = rb.allowed_verdicts(project)
    if SuggestionStatus.NOT_ALLOWED in statuses or any(s.choice not in allowed for s in answered):
        return "verdict_not_allowed"
    if len({s.choice for s in answered}) > 1:
        return "judges_disagree"
    for s in answered:
        if s.choice in ("a", "b") and (s.strength or 0) < project.judge_min_strength:
            return "low_strength"
    return None


def route_for(project: Project, task: Task, suggestions: list[JudgeSuggestion]) -> tuple[str, str]:
    """(route, reason) for one task from its judges' suggestions (one per active judge, see
    ``latest_suggestions``)."""
    if task.is_gold:
        return Route.HUMAN, "gold"
    reason = judges_unsure(project, suggestions)
    if reason is not None:
        return Route.HUMAN, reason
    if audit_draw(project, task.pk):
        return Route.HUMAN, "audit"
    return Route.JUDGE, "confident"


def _judge_annotation(s: JudgeSuggestion, task: Task, guideline_id: int | None, scale_max: int) -> Annotation:
    ratings = {
        key: {cid: int(min(max(round(v), 1), scale_max)) for cid, v in per.items()}
        for key, per in (s.scores or {}).items()
    }
    return Annotation(
        task=task,
        labeler_id=s.judge.user_id,
        source=AnnotationSource.JUDGE,
        choice=s.choice,
        strength=s.strength if s.choice in ("a", "b") else None,
        ratings=ratings,
        rationale=s.rationale[:2000],
        guideline_id=guideline_id,
    )


#: Rows per INSERT statement when routing writes its labels and decisions.
ROUTING_WRITE_BATCH = 500


class _CounterShifts:
    """Changes to tasks' ``claims`` and ``target_labels`` that routing makes, written as one
    UPDATE per distinct change (``claims = claims + dc, target_labels = target_labels + dt`` for
    the tasks that change by ``(dc, dt)``: a few statements, not one per task). The caller holds
    the tasks' row locks, so a change computed from the locked row is the change to make."""

    def __init__(self) -> None:
        self._ids: dict[tuple[int, int], list[int]] = {}

    def add(self, task: Task, *, claims: int, target_labels: int) -> None:
        if claims or target_labels:
            self._ids.setdefault((claims, target_labels), []).append(task.pk)

    def write(self) -> None:
        for (dc, dt), ids in self._ids.items():
            Task.objects.filter(pk__in=ids).update(
                claims=F("claims") + dc, target_labels=F("target_labels") + dt
            )


def routing_apply(*, project: Project, job: JudgeJob | None, task_ids: list[int]) -> list[RoutingDecision]:
    """Decide the route of every listed task that has judge suggestions and no decision yet.
    Locks the tasks (in id order) and writes decisions, judge annotations and task counters
    together; call inside a transaction. The decisions are looked for again once the locks are
    held: a routing committed meanwhile (a job finishing, the button pressed twice) decided them.
    The project's row is locked first, as a settings change locks it before the tasks: an overlap
    change waits for the routing (or the routing for it) instead of a deadlock, and moves the
    targets with the decisions committed."""
    project = Project.objects.select_for_update(no_key=True).get(pk=project.pk)
    decided = set(RoutingDecision.objects.filter(task_id__in=task_ids).values_list("task_id", flat=True))
    pending = sorted(set(task_ids) - decided)
    if not pending:
        return []
    per_task = latest_suggestions(project=project, task_ids=pending)
    tasks = {t.pk: t for t in Task.objects.select_for_update().filter(pk__in=list(per_task)).order_by("id")}
    for task_id in RoutingDecision.objects.filter(task_id__in=list(tasks)).values_list("task_id", flat=True):
        del tasks[task_id]
    if not tasks:
        return []
    # the guideline each judge label was judged against: its suggestion's rubric version (the job's
    # own, for this job's suggestions; another judge's may come from an older job)
    versions = {s.rubric_version for per in per_task.values() for s in per if s.rubric_version is not None}
    guideline_ids = dict(
        Guideline.objects.filter(project=project, version__in=versions).values_list("version", "id")
    )
    existing = set(
        Annotation.objects.filter(task_id__in=list(tasks), source=AnnotationSource.JUDGE).values_list(
            "task_id", "labeler_id"
        )
    )
    decisions, labels, shifts = [], [], _CounterShifts()
    for task_id in sorted(tasks):
        task = tasks[task_id]
        suggestions = per_task[task_id]
        if all(s.status in NO_ANSWER for s in suggestions) and any(
            s.status == SuggestionStatus.FAILED and s.transient for s in suggestions
        ):
            continue  # no answer and a server was unreachable: nothing known yet; judged again, routed
        route, reason = route_for(project, task, suggestions)
        if route == Route.JUDGE and task.claims >= task.target_labels:
            route, reason = Route.HUMAN, "human_slots_taken"  # people hold every slot: none for judges
        # target_before/target_after: what routing did to the task's target, so re-routing can
        # give back exactly that (``routing_reroute``)
        details = {
            "judges": {
                s.judge.name: {"status": s.status, "choice": s.choice, "strength": s.strength}
                for s in suggestions
            },
            "target_before": task.target_labels,
            "target_after": task.target_labels,
        }
        decisions.append(
            RoutingDecision(project=project, task=task, job=job, route=route, reason=reason, details=details)
        )
        if reason not in ("confident", "audit"):
            continue
        new = [
            _judge_annotation(s, task, guideline_ids.get(s.rubric_version), project.rating_scale_max)
            for s in suggestions
            if s.status == SuggestionStatus.OK and (task_id, s.judge.user_id) not in existing
        ]
        if not new:
            continue
        labels.extend(new)
        n = len(new)
        # judge route: the judges take every remaining slot (the task leaves the queue); audit:
        # judge votes beside the humans', every human slot kept
        target = task.claims + n if route == Route.JUDGE else task.target_labels + n
        shifts.add(task, claims=n, target_labels=target - task.target_labels)
        details["target_after"] = target
    Annotation.objects.bulk_create(labels, batch_size=ROUTING_WRITE_BATCH)
    shifts.write()
    RoutingDecision.objects.bulk_create(decisions, batch_size=ROUTING_WRITE_BATCH)
    return decisions


@transaction.atomic
def routing_apply_now(*, project: Project, actor: AbstractBaseUser | None = None) -> int:
    """Route every judged task of the project that has no decision yet (a manager's button)."""
    if not project.judge_routing:
        raise InvalidInput("Turn judge routing on in the project's settings first.", field="judge_routing")
    task_ids = list(
        JudgeSuggestion.objects.filter(judge__project=project).values_list("task_id", flat=True).distinct()
    )
    decisions = routing_apply(project=project, job=None, task_ids=task_ids)
    audit_record(
        actor=actor,
        project=project,
        action="judge.route",
        details={"decided": len(decisions), "to_judges": sum(d.route == Route.JUDGE for d in decisions)},
    )
    return len(decisions)


# --- re-routing ------------------------------------------------------------------------------------

#: Tasks re-routed per transaction (their rows stay locked until it commits).
REROUTE_BATCH = 200


@dataclass
class RerouteOutcome:
    """What ``routing_reroute`` did. ``rerouted``: tasks whose decision was withdrawn and made
    again (or made for the first time); of those, ``judge_to_human`` / ``human_to_judge`` changed
    route (a task without a decision is labeled by humans), ``unchanged`` did not; ``to_judges``,
    ``to_humans`` and ``undecided`` (no active judge answered: an ordinary task for humans) say
    where they are now. ``left_alone``: tasks with human work, which keep their decision, by
    reason (``selectors.LEFT_ALONE_REASONS``)."""

    rerouted: int = 0
    judge_to_human: int = 0
    human_to_judge: int = 0
    unchanged: int = 0
    to_judges: int = 0
    to_humans: int = 0
    undecided: int = 0
    left_alone: int = 0
    left_alone_why: dict[str, int] = field(default_factory=dict)

    def count_left_alone(self, reasons) -> None:
        for reason in reasons:
            self.left_alone += 1
            self.left_alone_why[reason] = self.left_alone_why.get(reason, 0) + 1

    def audit_details(self) -> dict:
        return asdict(self)


def _withdrawn_target(project: Project, decision: RoutingDecision, current: int, withdrawn: int) -> int:
    """The target a task goes back to when its decision is withdrawn (``withdrawn``: the judge
    labels deleted). A decision records the target before and after routing: what routing changed
    is undone and every later change kept (a send-back, an overlap change). An older decision,
    written before those were recorded: a judge-routed task goes back to the project's overlap; an
    audit task gives back the judges' slots; any other task was never changed."""
    details = decision.details if isinstance(decision.details, dict) else {}
    before, after = details.get("target_before"), details.get("target_after")
    if isinstance(before, int) and isinstance(after, int):
        return current + before - after
    if decision.route == Route.JUDGE:
        return project.overlap
    if decision.reason == "audit":
        return current - withdrawn
    return current


def _reroute_batch(*, project: Project, task_ids: list[int], out: RerouteOutcome) -> None:
    """Withdraw and make again the decisions of ``task_ids`` in one transaction. The tasks' rows
    are locked first (in id order, as ``routing_apply`` does) and the scope is read again under the
    locks: a labeler who claimed or submitted meanwhile keeps the task's decision. A claim locks
    the task row to take its slot (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: it passes over these
    tasks rather than wait; SQLite serialises writers), so no lease is taken between this check
    and the commit, and ``claims`` and ``target_labels`` move together here under the lock."""
    from annotate.judges.selectors import reroute_scope

    with transaction.atomic():
        # the project's row before the tasks', as routing_apply and a settings change take them
        project = Project.objects.select_for_update(no_key=True).get(pk=project.pk)
        tasks = {t.pk: t for t in Task.objects.select_for_update().filter(pk__in=task_ids).order_by("id")}
        scope = reroute_scope(project=project, task_ids=list(tasks))
        out.count_left_alone(scope.left_alone.values())
        ids = scope.task_ids
        if not ids:
            return
        old = {d.task_id: d for d in RoutingDecision.objects.filter(task_id__in=ids)}
        judge_labels = Annotation.objects.filter(task_id__in=list(old), source=AnnotationSource.JUDGE)
        withdrawn = dict(judge_labels.values("task_id").annotate(n=Count("id")).values_list("task_id", "n"))
        judge_labels.delete()
        given_back = _CounterShifts()
        for task_id, decision in sorted(old.items()):
            task, n = tasks[task_id], withdrawn.get(task_id, 0)
            # from what the task asks for: slots an overlap decrease left to the judges' labels
            # (``Task.kept_slots``) go with them, and none is kept any more (no human holds one)
            asked = task.target_labels - task.kept_slots
            target = _withdrawn_target(project, decision, asked, n)
            target = max(target, task.claims - n, 1)
            given_back.add(task, claims=-n, target_labels=target - task.target_labels)
        Task.objects.filter(pk__in=list(old), kept_slots__gt=0).update(kept_slots=0)
        given_back.write()
        RoutingDecision.objects.filter(task_id__in=list(old)).delete()
        new = {d.task_id: d.route for d in routing_apply(project=project, job=None, task_ids=ids)}
        for task_id in ids:
            before = old[task_id].route if task_id in old else Route.HUMAN
            after = new.get(task_id, Route.HUMAN)
            out.rerouted += 1
            out.to_judges += after == Route.JUDGE
            out.to_humans += task_id in new and after == Route.HUMAN
            out.undecided += task_id not in new
            if before == after:
                out.unchanged += 1
            elif after == Route.JUDGE:
                out.human_to_judge += 1
            else:
                out.judge_to_human += 1


def _reroute_scope_checked(project: Project):
    """The tasks a re-route of ``project`` would route again (``selectors.reroute_scope``), or the
    reason it cannot run (InvalidInput)."""
    from annotate.judges.selectors import reroute_scope
    from annotate.services.leasing import leases_expire

    _require_pairwise(project, field=None)
    if not project.judge_routing:
        raise InvalidInput("Turn judge routing on in the project's settings first.", field="judge_routing")
    leases_expire(project_id=project.pk)  # a lease past its expiry is no human work
    scope = reroute_scope(project=project)
    if not scope.task_ids:
        if scope.left_alone:
            raise InvalidInput(
                f"Nothing to re-route: all {len(scope.left_alone)} judged tasks have human work (a "
                "label, a lease, a review or an adjudication) and keep their decision."
            )
        raise InvalidInput("Nothing to re-route: no task of this project was judged or routed yet.")
    return scope


def routing_reroute(
    *,
    project: Project,
    actor: AbstractBaseUser | None = None,
    progress: Callable[[int, int, RerouteOutcome], None] | None = None,
) -> RerouteOutcome:
    """Route again, with the active judges' current answers and the project's current settings,
    every task whose route can still change: judged by an active judge or already decided, and
    with no human work on it (no human label, no live lease, no review, no adjudication: those keep
    their decision; ``selectors.reroute_scope``). A manager's button on the Judges page starts a
    ``RerouteJob`` (``reroute_start``), whose worker runs this, for a decision made by a judge that
    was broken then (``unparsed``) or that turned out biased and was switched off since.
    ``progress(done, total, outcome)`` is called after each batch has committed.

    Per task, the old decision is withdrawn first: its judge labels are deleted (their claims with
    them) and the target routing changed is given back (``_withdrawn_target``); then
    ``routing_apply`` decides again. A task no active judge answered is left without a decision:
    an ordinary task, labeled by humans. ``REROUTE_BATCH`` tasks per transaction
    (``_reroute_batch``); one audit event (``judge.reroute``) with the counts, also when a batch
    failed (``interrupted``; what the batches before it did stays done)."""

    scope = _reroute_scope_checked(project)
    out = RerouteOutcome()
    out.count_left_alone(scope.left_alone.values())
    total = len(scope.task_ids)
    try:
        for i in range(0, total, REROUTE_BATCH):
            _reroute_batch(project=project, task_ids=scope.task_ids[i : i + REROUTE_BATCH], out=out)
            if progress is not None:
                progress(min(i + REROUTE_BATCH, total), total, out)
    except Exception:
        with transaction.atomic():
            audit_record(
                actor=actor,
                project=project,
                action="judge.reroute",
                details={**out.audit_details(), "interrupted": True},
            )
        raise
    with transaction.atomic():
        audit_record(actor=actor, project=project, action="judge.reroute", details=out.audit_details())
    return out


# --- re-routing in the background ------------------------------------------------------------------

REROUTE_TASK_NAME = RerouteJob.RESUME_TASK


@transaction.atomic
def reroute_start(*, project: Project, actor: AbstractBaseUser | None = None) -> RerouteJob:
    """Start a re-route of the project's judged tasks (``routing_reroute``) on a worker: checked
    here (the same refusals as the re-route itself), run by ``reroute_job_run``. One at a time per
    project: a second while one is queued or running is a Conflict."""
    scope = _reroute_scope_checked(project)
    active = RerouteJob.objects.filter(project=project, state__in=jobs.ACTIVE_STATES)
    for stalled in active.select_for_update():
        if stalled.stalled:
            jobs.job_fail(
                stalled,
                f"No progress for {int(RerouteJob.stalled_after().total_seconds() // 60)} minutes (its "
                "worker stopped): replaced by a new re-route.",
            )
    with unique_or_conflict(
        (active, Conflict("A re-route of this project is already running: wait for it to end."))
    ):
        job = RerouteJob.objects.create(project=project, created_by=actor, total_units=len(scope.task_ids))
    outbox_enqueue(REROUTE_TASK_NAME, job.pk)
    return job


def reroute_job_run(*, job_id: int) -> RerouteJob | None:
    """Run a queued re-route (the worker's side of ``reroute_start``). A redelivered message of a
    re-route that a dead worker left running runs it again (re-routing is idempotent per task);
    one another worker runs now, or one that has ended, is left alone."""
    with jobs.run_alone(RerouteJob, job_id) as alone:
        claimed = alone and jobs.job_claim(RerouteJob, job_id, progress_at=timezone.now())
        job = RerouteJob.objects.select_related("project", "created_by").filter(pk=job_id).first()
        if not claimed or job is None:
            return job

        def progress(done: int, total: int, out: RerouteOutcome) -> None:
            still_running = RerouteJob.objects.filter(pk=job_id, state=JobState.RUNNING).update(
                total_units=total, done_units=done, outcome=out.audit_details(), progress_at=timezone.now()
            )
            if not still_running:  # replaced as stalled while this worker was held up: stop here
                raise Conflict("This re-route was replaced by a newer one.")

        try:
            out = routing_reroute(project=job.project, actor=job.created_by, progress=progress)
        except (OperationalError, InterfaceError):
            raise  # the Celery task retries: the re-route runs again
        except Exception as exc:  # ends the job with its message (a refusal, or a batch that failed)
            if not isinstance(exc, (InvalidInput, Conflict)):
                log.exception("re-route %s failed", job_id)
            job.refresh_from_db()
            jobs.job_fail(job, str(exc) if isinstance(exc, InvalidInput) else exc)
            return job
        job.refresh_from_db()
        jobs.job_finish(job, outcome=out.audit_details(), done_units=job.total_units)
        return job
