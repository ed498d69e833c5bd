"""Models for the runners: tokenizer and config loading with clear errors, the checks a base model
must pass (a causal LM for a policy, a tokenizer that fits the embeddings), device and dtype
defaults, and writing the output directory atomically."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.runners.protocol import ModelError, RunnerError, first_line, is_main_process

# --- models -------------------------------------------------------------------------------------


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot load a tokenizer from {path!r}: {first_line(exc)}") from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


REWARD_PAD_TOKEN = "<|reward_pad|>"


def pad_apart_from_ends(tokenizer) -> bool:
    """Make the padding of a reward model's ``tokenizer`` a token no sequence ends with.

    A sequence-classification model reads its score at the last token that is not padding. A
    family that ships no pad token (Llama-3, Mistral) gets the EOS as pad from ``load_tokenizer``,
    and then the EOS that ends every plain-text sequence passes for padding: the score was read one
    token early, and a reply with its end token scored the same as one cut before it. The pad
    becomes the tokenizer's UNK or BOS (neither ends a sequence; padding is masked out, so which
    token it is matters only to the pooling), else a new special token. Returns whether a token
    was added (the model's embeddings then need resizing)."""
    from core.formatting import end_token_id, stop_token_ids

    ends = {*stop_token_ids(tokenizer), end_token_id(tokenizer), getattr(tokenizer, "sep_token_id", None)}
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id not in ends:
        return False
    for token in (tokenizer.unk_token, tokenizer.bos_token):
        if token is not None and tokenizer.convert_tokens_to_ids(token) not in ends:
            tokenizer.pad_token = token
            return False
    tokenizer.add_special_tokens({"pad_token": REWARD_PAD_TOKEN})
    return True


def as_shipped(model, tokenizer, base_model: str):
    """The tokenizer to save with a policy trained from ``base_model``, once ``model``'s config and
    generation_config are put back as the base ships them: what the runners change for training
    alone stays out of the saved model.

    ``load_tokenizer`` lends a family without a pad token (Mistral, Llama-3) its EOS as pad, and
    TRL writes that pad id into the configs and turns ``use_cache`` off; saved, the next round would
    read a pad that is the EOS (a collator masking pad labels never teaches it to stop). The
    tokenizer returned is the base's own, padding on the side ``tokenizer`` pads (PPO, RLOO and
    GRPO save left padding for generation); the config gets the base's ``use_cache`` and pad id,
    the generation_config the base's pad id. Weights, dtype and everything else stay as trained."""
    from transformers import AutoTokenizer

    base = model_config(base_model)
    try:
        shipped = AutoTokenizer.from_pretrained(base_model)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot load a tokenizer from {base_model!r}: {first_line(exc)}") from exc
    shipped.padding_side = tokenizer.padding_side
    model.config.use_cache = getattr(base, "use_cache", True)
    model.config.pad_token_id = getattr(base, "pad_token_id", None)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = _shipped_generation_pad(base_model, base)
    return shipped


def _shipped_generation_pad(base_model: str, base_config) -> int | None:
    """``generation_config.pad_token_id`` as ``base_model`` ships it (its config's when it has no
    ``generation_config.json``)."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(base_model).pad_token_id
    except (OSError, ValueError):
        return getattr(base_config, "pad_token_id", None)


def model_config(path: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot load a model from {path!r}: {first_line(exc)}") from exc


def require_causal_lm(path: str, role: str = "policy") -> None:
    """Refuse a base model that cannot generate (a reward/classifier checkpoint, an encoder)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    cfg = model_config(path)
    archs = list(getattr(cfg, "architectures", None) or [])
    if archs and not any(
        a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in archs
    ):
        raise ModelError(
            f"The {role} model {path!r} is not a causal language model (architecture {', '.join(archs)}); "
            "DPO and PPO train a model that generates text."
        )
    if not archs and cfg.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelError(f"The {role} model {path!r} ({cfg.model_type}) is not a causal language model.")


def lora_config(cfg, task_type: str, **more: Any):
    """The LoRA adapters a run with ``use_lora`` trains (peft's ``LoraConfig`` of ``task_type``:
    "CAUSAL_LM", "SEQ_CLS"; the run's ``lora_r``, ``lora_alpha`` and ``lora_dropout``, and ``more``
    of its options); None for a run without."""
    if not cfg.use_lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        task_type=task_type, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, **more
    )


