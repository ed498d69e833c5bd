"""Importing prompts, candidates (and optionally recorded preferences) from files.

Formats
-------
``jsonl`` (the project's own): one prompt per line::

    {"id": "p1", "messages": [{"role": "user", "content": "..."}],      # or "prompt": "..."
     "metadata": {...}, "tags": ["..."],
     "candidates": [{"text": "...", "model": "m", "model_version": "v", "sampling": {...},
                     "seed": 1, "id": "c1", "metadata": {...}}],
     "gold": "a" | "b" | "tie"            # pairwise, exactly 2 candidates; a = first; tie if allowed
           | [[0], [2, 1], [3]]}          # ranking: up to K indices best first, groups tie if allowed

``hh-rlhf``: Anthropic's ``{"chosen", "rejected"}`` transcripts; the prompt is the shared prefix
up to the last ``\\n\\nAssistant:``. Plain or gzip. With ``preference_source`` the recorded
preference becomes an annotation by a (login-less) user named after the source.

Atomicity: by default the whole file is imported or nothing is. Every bad line is reported (line
number, field, reason) up to ``max_errors``; with ``skip_invalid=True`` the good lines are imported
and the bad ones reported.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import io
import json
import random
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from typing import IO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from annotate.errors import InvalidInput
from annotate.models import (
    Annotation,
    AnnotationSource,
    Candidate,
    CandidateSource,
    Project,
    Prompt,
    Task,
    TaskCandidate,
    TaskKind,
)
from annotate.selectors import prompt_external_ids_existing
from annotate.services.bulk import (
    bulk_analyze,
    bulk_fk_trusted,
    bulk_insert,
    reserve_ids,
)
from annotate.services.tasks import (
    PairMode,
    TaskSpec,
    candidate_groups,
    check_mode,
    default_mode_for,
    tasks_bulk_create,
    tasks_per_prompt,
)
from annotate.validation import NESTED_TOO_DEEPLY, json_loads_finite, unstorable_at
from core.audit import audit_record
from core.hh import HHFormatError, parse_transcript, split_pair
from core.read_ahead import read_ahead

FORMATS = ("auto", "jsonl", "hh-rlhf")
#: An upload of several files at once: which one to import would be a guess (page and API).
SEVERAL_FILES = "Send one file per import: {count} files were sent."
ROLES = ("system", "user", "assistant")
MAX_LINE_BYTES = 4 * 1024 * 1024
MAX_TEXT_CHARS = 200_000
BATCH = 2000
BATCH_BYTES = 8 * 1024 * 1024  # flush pending lines once they hold this much JSON (up to 3 batches in memory)
BATCH_TASKS = 20_000  # ... or would make this many tasks
_READ_CHUNK = 1024 * 1024  # how much of an over-long line is read (and dropped) at a time


@dataclass
class LineError:
    line: int
    message: str
    field: str | None = None

    def as_dict(self) -> dict:
        return {"line": self.line, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


@dataclass
class ImportReport:
    format: str = ""
    lines: int = 0
    prompts: int = 0
    candidates: int = 0
    tasks: int = 0
    annotations: int = 0
    skipped_lines: int = 0
    committed: bool = False
    errors: list[LineError] = field(default_factory=list)
    truncated_errors: bool = False

    def as_dict(self) -> dict:
        return {**asdict(self), "errors": [e.as_dict() for e in self.errors]}


class ImportFailed(InvalidInput):
    """The file had bad lines and nothing was imported. ``report`` lists them."""

    code = "import_failed"

    def __init__(self, report: ImportReport) -> None:
        n = len(report.errors)
        first = "; ".join(str(e) for e in report.errors[:3])
        more = "" if n <= 3 else f" (and {n - 3}{'+' if report.truncated_errors else ''} more)"
        super().__init__(f"Nothing was imported: {n} bad line(s): {first}{more}", details=report.as_dict())
        self.report = report


class _LineInvalid(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class _Record:
    line: int
    external_id: str
    messages: list[dict]
    metadata: dict
    tags: list[str]
    candidates: list[dict]
    gold: object = None
    preferred_index: int | None = None  # hh-rlhf: which candidate the source preferred
    groups: list[list[int]] = field(default_factory=list)  # tasks, as candidate positions in slot order
    row: tuple = ()  # the prompt's columns, JSON as text


def open_import_stream(raw: IO[bytes]) -> IO[bytes]:
    """Wrap a binary stream, transparently un-gzipping it when it starts with the gzip magic."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, 1024 * 1024)  # type: ignore[arg-type]
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered)  # type: ignore[return-value]
    return buffered


