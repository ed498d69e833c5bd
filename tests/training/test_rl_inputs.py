"""What the RL runners feed their frozen scorers and value models.

RLOO/GRPO: a completion cut off at ``max_completion_length`` (no end id among TRL's
``completion_ids``) is scored WITHOUT the end token it never produced, exactly as PPO scores a
response that never ended, and loses ``missing_eos_penalty``; ``mask_truncated_completions``
reaches TRL. PPO: a value model started from a reward model whose tokenizer is not the policy's
(it would read the policy's ids as other tokens) is refused before anything trains, naming
``value_model``; a reward model sharing the policy's tokenizer still runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.runners.configs import ConfigError, config_for

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPT_CHAT = [{"role": "user", "content": "Is the sky blue?"}]
TEXT = "Yes it is blue and the sea is"


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    """The qwen zoo model, its tokenizer, and a frozen fp32 reward model on it with a random head
    (so different inputs get different scores)."""
    import torch

    from generation.zoo import build_zoo_model
    from training.runners.models import load_tokenizer
    from training.runners.reward import load_reward_model

    path = str(build_zoo_model("qwen", tmp_path_factory.mktemp("zoo-qwen")))
    tok = load_tokenizer(path)
    rm = load_reward_model(path, tok, trainable=False).float()
    torch.manual_seed(0)
    torch.nn.init.normal_(rm.score.weight)
    return path, tok, rm


def _spy_scores(monkeypatch, raw: list[float] | None = None):
    """Record every id list the RL runner's reward model scores (and, into ``raw``, its score)."""
    from training.runners import rl

    seen: list[list[int]] = []
    real = rl.score_sequences

    def spy(model, seqs, **kw):
        seen.extend(list(s) for s in seqs)
        out = real(model, seqs, **kw)
        if raw is not None:
            raw.extend(out)
        return out

    monkeypatch.setattr(rl, "score_sequences", spy)
    return seen


def _completion(prompt, text):
    return [{"role": "assistant", "content": text}] if isinstance(prompt, list) else text


# --- RLOO / GRPO: scoring a cut-off completion ------------------------------------------------------


@pytest.mark.parametrize("prompt", [PROMPT_CHAT, "Is the sky blue?"], ids=["chat", "plain"])
def test_rl_reward_scores_a_cut_off_completion_without_the_end_token(qwen, monkeypatch, prompt):
    from core.formatting import reward_input_ids, special_ids
    from training.runners import rl

    _path, tok, rm = qwen
    seen = _spy_scores(monkeypatch)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    cut = tok(TEXT, add_special_tokens=False)["input_ids"]  # what max_completion_length left: no end id
    ended = [*cut, end]
    fn = rl.reward_function(rm, tok, 64, lambda: __import__("torch").device("cpu"))
    comp = _completion(prompt, TEXT)
    rewards = fn([prompt, prompt], [comp, comp], completion_ids=[cut, ended])

    trained = reward_input_ids(tok, prompt, TEXT, 64)  # what reward training reads for a finished reply
    assert trained[-1] in special_ids(tok)
    assert seen[1] == trained  # a finished completion: exactly the reward-training ids, end token last
    assert seen[0][-1] not in special_ids(tok), tok.convert_ids_to_tokens(seen[0][-2:])
    assert seen[0] == trained[:-1]  # the cut-off one: the same ids without the end token
    assert rewards[0] != rewards[1]


def test_rl_reward_matches_ppo_reward_input(qwen, monkeypatch):
    """One reading of a sampled reply for both runners: RL scores the ids PPO's _reward_input builds."""
    from training.runners import rl
    from training.runners.ppo import PPORunner

    path, tok, rm = qwen
    seen = _spy_scores(monkeypatch)
    stop = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    cut = tok(TEXT, add_special_tokens=False)["input_ids"]
    fake = PPORunner.__new__(PPORunner)
    fake.tokenizer = fake.reward_tokenizer = tok
    fake.stop_ids = stop
    fake.cfg = config_for(
        "ppo", {"base_model": path, "reward_model": path, "output_dir": "x", "max_length": 64}
    )
    fn = rl.reward_function(rm, tok, 64, lambda: __import__("torch").device("cpu"))
    comp = _completion(PROMPT_CHAT, TEXT)
    fn([PROMPT_CHAT] * 2, [comp, comp], completion_ids=[cut, [*cut, stop[0]]])
    assert seen == [fake._reward_input(PROMPT_CHAT, cut), fake._reward_input(PROMPT_CHAT, [*cut, stop[0]])]


