"""What every generation backend shares: sampling parameters, results, errors, the protocol.

A backend turns conversations (lists of ``{"role", "content"}`` turns) into ``n`` sampled
responses each. All backends take the same :class:`SamplingParams` and return the same shape:
one entry per conversation, in order, which is either a list of ``n`` :class:`Generation` or a
:class:`PromptError` saying why that conversation could not be generated (too long for the
model, refused by the server...). One bad prompt never stops the others.

Errors that concern the whole endpoint (a model that cannot be loaded, a tokenizer without a chat
template, vLLM not installed, an API key the server refuses) raise :class:`BackendConfigError`;
a server that is down or overloaded after the backend's own retries raises, per prompt, a
``PromptError`` with ``transient=True`` so the caller may retry the batch later.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from annotate.validation import storable_text
from core.formatting import FormattingError, literal_messages

FINISH_STOP = "stop"
FINISH_LENGTH = "length"

MAX_N = 64
MAX_NEW_TOKENS = 32768
MAX_STOP_STRINGS = 8
MAX_STOP_LENGTH = 200
MAX_SEED = 2**63 - 1
# Above every model's vocabulary (the largest are about 262k tokens), within any backend's integers.
MAX_TOP_K = 1_000_000


#: The largest token count a server's report is believed for (what a count column holds).
MAX_TOKEN_COUNT = 2**31 - 1


def token_count(value: object) -> int | None:
    """A token count a server reported, or None when it is not one (absent, not a whole number,
    true/false, negative, or beyond ``MAX_TOKEN_COUNT``)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKEN_COUNT:
        return None
    return value


class BackendError(Exception):
    """Base class of generation backend errors; ``str(exc)`` is fit to show a researcher."""


class BackendConfigError(BackendError):
    """The endpoint cannot work as configured (model missing, no chat template, bad key...)."""


class TransientBackendError(BackendError):
    """The backend may succeed if the same work is tried again later (server down, overloaded)."""


class InvalidSamplingParams(ValueError):
    """Sampling parameters out of range; ``field`` names the offending one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PromptError(BackendError):
    """One conversation could not be generated. Returned in place of its generations."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PromptError) and (self.message, self.transient) == (
            other.message,
            other.transient,
        )

    def __hash__(self) -> int:
        return hash((self.message, self.transient))