def _text(value: object, field_name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _LineInvalid("must be a string", field_name)
    if not allow_empty and not value.strip():
        raise _LineInvalid("must not be empty", field_name)
    if len(value) > MAX_TEXT_CHARS:
        raise _LineInvalid(f"is longer than {MAX_TEXT_CHARS} characters", field_name)
    return value


def _messages(value: object) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise _LineInvalid("must be a non-empty list of {role, content} turns", "messages")
    out = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise _LineInvalid("each turn must be an object", f"messages[{i}]")
        role = turn.get("role")
        if role not in ROLES:
            raise _LineInvalid(f"role must be one of {', '.join(ROLES)}", f"messages[{i}].role")
        out.append({"role": role, "content": _text(turn.get("content"), f"messages[{i}].content")})
    if out[-1]["role"] != "user":
        raise _LineInvalid("the last turn must be the user's (the responses answer it)", "messages")
    return out


def _short_text(value: object, field_name: str, max_chars: int) -> str:
    """A name or id (a candidate's model, version, id): a string or an integer (as before, and as a
    prompt's id) of at most ``max_chars`` characters, its column's size; refused, never cut."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _LineInvalid("must be a string", field_name)
    text = str(value)
    if len(text) > max_chars:
        raise _LineInvalid(f"is longer than {max_chars} characters", field_name)
    return text


def _or_empty(value: object, empty: dict | list) -> object:
    """``value``, or ``empty`` when it is absent or null (not when it is false, 0 or "")."""
    return empty if value is None else value


def _parse_jsonl(obj: dict, line: int, project: Project) -> _Record:
    if "messages" in obj:
        messages = _messages(obj["messages"])
    elif "prompt" in obj:
        messages = [{"role": "user", "content": _text(obj["prompt"], "prompt")}]
    else:
        raise _LineInvalid("needs 'messages' (a list of turns) or 'prompt' (a string)", "messages")
    external_id = obj.get("id", "")
    if external_id is None:
        external_id = ""
    if not isinstance(external_id, str | int) or isinstance(external_id, bool):
        raise _LineInvalid("must be a string", "id")
    external_id = str(external_id)
    if len(external_id) > 200:
        raise _LineInvalid("is longer than 200 characters", "id")
    # None (null) or absent means empty; false, 0 or "" is a value of the wrong type, refused.
    metadata = _or_empty(obj.get("metadata"), {})
    if not isinstance(metadata, dict):
        raise _LineInvalid("must be an object", "metadata")
    tags = _or_empty(obj.get("tags"), [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _LineInvalid("must be a list of strings", "tags")
    raw_candidates = _or_empty(obj.get("candidates"), [])
    if not isinstance(raw_candidates, list):
        raise _LineInvalid("must be a list", "candidates")
    candidates = []
    for i, cand in enumerate(raw_candidates):
        where = f"candidates[{i}]"
        if isinstance(cand, str):
            cand = {"text": cand}
        if not isinstance(cand, dict):
            raise _LineInvalid("must be an object or a string", where)
        sampling = _or_empty(cand.get("sampling"), {})
        if not isinstance(sampling, dict):
            raise _LineInvalid("must be an object", f"{where}.sampling")
        seed = cand.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise _LineInvalid("must be an integer", f"{where}.seed")
        if seed is not None and not -(2**63) <= seed < 2**63:
            raise _LineInvalid("must fit in a signed 64-bit integer", f"{where}.seed")
        cmeta = _or_empty(cand.get("metadata"), {})
        if not isinstance(cmeta, dict):
            raise _LineInvalid("must be an object", f"{where}.metadata")
        candidates.append(
            {
                "text": _text(cand.get("text"), f"{where}.text", allow_empty=True),
                "model_name": _short_text(cand.get("model"), f"{where}.model", 300),
                "model_version": _short_text(cand.get("model_version"), f"{where}.model_version", 200),
                "sampling_params": sampling,
                "seed": seed,
                "external_id": _short_text(cand.get("id"), f"{where}.id", 200),
                "metadata": cmeta,
            }
        )
    gold = obj.get("gold")
    if gold is not None:
        if project.kind == TaskKind.PAIRWISE:
            if gold not in ("a", "b", "tie"):
                raise _LineInvalid("pairwise gold must be 'a', 'b' or 'tie'", "gold")
            if len(candidates) != 2:
                raise _LineInvalid("a pairwise gold line needs exactly 2 candidates", "gold")
            if gold == "tie" and not project.allow_tie:  # labelers could never match it
                raise _LineInvalid("gold 'tie' needs a project that allows ties", "gold")
        else:
            if len(candidates) < 2:
                raise _LineInvalid("a ranking gold line needs at least 2 candidates", "gold")
            if len(candidates) > project.ranking_k:  # a gold task is one task: K responses at most
                raise _LineInvalid(
                    f"a ranking gold line has {len(candidates)} candidates; this project ranks "
                    f"{project.ranking_k} at a time",
                    "gold",
                )
            groups = [g if isinstance(g, list) else [g] for g in gold] if isinstance(gold, list) else None
            # an index is an integer: JSON's true/false are not 1/0
            flat = sorted(
                i for g in (groups or []) for i in g if isinstance(i, int) and not isinstance(i, bool)
            )
            if groups is None or flat != list(range(len(candidates))):
                raise _LineInvalid("ranking gold must order every candidate index once, best first", "gold")
            if not project.allow_rank_ties and any(len(g) > 1 for g in groups):
                raise _LineInvalid("a gold ranking with ties needs a project that allows rank ties", "gold")
            gold = groups
    return _Record(line, external_id, messages, metadata, list(tags), candidates, gold)


def parse_hh_transcript(text: str) -> list[dict]:
    """Split an HH-RLHF transcript (``\\n\\nHuman: ...\\n\\nAssistant: ...``) into turns (``core.hh``)."""
    try:
        return parse_transcript(text)
    except HHFormatError as exc:
        raise _LineInvalid(exc.message) from None


def _parse_hh(obj: dict, line: int) -> _Record:
    chosen, rejected = obj.get("chosen"), obj.get("rejected")
    if not isinstance(chosen, str):
        raise _LineInvalid("must be a transcript string", "chosen")
    if not isinstance(rejected, str):
        raise _LineInvalid("must be a transcript string", "rejected")
    try:
        pair = split_pair(chosen, rejected)
    except HHFormatError as exc:
        raise _LineInvalid(exc.message, exc.field) from None
    digest = hashlib.sha256((chosen + "\x00" + rejected).encode()).hexdigest()[:20]
    return _Record(
        line=line,
        external_id=f"hh-{digest}",
        messages=pair.prompt,
        metadata={"source_format": "hh-rlhf"},
        tags=[],
        candidates=[
            {"text": pair.chosen, "metadata": {"hh_role": "chosen"}},
            {"text": pair.rejected, "metadata": {"hh_role": "rejected"}},
        ],
        preferred_index=0,
    )


class _TooLarge(Exception):
    pass


class _Damaged(Exception):
    """The compressed stream cannot be read on (truncated, or not gzip data after its magic)."""


def _guarded(lines, add_error, max_bytes: int):
    """Stop at the size limit or at damaged gzip data with a line error instead of an exception."""
    try:
        yield from lines
    except _TooLarge as exc:
        add_error(
            exc.args[0],
            f"the file is larger than {max_bytes // 1024**2} MiB once decompressed; split it",
            None,
        )
    except _Damaged as exc:
        add_error(
            exc.args[0], f"the gzip data is damaged here ({exc.args[1]}); nothing after it can be read", None
        )


def _iter_lines(stream: IO[bytes], max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """Lines of the (decompressed) stream; ``None`` for an over-long line. Raises ``_TooLarge`` past
    ``max_bytes`` of decompressed data, so a small gzip bomb cannot fill the database.

    The length is checked while reading (``readline(limit)``): an over-long line is skipped in
    bounded chunks, never held in memory whole."""
    total = 0
    number = 0
    while True:
        try:
            raw = stream.readline(MAX_LINE_BYTES + 1)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise _Damaged(number + 1, str(exc) or type(exc).__name__) from None
        if not raw:
            return
        number += 1
        total += len(raw)
        if total > max_bytes:
            raise _TooLarge(number)
        if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
            yield number, raw
            continue
        while not raw.endswith(b"\n"):  # drop the rest of the over-long line
            try:
                raw = stream.readline(_READ_CHUNK)
            except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
                raise _Damaged(number, str(exc) or type(exc).__name__) from None
            if not raw:
                break
            total += len(raw)
            if total > max_bytes:
                raise _TooLarge(number)
        yield number, None


def _source_username(name: str) -> str:
    """The user a source's recorded preferences are annotations of: "source-<slug>". The ASCII slug
    (as always: "HH RLHF" is "source-hh-rlhf"), else the Unicode one, so that sources named in other
    scripts ("日本", "中文") do not all become "source-"; a name with neither is refused."""
    slug = slugify(name) or slugify(name, allow_unicode=True)
    if not slug:
        raise InvalidInput(
            "The preference source needs a letter or digit in its name: it names the user its"
            " preferences are recorded as.",
            field="preference_source",
        )
    return f"source-{slug}"[:150]


def _not_a_person(user, username: str) -> None:
    """A source's user is login-less (inactive, no password): an account a person signs in with
    that happens to be called "source-<slug>" must not get the source's preferences as its labels."""
    if user is not None and (user.is_active or user.has_usable_password()):
        raise InvalidInput(
            f"{username!r} is the account of a person who signs in: the preferences would be "
            "recorded as theirs. Name the preference source otherwise.",
            field="preference_source",
        )


def _source_user(name: str):
    User = get_user_model()
    username = _source_username(name)
    user, created = User.objects.get_or_create(username=username, defaults={"is_active": False})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    else:
        _not_a_person(user, username)
    return user


@dataclass
class _Batch:
    """What the reader thread hands the writer: good records (line order) and the bad lines among them."""

    records: list[_Record] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    lines: int = 0  # lines read so far
    format: str = ""
    bytes: int = 0
    tasks: int = 0


@dataclass
class _ParseOptions:
    project: Project
    fmt: str
    task_mode: str
    pairs_per_prompt: int | None
    seed: int
    preference_source: str | None
    progress: Callable[[int], None] | None


_json_encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one a call


def _json_text(value: object) -> str:
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    return _json_encode(value)


def _unstorable(raw: bytes, obj: object) -> tuple[str, str] | None:
    """``unstorable_at`` without walking the object when the line cannot hold such text: in UTF-8
    JSON a NUL or a surrogate can only be written as an escape (``\\u0000``, ``\\ud800``; raw control
    characters and encoded surrogates are invalid); lines in other encodings (which contain NUL
    bytes) are walked."""
    if b"\\u0000" not in raw and b"\x00" not in raw and b"\\ud" not in raw and b"\\uD" not in raw:
        return None
    return unstorable_at(obj)


NOT_UTF8_FILE = (
    "the file is not UTF-8 text: it looks like UTF-16 or UTF-32 (a byte order mark of theirs, or NUL"
    " bytes between its first characters); save it as UTF-8 and import it again"
)


def _wide_encoding(first_line: bytes) -> bool:
    """Whether the file's first line is UTF-16 or UTF-32 text, by its byte order mark or the NUL
    bytes among its first four (``json.detect_encoding``'s rule). Split at its "\\n" bytes, such a
    file would give one misnumbered error (or two) per line, none naming the encoding."""
    return json.detect_encoding(first_line) not in ("utf-8", "utf-8-sig")


def _not_utf8(exc: UnicodeDecodeError) -> str:
    byte = exc.object[exc.start : exc.start + 1].hex()
    return (
        f"not valid JSON (not UTF-8 text: byte 0x{byte} at position {exc.start + 1} of the line,"
        f" {exc.reason}); save the file as UTF-8"
    )


#: A preference source given with a file that records none (only HH-RLHF's chosen/rejected do).
NO_PREFERENCE_TO_RECORD = (
    "only HH-RLHF files record a preference; the project's JSONL has none to import: "
    "leave the preference source out"
)


def _read_batches(stream: IO[bytes], opts: _ParseOptions) -> Iterator[_Batch]:
    """Read, parse and validate the file; yield batches of records bounded by ``BATCH`` lines,
    ``BATCH_BYTES`` of JSON or ``BATCH_TASKS`` tasks (and ``BATCH`` bad lines). Touches no database:
    it runs in the reader thread while the writer inserts the previous batch. JSON columns, task
    groups (as candidate positions) and slot order are worked out here too."""
    project, task_mode, pairs_per_prompt = opts.project, opts.task_mode, opts.pairs_per_prompt
    max_candidates = int(getattr(settings, "PREFHUB_MAX_CANDIDATES_PER_PROMPT", 1000))
    max_tasks = int(getattr(settings, "PREFHUB_MAX_TASKS_PER_PROMPT", 1000))
    max_bytes = getattr(settings, "PREFHUB_MAX_IMPORT_DECOMPRESSED_BYTES", 4 * 1024**3)
    seen_ids: set[str] = set()
    detected = opts.fmt
    batch = _Batch(format=detected)

    def add_error(line: int, message: str, field_name: str | None) -> None:
        batch.errors.append(LineError(line, message, field_name))

    for number, raw in _guarded(_iter_lines(stream, max_bytes), add_error, max_bytes):
        batch.lines = number
        if opts.progress is not None and number % 1000 == 0:
            opts.progress(number)
        if (
            len(batch.records) >= BATCH
            or batch.bytes >= BATCH_BYTES
            or batch.tasks >= BATCH_TASKS
            or (len(batch.errors) >= BATCH)
        ):
            yield batch
            batch = _Batch(format=detected, lines=number)
        if raw is None:
            add_error(number, f"line is longer than {MAX_LINE_BYTES} bytes", None)
            continue
        if number == 1 and _wide_encoding(raw):
            add_error(number, NOT_UTF8_FILE, "file")
            break  # every line after it is as unreadable: one error says it
        if not raw.strip():
            continue
        try:
            obj = json_loads_finite(raw)
        except json.JSONDecodeError as exc:
            add_error(number, f"not valid JSON ({exc.msg})", None)
            continue
        except UnicodeDecodeError as exc:
            add_error(number, _not_utf8(exc), None)
            continue
        except RecursionError:
            add_error(number, f"not valid JSON ({NESTED_TOO_DEEPLY})", None)
            continue
        if not isinstance(obj, dict):
            add_error(number, "each line must be a JSON object", None)
            continue
        unstorable = _unstorable(raw, obj)
        if unstorable is not None:
            add_error(number, unstorable[1], unstorable[0] or None)
            continue
        raw_candidates = obj.get("candidates")
        if isinstance(raw_candidates, list) and len(raw_candidates) > max_candidates:
            add_error(
                number,
                f"has {len(raw_candidates)} candidates; at most {max_candidates} per prompt"
                " (PREFHUB_MAX_CANDIDATES_PER_PROMPT)",
                "candidates",
            )
            continue
        if detected == "auto":
            detected = batch.format = "hh-rlhf" if "chosen" in obj and "rejected" in obj else "jsonl"
        try:
            rec = _parse_hh(obj, number) if detected == "hh-rlhf" else _parse_jsonl(obj, number, project)
        except _LineInvalid as exc:
            add_error(number, exc.message, exc.field)
            continue
        n_tasks = (
            0
            if rec.gold is not None
            else tasks_per_prompt(len(rec.candidates), mode=task_mode, pairs_per_prompt=pairs_per_prompt)
        )
        if n_tasks > max_tasks:
            add_error(
                number,
                f"would make {n_tasks} tasks; at most {max_tasks} per prompt"
                " (PREFHUB_MAX_TASKS_PER_PROMPT): use task mode sampled_pairs with pairs_per_prompt",
                "candidates",
            )
            continue
        if opts.preference_source is not None and rec.preferred_index is None:
            add_error(number, NO_PREFERENCE_TO_RECORD, "preference_source")
            continue
        if rec.external_id:
            if rec.external_id in seen_ids:
                add_error(number, f"id {rec.external_id!r} appears twice in this file", "id")
                continue
            seen_ids.add(rec.external_id)
        if rec.gold is None:  # which candidates (by position) go together, slots in order
            rng = random.Random(f"{opts.seed}:{rec.line}")
            rec.groups = candidate_groups(
                range(len(rec.candidates)),
                mode=task_mode,
                rng=rng,
                pairs_per_prompt=pairs_per_prompt,
                k=project.ranking_k,
            )
        rec.row = (
            project.pk,
            rec.external_id,
            _json_encode(rec.messages),
            _json_text(rec.metadata),
            _json_text(rec.tags),
        )
        for c in rec.candidates:
            c["sampling_params"] = _json_text(c.get("sampling_params"))
            c["metadata"] = _json_text(c.get("metadata"))
        batch.records.append(rec)
        batch.bytes += len(raw)
        batch.tasks += max(n_tasks, 1)
    if opts.progress is not None:
        opts.progress(batch.lines)
    yield batch


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the import runs. It allocates millions of short-lived,
    acyclic containers (parsed JSON, row tuples), and the collector's passes, each walking the
    batches in flight and, for a full pass, every module, view and model of the process, cost a
    quarter of a 100k-line import's CPU (measured; ``gc.freeze`` of the old objects saved only a
    quarter of that). Reference counting still frees everything at once; cycles made meanwhile (by
    any thread) wait for the first pass after it. Nested or concurrent imports leave the collector
    enabled once the last of them ends."""
    global _gc_pauses
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled[0] = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled[0]:
                gc.enable()


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = [True]


def prompts_import(
    *,
    project: Project,
    stream: IO[bytes],
    fmt: str = "auto",
    task_mode: str | None = None,
    pairs_per_prompt: int | None = None,
    seed: int = 0,
    preference_source: str | None = None,
    skip_invalid: bool = False,
    max_errors: int = 1000,
    progress: Callable[[int], None] | None = None,
    actor: AbstractBaseUser | None = None,
    filename: str = "",
) -> ImportReport:
    """Import a file into ``project``: the one import service behind the CLI, the API and the page.
    Returns the report; raises ``ImportFailed`` (nothing written) when a line is bad and
    ``skip_invalid`` is off. ``progress(n)`` is called with lines read (from the reader thread). A
    committed import is audited (``actor``: who imported, None for the command line).

    Streaming, in one transaction: a reader thread parses and validates the file batch by batch
    while this thread writes the previous batch with ``bulk_insert`` (``COPY`` on PostgreSQL), so
    parsing and the database's work overlap; at most a few batches are in memory. On PostgreSQL the
    foreign keys are checked as each batch is written (not all at COMMIT), and after a large import
    (``PREFHUB_IMPORT_ANALYZE_ROWS`` rows in a table, and a tenth of what it held) that table is
    ANALYZEd before COMMIT, so the first labeler after it gets the same query plan as later ones."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}.", field="format")
    task_mode = task_mode or default_mode_for(project)
    check_mode(project=project, mode=task_mode, pairs_per_prompt=pairs_per_prompt)
    if preference_source is not None:
        if not preference_source.strip():
            raise InvalidInput("The preference source needs a name.", field="preference_source")
        if fmt == "jsonl":
            raise InvalidInput(NO_PREFERENCE_TO_RECORD, field="preference_source")
        username = _source_username(preference_source)  # refused before anything is read
        _not_a_person(get_user_model().objects.filter(username=username).first(), username)
        if project.kind != TaskKind.PAIRWISE or task_mode not in (PairMode.ALL_PAIRS, PairMode.SAMPLED_PAIRS):
            raise InvalidInput(
                "Recorded preferences can only be imported as pairwise tasks.", field="preference_source"
            )

    report = ImportReport(format=fmt)
    opts = _ParseOptions(project, fmt, task_mode, pairs_per_prompt, seed, preference_source, progress)
    source_user = None
    slots_written = 0

    def add_error(err: LineError) -> None:
        report.skipped_lines += 1
        if len(report.errors) < max_errors:
            report.errors.append(err)
        else:
            report.truncated_errors = True

    def without_clashes(records: list[_Record]) -> list[_Record]:
        """The records whose id no prompt of the project has yet; a line error for each other."""
        existing = prompt_external_ids_existing(
            project=project, external_ids=[r.external_id for r in records if r.external_id]
        )
        for rec in records:
            if rec.external_id in existing:
                add_error(
                    LineError(
                        rec.line, f"a prompt with id {rec.external_id!r} already exists in this project", "id"
                    )
                )
        return [rec for rec in records if rec.external_id not in existing]

    def insert_prompts(records: list[_Record], ids: list[int] | None) -> list[int]:
        return bulk_insert(
            Prompt,
            ["project_id", "external_id", "messages", "metadata", "tags"],
            [r.row for r in records],
            json_ready=True,
            ids=ids,
        )

    def write(records: list[_Record]) -> None:
        nonlocal slots_written
        if not records:
            return
        if report.errors and not skip_invalid:
            without_clashes(records)  # this transaction will be rolled back: stop writing, keep validating
            return
        # The batch's ids for three tables in one round trip (a batch that shrinks leaves gaps).
        reserved = reserve_ids(
            {
                Prompt: len(records),
                Candidate: sum(len(r.candidates) for r in records),
                Task: sum(1 if r.gold is not None else len(r.groups) for r in records),
            }
        )
        # Ids repeated inside the file were refused by the reader; a clash with a prompt already in
        # the project is left to the unique index (no lookup per batch: with the statistics from
        # before a large import the planner read every prompt imported so far, on every batch). A
        # clash undoes only this batch's savepoint; then the clashing lines are found and reported.
        batch = records
        try:
            with transaction.atomic():
                prompt_ids = insert_prompts(batch, reserved.get(Prompt))
        except IntegrityError:
            batch = without_clashes(records)
            if len(batch) == len(records):
                raise  # not an id clash
            if not skip_invalid:
                return
            prompt_ids = insert_prompts(batch, reserved.get(Prompt))
        cand_ids = bulk_insert(
            Candidate,
            ["prompt_id", "text", "source", "model_name", "model_version", "sampling_params", "seed", "external_id",
             "metadata", "finish_reason"],
            [
                (pid, c["text"], CandidateSource.IMPORTED, c.get("model_name", ""), c.get("model_version", ""),
                 c["sampling_params"], c.get("seed"), c.get("external_id", ""), c["metadata"], "")
                for pid, r in zip(prompt_ids, batch, strict=True)
                for c in r.candidates
            ],
            json_ready=True,
            ids=reserved.get(Candidate),
        )  # fmt: skip
        report.prompts += len(prompt_ids)
        report.candidates += len(cand_ids)
        specs: list[TaskSpec] = []
        preferred: list[int | None] = []
        pos = 0
        for pid, r in zip(prompt_ids, batch, strict=True):
            ids = cand_ids[pos : pos + len(r.candidates)]
            pos += len(r.candidates)
            if r.gold is not None:
                spec = TaskSpec(prompt_id=pid, candidate_ids=ids, is_gold=True)
                if project.kind == TaskKind.PAIRWISE:
                    spec.gold_choice = r.gold
                else:
                    spec.gold_ranking = [[ids[i] for i in g] for g in r.gold]
                specs.append(spec)
                preferred.append(None)
                continue
            pref = ids[r.preferred_index] if r.preferred_index is not None and len(ids) == 2 else None
            for group in r.groups:
                specs.append(TaskSpec(prompt_id=pid, candidate_ids=[ids[i] for i in group]))
                preferred.append(pref)
        task_ids = tasks_bulk_create(
            project=project, specs=specs, ids_only=True, ids=reserved.get(Task), savepoint=False
        )
        report.tasks += len(task_ids)
        slots_written += sum(len(spec.candidate_ids) for spec in specs)
        if source_user is not None:
            annotations = [
                (task_id, source_user.pk, AnnotationSource.IMPORTED, "a" if spec.candidate_ids[0] == pref else "b",
                 {}, "", False, "")
                for task_id, spec, pref in zip(task_ids, specs, preferred, strict=True)
                if pref is not None
            ]  # fmt: skip
            bulk_insert(
                Annotation,
                [
                    "task_id",
                    "labeler_id",
                    "source",
                    "choice",
                    "ratings",
                    "rationale",
                    "flagged",
                    "flag_reason",
                ],
                annotations,
                with_ids=False,
            )
            Task.objects.filter(pk__in=[a[0] for a in annotations]).update(claims=1)
            report.annotations += len(annotations)

    touched = [Prompt, Candidate, Task, TaskCandidate]
    with _gc_paused(), transaction.atomic():
        locked: list[tuple[type, int]] = [(Project, project.pk)]
        if preference_source is not None:
            source_user = _source_user(preference_source)
            locked.append((type(source_user), source_user.pk))
        # Every key written below is the project, the source user (both locked) or a row inserted
        # earlier in this transaction: see bulk_fk_trusted.
        with bulk_fk_trusted([*touched, Annotation], locked=locked):
            reader = read_ahead(
                _read_batches(open_import_stream(stream), opts), depth=1, name="prompts-import-reader"
            )
            with closing(reader):  # an error while writing stops the reader thread at once
                for batch in reader:
                    report.lines, report.format = batch.lines, batch.format
                    for err in batch.errors:
                        add_error(err)
                    write(batch.records)
        if not report.prompts and not report.errors:  # not one line that was not blank
            raise InvalidInput(
                "The file holds no prompts: it is empty or has only blank lines. Nothing was imported.",
                field="file",
            )
        if report.errors and not skip_invalid:
            transaction.set_rollback(True)
            report.prompts = report.candidates = report.tasks = report.annotations = 0
            raise ImportFailed(report)
        bulk_analyze(
            {Prompt: report.prompts, Candidate: report.candidates, Task: report.tasks,
             TaskCandidate: slots_written, Annotation: report.annotations},
            min_rows=int(getattr(settings, "PREFHUB_IMPORT_ANALYZE_ROWS", 10_000)),
        )  # fmt: skip
        report.committed = True
        _audit_import(project=project, actor=actor, filename=filename, report=report)
    return report


def _audit_import(
    *, project: Project, actor: AbstractBaseUser | None, filename: str, report: ImportReport
) -> None:
    details = {"filename": filename[:200], "format": report.format, "prompts": report.prompts,
               "candidates": report.candidates, "tasks": report.tasks, "skipped_lines": report.skipped_lines}  # fmt: skip
    audit_record(actor=actor, project=project, action="prompts.import", details=details)
