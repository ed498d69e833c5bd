"""Hyperparameters of every runner, as dataclasses with documented defaults.

A run's ``config`` JSON (``TrainingRun.config``, ``--config FILE``) is turned into one of these by
``config_for(kind, data)``; unknown keys are refused (a typo must not silently train with a default).
Defaults suit small models on one GPU; the tests override them for tiny CPU models (which need
learning rates around 1e-3).

No heavy imports here: the web process validates configs with this module.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A config the runner refuses: unknown key, wrong type, value out of range."""


#: The transformers schedulers a run may name (those that need no ``lr_scheduler_kwargs``).
#: "cosine_with_restarts" is not one: without its ``num_cycles`` it restarts nothing and is "cosine".
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)
#: TRL's DPO losses (``DPOConfig.loss_type``).
DPO_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)
#: The DPO losses that train on ``label_smoothing``: TRL 1.16's robust, EXO and AOT losses read it
#: themselves; its sigmoid loss does not, so the DPO runner trains that one on each pair's target
#: (``training.runners.dpo``). Every other loss would ignore it: refused.
DPO_SMOOTHING_LOSSES = ("sigmoid", "robust", "exo_pair", "aot", "aot_unpaired")


def _at_least(cfg: Any, low: float, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < low:
            what = "positive" if low == 1 else f">= {low}"
            raise ConfigError(f"{name} must be {what} (got {getattr(cfg, name)!r}).")


def _check_lora(cfg: Any) -> None:
    """LoRA options that peft would refuse (or that train nothing), checked when LoRA is on; with
    LoRA off, a LoRA option set to anything but its default contradicts it (it would be ignored)."""
    if not cfg.use_lora:
        for f in dataclasses.fields(cfg):
            if f.name.startswith("lora_") and getattr(cfg, f.name) != f.default:
                raise ConfigError(
                    f"{f.name} is set ({getattr(cfg, f.name)!r}) but use_lora is false: set use_lora to "
                    f"true to train LoRA adapters, or leave {f.name} out."
                )
        return
    _at_least(cfg, 1, "lora_r")
    if cfg.lora_alpha <= 0:
        raise ConfigError(f"lora_alpha must be positive (got {cfg.lora_alpha!r}).")
    if not 0 <= cfg.lora_dropout < 1:
        raise ConfigError(f"lora_dropout must be in [0, 1) (got {cfg.lora_dropout!r}).")


@dataclass
class BaseRunConfig:
    """What every runner shares.

    base_model: HF model name or local path (for PPO/RLOO/GRPO and DPO: a causal LM).
    dataset_path: a JSONL (plain or .gz) or Parquet file of TRL rows; for exports, the ``train`` file.
    eval_dataset_path: optional held-out file (an export's ``test`` file); when empty, ``eval_fraction``
        of ``dataset_path`` is held out (deterministic in ``seed``, at least one row, at most
        ``max_eval_rows``: the rest trains) - unless the
        file has fewer than 4 rows: then every row is trained on and the run reports no held-out
        (``eval_*``) figures. A pair run (reward, DPO) whose held-out file has no usable pair (empty,
        only ties or identical pairs; for DPO also: every pair dropped by ``max_length``) trains
        anyway, reports no held-out figure and says why in its log and in ``eval_skipped``
        ("held-out split: 0 usable pairs of 12 rows (12 ties); evaluation skipped"); so does an RL
        run (PPO, RLOO, GRPO) whose held-out file gives no prompt ("held-out split: 0 prompts of 0
        rows (the file is empty); evaluation skipped").
    output_dir: where the trained model goes. Training writes to ``<output_dir>.tmp-<pid>`` and renames
        it to ``output_dir`` only on success, so a failed or cancelled run leaves no half model.
    metrics_file: optional path; every metrics line is appended there as well as printed to stdout.
    save_steps: > 0 writes a checkpoint (weights, optimiser, scheduler, RNG and data position) every
        ``save_steps`` optimiser steps into ``<output_dir>.checkpoints``, keeping the newest
        ``save_total_limit``; a failed, cancelled or killed run keeps them, a finished one deletes
        them. 0 (the default) writes none.
    resume_from: a checkpoints folder (its newest ``checkpoint-N``) or one ``checkpoint-N`` folder of
        an earlier run with the same data and settings: training continues from that step, as if it
        had never stopped. The platform sets it when a run is resumed.
    """

    base_model: str = ""
    dataset_path: str = ""
    eval_dataset_path: str = ""
    output_dir: str = ""
    metrics_file: str = ""
    eval_fraction: float = 0.1  # held out when no eval file is given (0 disables evaluation)
    max_eval_rows: int = 2000  # held-out rows at most: an evaluation cost bound (0: nothing held out)
    seed: int = 0
    learning_rate: float = 1e-5
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 16
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.0
    warmup_steps: float = 0.0  # a count, or a fraction of the steps when < 1 (not with "constant")
    lr_scheduler_type: str = "linear"
    max_grad_norm: float = 1.0
    logging_steps: int = 10
    max_length: int = 1024  # prompt + response tokens; longer prompts lose their beginning
    bf16: bool | None = None  # None: bf16 when a GPU supports it
    gradient_checkpointing: bool = False
    use_cpu: bool | None = None  # None: CPU only when no accelerator is present
    overwrite_output_dir: bool = False
    save_steps: int = 0  # > 0: a checkpoint every save_steps optimiser steps, for resuming
    save_total_limit: int = 1  # checkpoints kept (the newest)
    resume_from: str = ""  # a checkpoints folder or one checkpoint-N folder to continue from

    def validate(self) -> None:
        if not self.base_model:
            raise ConfigError("base_model is required (a Hugging Face name or a local path).")
        if not self.output_dir:
            raise ConfigError("output_dir is required.")
        if not 0 <= self.eval_fraction < 1:
            raise ConfigError("eval_fraction must be in [0, 1).")
        for name in (
            "learning_rate",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "max_length",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive.")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ConfigError("num_train_epochs (or max_steps) must be positive.")
        if self.num_train_epochs > MAX_EPOCHS:
            raise ConfigError(
                f"num_train_epochs must be at most {MAX_EPOCHS} (use max_steps for a step count)."
            )
        _at_least(self, 1, "per_device_eval_batch_size", "logging_steps")
        _at_least(self, 0, "max_eval_rows", "seed", "warmup_steps", "weight_decay", "max_grad_norm")
        _at_least(self, 0, "save_steps")
        _at_least(self, 1, "save_total_limit")
        from training.runners.models import resume_checkpoint

        if self.resume_from and resume_checkpoint(self.resume_from) is None:
            raise ConfigError(
                f"resume_from: {self.resume_from!r} holds no checkpoint (a checkpoint-N folder with "
                "trainer_state.json) to resume from."
            )
        if self.lr_scheduler_type == "cosine_with_restarts":
            raise ConfigError(
                "lr_scheduler_type 'cosine_with_restarts' restarts nothing here: a run cannot set its "
                "num_cycles, and with transformers' one cycle it is the 'cosine' schedule step for step. "
                "Use 'cosine'."
            )
        if self.lr_scheduler_type not in LR_SCHEDULERS:
            raise ConfigError(f"lr_scheduler_type must be one of {', '.join(LR_SCHEDULERS)}.")
        if self.warmup_steps and self.lr_scheduler_type == "constant":
            # transformers' get_scheduler("constant") drops num_warmup_steps: no warmup at all
            raise ConfigError(
                f"warmup_steps ({self.warmup_steps!r}) is not used by lr_scheduler_type 'constant' (a constant "
                "rate from the first step): use 'constant_with_warmup' to warm up, or leave warmup_steps 0."
            )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RewardRunConfig(BaseRunConfig):
    """Bradley-Terry reward model (TRL ``RewardTrainer``) on pairs; ``margin`` is used when present.

    center_rewards_coefficient: optional penalty pulling rewards towards 0 (TRL's auxiliary loss).
    use_margin: subtract the row's ``margin`` inside the log-sigmoid when the data has that column.
    Rows with ``p_chosen`` (soft labels) train on the soft target, always (``reward.soft_preference_loss``).
    """

    learning_rate: float = 1e-5
    num_train_epochs: float = 1.0
    center_rewards_coefficient: float | None = None
    use_margin: bool = True
    use_lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05

    def validate(self) -> None:
        super().validate()
        _check_lora(self)


LONG_REPLY_MODES = ("truncate", "drop")


@dataclass
class DPORunConfig(BaseRunConfig):
    """Direct Preference Optimisation (TRL ``DPOTrainer``).

    beta: strength of the implicit KL constraint (higher stays closer to the reference).
    loss_type: TRL loss name ("sigmoid" is the DPO paper's; "ipo", "hinge", "robust", ...).
    label_smoothing: the probability that a label is flipped (conservative DPO), for the losses in
        ``DPO_SMOOTHING_LOSSES``. With "sigmoid" each pair trains on the target probability
        ``(1 - label_smoothing) * p + label_smoothing * (1 - p)`` that its chosen reply is the better,
        p its soft label (``p_chosen``, 1 where absent); the other losses train every pair as chosen
        over rejected.
    precompute_ref_log_probs: run the frozen reference once over the data before training, so the
        reference model is not kept in memory (or run) during training.
    use_lora: train LoRA adapters (peft) and merge them into the saved model; the reference is then
        the base model with adapters disabled (no second copy in memory).
    merge_lora: must stay true (the adapters are always merged at save); false is refused.
    long_replies: a pair whose longer reply does not fit ``max_length`` even after its prompt is cut
        to nothing: "truncate" (default, TRL's own behaviour) keeps the end of its prompt within half
        of ``max_length`` and cuts the end of the reply where TRL would (``data.cut_replies``; ``truncated_replies``);
        "drop" leaves the pair out (counted as ``dropped_too_long``), so no reply is trained without
        its end, at the cost of the longest replies.
    """

    learning_rate: float = 5e-7
    beta: float = 0.1
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0
    precompute_ref_log_probs: bool = False
    use_lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | str = "all-linear"
    merge_lora: bool = True
    long_replies: str = "truncate"

    def validate(self) -> None:
        super().validate()
        if self.beta <= 0:
            raise ConfigError("beta must be positive.")
        if self.loss_type not in DPO_LOSS_TYPES:
            raise ConfigError(f"loss_type must be one of TRL's DPO losses: {', '.join(DPO_LOSS_TYPES)}.")
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(
                f"label_smoothing must be in [0, 0.5) (got {self.label_smoothing!r}): it is the "
                "probability that a preference label is flipped."
            )
        if self.label_smoothing and self.loss_type not in DPO_SMOOTHING_LOSSES:
            raise ConfigError(
                f"label_smoothing is not used by loss_type {self.loss_type!r}: only "
                f"{', '.join(DPO_SMOOTHING_LOSSES)} train on it. Leave it 0 or pick one of those losses."
            )
        if self.loss_type == "exo_pair" and not self.label_smoothing:
            raise ConfigError("loss_type 'exo_pair' needs label_smoothing above 0 (the EXO paper uses 1e-3).")
        _check_lora(self)
        if self.long_replies not in LONG_REPLY_MODES:
            raise ConfigError(f"long_replies must be one of {', '.join(LONG_REPLY_MODES)}.")
        if not self.merge_lora:
            raise ConfigError(
                "merge_lora=false is not supported: the DPO runner always merges LoRA adapters into the saved "
                "model (generation loads a full model)."
            )


@dataclass
class ScoredRunConfig(BaseRunConfig):
    """What the runs whose samples a trained reward model scores (PPO, RLOO, GRPO) share.

    reward_model: path of a trained reward model (AutoModelForSequenceClassification, num_labels=1).
    missing_eos_penalty: subtracted from the reward-model score of a response that never ended (no
        end id within PPO's ``max_new_tokens`` or RLOO/GRPO's ``max_completion_length``). Such a
        response is scored without the end token it never produced (reward training always ends on
        one), so a cut-off reply never reads as a finished one. ``null`` or 0: no penalty; else a
        finite number >= 0.
    """

    reward_model: str = ""
    missing_eos_penalty: float | None = 1.0  # subtracted from the score of responses that never end

    def validate(self) -> None:
        super().validate()
        if not self.reward_model:
            raise ConfigError("reward_model is required (a trained reward model's path).")
        penalty = self.missing_eos_penalty
        if penalty is not None and not (math.isfinite(penalty) and penalty >= 0):
            raise ConfigError(
                "missing_eos_penalty must be a finite number >= 0 (null or 0: no penalty), "
                f"not {penalty!r}: it is subtracted from the score of responses that never end."
            )


PPO_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


@dataclass
class PPORunConfig(ScoredRunConfig):
    """PPO with a learned reward model (see ``training.runners.ppo`` for the algorithm).

    reward_model, missing_eos_penalty: see ``ScoredRunConfig``.
    dataset_path: rows with a ``prompt`` (string or messages); preference rows work (their prompts
        are used, deduplicated).

    Batching (per process): each iteration samples ``rollout_batch_size`` prompts; every optimiser
    step takes a mini-batch of ``mini_batch_size`` responses (0: ``per_device_train_batch_size x
    gradient_accumulation_steps``), run forward/backward in micro-batches of
    ``per_device_train_batch_size`` with the gradients accumulated. Rollout forwards (policy,
    reference, reward) run in micro-batches of ``per_device_eval_batch_size``.
    The learning rate follows ``lr_scheduler_type`` over all optimiser steps after ``warmup_steps``
    (counted in optimiser steps). ``max_steps``, ``save_steps``, ``logging_steps`` and ``eval_every``
    count PPO iterations (one rollout batch and its ``ppo_epochs`` passes), not optimiser steps.
    value_model: "" puts a linear value head on the policy trunk (trained at
        ``value_learning_rate``); "reward" starts a separate value model from the reward model
        (InstructGPT; the reward model must share the policy's tokenizer, as the value model reads
        the policy's token ids; refused otherwise); any other value is the path of a model to start the value model from.
    normalize_rewards: whiten the reward model's scores per batch (over all processes) before the
        KL penalty is added.
    """

    learning_rate: float = 1e-6
    value_learning_rate: float = 1e-5  # the value head/model's own rate (zero-initialised heads need it)
    num_train_epochs: float = 1.0  # passes over the prompts
    total_episodes: int = 0  # > 0: stop after this many sampled responses (all processes together)
    rollout_batch_size: int = 16  # prompts sampled per PPO iteration and process
    mini_batch_size: int = 0  # responses per optimiser step; 0: per_device_train_batch_size x accumulation
    ppo_epochs: int = 4  # optimisation passes over each rollout batch
    max_new_tokens: int = 48
    temperature: float = 1.0  # > 0: PPO's log-probs are those of softmax(logits / temperature)
    top_k: int = 0  # must stay 0: PPO's log-probs are those of the whole distribution (no truncation)
    top_p: float = 1.0  # must stay 1, as top_k
    kl_coef: float = 0.05  # per-token KL penalty towards the reference policy
    kl_estimator: str = "k1"  # "k1": log p - log q; "k3": (r - 1) - log r, always >= 0
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    whiten_rewards: bool = False
    normalize_rewards: bool = False
    stop_token: str = ""  # "" stops on every end id the model declares (generation_config + tokenizer EOS)
    value_model: str = ""  # "": value head on the policy trunk; "reward": from the reward model; or a path
    reward_clip: float = 10.0
    eval_prompts: int = 64  # held-out prompts scored before and after (<= max_eval_rows; 0: none held out)
    eval_every: int = 0  # iterations between held-out evaluations (0: only before and after)

    @property
    def optimiser_batch(self) -> int:
        """Responses per optimiser step (the PPO mini-batch)."""
        return self.mini_batch_size or self.per_device_train_batch_size * self.gradient_accumulation_steps

    @property
    def micro_batch(self) -> int:
        """Responses per forward/backward pass; gradients accumulate over optimiser_batch / micro_batch."""
        return min(self.per_device_train_batch_size, self.optimiser_batch)

    def validate(self) -> None:
        super().validate()
        if self.mini_batch_size < 0:
            raise ConfigError("mini_batch_size must be 0 (derived) or positive.")
        if self.mini_batch_size:
            if self.mini_batch_size % self.micro_batch:
                raise ConfigError(
                    f"mini_batch_size ({self.mini_batch_size}) must be a multiple of "
                    f"per_device_train_batch_size ({self.per_device_train_batch_size})."
                )
            steps = self.mini_batch_size // self.micro_batch
            if self.gradient_accumulation_steps not in (1, steps):
                raise ConfigError(
                    f"gradient_accumulation_steps ({self.gradient_accumulation_steps}) disagrees with "
                    f"mini_batch_size / per_device_train_batch_size ({steps}); set mini_batch_size to 0 "
                    "to derive it from the other two."
                )
        if self.rollout_batch_size <= 0 or self.rollout_batch_size % self.optimiser_batch:
            raise ConfigError(
                "rollout_batch_size must be a positive multiple of mini_batch_size "
                f"(the optimiser mini-batch, here {self.optimiser_batch})."
            )
        if self.per_device_eval_batch_size <= 0:
            raise ConfigError("per_device_eval_batch_size must be positive.")
        if self.kl_estimator not in ("k1", "k3"):
            raise ConfigError("kl_estimator must be k1 or k3.")
        if self.max_new_tokens <= 0 or self.ppo_epochs <= 0:
            raise ConfigError("max_new_tokens and ppo_epochs must be positive.")
        if self.max_length <= self.max_new_tokens:
            raise ConfigError(
                f"max_length ({self.max_length}) must exceed max_new_tokens ({self.max_new_tokens}): it "
                "bounds prompt + response, and the prompt would be cut to a single token."
            )
        if not self.temperature > 0:
            raise ConfigError(
                "temperature must be positive: PPO needs sampled responses and their log-probs "
                "(temperature 0 is greedy decoding, which has none)."
            )
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ConfigError("top_k must be >= 0 and top_p in (0, 1].")
        for name, whole in (("top_k", 0), ("top_p", 1.0)):
            if getattr(self, name) != whole:
                raise ConfigError(
                    f"{name} ({getattr(self, name)!r}) would make every rollout off-policy: PPO's log-probs "
                    "(its probability ratio and its KL to the reference) are those of softmax(logits / "
                    f"temperature) over the whole vocabulary, and a sampler cut by {name} draws from another "
                    f"distribution. Leave {name} at {whole} (temperature shapes the sampling)."
                )
        if self.lr_scheduler_type not in PPO_SCHEDULERS:
            raise ConfigError(f"lr_scheduler_type for PPO must be one of {', '.join(PPO_SCHEDULERS)}.")
        if self.value_learning_rate <= 0:
            raise ConfigError("value_learning_rate must be positive.")
        _at_least(self, 0, "kl_coef", "vf_coef", "total_episodes", "eval_prompts", "eval_every")
        for name in ("gamma", "lam"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in [0, 1] (got {getattr(self, name)!r}).")
        for name in ("cliprange", "cliprange_value", "reward_clip"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive (got {getattr(self, name)!r}).")


@dataclass
class RLRunConfig(ScoredRunConfig):
    """RLOO or GRPO through TRL, with a trained reward model as the reward function.

    reward_model, missing_eos_penalty: see ``ScoredRunConfig``; a completion cut off at
        ``max_completion_length`` (no end id among its tokens) is scored without the end token and
        loses ``missing_eos_penalty``, as in PPO.
    num_generations: completions sampled per prompt (the group RLOO/GRPO baselines are taken over).
    per_device_eval_batch_size: sequences the reward model scores per forward, in training and on the
        held-out prompts.
    max_eval_rows: held-out prompts evaluated (one sampled completion each, before and after
        training): at most 64 whatever it says (``rl.run``), and no more are held out; 0 holds
        nothing out.
    beta: KL coefficient towards the reference policy.
    mask_truncated_completions: leave cut-off completions out of the loss altogether (TRL's option of
        that name; recommended by DAPO). They still count in their group's reward baseline.
    use_vllm: sample through vLLM (TRL's option); needs vLLM in the training environment, which the
        pinned ones do not include: a run without it is refused at its start (``rl.run``).
    """

    learning_rate: float = 1e-6
    num_generations: int = 4
    max_completion_length: int = 64
    temperature: float = 1.0
    beta: float = 0.05
    per_device_train_batch_size: int = 8
    use_vllm: bool = False
    mask_truncated_completions: bool = False  # TRL's default: cut-off completions are trained on

    def validate(self) -> None:
        super().validate()
        if self.num_generations < 2:
            raise ConfigError("num_generations must be at least 2.")
        if self.max_completion_length <= 0:
            raise ConfigError("max_completion_length must be positive.")
        if self.max_length <= self.max_completion_length:
            raise ConfigError(
                f"max_length ({self.max_length}) must exceed max_completion_length "
                f"({self.max_completion_length}): it bounds prompt + completion, and the prompt would be "
                "cut to a single token."
            )
        if self.temperature <= 0:
            raise ConfigError("temperature must be positive: RLOO and GRPO learn from sampled completions.")
        _at_least(self, 0, "beta")

    def check_world_size(self, processes: int) -> None:
        """TRL samples ``per_device_train_batch_size x gradient_accumulation_steps x processes``
        completions per generation round, in groups of ``num_generations``: they must divide. The
        runner checks it with its real number of processes, before any model loads (``validate``
        cannot: more processes may make it divide)."""
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps * processes
        if batch % self.num_generations:
            raise ConfigError(
                f"num_generations ({self.num_generations}) must divide the completions sampled per round: "
                f"per_device_train_batch_size x gradient_accumulation_steps x processes = {batch}."
            )


CONFIGS: dict[str, type[BaseRunConfig]] = {
    "reward": RewardRunConfig,
    "dpo": DPORunConfig,
    "ppo": PPORunConfig,
    "rloo": RLRunConfig,
    "grpo": RLRunConfig,
}


def config_fields(kind: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(CONFIGS[kind])}


#: The most an integer option may be (a C int: batch sizes, steps and lengths beyond it are typos
#: that would only fail inside torch); ``seed`` has numpy's own range, [0, 2**32).
MAX_INT = 2**31 - 1
#: The most passes over the data a run may ask for (beyond it, a typo: 1e308 would plan steps past
#: any integer).
MAX_EPOCHS = 10_000
MAX_SEED = 2**32 - 1


def _coerce(name: str, value: Any, annotation: str) -> Any:
    """Type checking against the field's annotation (JSON gives ints for floats and so on).

    ``null`` is taken only by the options whose annotation allows it (their documented "no value");
    numbers must be finite (NaN and Infinity, which ``json.loads`` reads, train nothing), integers
    within ``MAX_INT``, and a list only where a list is meaningful (``lora_target_modules``)."""
    kinds = {part.strip() for part in annotation.split("|")}
    if value is None:
        if "None" in kinds:
            return None
        raise ConfigError(f"{name} may not be null; leave it out to use the default.")
    if "bool" in kinds:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false.")
        return value
    if "float" in kinds:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} must be a number.")
        try:
            value = float(value)
        except OverflowError:  # an int beyond any float
            raise ConfigError(f"{name} must be a finite number.") from None
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, not {value!r}.")
        return value
    if "int" in kinds:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise ConfigError(f"{name} must be an integer.")
        value = int(value)
        if abs(value) > (MAX_SEED if name == "seed" else MAX_INT):
            raise ConfigError(f"{name} is too large ({value}).")
        return value
    if "str" in kinds:
        if isinstance(value, str):
            return value
        if "list[str]" in kinds and isinstance(value, list):
            if value and all(isinstance(v, str) and v for v in value):
                return value
            raise ConfigError(f"{name} must be a string or a non-empty list of strings.")
        raise ConfigError(f"{name} must be a string.")
    return value


def config_for(kind: str, data: dict[str, Any] | None, *, validate: bool = True) -> BaseRunConfig:
    """Build the config dataclass of ``kind`` from a JSON object; refuses unknown keys."""
    if kind not in CONFIGS:
        raise ConfigError(f"Unknown run kind {kind!r}; one of {', '.join(CONFIGS)}.")
    data = dict(data or {})
    fields = config_fields(kind)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"Unknown {kind} option(s): {', '.join(unknown)}.")
    cls = CONFIGS[kind]
    values = {k: _coerce(k, v, str(fields[k].type)) for k, v in data.items()}
    cfg = cls(**values)
    if validate:
        cfg.validate()
    return cfg


def documented_defaults(kind: str) -> dict[str, Any]:
    """The defaults of ``kind``'s options (for forms and the API)."""
    return CONFIGS[kind]().as_dict()


__all__ = [
    "CONFIGS",
    "BaseRunConfig",
    "ConfigError",
    "DPORunConfig",
    "PPORunConfig",
    "RLRunConfig",
    "RewardRunConfig",
    "ScoredRunConfig",
    "config_fields",
    "config_for",
    "documented_defaults",
]