def test_rl_missing_eos_penalty_lowers_a_cut_off_completion_by_exactly_the_penalty(qwen):
    import torch

    from training.runners import rl

    path, tok, rm = qwen
    cfg = config_for(
        "rloo", {"base_model": path, "reward_model": path, "output_dir": "x", "missing_eos_penalty": 2.5}
    )
    assert cfg.missing_eos_penalty == 2.5
    end = tok.convert_tokens_to_ids("<|im_end|>")
    cut = tok(TEXT, add_special_tokens=False)["input_ids"]
    comp = _completion(PROMPT_CHAT, TEXT)
    args = ([PROMPT_CHAT] * 2, [comp, comp])
    ids = [cut, [*cut, end]]
    cpu = lambda: torch.device("cpu")  # noqa: E731
    plain = rl.reward_function(rm, tok, 64, cpu, missing_eos_penalty=None)(*args, completion_ids=ids)
    fined = rl.reward_function(rm, tok, 64, cpu, missing_eos_penalty=cfg.missing_eos_penalty)(
        *args, completion_ids=ids
    )
    assert fined[0] == pytest.approx(plain[0] - 2.5, abs=1e-6)
    assert fined[1] == plain[1]  # a finished completion is not fined


@pytest.mark.parametrize("kind", ["rloo", "grpo"])
def test_rl_config_takes_missing_eos_penalty_and_mask_truncated_completions(kind):
    base = {"base_model": "m", "reward_model": "r", "output_dir": "x"}
    cfg = config_for(kind, {**base, "missing_eos_penalty": 0.5, "mask_truncated_completions": True})
    assert cfg.missing_eos_penalty == 0.5 and cfg.mask_truncated_completions is True
    assert config_for(kind, {**base, "missing_eos_penalty": None}).missing_eos_penalty is None
    defaults = config_for(kind, base)
    assert defaults.missing_eos_penalty == config_for("ppo", base).missing_eos_penalty  # same default
    assert defaults.mask_truncated_completions is False  # TRL's default
    with pytest.raises(ConfigError, match="mask_truncated_completions"):
        config_for(kind, {**base, "mask_truncated_completions": "yes"})
    with pytest.raises(ConfigError, match="missing_eos_penalty"):
        config_for(kind, {**base, "missing_eos_penalty": "1"})


@pytest.mark.parametrize("kind", ["rloo", "grpo", "ppo"])
@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_missing_eos_penalty_is_validated_alike(kind, bad):
    with pytest.raises(ConfigError, match="missing_eos_penalty must be"):
        config_for(
            kind, {"base_model": "m", "reward_model": "r", "output_dir": "x", "missing_eos_penalty": bad}
        )


@pytest.mark.slow
def test_rloo_run_scores_cut_off_completions_without_end_token_and_passes_the_options(
    qwen, tmp_path, monkeypatch
):
    """End to end: what TRL's RLOO hands the reward function, and what the run hands TRL."""
    import trl

    from core.formatting import special_ids, stop_token_ids
    from training.runners import rl

    path, tok, _ = qwen
    raw: list[float] = []
    seen = _spy_scores(monkeypatch, raw)
    calls: list[dict] = []
    real_fn = rl.reward_function

    def spy_fn(*a, **kw):
        inner = real_fn(*a, **kw)

        def wrapped(prompts, completions, **kwargs):
            before = len(seen)
            out = inner(prompts, completions, **kwargs)
            calls.append(
                {
                    "ids": kwargs.get("completion_ids"),
                    "seqs": seen[before:],
                    "raw": raw[before:],
                    "rewards": out,
                }
            )
            return out

        return wrapped

    monkeypatch.setattr(rl, "reward_function", spy_fn)
    captured = []

    class SpyTrainer(trl.RLOOTrainer):
        def __init__(self, *a, **kw):
            captured.append(kw["args"])
            super().__init__(*a, **kw)

    monkeypatch.setattr(trl, "RLOOTrainer", SpyTrainer)
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps({"prompt": PROMPT_CHAT}) + "\n" for _ in range(4)))
    cfg = config_for(
        "rloo",
        {
            "base_model": path, "reward_model": path, "dataset_path": str(data),
            "output_dir": str(tmp_path / "out"), "use_cpu": True, "max_steps": 1, "num_generations": 2,
            "per_device_train_batch_size": 2, "max_completion_length": 3, "eval_fraction": 0.0,
            "learning_rate": 1e-3, "missing_eos_penalty": 3.0, "mask_truncated_completions": True,
        },
    )  # fmt: skip
    rl.run("rloo", cfg)
    assert captured and captured[0].mask_truncated_completions is True
    assert calls
    stops = set(stop_token_ids(tok))
    for call in calls:
        assert call["ids"] is not None
        for ids, seq, score, reward in zip(
            call["ids"], call["seqs"], call["raw"], call["rewards"], strict=True
        ):
            if not stops & set(ids):  # cut off at max_completion_length
                assert seq[-1] not in special_ids(tok), tok.convert_ids_to_tokens(seq[-2:])
                assert reward == pytest.approx(score - 3.0, abs=1e-6)
            else:
                assert seq[-1] in special_ids(tok)
                assert reward == score
    assert any(not stops & set(ids) for call in calls for ids in call["ids"])


# --- PPO: a value model started from the reward model ------------------------------------------------


def _ppo_cfg(base: str, reward: str, tmp_path: Path, **over):
    data = tmp_path / "p.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": [{"role": "user", "content": q}]}) + "\n" for q in ["A?", "B?"])
    )
    values = {
        "base_model": base, "reward_model": reward, "dataset_path": str(data),
        "output_dir": str(tmp_path / "out"), "use_cpu": True, "eval_fraction": 0.0,
        "rollout_batch_size": 2, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
        "ppo_epochs": 1, "max_new_tokens": 4, "max_length": 64,
    }  # fmt: skip
    values.update(over)
    return config_for("ppo", values)