def restore_lora_dropout(model, p: float) -> None:
    """Put the dropout of ``model``'s LoRA adapters back to ``p`` (the run's ``lora_dropout``).

    TRL 1.16's ``RewardTrainer`` and ``DPOTrainer`` wrap the model in its adapters and then, with
    ``disable_dropout`` (their default), set every ``nn.Dropout``'s p to 0, the adapters' own
    included: ``lora_dropout`` had no effect. Called once the trainer is built; the base model's
    dropout stays off, as TRL has it."""
    from torch import nn

    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if isinstance(dropouts, nn.ModuleDict):
            for dropout in dropouts.values():
                if isinstance(dropout, nn.Dropout):
                    dropout.p = p


def check_tokenizer_fits(tokenizer, model, path: str) -> None:
    """A tokenizer with ids beyond the model's embedding table is the wrong tokenizer for it."""
    emb = model.get_input_embeddings()
    n = emb.num_embeddings if emb is not None else getattr(model.config, "vocab_size", None)
    if n is not None and len(tokenizer) > n:
        raise ModelError(
            f"Tokenizer/model mismatch for {path!r}: the tokenizer has {len(tokenizer)} tokens but the model's "
            f"embedding table only {n}."
        )


def load_dtype(*, trainable: bool):
    """The dtype a model is loaded in: a model that trains gets fp32 master weights whatever the
    checkpoint's dtype (a bf16 checkpoint stepped in bf16 loses most small updates; bf16 compute
    comes from autocast), a frozen one (a reference, a scorer) the checkpoint's own ("auto")."""
    import torch

    return torch.float32 if trainable else "auto"


def resolve_use_cpu(value: bool | None) -> bool:
    if value is not None:
        return value
    import torch

    return not torch.cuda.is_available()


def resolve_bf16(value: bool | None, use_cpu: bool) -> bool:
    if value is not None:
        return value
    if use_cpu:
        return False
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


# --- outputs ------------------------------------------------------------------------------------


def launcher_pid() -> int:
    """One id shared by every process of a run: the ``accelerate launch`` parent's pid when launched
    by it (or PREFHUB_LAUNCHER_PID), else our own."""
    if os.environ.get("PREFHUB_LAUNCHER_PID"):
        return int(os.environ["PREFHUB_LAUNCHER_PID"])
    if "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return os.getppid()
    return os.getpid()


CHECKPOINT_PREFIX = "checkpoint-"


def checkpoints_dir(output_dir: str) -> Path:
    """Where a run's resumable checkpoints go: beside its output, so that a failed run keeps them."""
    return Path(f"{output_dir}.checkpoints")


def _named_step(folder: Path) -> int | None:
    """N of a folder named ``checkpoint-N``, else None."""
    name = folder.name
    if not name.startswith(CHECKPOINT_PREFIX) or not name[len(CHECKPOINT_PREFIX) :].isdigit():
        return None
    return int(name[len(CHECKPOINT_PREFIX) :])


def checkpoint_step(folder: Path) -> int | None:
    """The step of a ``checkpoint-N`` folder that holds a whole checkpoint, else None. The trainer
    writes ``trainer_state.json`` last; a process stopped while writing it (a cancel, a kill) leaves
    it empty or cut off, so the file must read as a JSON object, not merely exist."""
    step = _named_step(folder)
    if step is None:
        return None
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return step if isinstance(state, dict) else None


class CheckpointMismatch(RunnerError):
    """A checkpoint this run cannot continue as the run that wrote it would have gone on."""

    kind = "config"


#: In every checkpoint folder: the kind of run that wrote it and what places its data
#: (``check_checkpoint_record``).
CHECKPOINT_RECORD = "prefhub_checkpoint.json"


