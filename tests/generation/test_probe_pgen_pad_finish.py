"""A response the model fills with its own pad token (a pad that is not an end id: Llama-3's
<|finetune_right_pad_id|>, Gemma's <pad>) ran to max_new_tokens: the transformers backend must say
"length" and count every token, as model.generate itself does, not take the pads for a batch's
padding after an early stop (which only a stop string causes)."""

from __future__ import annotations

import pytest

from generation.backends.base import SamplingParams
from tests.zoo import zoo_model  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

CONVERSATION = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("name", ["llama3", "gemma"])
def test_a_reply_of_pad_tokens_ran_to_the_limit(zoo_model, name, one_thread):  # noqa: F811
    import torch

    from generation.backends.transformers import TransformersBackend

    backend = TransformersBackend(zoo_model(name), batch_size=4)
    pad = backend.tokenizer.pad_token_id
    assert pad is not None and pad not in backend.eos_ids
    vocab = backend.model.lm_head.out_features

    class PadHead(torch.nn.Module):  # a policy that learned to emit its pad token
        def forward(self, hidden):
            logits = torch.zeros(*hidden.shape[:-1], vocab, dtype=hidden.dtype)
            logits[..., pad] = 10.0
            return logits

    backend.model.lm_head = PadHead()
    steps = 6
    # the reference: model.generate with the family's own end ids, on the prompt alone
    text = backend.tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    ids = backend.tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        out = backend.model.generate(
            **ids, max_new_tokens=steps, do_sample=False, eos_token_id=backend.eos_ids, pad_token_id=pad
        )
    new = out[0, ids["input_ids"].shape[1] :].tolist()
    assert new == [pad] * steps and not set(new) & set(backend.eos_ids)  # never ended: ran to the limit

    [gens] = backend.generate([CONVERSATION], SamplingParams(temperature=0, max_new_tokens=steps))
    assert gens[0].finish_reason == "length"
    assert gens[0].native_finish_reason == "length"
    assert gens[0].completion_tokens == steps
