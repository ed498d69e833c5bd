"""A reward model reads its score at the last token that is not padding. A family that ships no pad
token (Llama-3, Mistral) got the EOS as its pad, so the EOS that ends every plain-text sequence was
taken for padding and the score was read one token early: a reply with its end token and the same
reply cut before it scored the same. The reward model's padding is now a token no sequence ends with."""

from __future__ import annotations

import pytest

from core.formatting import end_token_id, reward_input_ids
from training.runners.models import load_tokenizer
from training.runners.reward import load_reward_model
from training.services.evaluation import score_sequences

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

# (zoo family, what it lacks): real Llama-3 has no pad and no unk; Mistral/Llama-2 no pad but <unk>;
# the base zoo model with its pad removed; Phi-3 ships a pad, but it is its EOS.
NO_PAD = [
    ("llama3", {"pad_token": None, "unk_token": None}),
    ("mistral", {}),
    ("base", {"pad_token": None}),
    ("phi3", {}),
]


@pytest.fixture(scope="module")
def no_pad_model(tmp_path_factory):
    from generation.zoo import build_zoo_model

    built: dict[str, str] = {}

    def get(name: str, overrides: dict) -> str:
        key = f"{name}-{sorted(overrides.items())}"
        if key not in built:
            built[key] = str(build_zoo_model(name, tmp_path_factory.mktemp(f"nopad-{name}"), **overrides))
        return built[key]

    return get


def _scorer(path: str):
    import torch

    tokenizer = load_tokenizer(path)
    model = load_reward_model(path, tokenizer, trainable=False).float()
    torch.manual_seed(0)
    torch.nn.init.normal_(model.score.weight)  # a head that reads something
    return tokenizer, model


@pytest.mark.parametrize("name, overrides", NO_PAD)
@pytest.mark.parametrize("prompt", ["What is 2+2?", [{"role": "user", "content": "What is 2+2?"}]])
def test_the_score_is_read_at_the_end_token(no_pad_model, name, overrides, prompt):
    tokenizer, model = _scorer(no_pad_model(name, overrides))
    assert tokenizer.pad_token_id is not None
    ids = reward_input_ids(tokenizer, prompt, "4.", 128)
    assert tokenizer.pad_token_id not in {ids[-1], end_token_id(tokenizer), tokenizer.eos_token_id}
    assert model.config.pad_token_id == tokenizer.pad_token_id
    with_end, without_end = score_sequences(model, [ids, ids[:-1]], pad_id=tokenizer.pad_token_id)
    assert with_end != pytest.approx(without_end, abs=1e-4)  # before: equal for plain text
    # padding changes nothing: the same sequence alone and beside a longer one scores the same
    longer = reward_input_ids(tokenizer, prompt, "Four, as two and two make four. " * 4, 128)
    (alone,) = score_sequences(model, [ids], pad_id=tokenizer.pad_token_id)
    batched = score_sequences(model, [ids, longer], pad_id=tokenizer.pad_token_id)[0]
    assert batched == pytest.approx(alone, abs=1e-4)


def test_a_trained_reward_model_keeps_its_padding(no_pad_model, tmp_path):
    """The reward run saves the tokenizer it padded with; scoring with the saved model reads the
    same token it was trained to read."""
    import json

    from training.runners.configs import config_for
    from training.runners.reward import run

    base = no_pad_model("llama3", {"pad_token": None, "unk_token": None})
    data = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"Q{i}?", "chosen": "yes", "rejected": "no no"} for i in range(6)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rm"
    cfg = config_for(
        "reward",
        {
            "base_model": base,
            "dataset_path": str(data),
            "output_dir": str(out),
            "metrics_file": str(tmp_path / "m.jsonl"),
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "eval_fraction": 0.34,
            "max_length": 64,
            "use_cpu": True,
        },
    )
    run(cfg)
    saved = load_tokenizer(str(out))
    assert saved.pad_token_id is not None and saved.pad_token_id != saved.eos_token_id
    assert json.loads((out / "config.json").read_text())["pad_token_id"] == saved.pad_token_id