def file_sha256(path: str) -> str | None:
    """The SHA-256 of the file at ``path`` (a run's training data, for its checkpoint record: a file
    of as many rows with other contents places other rows), None when it cannot be read as one."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


#: The options a run's checkpoint records where its kind has them, which its resumption must share:
#: the learning-rate schedule (the checkpoint restores the scheduler with the rates it was written
#: with, while its shape comes from the resuming run's options), RLOO/GRPO's ``num_generations``
#: (TRL's sampler takes batch / num_generations prompts a step: the data position counts those) and
#: what shapes the trainable weights (a LoRA checkpoint holds adapters of its rank alone, a full one
#: every weight; either loaded into the other dies deep in transformers or PyTorch).
RECORDED_OPTIONS = (
    "learning_rate",
    "value_learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "num_generations",
    "use_lora",
    "lora_r",
    "lora_target_modules",
)


def options_record(cfg) -> dict[str, Any]:
    """What a checkpoint of the run ``cfg`` describes records besides its kind and batches: its
    ``RECORDED_OPTIONS`` and, for a run that writes checkpoints or resumes one, ``train_sha256``
    (``file_sha256`` of ``cfg.dataset_path``; not read otherwise)."""
    record = {k: getattr(cfg, k) for k in RECORDED_OPTIONS if hasattr(cfg, k)}
    digest = file_sha256(cfg.dataset_path) if cfg.save_steps or cfg.resume_from else None
    return {**record, "train_sha256": digest} if digest else record


def write_checkpoint_record(folder: Path, record: dict[str, Any]) -> None:
    """Write ``record`` (``{"kind": ..., option: value, ...}``) into the checkpoint ``folder``."""
    (Path(folder) / CHECKPOINT_RECORD).write_text(json.dumps(record), encoding="utf-8")


def check_checkpoint_record(folder: Path, record: dict[str, Any]) -> None:
    """Refuse (``CheckpointMismatch``) to resume this run, described by ``record`` (its kind, and the
    options and figures that place its data: batch size, accumulation, seed, training rows and the
    training file's SHA-256; and
    those that shape its trainable weights: LoRA, its rank and modules), from
    the checkpoint in ``folder`` when the run that wrote it was of another kind (its weights and
    optimiser would not fit: PyTorch fails deep in loading them) or differed in any of those (the
    steps left would read other rows). A checkpoint without a record (written before there was one)
    is not checked."""
    try:
        written = json.loads((Path(folder) / CHECKPOINT_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(written, dict):
        return
    if written.get("kind", record["kind"]) != record["kind"]:
        raise CheckpointMismatch(
            f"resume_from: {folder} is a {written['kind']} run's checkpoint and this is a "
            f"{record['kind']} run: resume it with a {written['kind']} run (manage.py train "
            f"{written['kind']} ...), or start this run without resume_from."
        )
    differing = [k for k, v in record.items() if k != "kind" and k in written and written[k] != v]
    if differing:
        said = "; ".join(f"{k} {written[k]!r} there, {record[k]!r} here" for k in differing)
        raise CheckpointMismatch(
            f"resume_from: {folder} was written by a run set up otherwise ({said}): resumed so, it "
            "would not go on as that run would have (the steps left would read other rows, step at "
            "another rate, or its weights would not fit). Resume it with the options and data it "
            "was written with."
        )


def checkpoint_record(kind: str, cfg, train_rows: int, **placing: Any) -> dict[str, Any]:
    """What each checkpoint of this run records: ``kind``, what places its data (``placing``: a TRL
    runner's batch size and accumulation, PPO's rollout batch and value model; the seed and the
    number of training rows) and ``options_record``. Refuses now, before any model loads, a
    ``resume_from`` checkpoint whose record differs (``check_checkpoint_record``). Every runner
    builds its record here and writes it into each checkpoint it saves."""
    record = {"kind": kind, **placing, "seed": cfg.seed, "train_rows": train_rows, **options_record(cfg)}
    checkpoint = resume_checkpoint(cfg.resume_from) if cfg.resume_from else None
    if checkpoint is not None:
        check_checkpoint_record(checkpoint, record)
    return record


def check_not_past_the_end(folder: Path, step: int, last: int) -> None:
    """Refuse (``CheckpointMismatch``) to resume from the checkpoint in ``folder``, at ``step``, a run
    whose last step is ``last`` (> 0) when the checkpoint is past it: it has trained more than the
    run asks, and saved as this run's result it would pass a longer run's model for a shorter one's."""
    if 0 < last < step:
        raise CheckpointMismatch(
            f"resume_from: the checkpoint {folder} at step {step} is past this run's last step, {last}: "
            f"it has trained more steps than this run would. Resume it with max_steps of at least "
            f"{step} (or the options it was written with), or from an earlier checkpoint."
        )


