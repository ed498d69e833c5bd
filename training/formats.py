"""Export formats (row shapes and pyarrow schemas) and streaming file writers.

Row shapes
----------
``trl``                {"prompt": str, "chosen": str, "rejected": str[, "margin": float][, "flag": str|null]}
``trl_conversational`` {"prompt": [{"role", "content"}...], "chosen": [{"role": "assistant", "content"}],
                        "rejected": [...][, "margin"][, "flag"]}
``trl_unpaired`` (KTO) {"prompt": str, "completion": str, "label": bool}
``hh_rlhf``            {"chosen": transcript, "rejected": transcript}
``openai``             {"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", "content"}],
                        "non_preferred_output": [...]}
``raw``                one row per annotation (see ``RAW_FIELDS``)

The standard-format prompt (``trl``, ``trl_unpaired``): a conversation of a single user turn is that
turn's text, verbatim. A longer conversation (or one with a system turn) is rendered as blocks
``"System: ..."``, ``"User: ..."``, ``"Assistant: ..."`` separated by a blank line, ending with the
last user turn and ``"\\n\\nAssistant:"``, so the completion follows the cue. Use
``trl_conversational`` to let the tokenizer's chat template do this instead.

``flag`` (``"tie"`` / ``"both_bad"``, null for a preference) is present only when ties are kept;
tie rows then list the two responses in slot order. ``margin`` is present when the ``margin``
option is on (see ``training.compiler``); ``p_chosen`` (float, the reliability model's soft label)
follows it in the two ``trl`` preference formats when ``soft_labels`` is on, and ``labeled_by``
(``"human"``, ``"judge"``: labeled by AI judges under routing, or ``"mixed"``) when ``labeled_by`` is on;
``raw`` rows always carry ``source`` (``"judge"`` for an AI judge's label). HH-RLHF and OpenAI rows cannot hold a tie, and KTO rows
cannot hold a tie (a "both bad" verdict becomes two ``label: false`` rows when ties are kept; a tie
is counted dropped). An HH-RLHF row whose transcripts would read back as another conversation (a
prompt whose text holds "\\n\\nHuman:" or "\\n\\nAssistant:", two replies that begin with the same
text up to "\\n\\nAssistant:") is dropped as ``ambiguous_transcript``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.formatting import hh_transcript, prompt_text
from core.hh import ASSISTANT
from training.compiler import BOTH_BAD, PREF, AnnotationRecord, ExportOptions, PairOut

FILE_TYPES = ("jsonl", "parquet")

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
_MESSAGES = pa.list_(_MESSAGE)


def labeler_pseudonymizer(*, secret_key: str, project_id: int):
    """HMAC-SHA256 of the user id under a per-project salt derived from the secret key: stable for a
    project across exports, different across projects, not reversible without the secret."""
    salt = hashlib.sha256(f"prefhub-export-labeler:{project_id}:{secret_key}".encode()).digest()
    cache: dict[int, str] = {}

    def pseudonym(user_id: int) -> str:
        value = cache.get(user_id)
        if value is None:
            value = "lab_" + hmac.new(salt, str(user_id).encode(), hashlib.sha256).hexdigest()[:16]
            cache[user_id] = value
        return value

    return pseudonym


class Format:
    name = ""
    pairwise = True  # rows come from pairs; False: one row per annotation
    holds_ties = False

    def __init__(self, opts: ExportOptions) -> None:
        self.opts = opts
        self.keep_ties = self.holds_ties and opts.ties == "keep"
        # Judgments ``rows`` was handed but cannot write, by reason: the export counts them dropped.
        self.dropped: Counter = Counter()

    def schema(self) -> pa.Schema:
        raise NotImplementedError

    def rows(self, pairs: list[PairOut]) -> Iterator[dict]:
        raise NotImplementedError

    def columns(self) -> list[str]:
        return self.schema().names

    def drop_reason(self, rec: AnnotationRecord) -> str | None:
        """Why a task's rows cannot be written in this format (None: they can)."""
        return None

    def describe(self) -> str:
        return (self.__doc__ or "").strip().split("\n\n")[0]