def _number(value: Any, name: str, *, integer: bool = False) -> float | int:
    """A finite number (numeric strings from forms accepted); a whole one when ``integer``."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InvalidSamplingParams(f"{name} must be a number.", field=name) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSamplingParams(f"{name} must be a number.", field=name)
    try:
        finite = math.isfinite(value)
    except OverflowError:
        finite = False
    if not finite:
        raise InvalidSamplingParams(f"{name} must be a finite number.", field=name)
    if integer:
        if int(value) != value:
            raise InvalidSamplingParams(f"{name} must be a whole number.", field=name)
        return int(value)
    return float(value)


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. Validated on construction (raises :class:`InvalidSamplingParams`).

    ``temperature`` 0 means greedy decoding; ``top_k`` None (or 0) means no top-k cut;
    ``seed`` None means unseeded; ``n`` samples per conversation; ``stop`` strings end a response
    (the stop string itself is not part of the text, as with OpenAI and vLLM).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    max_new_tokens: int = 256
    seed: int | None = None
    n: int = 1
    stop: tuple[str, ...] = field(default_factory=tuple)

    FIELDS = ("temperature", "top_p", "top_k", "max_new_tokens", "seed", "n", "stop")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        temperature = _number(self.temperature, "temperature")
        if not 0.0 <= temperature <= 5.0:
            raise InvalidSamplingParams("temperature must be between 0 and 5.", field="temperature")
        set_(self, "temperature", temperature)
        top_p = _number(self.top_p, "top_p")
        if not 0.0 < top_p <= 1.0:
            raise InvalidSamplingParams("top_p must be above 0 and at most 1.", field="top_p")
        set_(self, "top_p", top_p)
        if self.top_k is not None:
            top_k = _number(self.top_k, "top_k", integer=True)
            if not 0 <= top_k <= MAX_TOP_K:
                raise InvalidSamplingParams(
                    f"top_k must be 0 (off) or a positive number up to {MAX_TOP_K:,}.", field="top_k"
                )
            set_(self, "top_k", top_k or None)
        max_new = _number(self.max_new_tokens, "max_new_tokens", integer=True)
        if not 1 <= max_new <= MAX_NEW_TOKENS:
            raise InvalidSamplingParams(
                f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS}.", field="max_new_tokens"
            )
        set_(self, "max_new_tokens", max_new)
        if self.seed is not None:
            seed = _number(self.seed, "seed", integer=True)
            if not 0 <= seed <= MAX_SEED:
                raise InvalidSamplingParams("seed must be a non-negative 63-bit number.", field="seed")
            set_(self, "seed", seed)
        n = _number(self.n, "n", integer=True)
        if not 1 <= n <= MAX_N:
            raise InvalidSamplingParams(f"n must be between 1 and {MAX_N}.", field="n")
        set_(self, "n", n)
        stop = self.stop
        if stop is None:
            stop = ()
        if isinstance(stop, str):
            stop = (stop,)
        if not isinstance(stop, list | tuple) or not all(isinstance(s, str) and s for s in stop):
            raise InvalidSamplingParams("stop must be a list of non-empty strings.", field="stop")
        if len(stop) > MAX_STOP_STRINGS or any(len(s) > MAX_STOP_LENGTH for s in stop):
            raise InvalidSamplingParams(
                f"At most {MAX_STOP_STRINGS} stop strings of at most {MAX_STOP_LENGTH} characters.",
                field="stop",
            )
        set_(self, "stop", tuple(dict.fromkeys(stop)))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, **overrides: Any) -> SamplingParams:
        """Build from a JSON mapping (unknown keys refused), then apply ``overrides``."""
        merged = {**dict(values or {}), **overrides}
        unknown = sorted(set(merged) - set(cls.FIELDS))
        if unknown:
            raise InvalidSamplingParams(
                f"Unknown sampling parameter(s): {', '.join(unknown)}. Known: {', '.join(cls.FIELDS)}.",
                field=unknown[0],
            )
        return cls(**{k: v for k, v in merged.items() if not (k == "stop" and v is None)})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    def replace(self, **changes: Any) -> SamplingParams:
        return SamplingParams.from_dict(self.to_dict(), **changes)


@dataclass(frozen=True)
class Generation:
    """One sampled response. ``finish_reason`` is "stop" (end of turn or a stop string) or
    "length" (ran into max_new_tokens or the model's context). ``native_finish_reason`` is what
    the backend itself said, kept for the staged checks: vLLM "stop" / "length" / "abort"; an
    OpenAI-compatible server "stop" / "length" / "content_filter" / "tool_calls" / "" (null);
    transformers "eos" / "stop_string" / "length". Token counts may be None where the backend
    cannot know them (an OpenAI-compatible server answering n > 1 in one response).
    ``model_version`` is the version the server reported for this response ("" where the backend
    has one version for all its answers: ``Backend.model_version``)."""

    text: str
    finish_reason: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    native_finish_reason: str = ""
    model_version: str = ""

    def with_version(self, version: str) -> Generation:
        return dataclasses.replace(self, model_version=version)

    @classmethod
    def from_native(
        cls,
        text: str,
        native_finish_reason: object,
        *,
        prompt_tokens: int | None,
        completion_tokens: int | None,
    ) -> Generation:
        """A response as vLLM or an OpenAI-compatible server reports it: "length" means it ran into
        the token limit, any other reason that it stopped; the server's own reason is kept."""
        return cls(
            text=text,
            finish_reason=FINISH_LENGTH if native_finish_reason == "length" else FINISH_STOP,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            native_finish_reason=storable_text(str(native_finish_reason or ""))[:32],
        )


#: Native finish reasons that mean the model ended its answer itself.
NATIVE_NORMAL_STOPS = frozenset({"", "stop", "eos", "stop_string", "end_turn", "eos_token"})


GenerateResult = list["list[Generation] | PromptError"]


@runtime_checkable
class Backend(Protocol):
    """What the generation service needs of a backend."""

    #: what candidates record as ``model_name`` / ``model_version`` (a response's own
    #: ``Generation.model_version`` first: this one may be a neighbouring call's)
    model_name: str
    model_version: str

    def generate(
        self, conversations: list[list[dict]], params: SamplingParams
    ) -> list[list[Generation] | PromptError]:
        """``params.n`` generations per conversation, in order; a PromptError in place of a
        conversation that failed on its own."""
        ...


def prompt_seed(seed: int | None, index: int) -> int | None:
    """The seed of the ``index``-th conversation of a batch seeded ``seed`` (None: unseeded). vLLM and
    OpenAI-compatible servers seed each request's sampler on its own, so one seed sent with every
    prompt would draw the same random numbers for all of them (two copies of a prompt would get the
    same samples, different prompts correlated ones). The first keeps ``seed``; the others get one
    derived from it, far apart (a server seeds a request's samples ``seed, seed + 1, ...``) and
    within 31 bits, as the job's own seeds are drawn (some servers read a seed as a 32-bit number)."""
    if seed is None or index == 0:
        return seed
    digest = hashlib.sha256(f"prefhub-prompt-seed:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**31 - MAX_N)


def truncate_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string (excluded). Returns (text, whether one was found)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True


def check_conversation(conversation: object) -> list[dict]:
    """A conversation is a non-empty list of {"role": str, "content": str} turns."""
    if not isinstance(conversation, list) or not conversation:
        raise PromptError("The prompt has no messages.")
    for turn in conversation:
        if (
            not isinstance(turn, dict)
            or not isinstance(turn.get("role"), str)
            or not isinstance(turn.get("content"), str)
        ):
            raise PromptError('Each message must be {"role": str, "content": str}.')
    return conversation


def known_settings(config: dict, known: tuple[str, ...], backend: str) -> dict:
    """A copy of an endpoint's ``config``, once every setting in it is one of ``known``; otherwise a
    ValueError naming the unknown ones, ``backend``'s settings and the known ones."""
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ValueError(f"Unknown {backend} setting(s): {', '.join(unknown)}. Known: {', '.join(known)}.")
    return dict(config)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), fit to show."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def require_chat_template(tokenizer: Any, model: str, advice: str = "") -> None:
    """BackendConfigError unless ``tokenizer`` has a chat template (``advice`` is added to the message)."""
    if not getattr(tokenizer, "chat_template", None):
        raise BackendConfigError(
            f"The tokenizer of {model!r} has no chat template, so conversations cannot be formatted.{advice}"
        )


def chat_prompts(
    tokenizer: Any, conversations: list[list[dict]], context_length: int | None
) -> tuple[list[Any], list[tuple[int, list[int]]]]:
    """Every conversation through :func:`chat_prompt_ids`: ``(results, prompts)`` where ``results``
    has one slot per conversation, holding its PromptError when it could not be encoded (None
    otherwise, for the backend to fill), and ``prompts`` the ``(index, token ids)`` of the others."""
    results: list[Any] = [None] * len(conversations)
    prompts: list[tuple[int, list[int]]] = []
    for i, conversation in enumerate(conversations):
        try:
            prompts.append((i, chat_prompt_ids(tokenizer, conversation, context_length)))
        except PromptError as err:
            results[i] = err
    return results, prompts


def chat_prompt_ids(tokenizer: Any, conversation: object, context_length: int | None) -> list[int]:
    """The token ids of ``conversation`` in the tokenizer's chat template, ready for the assistant's
    reply. PromptError when the conversation is malformed, the template refuses it, or it leaves no
    room for a response in a context of ``context_length`` tokens (None: unknown, not checked)."""
    check_conversation(conversation)
    try:
        # every content read as literal text (core.formatting's rule): special-token text typed in a
        # message never becomes a control token (a forged end of turn or turn header); the
        # template's own special tokens stay, and a conversation without such text is unchanged
        conversation = literal_messages(tokenizer, conversation)
    except FormattingError as exc:
        raise PromptError(str(exc)) from exc
    try:
        text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    except Exception as exc:
        raise PromptError(f"The chat template refused this conversation: {first_line(exc)}") from exc
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if context_length and len(ids) >= context_length:
        raise PromptError(
            f"The prompt is {len(ids)} tokens long but the model's context holds {context_length} "
            "tokens, which leaves no room for a response."
        )
    return ids
