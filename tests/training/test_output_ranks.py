"""The run's output folder when several processes train (one per GPU): every rank writes into the same
``<output_dir>.tmp-<launcher pid>``, and only when all of them are done may the main process rename it
to ``output_dir``; the run record is written once, by the main process.

Two real processes joined by a gloo process group (as ``accelerate launch`` sets them up on CPU); the
second rank is slow to finish its part, which is what a rank that still gathers or saves looks like.
Before the fix the main process renamed the folder as soon as its own part was done, so the slow rank
wrote into a folder that no longer existed (FileNotFoundError: the DPO run of
``test_multiprocess.py`` failed that way now and then).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from bench.common import free_port


def _rank(rank: int, world: int, port: int, out: str, errors: str) -> None:
    import torch.distributed as dist

    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from training.runners.models import atomic_output, write_run_record

    try:
        with atomic_output(out) as tmp:
            dist.barrier()  # training: the ranks step together
            if rank == 1:
                time.sleep(1.5)  # still saving its part when the main process is done
            (tmp / f"part-{rank}.txt").write_text(str(rank))
            write_run_record(tmp, "dpo", {"rank_that_wrote": rank}, {"loss": 0.5})
    except BaseException as exc:
        Path(errors, f"rank-{rank}.txt").write_text(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_every_rank_finishes_writing_before_the_folder_is_renamed(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "model"
    errors = tmp_path / "errors"
    errors.mkdir()
    os.environ["PREFHUB_LAUNCHER_PID"] = str(os.getpid())  # the id accelerate's parent gives both ranks
    try:
        mp.spawn(_rank, args=(2, free_port(), str(out), str(errors)), nprocs=2, join=True)
    except Exception:
        pytest.fail("a rank failed: " + "; ".join(p.read_text() for p in sorted(errors.iterdir())))
    finally:
        del os.environ["PREFHUB_LAUNCHER_PID"]
    assert sorted(p.name for p in out.iterdir()) == ["part-0.txt", "part-1.txt", "prefhub_run.json"]
    record = json.loads((out / "prefhub_run.json").read_text())
    assert record == {"kind": "dpo", "config": {"rank_that_wrote": 0}, "metrics": {"loss": 0.5}}
    assert not list(tmp_path.glob("model.tmp-*"))
