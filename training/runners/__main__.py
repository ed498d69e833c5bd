"""``python -m training.runners <kind> --config JSON_FILE``: run one training job.

Meant to be started through ``accelerate launch`` (see ``training.runners.launch.command``), so the
same run scales to several GPUs or nodes with a DeepSpeed/FSDP accelerate config. Prints metric
lines as JSON (see ``training.runners.protocol``) and, last, a ``final`` line; exits 1 with an ``error``
line on failure (no model is left in the output directory), 130 when cancelled (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback

from training.runners.configs import CONFIGS, ConfigError, config_for
from training.runners.protocol import Emitter, describe_failure, install_cancel_handler

KINDS = tuple(CONFIGS)


def check_precision(cfg) -> None:
    """``bf16: true`` with ``use_cpu: false`` needs an accelerator with bf16; without one the trainer
    refuses it only after the data and the models are loaded. Checked first instead."""
    if cfg.bf16 is True and cfg.use_cpu is False:
        from transformers.utils import is_torch_bf16_gpu_available

        if not is_torch_bf16_gpu_available():
            raise ConfigError(
                "bf16 is true and use_cpu is false, but this machine has no accelerator with bf16: set "
                "use_cpu to true (bf16 autocast on the CPU) or bf16 to false (or null: bf16 where supported)."
            )


def run_kind(kind: str, cfg, emitter: Emitter) -> dict:
    from training.runners.launch import check_supported, distributed_backend

    check_supported(kind, cfg, distributed_backend())
    check_precision(cfg)
    if kind == "reward":
        from training.runners import reward

        return reward.run(cfg, emitter)
    if kind == "dpo":
        from training.runners import dpo

        return dpo.run(cfg, emitter)
    if kind == "ppo":
        from training.runners import ppo

        return ppo.run(cfg, emitter)
    from training.runners import rl

    return rl.run(kind, cfg, emitter)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.runners", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--config", required=True, help="JSON file with the run's options")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override one option")
    args = parser.parse_args(argv)

    emitter = Emitter()
    try:
        with open(args.config, encoding="utf-8") as fh:
            data = json.load(fh)
        for item in args.set:
            key, _, value = item.partition("=")
            data[key] = json.loads(value)
        cfg = config_for(args.kind, data)
    except (ConfigError, OSError, ValueError) as exc:
        emitter.error(f"Bad config: {exc}", "config")
        return 2
    emitter = Emitter(cfg.metrics_file)
    try:
        install_cancel_handler()
        run_kind(args.kind, cfg, emitter)
    except BaseException as exc:
        kind, message = describe_failure(exc)
        traceback.print_exc(file=sys.stderr)
        emitter.error(message, kind)
        return 130 if kind == "cancelled" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
