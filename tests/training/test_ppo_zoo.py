"""PPO on the checkpoint zoo (bf16-saved Llama-3-, Qwen-, Gemma-like and template-less models).

Must-show: PPO samples carry no repetition penalty / top-k / top-p the run did not ask for, even
when the checkpoint's generation_config has Qwen's defaults; one PPO step at the DEFAULT learning
rate changes every trainable tensor of a bf16-saved model; the reward model reads the identical
tokens (and final token) in PPO scoring as in reward training. Plus the refusals and the
selection logic of the distributed layouts, and the memory-lean log-probs against the plain ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generation.zoo import ZOO
from training.runners.configs import ConfigError, config_for

ZOO_NAMES = list(ZOO)
pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = ["Is the sky blue?", "What is 2+2?", "Name a colour.", "Say hello."]


def _prompts_file(path: Path, *, conversational: bool) -> str:
    rows = [{"prompt": [{"role": "user", "content": p}] if conversational else p} for p in PROMPTS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _cfg(base: str, tmp_path: Path, **over):
    data = {
        "base_model": base,
        "reward_model": base,
        "dataset_path": _prompts_file(tmp_path / "p.jsonl", conversational=False),
        "output_dir": str(tmp_path / "out"),
        "use_cpu": True,
        "eval_fraction": 0.0,
        "rollout_batch_size": 4,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "ppo_epochs": 1,
        "max_new_tokens": 6,
        "max_length": 64,
    }
    data.update(over)
    return config_for("ppo", data)


def _runner(cfg):
    from training.runners.ppo import PPORunner
    from training.runners.protocol import Emitter

    return PPORunner(cfg, Emitter())


# --- sampling --------------------------------------------------------------------------------------


def test_ppo_samples_ignore_the_checkpoints_sampling_defaults(zoo_model, tmp_path, monkeypatch):
    from transformers import GenerationConfig
    from transformers.generation.utils import GenerationMixin

    base = zoo_model("qwen")
    saved = GenerationConfig.from_pretrained(base)
    assert saved.repetition_penalty and saved.repetition_penalty != 1.0  # the quirk under test
    assert saved.top_k

    seen: list[list[str]] = []
    original = GenerationMixin._get_logits_processor

    def spy(self, *args, **kwargs):
        processors = original(self, *args, **kwargs)
        seen.append([type(p).__name__ for p in processors])
        return processors

    monkeypatch.setattr(GenerationMixin, "_get_logits_processor", spy)
    runner = _runner(_cfg(base, tmp_path, temperature=0.7))
    query, qmask = runner._query_batch(PROMPTS)
    runner._generate(query, qmask)
    assert seen, "generate was not called"
    # only the temperature the run asked for: no repetition penalty, no top-k/top-p from the checkpoint
    assert seen[-1] == ["TemperatureLogitsWarper"], seen[-1]

    runner.cfg.temperature = 1.0
    runner._generate(query, qmask)
    assert seen[-1] == [], seen[-1]
    # the saved model keeps the checkpoint's own generation_config
    runner.save(tmp_path / "saved")
    assert GenerationConfig.from_pretrained(tmp_path / "saved").repetition_penalty == saved.repetition_penalty


def test_ppo_stops_on_every_declared_end_id_and_trims_responses(zoo_model, tmp_path):
    import torch
    from transformers import AutoTokenizer, GenerationConfig

    base = zoo_model("llama3")
    tok = AutoTokenizer.from_pretrained(base)
    declared = GenerationConfig.from_pretrained(base).eos_token_id
    declared = declared if isinstance(declared, list) else [declared]
    runner = _runner(_cfg(base, tmp_path, max_new_tokens=24))
    assert tok.eos_token_id in runner.stop_ids
    assert set(declared) <= set(runner.stop_ids) and len(runner.stop_ids) >= 2
    query, qmask = runner._query_batch(PROMPTS)
    torch.manual_seed(0)
    response, mask, has_eos = runner._generate(query, qmask)
    # trimmed to the longest actual response: its last column belongs to some response
    assert response.shape[1] <= 24 and bool(mask[:, -1].any())
    for i in range(len(PROMPTS)):
        ids = response[i][mask[i].bool()].tolist()
        ended = [j for j, t in enumerate(ids) if t in runner.stop_ids]
        assert bool(has_eos[i]) == bool(ended)
        if ended:
            assert ended == [len(ids) - 1]  # the response stops at its first end id, kept


def test_temperature_zero_and_inconsistent_batches_are_refused():
    base = {"base_model": "a", "output_dir": "b", "reward_model": "r"}
    with pytest.raises(ConfigError, match="temperature must be positive"):
        config_for("ppo", {**base, "temperature": 0})
    with pytest.raises(ConfigError, match="gradient_accumulation_steps"):
        config_for(
            "ppo",
            {
                **base,
                "mini_batch_size": 8,
                "per_device_train_batch_size": 2,
                "gradient_accumulation_steps": 2,
            },
        )
    with pytest.raises(ConfigError, match="lr_scheduler_type"):
        config_for("ppo", {**base, "lr_scheduler_type": "polynomial"})
    cfg = config_for("ppo", {**base, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4})
    assert (cfg.optimiser_batch, cfg.micro_batch) == (8, 2)
    cfg = config_for("ppo", {**base, "mini_batch_size": 4})  # an older config: micro-batches of 4
    assert (cfg.optimiser_batch, cfg.micro_batch) == (4, 4)


# --- learning ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_one_default_lr_ppo_step_changes_every_trainable_tensor_of_a_bf16_checkpoint(zoo_model, tmp_path):
    import torch
    from safetensors import safe_open

    base = zoo_model("llama3")
    with safe_open(str(Path(base) / "model.safetensors"), "pt") as fh:
        names = list(fh.keys())
        assert {fh.get_tensor(k).dtype for k in names} == {torch.bfloat16}
    cfg = _cfg(base, tmp_path)
    assert cfg.learning_rate == 1e-6  # the default
    runner = _runner(cfg)
    runner.set_schedule(1)
    model = runner.accelerator.unwrap_model(runner.model)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert {p.dtype for p in before.values()} == {torch.float32}
    torch.manual_seed(0)
    stats = runner.step(runner.rollout(PROMPTS))
    assert stats["loss"] == stats["loss"]  # finite
    unchanged = [n for n, p in model.named_parameters() if p.requires_grad and torch.equal(p, before[n])]
    assert not unchanged, unchanged
    # 4 responses, micro-batches of 2 accumulated twice: ONE optimiser/scheduler step
    assert runner.scheduler.last_epoch == 1
    # warmup/scheduler act: linear decay over 1 step ends at 0
    assert runner.optimizer.param_groups[0]["lr"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_reward_model_reads_identical_tokens_in_training_and_ppo(zoo_model, tmp_path, name):
    from core.formatting import completion_ids
    from training.runners.data import tokenize_pairs

    base = zoo_model(name)
    runner = _runner(_cfg(base, tmp_path))
    prompts: list = ["Is the sky blue?", "Human: Hi\n\nAssistant:"]
    if runner.tokenizer.chat_template:
        prompts.append([{"role": "user", "content": "Is the sky blue?"}])
    for prompt in prompts:
        text = "Yes, on a clear day."
        response = [{"role": "assistant", "content": text}] if isinstance(prompt, list) else text
        # what the policy emits when it answers ``text`` and ends (its own end token included)
        sampled = completion_ids(runner.tokenizer, prompt, response)
        assert sampled[-1] in runner.stop_ids
        trained = tokenize_pairs(
            runner.reward_tokenizer,
            [{"prompt": prompt, "chosen": response, "rejected": "No."}],
            runner.cfg.max_length,
            margin=False,
        )[0]["chosen_ids"]
        scored = runner._reward_input(prompt, sampled)
        assert scored == trained, (name, prompt)
        assert scored[-1] == trained[-1]
        # a response cut off by max_new_tokens is not given the end token it never produced
        cut = runner._reward_input(prompt, sampled[:-1])
        assert cut[-1] != trained[-1] or cut[-1] not in runner.stop_ids


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_ppo_runs_on_every_zoo_model(zoo_model, tmp_path, name):
    import torch
    from transformers import AutoModelForCausalLM

    from training.runners import ppo

    base = zoo_model(name)
    conversational = bool(ZOO[name].chat)
    cfg = _cfg(
        base,
        tmp_path,
        dataset_path=_prompts_file(tmp_path / "prompts.jsonl", conversational=conversational),
        max_steps=1,
        normalize_rewards=True,
        value_model="reward",
        eval_fraction=0.25,
        eval_prompts=1,
    )
    out = ppo.run(cfg)
    assert out["iterations"] == 1 and len(out["samples"]) >= 1
    model = AutoModelForCausalLM.from_pretrained(out["output_dir"])
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # fp32 masters are what is saved


# --- log-probs -----------------------------------------------------------------------------------


def test_selective_log_softmax_matches_log_softmax():
    import torch

    from training.runners.ppo import entropy_from_logits, selective_log_softmax

    torch.manual_seed(0)
    logits = torch.randn(3, 5, 50, requires_grad=True)
    index = torch.randint(0, 50, (3, 5))
    full = torch.log_softmax(logits, -1).gather(-1, index.unsqueeze(-1)).squeeze(-1)
    lean = selective_log_softmax(logits, index)
    assert torch.allclose(full, lean, atol=1e-5)
    g_full = torch.autograd.grad(full.sum(), logits)[0]
    g_lean = torch.autograd.grad(lean.sum(), logits)[0]
    assert torch.allclose(g_full, g_lean, atol=1e-5)
    bf = selective_log_softmax(logits.detach().bfloat16(), index)
    assert bf.dtype == torch.float32 and torch.allclose(bf, full.detach(), atol=0.05)
    ent = entropy_from_logits(logits)
    assert not ent.requires_grad
    p = torch.softmax(logits.detach(), -1)
    assert torch.allclose(ent, -(p * p.log()).sum(-1), atol=1e-5)


def test_iteration_count_is_global():
    from training.runners.ppo import iteration_count

    cfg = config_for(
        "ppo",
        {
            "base_model": "a",
            "output_dir": "b",
            "reward_model": "r",
            "rollout_batch_size": 2,
            "per_device_train_batch_size": 2,
        },
    )
    # 5 prompts over 2 processes: both ranks run ceil(5 / 4) = 2 iterations (before: 2 and 1)
    assert iteration_count(cfg, 5, 2) == 2
    assert iteration_count(cfg, 5, 1) == 3
    cfg.total_episodes = 9
    assert iteration_count(cfg, 5, 2) == 3


# --- distributed layouts ---------------------------------------------------------------------------


def test_shipped_accelerate_configs_parse_and_select():
    from accelerate.commands.config.config_args import load_config_from_file

    from training.runners.launch import ACCELERATE_CONFIGS, backend_of_config_file, command

    expected = {"ddp": "ddp", "zero2": "zero2", "zero3": "zero3", "fsdp": "fsdp"}
    for name, path in ACCELERATE_CONFIGS.items():
        assert path.is_file()
        load_config_from_file(str(path))  # accelerate itself accepts it
        assert backend_of_config_file(str(path)) == expected[name]
    cmd = command("ppo", "c.json", python="py", accelerate_config="zero3", num_processes=4)
    assert cmd[cmd.index("--config_file") + 1] == str(ACCELERATE_CONFIGS["zero3"])
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    with pytest.raises(ConfigError, match="neither a shipped config"):
        command("ppo", "c.json", accelerate_config="zero9")


def test_distributed_layout_detection_and_refusals(monkeypatch):
    from training.runners import launch
    from training.runners.launch import UnsupportedLayout, check_supported, distributed_backend

    assert distributed_backend({}) == "single"
    assert distributed_backend({"WORLD_SIZE": "2"}) == "ddp"
    assert (
        distributed_backend({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"})
        == "zero3"
    )
    assert (
        distributed_backend({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"})
        == "zero2"
    )
    assert distributed_backend({"ACCELERATE_USE_FSDP": "true", "WORLD_SIZE": "2"}) == "fsdp"

    ppo = config_for("ppo", {"base_model": "a", "output_dir": "b", "reward_model": "r"})
    dpo_lora = config_for("dpo", {"base_model": "a", "output_dir": "b", "use_lora": True})
    dpo = config_for("dpo", {"base_model": "a", "output_dir": "b"})
    with pytest.raises(UnsupportedLayout, match="PPO does not support FSDP"):
        check_supported("ppo", ppo, "fsdp")
    with pytest.raises(UnsupportedLayout, match="use_lora with fsdp"):
        check_supported("dpo", dpo_lora, "fsdp")
    check_supported("dpo", dpo, "fsdp")
    check_supported("ppo", ppo, "ddp")
    check_supported("dpo", dpo_lora, "ddp")
    # DeepSpeed layouts need the package
    monkeypatch.setattr(launch.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UnsupportedLayout, match="deepspeed package is not installed"):
        check_supported("ppo", ppo, "zero3")
    monkeypatch.setattr(launch.importlib.util, "find_spec", lambda name: object())
    check_supported("ppo", ppo, "zero3")
    with pytest.raises(UnsupportedLayout, match="use_lora with zero3"):
        check_supported("dpo", dpo_lora, "zero3")
