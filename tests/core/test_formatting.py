"""core.formatting across the checkpoint zoo: BOS, separators, end tokens, templates."""

from __future__ import annotations

import pytest

from core import formatting
from generation.zoo import ZOO

CONV = [{"role": "user", "content": "Is the sky blue?"}]
REPLY = [{"role": "assistant", "content": "Yes, on a clear day."}]


@pytest.fixture(scope="module")
def tokenizers(zoo_model):
    from transformers import AutoTokenizer

    return {name: AutoTokenizer.from_pretrained(zoo_model(name)) for name in ZOO}


@pytest.mark.parametrize("name", list(ZOO))
def test_plain_text_starts_with_bos_when_the_family_needs_it(tokenizers, name):
    tok = tokenizers[name]
    ids = formatting.reward_input_ids(tok, "What is 2+2?", "Four.", 64)
    if ZOO[name].needs_bos:
        assert ids[0] == tok.bos_token_id
        assert ids.count(tok.bos_token_id) == 1
    else:
        assert tok.bos_token_id is None or ids[0] != tok.bos_token_id


@pytest.mark.parametrize("name", list(ZOO))
def test_every_reward_sequence_ends_with_an_end_token(tokenizers, name):
    tok = tokenizers[name]
    stops = formatting.stop_token_ids(tok)
    for prompt, reply in (("What is 2+2?", "Four."), (CONV, REPLY), ("Human: hi\n\nAssistant:", "Hello")):
        ids = formatting.reward_input_ids(tok, prompt, reply, 64)
        assert ids[-1] in stops, (name, tok.decode(ids))
        # cut hard: the end token survives truncation
        short = formatting.reward_input_ids(tok, prompt, reply * 5 if isinstance(reply, str) else reply, 6)
        assert len(short) <= 6 and short[-1] in stops


def test_chat_sequences_end_at_end_of_turn_not_the_newline_after_it(tokenizers):
    """Nor at what follows the newline: Phi-3's template ends the text with its EOS."""
    for name in [n for n, spec in ZOO.items() if spec.chat]:
        tok = tokenizers[name]
        ids = formatting.reward_input_ids(tok, CONV, REPLY, 128)
        assert tok.convert_ids_to_tokens(ids[-1]) == ZOO[name].end_of_turn
        assert formatting.stop_token_ids(tok)[-1] == tok.convert_tokens_to_ids(ZOO[name].end_of_turn)


def test_llama3_end_of_turn_differs_from_eos_and_both_stop(tokenizers):
    tok = tokenizers["llama3"]
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    assert eot != tok.eos_token_id
    assert {eot, tok.eos_token_id} <= set(formatting.stop_token_ids(tok))


def test_generated_text_is_scored_like_the_training_pair(tokenizers):
    tok = tokenizers["qwen"]
    assert formatting.reward_input_ids(tok, CONV, "Yes, on a clear day.", 64) == formatting.reward_input_ids(
        tok, CONV, REPLY, 64
    )


def test_separators_for_plain_prompts():
    assert formatting.plain_response("question?", "Answer") == "\nAnswer"
    assert formatting.plain_response("Human: hi\n\nAssistant:", "Hello") == " Hello"
    assert formatting.plain_response("Human: hi\n\nAssistant:", " Hello") == " Hello"
    assert formatting.plain_response("question?\n", "Answer") == "Answer"
    assert formatting.plain_prompt(CONV) == "Human: Is the sky blue?\n\nAssistant:"


def test_base_model_without_template_renders_conversations_as_transcripts(tokenizers):
    tok = tokenizers["base"]
    text = tok.decode(formatting.reward_input_ids(tok, CONV, REPLY, 64))
    assert text == "<s>Human: Is the sky blue?\n\nAssistant: Yes, on a clear day.</s>"


def test_gemma_refuses_a_system_turn_clearly(tokenizers):
    with pytest.raises(formatting.FormattingError, match="System role not supported"):
        formatting.prompt_ids(tokenizers["gemma"], [{"role": "system", "content": "Be brief."}, *CONV])


def test_prompt_truncation_keeps_the_bos(tokenizers):
    tok = tokenizers["llama3"]
    ids = formatting.reward_input_ids(tok, "word " * 100, "Reply.", 16)
    assert len(ids) == 16 and ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id


def test_minilm_uses_cls_and_sep(minilm_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path)
    ids = formatting.reward_input_ids(tok, "What is 2+2?", "Four.", 64)
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and tok.eos_token_id is None
