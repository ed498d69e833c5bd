"""Hugging Face transformers backend: AutoModelForCausalLM + AutoTokenizer on CPU or GPU.

Conversations go through the tokenizer's chat template, are sorted by length and generated in
left-padded micro-batches of at most ``batch_size`` sequences (prompts x samples) with
``num_return_sequences=n``. Each micro-batch is seeded with ``torch.manual_seed(seed + i)`` so a
batch is reproducible. Stop strings end generation early (transformers' StopStringCriteria) and
are cut from the text. A prompt that leaves no room in the model's context fails on its own.

torch and transformers are imported when a backend is built, never at module import.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from core.batches import padded_batch
from generation.backends.base import (
    FINISH_LENGTH,
    FINISH_STOP,
    BackendConfigError,
    Generation,
    PromptError,
    SamplingParams,
    chat_prompts,
    first_line,
    known_settings,
    require_chat_template,
    truncate_at_stop,
)

DTYPES = ("auto", "float32", "float16", "bfloat16")
CONFIG_KEYS = ("device", "dtype", "batch_size", "max_model_len", "local_files_only", "threads")


def validate_config(config: dict) -> dict:
    """Check an endpoint's ``config`` for this backend; returns it normalised. Raises ValueError."""
    out = known_settings(config, CONFIG_KEYS, "transformers")
    device = str(out.get("device", "auto"))  # the GPU when the worker has one, else the CPU
    if not (
        device in ("cpu", "cuda", "auto", "mps") or (device.startswith("cuda:") and device[5:].isdigit())
    ):
        raise ValueError("device must be cpu, cuda, cuda:N, mps or auto.")
    out["device"] = device
    if str(out.get("dtype", "auto")) not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}.")
    _check_int(out, "batch_size", 1, 1024, "batch_size (sequences per forward pass)")
    _check_int(out, "max_model_len", 2, 10_000_000, "max_model_len (tokens)")
    _check_int(out, "threads", 1, 256, "threads (CPU threads for torch)")
    if "local_files_only" in out and not isinstance(out["local_files_only"], bool):
        raise ValueError("local_files_only must be true or false.")
    return out


def _check_int(config: dict, key: str, low: int, high: int, what: str) -> None:
    value = config.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be a whole number between {low} and {high}.")


#: a weight file is fingerprinted by this many chunks of its bytes, spread evenly over it (whole
#: when it is no larger): about 1 MiB read per file, however large
SAMPLE_CHUNKS = 64
CHUNK_BYTES = 16 * 1024


def _weight_sample(path: Path, size: int) -> bytes:
    """Bytes of the weight file ``path`` (``size`` bytes) to fingerprint it by: all of a small file,
    else ``SAMPLE_CHUNKS`` chunks spread over it. Names and sizes alone cannot tell a trained policy
    from its base model or from the next round's (same files, same sizes, same config.json)."""
    with path.open("rb") as f:
        if size <= SAMPLE_CHUNKS * CHUNK_BYTES:
            return f.read()
        step = (size - CHUNK_BYTES) // (SAMPLE_CHUNKS - 1)
        parts = []
        for i in range(SAMPLE_CHUNKS):
            f.seek(i * step)
            parts.append(f.read(CHUNK_BYTES))
        return b"".join(parts)


def model_version_of(model: str, commit_hash: str | None = None) -> str:
    """A short fingerprint of a local model folder (config, weight file names and sizes, and their
    bytes: whole for small files, sampled for large ones), or the hub commit hash (given, else the
    commit of the snapshot in the local Hugging Face cache), so candidates say which weights wrote
    them ("" when nothing tells). A copy of the same files keeps the fingerprint."""
    path = Path(model)
    if path.is_dir():
        digest = hashlib.sha256()
        config = path / "config.json"
        if config.exists():
            digest.update(config.read_bytes())
        for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
            size = f.stat().st_size
            digest.update(f"{f.name}:{size}".encode())
            digest.update(hashlib.sha256(_weight_sample(f, size)).digest())
        return "sha256:" + digest.hexdigest()[:16]
    if commit_hash:
        return commit_hash
    from core.paths import cached_hub_folder, is_hub_id

    snapshot = cached_hub_folder(model) if is_hub_id(model) else None
    return snapshot.name if snapshot is not None else ""