#: What the optional columns of a preference row mean, for the dataset card (``services.exports``).
COLUMN_MEANINGS = {
    "margin": (
        "how strongly chosen is preferred (TRL RewardTrainer's `margin`): the labeler's strength / 3 "
        "(1/3, 2/3, 1), 0 without a strength or for rankings, the score difference / (scale max - 1) for "
        "a dimension; an aggregated row has the mean of its winning votes"
    ),
    "p_chosen": (
        "the soft label: the reliability model's probability (0 to 1) that chosen is preferred to "
        "rejected, given that one of them is, from every labeler's vote on the comparison weighted by "
        "their estimated reliability; 1 is certain, 0.5 a coin toss, below 0.5 the model leans to "
        "rejected; null where the model did not see the comparison. For a tie or both-bad row, the "
        "probability for the first-listed response. PrefHub's reward runner trains on it "
        "(-(p log sigmoid(d) + (1 - p) log sigmoid(-d)), d = r(chosen) - r(rejected)); its DPO runner ignores it"
    ),
    "flag": '"tie" or "both_bad" for a row that is no preference (never trained as one), null for a preference',
    "labeled_by": '"human", "judge" (AI judges) or "mixed": who labeled the row',
}


class TrlStandard(Format):
    """TRL standard preference: prompt text, chosen and rejected completions as text."""

    name = "trl"
    holds_ties = True

    def _extra(self) -> list[tuple[str, pa.DataType]]:
        out = []
        if self.opts.margin:
            out.append(("margin", pa.float64()))
        if self.opts.soft_labels:
            out.append(("p_chosen", pa.float64()))
        if self.keep_ties:
            out.append(("flag", pa.string()))
        if self.opts.labeled_by:
            out.append(("labeled_by", pa.string()))
        return out

    def schema(self) -> pa.Schema:
        return pa.schema(
            [("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string()), *self._extra()]
        )

    def _prompt(self, rec: AnnotationRecord):
        return prompt_text(rec.prompt[1])

    def _completion(self, text: str):
        return text

    def rows(self, pairs: list[PairOut]) -> Iterator[dict]:
        margin, keep, soft = self.opts.margin, self.keep_ties, self.opts.soft_labels
        for p in pairs:
            texts = p.record.texts
            row = {
                "prompt": self._prompt(p.record),
                "chosen": self._completion(texts[p.chosen]),
                "rejected": self._completion(texts[p.rejected]),
            }
            if margin:
                row["margin"] = p.margin
            if soft:
                row["p_chosen"] = p.p_chosen
            if keep:
                row["flag"] = None if p.outcome == PREF else p.outcome
            if self.opts.labeled_by:
                row["labeled_by"] = p.labeled_by
            yield row


class TrlConversational(TrlStandard):
    """TRL conversational preference: prompt as messages, chosen/rejected as one assistant message."""

    name = "trl_conversational"

    def schema(self) -> pa.Schema:
        return pa.schema(
            [("prompt", _MESSAGES), ("chosen", _MESSAGES), ("rejected", _MESSAGES), *self._extra()]
        )

    def _prompt(self, rec: AnnotationRecord):
        return rec.prompt[1]

    def _completion(self, text: str):
        return [{"role": "assistant", "content": text}]


class TrlUnpaired(Format):
    """TRL unpaired preference (KTO): prompt text, one completion, label true (desirable) or false."""

    name = "trl_unpaired"
    holds_ties = True  # "both bad" is representable: two undesirable completions

    def schema(self) -> pa.Schema:
        return pa.schema([("prompt", pa.string()), ("completion", pa.string()), ("label", pa.bool_())])

    def rows(self, pairs: list[PairOut]) -> Iterator[dict]:
        # One row per (candidate, label) per task: a ranking's pairs name a candidate many times.
        seen: set[tuple[int, bool]] = set()
        for p in pairs:
            if p.outcome == PREF:
                items = ((p.chosen, True), (p.rejected, False))
            elif p.outcome == BOTH_BAD:
                items = ((p.chosen, False), (p.rejected, False))
            else:  # a tie: neither response is desirable or undesirable
                self.dropped[p.outcome] += 1
                continue
            prompt = None
            for cid, label in items:
                if (cid, label) in seen:
                    continue
                seen.add((cid, label))
                if prompt is None:
                    prompt = prompt_text(p.record.prompt[1])
                yield {"prompt": prompt, "completion": p.record.texts[cid], "label": label}


class HhRlhf(Format):
    """Anthropic HH-RLHF: two full transcripts sharing the conversation before the last reply."""

    name = "hh_rlhf"

    def schema(self) -> pa.Schema:
        return pa.schema([("chosen", pa.string()), ("rejected", pa.string())])

    def drop_reason(self, rec: AnnotationRecord) -> str | None:
        if any(m["role"] not in ("user", "assistant") for m in rec.prompt[1]):
            return "system_turn_unsupported"  # a transcript has only Human and Assistant turns
        if any(_TURN_MARK.search(m["content"]) for m in rec.prompt[1]):
            return "ambiguous_transcript"  # its text would read back as more turns (see rows)
        return None

    def rows(self, pairs: list[PairOut]) -> Iterator[dict]:
        for p in pairs:
            messages = p.record.prompt[1]
            texts = p.record.texts
            if _replies_share_a_turn(texts[p.chosen], texts[p.rejected]):
                self.dropped["ambiguous_transcript"] += 1
                continue
            yield {
                "chosen": hh_transcript(messages, texts[p.chosen]),
                "rejected": hh_transcript(messages, texts[p.rejected]),
            }


_TURN_MARK = re.compile(r"\n\n(?:Human|Assistant):")  # core.hh's turn marker


def _replies_share_a_turn(chosen: str, rejected: str) -> bool:
    """Whether an HH row of these replies would read back (``core.hh``, TRL's rule: the prompt is the
    transcripts' shared prefix up to its last "\\n\\nAssistant:") with part of the replies taken for
    a turn of the prompt: they begin with the same text up to and including "\\n\\nAssistant:" (a
    forged assistant turn). The replies' first marker decides; no shared prefix is built. A prompt
    whose text holds a turn marker is dropped per task (``drop_reason``)."""
    i = chosen.find(ASSISTANT)
    return i >= 0 and rejected.startswith(chosen[: i + len(ASSISTANT)])


class OpenAIPreference(Format):
    """OpenAI preference fine-tuning (DPO) JSONL."""

    name = "openai"

    def schema(self) -> pa.Schema:
        return pa.schema(
            [
                ("input", pa.struct([("messages", _MESSAGES)])),
                ("preferred_output", _MESSAGES),
                ("non_preferred_output", _MESSAGES),
            ]
        )

    def rows(self, pairs: list[PairOut]) -> Iterator[dict]:
        for p in pairs:
            texts = p.record.texts
            yield {
                "input": {"messages": p.record.prompt[1]},
                "preferred_output": [{"role": "assistant", "content": texts[p.chosen]}],
                "non_preferred_output": [{"role": "assistant", "content": texts[p.rejected]}],
            }


def _sorted_object(value: object) -> object:
    """``value`` with every object's keys sorted (stable output whatever order the database kept)."""
    if isinstance(value, dict):
        return {k: _sorted_object(value[k]) for k in sorted(value)}
    return value


class RawAnnotations(Format):
    """One row per annotation: pseudonymized labeler, what was shown, the verdict and its context.

    ``ratings`` is a JSON object (``{dimension: {candidate_id: score}}``, ``{}`` when none): an object
    in JSONL, a column of the JSON logical type in Parquet (``datasets`` decodes both to a dict);
    ``shown_order`` lists candidate ids left to right (top to bottom) as this labeler saw them;
    ``pre_annotated`` is true when the labeling page preselected an AI judge's verdict for them.
    """

    name = "raw"
    pairwise = False
    holds_ties = True

    def schema(self) -> pa.Schema:
        return pa.schema(
            [
                ("annotation_id", pa.int64()),
                ("task_id", pa.int64()),
                ("prompt_id", pa.string()),
                ("labeler", pa.string()),
                ("source", pa.string()),
                ("candidate_ids", pa.list_(pa.int64())),
                ("shown_order", pa.list_(pa.int64())),
                ("choice", pa.string()),
                ("ranking", pa.list_(pa.list_(pa.int64()))),
                ("strength", pa.int64()),
                ("ratings", pa.json_()),
                ("flagged", pa.bool_()),
                ("flag_reason", pa.string()),
                ("is_gold", pa.bool_()),
                ("guideline_version", pa.int64()),
                ("time_spent_ms", pa.int64()),
                ("created_at", pa.string()),
                ("pre_annotated", pa.bool_()),
            ]
        )

    def annotation_row(self, rec: AnnotationRecord, labeler: str) -> dict:
        return {
            "annotation_id": rec.id,
            "task_id": rec.task_id,
            "prompt_id": rec.prompt[0],
            "labeler": labeler,
            "source": rec.source,
            "candidate_ids": list(rec.candidate_ids),
            "shown_order": rec.shown_order,
            "choice": rec.choice,
            "ranking": rec.ranking,
            "strength": rec.strength,
            "ratings": _sorted_object(rec.ratings or {}),
            "flagged": rec.flagged,
            "flag_reason": rec.flag_reason,
            "is_gold": rec.is_gold,
            "guideline_version": rec.guideline_version,
            "time_spent_ms": rec.time_spent_ms,
            "created_at": rec.created_at,
            "pre_annotated": rec.pre_annotated,
        }


FORMATS: dict[str, type[Format]] = {
    cls.name: cls
    for cls in (TrlStandard, TrlConversational, TrlUnpaired, HhRlhf, OpenAIPreference, RawAnnotations)
}


def format_for(name: str, opts: ExportOptions) -> Format:
    return FORMATS[name](opts)


# --- writers ------------------------------------------------------------------------------------


class JsonlSink:
    """Appends one JSON object a line (UTF-8, no ASCII escaping, key order as built)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self._fh = open(path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed in close()
        self._dumps = json.JSONEncoder(ensure_ascii=False).encode
        self._buf: list[str] = []
        self.rows = 0

    def write(self, row: dict) -> None:
        self._buf.append(self._dumps(row))
        self.rows += 1
        if len(self._buf) >= 2000:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._fh.write("\n".join(self._buf) + "\n")
            self._buf.clear()

    def close(self) -> None:
        self._flush()
        self._fh.close()


class ParquetSink:
    """Buffers rows and writes them as row groups of ``row_group_size`` (memory stays bounded).
    Columns of the JSON type (``pa.json_()``) take the row's object and store its JSON text."""

    def __init__(self, path: Path, schema: pa.Schema, *, row_group_size: int = 20_000) -> None:
        self.path = path
        self.schema = schema
        self.row_group_size = row_group_size
        self._writer = pq.ParquetWriter(str(path), schema, compression="zstd", write_statistics=True)
        self._buf: list[dict] = []
        self._json_fields = [f.name for f in schema if isinstance(f.type, pa.JsonType)]
        self._dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
        self.rows = 0

    def write(self, row: dict) -> None:
        for name in self._json_fields:
            if row.get(name) is not None:
                row = {**row, name: self._dumps(row[name])}
        self._buf.append(row)
        self.rows += 1
        if len(self._buf) >= self.row_group_size:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._writer.write_table(
                pa.Table.from_pylist(self._buf, schema=self.schema), row_group_size=self.row_group_size
            )
            self._buf.clear()

    def close(self) -> None:
        self._flush()
        self._writer.close()


def open_sink(path: Path, schema: pa.Schema, file_type: str):
    return ParquetSink(path, schema) if file_type == "parquet" else JsonlSink(path, schema)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
