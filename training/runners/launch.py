"""The command line that starts a runner: ``accelerate launch -m training.runners KIND --config FILE``.

With an accelerate config file the same run spreads over several GPUs or nodes; without one,
``num_processes`` local processes are started (1 by default). The repository ships one config per
supported layout in ``training/accelerate/`` (``ACCELERATE_CONFIGS``: ``ddp``, ``zero2``, ``zero3``,
``fsdp``); ``accelerate_config`` takes one of those names or the path of any accelerate config file.
``launcher="python"`` runs the module directly (no accelerate), which is what a single CPU process
amounts to anyway.

What is supported where (``check_supported`` refuses the rest with a clear message, in the runner
itself, so a config file written by hand is checked too):

=========  =====  =========  =========================================  ========================
kind       DDP    ZeRO-2     ZeRO-3                                     FSDP
=========  =====  =========  =========================================  ========================
ppo        yes    yes        yes (policy gathered to sample and save)   no
reward     yes    yes        yes, not with use_lora                     yes, not with use_lora
dpo        yes    yes        yes, not with use_lora                     yes, not with use_lora
rloo/grpo  yes    yes        yes (TRL gathers)                          yes (TRL)
=========  =====  =========  =========================================  ========================
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from training.runners.configs import ConfigError
from training.runners.protocol import RunnerError

ACCELERATE_DIR = Path(__file__).resolve().parent.parent / "accelerate"
ACCELERATE_CONFIGS = {
    "ddp": ACCELERATE_DIR / "ddp.yaml",
    "zero2": ACCELERATE_DIR / "deepspeed_zero2.yaml",
    "zero3": ACCELERATE_DIR / "deepspeed_zero3.yaml",
    "fsdp": ACCELERATE_DIR / "fsdp.yaml",
}
BACKENDS = ("single", "ddp", "zero2", "zero3", "fsdp")


class UnsupportedLayout(RunnerError):
    """A runner / distributed layout / option combination this code refuses."""

    kind = "config"


def accelerate_config_path(name_or_path: str) -> str:
    """A shipped config's path for its name (``zero3``), else the path itself (which must exist)."""
    if name_or_path in ACCELERATE_CONFIGS:
        return str(ACCELERATE_CONFIGS[name_or_path])
    if not Path(name_or_path).is_file():
        raise ConfigError(
            f"accelerate_config {name_or_path!r} is neither a shipped config "
            f"({', '.join(ACCELERATE_CONFIGS)}) nor an existing file."
        )
    _check_config_file(name_or_path)
    return name_or_path


def _check_config_file(path: str) -> None:
    """An accelerate config file is a mapping in YAML (JSON when named ``.json``, as accelerate
    reads it); anything else would end ``accelerate launch`` with a traceback."""
    import yaml

    kind = "JSON" if path.endswith(".json") else "YAML"
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except UnicodeDecodeError:
        raise ConfigError(f"accelerate_config {path!r} is not UTF-8 text.") from None
    except OSError as exc:
        raise ConfigError(f"accelerate_config {path!r} cannot be read ({exc.strerror}).") from None
    except (ValueError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"accelerate_config {path!r} is not {kind}: {reason}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"accelerate_config {path!r} holds no mapping of accelerate settings.")


def backend_of_config_file(path: str) -> str:
    """The layout an accelerate config file asks for (one of ``BACKENDS``)."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    kind = str(data.get("distributed_type", "NO")).upper()
    if kind == "DEEPSPEED":
        stage = int((data.get("deepspeed_config") or {}).get("zero_stage", 0))
        return "zero3" if stage == 3 else "zero2"
    if kind == "FSDP":
        return "fsdp"
    return "ddp" if kind.startswith("MULTI_") else "single"


def distributed_backend(env: Mapping[str, str] | None = None) -> str:
    """The layout of the running process, from the variables ``accelerate launch`` sets."""
    env = os.environ if env is None else env

    def on(name: str) -> bool:
        return str(env.get(name, "")).lower() in ("1", "true", "yes")

    if on("ACCELERATE_USE_DEEPSPEED"):
        return "zero3" if str(env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "")) == "3" else "zero2"
    if on("ACCELERATE_USE_FSDP"):
        return "fsdp"
    return "ddp" if int(env.get("WORLD_SIZE", "1") or 1) > 1 else "single"


def check_supported(kind: str, cfg: Any, backend: str) -> None:
    """Refuse a (runner, layout, options) combination this code does not handle correctly."""
    if backend in ("zero2", "zero3") and importlib.util.find_spec("deepspeed") is None:
        raise UnsupportedLayout(
            f"The accelerate config asks for DeepSpeed ({backend}) but the deepspeed package is not "
            "installed; install it (pip install deepspeed) or use the ddp/fsdp configs."
        )
    if kind == "ppo" and backend == "fsdp":
        raise UnsupportedLayout(
            "PPO does not support FSDP: sampling needs the whole policy and this runner gathers it "
            "only under DeepSpeed ZeRO-3. Use training/accelerate/deepspeed_zero3.yaml (or ddp/zero2)."
        )
    if kind in ("reward", "dpo") and backend in ("zero3", "fsdp") and getattr(cfg, "use_lora", False):
        raise UnsupportedLayout(
            f"use_lora with {backend} is not supported: the merged model would be built from "
            "partitioned parameters. Train LoRA with ddp or zero2, or full weights with zero3/fsdp."
        )


def command(
    kind: str,
    config_path: str,
    *,
    python: str | None = None,
    launcher: str = "accelerate",
    num_processes: int = 1,
    accelerate_config: str = "",
    extra_launch_args: Sequence[str] = (),
) -> list[str]:
    python = python or sys.executable
    runner = ["-m", "training.runners", kind, "--config", config_path]
    if launcher == "python":
        return [python, *runner]
    if launcher != "accelerate":
        raise ValueError(f"Unknown launcher {launcher!r}: accelerate or python.")
    cmd = [python, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        cmd += ["--config_file", accelerate_config_path(accelerate_config)]
        if num_processes > 1:  # the shipped files say 8; the run's own count wins
            cmd += ["--num_processes", str(num_processes)]
    else:
        cmd += ["--num_processes", str(num_processes), "--num_machines", "1", "--dynamo_backend", "no"]
        cmd += ["--mixed_precision", "no"]
        if num_processes > 1:
            cmd += ["--multi_gpu"]
    cmd += list(extra_launch_args)
    return cmd + runner