class TransformersBackend:
    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 32,
        max_model_len: int | None = None,
        local_files_only: bool = False,
        threads: int | None = None,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - both are in requirements.txt
            raise BackendConfigError(f"transformers/torch are not installed on this worker: {exc}") from exc

        if threads:
            # Several worker processes on one CPU each spinning up all cores' threads slow each
            # other down badly; give each its share.
            torch.set_num_threads(threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendConfigError(f"device {device!r} was asked for, but this worker has no CUDA GPU.")
        self.device = device
        self.batch_size = batch_size
        self.model_name = model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=local_files_only)
        except Exception as exc:
            raise BackendConfigError(f"Could not load the tokenizer of {model!r}: {first_line(exc)}") from exc
        require_chat_template(
            self.tokenizer,
            model,
            " Use an instruction-tuned model or add a chat_template to its tokenizer_config.json.",
        )
        if dtype == "auto":
            torch_dtype: Any = torch.float32 if device == "cpu" else "auto"
        else:
            torch_dtype = getattr(torch, dtype)
        try:
            self.model = AutoModelForCausalLM.from_pretrained(
                model, dtype=torch_dtype, local_files_only=local_files_only
            )
        except Exception as exc:
            raise BackendConfigError(f"Could not load the model {model!r}: {first_line(exc)}") from exc
        self.model.to(device)
        self.model.eval()
        self.model_version = model_version_of(model, getattr(self.model.config, "_commit_hash", None))

        from transformers import GenerationConfig

        from core.formatting import stop_token_ids

        eos = set(stop_token_ids(self.tokenizer, self.model.generation_config))
        if not eos:
            raise BackendConfigError(
                f"{model!r} defines no end-of-sequence token, so responses would never end."
            )
        # The checkpoint's generation_config (Qwen's repetition_penalty 1.05, top_k 20, min_p...) would
        # fill every setting generate() is not given: replace it with a neutral one keeping only the
        # special ids, and pass every sampling setting explicitly (_generate_kwargs).
        self.model.generation_config = GenerationConfig(
            bos_token_id=self.model.generation_config.bos_token_id,
            eos_token_id=sorted(eos),
            pad_token_id=self.model.generation_config.pad_token_id,
        )
        self.eos_ids = sorted(eos)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.eos_ids[0]
        limits = [max_model_len, getattr(self.model.config, "max_position_embeddings", None)]
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and tok_max < 10_000_000:
            limits.append(tok_max)
        known = [x for x in limits if x]
        self.context_length = min(known) if known else 2048

    # -- public ------------------------------------------------------------------------------
    def generate(
        self, conversations: list[list[dict]], params: SamplingParams
    ) -> list[list[Generation] | PromptError]:
        results, items = chat_prompts(self.tokenizer, conversations, self.context_length)
        items.sort(key=lambda item: len(item[1]))
        seed = params.seed
        for b, chunk in enumerate(self._micro_batches(items, params)):
            outputs = self._generate_chunk(
                [ids for _, ids in chunk], params, None if seed is None else seed + b
            )
            for (i, _), gens in zip(chunk, outputs, strict=True):
                results[i] = gens
        return results

    def _room(self, prompt_len: int, params: SamplingParams) -> int:
        """New tokens a prompt of ``prompt_len`` may get: ``max_new_tokens``, or what the context leaves."""
        return min(params.max_new_tokens, self.context_length - prompt_len)

    def _micro_batches(self, items: list[tuple[int, list[int]]], params: SamplingParams) -> list[list]:
        """``items`` (sorted by prompt length) in micro-batches of at most ``batch_size`` sequences,
        each of prompts with the same room (``_room``): a batch generates up to its longest prompt's
        room, so a short prompt never shares one with a prompt near the end of the context."""
        per_batch = max(1, self.batch_size // (1 if params.greedy else params.n))
        batches: list[list] = []
        for item in items:
            last = batches[-1] if batches else None
            if (
                last
                and len(last) < per_batch
                and self._room(len(item[1]), params) == self._room(len(last[0][1]), params)
            ):
                last.append(item)
            else:
                batches.append([item])
        return batches

    def close(self) -> None:
        """Free the weights and return their GPU memory to the driver (the per-process cache calls
        this before it loads the next model, so a model switch never holds two models at once)."""
        import gc

        import torch

        self.model = None
        gc.collect()  # the weights go now, not whenever a reference cycle is next collected
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    # -- internals ---------------------------------------------------------------------------
    def generate_kwargs(self, params: SamplingParams, *, max_new: int) -> dict[str, Any]:
        """Every setting ``model.generate`` samples with, explicit: plain softmax(logits / T) with the
        recorded top_p/top_k cut (or greedy), no repetition penalty, no min_p/typical/eta/epsilon cut,
        no n-gram ban, one beam. A setting left out would be filled from the model's generation_config."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "min_new_tokens": 0,
            "pad_token_id": self.pad_id,
            "eos_token_id": self.eos_ids,
            "num_return_sequences": 1 if params.greedy else params.n,
            "num_beams": 1,
            "do_sample": not params.greedy,
            "temperature": 1.0 if params.greedy else params.temperature,
            "top_p": 1.0 if params.greedy else params.top_p,
            "top_k": 0 if params.greedy else (params.top_k or 0),
            "min_p": 0.0,
            "typical_p": 1.0,
            "epsilon_cutoff": 0.0,
            "eta_cutoff": 0.0,
            "repetition_penalty": 1.0,
            "encoder_repetition_penalty": 1.0,
            "no_repeat_ngram_size": 0,
            "renormalize_logits": False,
        }
        return kwargs

    def _generate_chunk(
        self, prompts: list[list[int]], params: SamplingParams, seed: int | None
    ) -> list[list[Generation]]:
        import torch

        # left padding: the prompt ends where generation starts
        input_ids, attention = padded_batch(prompts, self.pad_id, left=True)
        width = input_ids.shape[1]
        max_new = self._room(width, params)
        samples = 1 if params.greedy else params.n
        kwargs = self.generate_kwargs(params, max_new=max_new)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device), **kwargs
            )
        new_tokens = out[:, width:].tolist()
        eos = set(self.eos_ids)
        results: list[list[Generation]] = []
        for p, ids in enumerate(prompts):
            gens = []
            for s in range(samples):
                gens.append(self._to_generation(new_tokens[p * samples + s], eos, max_new, len(ids), params))
            results.append(gens * params.n if params.greedy else gens)
        return results

    def _to_generation(
        self, tokens: list[int], eos: set[int], max_new: int, prompt_len: int, params: SamplingParams
    ) -> Generation:
        end = next((j for j, t in enumerate(tokens) if t in eos), None)
        if end is not None:
            tokens = tokens[:end]
        elif params.stop:
            # a row a stop string ended while others ran on is padded to the batch's end; without
            # stop strings a row ends only at an end id or the limit, so trailing pads are the
            # model's own tokens (a pad that is not an end id: Llama-3's, Gemma's)
            while tokens and tokens[-1] == self.pad_id:
                tokens = tokens[:-1]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        hit = False
        if params.stop:
            text, hit = truncate_at_stop(text, params.stop)
        finish = FINISH_STOP if (end is not None or hit or len(tokens) < max_new) else FINISH_LENGTH
        # A stop string first: a row it ended is padded with the pad id, which is an end id where
        # the pad is the EOS (Phi-3; Mistral, without a pad, pads with its EOS).
        native = "stop_string" if hit else "eos" if end is not None else finish
        return Generation(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_len,
            completion_tokens=len(tokens),
            native_finish_reason=native,
        )


def build(model: str, config: dict) -> TransformersBackend:
    config = validate_config(config)
    return TransformersBackend(model, **config)
