"""The command line that starts a runner: ``accelerate launch -m training.runners KIND --config FILE``.

With an accelerate config file (``accelerate config`` writes one; DeepSpeed/FSDP/multi-node settings
live there) the same run spreads over several GPUs or nodes; without one, ``num_processes`` local
processes are started (1 by default). ``launcher="python"`` runs the module directly (no accelerate),
which is what a single CPU process amounts to anyway.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


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
        cmd += ["--config_file", accelerate_config]
    else:
        cmd += ["--num_processes", str(num_processes), "--num_machines", "1", "--dynamo_backend", "no"]
        cmd += ["--mixed_precision", "no"]
        if num_processes > 1:
            cmd += ["--multi_gpu"]
    cmd += list(extra_launch_args)
    return cmd + runner
