"""A Hugging Face cache on disk without the network: the layout ``huggingface_hub`` reads
(``models--org--name/refs/main`` + ``snapshots/<commit>/...``), so ``try_to_load_from_cache`` and
``scan_cache_dir`` see the repo as downloaded. Tests use it for hub names the platform accepts
offline (``core.paths.usable_model``)."""

from __future__ import annotations

import json
from pathlib import Path

COMMIT = "0" * 40
CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 512}


def seed_hub_cache(
    cache: Path | str, repo_id: str, *, tokenizer: bool = True, config: dict | None = None
) -> Path:
    """Write ``repo_id`` into the cache folder ``cache``; returns its snapshot folder."""
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    (snapshot / "config.json").write_text(json.dumps(CONFIG if config is None else config))
    if tokenizer:
        (snapshot / "tokenizer.json").write_text("{}")
        (snapshot / "tokenizer_config.json").write_text("{}")
    return snapshot


def write_model_folder(folder: Path, *, config: dict | None = None, tokenizer: bool = True) -> Path:
    """A local folder shaped like a Hugging Face model (config.json + tokenizer files, no weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(CONFIG if config is None else config))
    if tokenizer:
        (folder / "tokenizer.json").write_text("{}")
        (folder / "tokenizer_config.json").write_text("{}")
    return folder
