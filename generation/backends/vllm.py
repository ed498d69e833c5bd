"""vLLM backend: an in-process ``vllm.LLM`` on the worker's GPU(s).

Every conversation is formatted with the model's chat template (``tokenizer.apply_chat_template``)
and sent as token ids, all ``n`` samples of a prompt in one request (``SamplingParams(n=k)``, seeded
per prompt: ``base.prompt_seed``), all prompts of a batch in one ``llm.generate`` call so vLLM's
scheduler batches them continuously.
Prompts that do not fit ``max_model_len`` are failed before the call (vLLM would otherwise refuse
the whole call), so the others go on.

Every sample stops at every id that ends a response (``core.formatting.stop_token_ids``, the rule
the transformers backend uses): vLLM itself stops at the generation_config's ids only, so a
checkpoint that lists just its EOS there (Llama-3-Instruct's first release) would run on past the
end of the turn.

``vllm`` is imported inside :class:`VLLMBackend`, never at module import: web processes and CPU
workers load this module without it (requirements/generation.txt installs it on GPU machines).
"""

from __future__ import annotations

from typing import Any

from generation.backends.base import (
    BackendConfigError,
    Generation,
    PromptError,
    SamplingParams,
    chat_prompts,
    first_line,
    known_settings,
    prompt_seed,
    require_chat_template,
)
from generation.backends.transformers import model_version_of

DTYPES = ("auto", "float16", "bfloat16", "float32")
CONFIG_KEYS = (
    "dtype",
    "tensor_parallel_size",
    "gpu_memory_utilization",
    "max_model_len",
    "enforce_eager",
    "seed",
)


def validate_config(config: dict) -> dict:
    out = known_settings(config, CONFIG_KEYS, "vLLM")
    if str(out.get("dtype", "auto")) not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}.")
    tp = out.get("tensor_parallel_size", 1)
    if not isinstance(tp, int) or not 1 <= tp <= 64:
        raise ValueError("tensor_parallel_size must be a number of GPUs between 1 and 64.")
    util = out.get("gpu_memory_utilization", 0.9)
    if isinstance(util, bool) or not isinstance(util, int | float) or not 0 < util <= 1:
        raise ValueError("gpu_memory_utilization must be above 0 and at most 1.")
    if out.get("max_model_len") is not None and (
        not isinstance(out["max_model_len"], int) or out["max_model_len"] < 2
    ):
        raise ValueError("max_model_len must be a number of tokens (at least 2).")
    if "enforce_eager" in out and not isinstance(out["enforce_eager"], bool):
        raise ValueError("enforce_eager must be true or false.")
    if "seed" in out and (not isinstance(out["seed"], int) or out["seed"] < 0):
        raise ValueError("seed must be a non-negative number.")
    return out


def _generation_config(model: str):
    """The checkpoint's generation_config from the files vLLM loaded (never a download); None
    for a checkpoint without one."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError):
        return None


def _import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise BackendConfigError(
            "vLLM is not installed on this worker. Install it on a GPU machine "
            "(pip install -r requirements/generation.txt) or use the transformers or openai backend."
        ) from exc
    return vllm


class VLLMBackend:
    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        enforce_eager: bool = False,
        seed: int = 0,
    ) -> None:
        self._vllm = _import_vllm()
        self.model_name = model
        kwargs: dict[str, Any] = {
            "model": model,
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "seed": seed,
            "enforce_eager": enforce_eager,
        }
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        try:
            self.llm = self._vllm.LLM(**kwargs)
        except Exception as exc:
            raise BackendConfigError(f"vLLM could not load {model!r}: {first_line(exc)}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        require_chat_template(self.tokenizer, model)
        from core.formatting import stop_token_ids

        self.stop_ids = stop_token_ids(self.tokenizer, _generation_config(model))
        self.max_model_len = self._max_model_len(max_model_len)
        self.model_version = model_version_of(model)

    def _max_model_len(self, configured: int | None) -> int | None:
        engine = getattr(self.llm, "llm_engine", None)
        model_config = getattr(engine, "model_config", None)
        return getattr(model_config, "max_model_len", None) or configured

    def sampling_params(self, params: SamplingParams):
        """Our SamplingParams as vLLM's (``n`` samples of each prompt in one request). Every setting
        is explicit (no top-k cut is -1, no penalties, no min_p), so nothing of the model's
        generation_config reaches the samples and the recorded params are what produced them."""
        kwargs: dict[str, Any] = {
            "n": params.n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k or -1,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "max_tokens": params.max_new_tokens,
            "seed": params.seed,
        }
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if self.stop_ids:
            kwargs["stop_token_ids"] = list(self.stop_ids)
        return self._vllm.SamplingParams(**kwargs)

    def generate(
        self, conversations: list[list[dict]], params: SamplingParams
    ) -> list[list[Generation] | PromptError]:
        results, prompts = chat_prompts(self.tokenizer, conversations, self.max_model_len)
        if prompts:
            requests = [{"prompt_token_ids": ids} for _, ids in prompts]
            # one SamplingParams per prompt: each its own seed (base.prompt_seed)
            per_prompt = [
                self.sampling_params(params.replace(seed=prompt_seed(params.seed, i))) for i, _ in prompts
            ]
            outputs = self.llm.generate(requests, per_prompt, use_tqdm=False)
            for (i, _), request_output in zip(prompts, outputs, strict=True):
                prompt_tokens = len(getattr(request_output, "prompt_token_ids", None) or []) or None
                results[i] = [
                    Generation.from_native(
                        completion.text,
                        completion.finish_reason,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=len(completion.token_ids),
                    )
                    for completion in request_output.outputs
                ]
        return results

    def close(self) -> None:
        """Shut the engine (and its child processes) down and return the GPU memory before the
        next model loads: the per-process cache calls this on a model switch."""
        import gc

        llm, self.llm = self.llm, None
        engine = getattr(llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None) or getattr(
            getattr(engine, "engine_core", None), "shutdown", None
        )
        if callable(shutdown):
            shutdown()
        del llm, engine
        gc.collect()
        import torch  # vLLM brings torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def build(model: str, config: dict) -> VLLMBackend:
    return VLLMBackend(model, **validate_config(config))