def test_ppo_refuses_a_value_model_from_a_reward_model_with_another_vocabulary(qwen, minilm_path, tmp_path):
    from training.runners.ppo import PPORunner
    from training.runners.protocol import Emitter, RunnerError, describe_failure

    path, _, _ = qwen
    cfg = _ppo_cfg(path, minilm_path, tmp_path, value_model="reward")
    with pytest.raises(RunnerError, match="value_model") as err:
        PPORunner(cfg, Emitter())
    kind, message = describe_failure(err.value)
    assert kind == "config"
    assert "tokenizer" in message and 'value_model=""' in message  # what to do instead


def test_ppo_refuses_a_value_model_folder_with_another_vocabulary(qwen, minilm_path, tmp_path):
    """value_model=PATH is read with the policy's ids too: a folder whose tokenizer is not the
    policy's is refused the same way (it passed when its embedding table was merely large enough)."""
    from training.runners.ppo import PPORunner
    from training.runners.protocol import Emitter, RunnerError, describe_failure

    path, _, _ = qwen
    cfg = _ppo_cfg(path, path, tmp_path, value_model=minilm_path)
    with pytest.raises(RunnerError, match="value_model") as err:
        PPORunner(cfg, Emitter())
    kind, message = describe_failure(err.value)
    assert kind == "config" and minilm_path in message and 'value_model=""' in message


def test_ppo_cross_vocabulary_refusal_is_the_runs_error_line(qwen, minilm_path, tmp_path, capsys):
    """Through the runner's entry point: exit 1 and an error line of kind config naming value_model."""
    from training.runners.__main__ import main

    path, _, _ = qwen
    cfg = _ppo_cfg(path, minilm_path, tmp_path, value_model="reward")
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps(cfg.as_dict()))
    assert main(["ppo", "--config", str(conf)]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith('{"event": ')]
    assert lines[-1]["event"] == "error" and lines[-1]["kind"] == "config"
    assert "value_model" in lines[-1]["message"]
    assert not Path(cfg.output_dir).exists()


def test_ppo_cross_vocabulary_reward_model_is_fine_without_a_value_model_from_it(qwen, minilm_path, tmp_path):
    """The reward model re-tokenises decoded text, so a BERT scorer for a Qwen policy is fine;
    only a value model reading the policy's ids needs the policy's vocabulary."""
    from training.runners.ppo import PPORunner
    from training.runners.protocol import Emitter

    path, _, _ = qwen
    runner = PPORunner(_ppo_cfg(path, minilm_path, tmp_path, value_model=""), Emitter())
    assert runner.accelerator.unwrap_model(runner.model).value_model is None


@pytest.mark.slow
def test_ppo_value_model_from_a_reward_model_sharing_the_tokenizer_still_runs(qwen, tmp_path):
    from training.runners.ppo import PPORunner
    from training.runners.protocol import Emitter

    path, _, _ = qwen
    runner = PPORunner(_ppo_cfg(path, path, tmp_path, value_model="reward"), Emitter())
    assert runner.accelerator.unwrap_model(runner.model).value_model is not None
    ro = runner.rollout([PROMPT_CHAT, PROMPT_CHAT])
    stats = runner.step(ro)
    assert ro.values.shape == ro.response.shape
    assert all(v == v for v in stats.values())  # finite: no NaN


def test_held_out_reward_scores_a_cut_off_sample_as_training_does(qwen, monkeypatch):
    """``eval_reward`` (before and after training) reads a sampled completion as the training reward
    does: one that never ended is scored without the end token and loses ``missing_eos_penalty``
    (before: the end token was added and no penalty taken, so the held-out figure measured another
    objective than the one trained)."""
    import torch

    from core.formatting import stop_token_ids
    from training.runners import rl

    path, tok, rm = qwen
    reply = tok(TEXT, add_special_tokens=False)["input_ids"]
    end = stop_token_ids(tok)[0]

    class Policy(torch.nn.Module):
        def __init__(self, ids):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.ids = ids

        def generate(self, input_ids, attention_mask, **kwargs):
            return torch.cat([input_ids, torch.tensor([self.ids])], dim=1)

    cfg = config_for(
        "rloo",
        {"base_model": path, "reward_model": path, "output_dir": "x", "max_completion_length": len(reply) + 1,
         "missing_eos_penalty": 2.0},
    )  # fmt: skip
    raw: list[float] = []
    seen = _spy_scores(monkeypatch, raw)
    cut = rl._eval_reward(Policy(reply), tok, rm, tok, [PROMPT_CHAT], cfg)["reward"]
    ended = rl._eval_reward(Policy([*reply, end]), tok, rm, tok, [PROMPT_CHAT], cfg)["reward"]
    assert seen[0][-1] != end and seen[1][-1] == end
    assert cut == pytest.approx(raw[0] - 2.0, abs=1e-5)
    assert ended == pytest.approx(raw[1], abs=1e-5)