def checkpoint_processes(folder: Path) -> int | None:
    """How many processes wrote the checkpoint in ``folder``: PPO's ``trainer_state.json`` says so
    (``num_processes``); transformers saves one RNG state per process (``rng_state.pth`` for a
    single one, ``rng_state_<rank>.pth`` for several). None when the folder tells neither."""
    try:
        written = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8")).get("num_processes")
    except (OSError, ValueError, AttributeError):
        written = None
    if isinstance(written, int) and not isinstance(written, bool) and written > 0:
        return written
    ranks = len(list(folder.glob("rng_state_*.pth")))
    if ranks:
        return ranks
    return 1 if (folder / "rng_state.pth").is_file() else None


def resume_checkpoint(path: str) -> Path | None:
    """The checkpoint to resume from: ``path`` itself when it is a whole ``checkpoint-N`` folder,
    else the newest whole one inside ``path``; None when there is none."""
    folder = Path(path)
    if checkpoint_step(folder) is not None:
        return folder
    if not folder.is_dir():
        return None
    named = sorted(
        ((step, p) for p in folder.iterdir() if (step := _named_step(p)) is not None), reverse=True
    )
    return next((p for _, p in named if checkpoint_step(p) is not None), None)


@contextlib.contextmanager
def atomic_output(output_dir: str, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield ``<output_dir>.tmp-<pid>`` to train into; rename it to ``output_dir`` on success, delete it
    on any failure (including cancellation), so ``output_dir`` only ever holds a complete model.
    The run's checkpoints (``checkpoints_dir``) survive a failure and go once the model is saved."""
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise RunnerError(f"{out} already exists; choose another output directory.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{launcher_pid()}")
    if is_main_process() and tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
    except BaseException:
        if is_main_process():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Every rank saves its part (a DeepSpeed/FSDP gather, the tokenizer, the record) into ``tmp``;
    # renaming it before the slowest is done would pull the folder from under it.
    wait_for_every_process()
    if is_main_process():
        if out.exists():
            old = out.with_name(f"{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
        # The model is in place: its checkpoints are not needed to resume any more.
        shutil.rmtree(checkpoints_dir(output_dir), ignore_errors=True)


def wait_for_every_process() -> None:
    """A barrier across the run's processes (nothing to wait for in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def remove_stale_tmp(output_dir: str) -> list[str]:
    """Delete ``<output_dir>.tmp-*`` left by a killed run (SIGKILL skips the cleanup)."""
    out = Path(output_dir)
    removed = []
    if out.parent.is_dir():
        for p in out.parent.glob(f"{out.name}.tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(str(p))
    return removed


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


RUN_RECORD = "prefhub_run.json"


def trained_max_length(model_dir: str) -> int | None:
    """The ``max_length`` the platform trained the model in ``model_dir`` with (its run record,
    ``write_run_record``), capped by its position table as the runner capped it; None for a model
    without a readable record."""
    try:
        record = json.loads((Path(model_dir) / RUN_RECORD).read_text(encoding="utf-8"))
        value = record["config"]["max_length"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    positions = getattr(model_config(model_dir), "max_position_embeddings", None)
    return min(value, positions) if positions else value


def write_run_record(tmp: Path, kind: str, config: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The last step inside ``atomic_output``, after the model is saved: drop the trainer's
    checkpoints and write ``prefhub_run.json`` (kind, config, final metrics). The main process
    alone does it; the others have nothing to write."""
    if not is_main_process():
        return
    shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
    write_json(tmp / RUN_RECORD, {"kind": kind, "config": config, "metrics": metrics})
