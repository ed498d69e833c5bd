"""Token ids into a padded batch: the one rule behind the transformers backend's generation, PPO's
rollout queries and reward scoring.

No Django imports (the training runners, plain Python, use this module); torch is imported inside
the function that needs it.
"""

from __future__ import annotations

from typing import Any


def padded_batch(sequences: list[list[int]], pad_id: int, *, left: bool) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)``: ``sequences`` as rows of one long tensor, as wide as the
    longest, padded with ``pad_id`` on the left (``left``: a prompt then ends where generation
    starts) or on the right; the mask is 1 on the sequences' own tokens. On the CPU."""
    import torch

    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        cols = slice(width - len(ids), width) if left else slice(0, len(ids))
        input_ids[row, cols] = torch.tensor(ids, dtype=torch.long)
        attention[row, cols] = 1
    return input_ids, attention
