#!/usr/bin/env python3
"""Prove that every environment file resolves on a fresh machine (CI; `make envs`, run by `make test`).

For each role's file this runs ``pip install --dry-run --ignore-installed --prefer-binary
--report`` against the package index, as a fresh machine would see it: this machine's pip
configuration (find-links to local wheels, constraint files) is ignored, the index URL and
certificate are kept. pip reads each wheel's metadata from the index (PEP 658) and downloads no
multi-GB CUDA wheel, so the resolutions (for this interpreter and platform: run it with the Python the
machines use)  take a few minutes in parallel. Then it checks the
result: every ``name==version`` pin in the file (and the files it includes) is what pip chose,
and packages that must not be in a role (TRL in the generation environment) are absent.

A pin that drifts (a release that changes its requirements, a pin edited in one file only) fails
here, in CI, and not on a user's GPU box. Needs the package index: without it the check fails,
unless PREFHUB_SKIP_ENV_RESOLVE=1 is set (say so in the build log: nothing was proved then).

    python scripts/check_envs.py                 # dev, gpu-train, generation (covering all five)
    python scripts/check_envs.py web vllm-serve  # any of them by name
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: role -> (file, packages that must not be installed in it)
ENVIRONMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "web": ("requirements.txt", ("vllm", "deepspeed")),
    "dev": ("requirements-dev.txt", ("vllm", "deepspeed")),
    "gpu-train": ("requirements/gpu-train.txt", ("vllm",)),
    "generation": ("requirements/generation.txt", ("trl", "peft", "deepspeed")),
    "vllm-serve": ("requirements/vllm-serve.txt", ("trl", "django")),
}
#: What `make envs` resolves. web is a subset of dev (requirements-dev.txt includes it) and
#: vllm-serve of generation (the same vLLM/torch/transformers pins): a solution of the larger file is
#: one of the smaller, so CI resolves only the three larger ones (each resolution takes minutes).
DEFAULT = ("dev", "gpu-train", "generation")
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;#]+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path, seen: set[Path] | None = None) -> dict[str, str]:
    """name -> version of every ``==`` pin in ``path`` and the files it includes with -r."""
    seen = seen if seen is not None else set()
    if path in seen:
        return {}
    seen.add(path)
    found: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            found.update(pins((path.parent / line.split(None, 1)[1]).resolve(), seen))
            continue
        match = PIN.match(line)
        if match:
            found[normalize(match.group(1))] = match.group(2)
    return found


def fresh_env() -> dict[str, str]:
    """This process's environment minus the pip settings a fresh machine would not have."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in ("PIP_INDEX_URL", "PIP_CERT")
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def resolve(role: str) -> tuple[str, list[str], float]:
    """(role, problems, seconds)."""
    rel, forbidden = ENVIRONMENTS[role]
    path = ROOT / rel
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"envcheck-{role}-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
            "--prefer-binary", "--report", str(report), "-r", str(path),
        ]  # fmt: skip
        proc = subprocess.run(cmd, env=fresh_env(), capture_output=True, text=True, timeout=1500)
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            return role, [f"pip could not resolve {rel}:\n{tail}"], seconds
        chosen = {
            normalize(item["metadata"]["name"]): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]
        }
    problems = [
        f"{rel}: pins {name}=={want} but pip chose {chosen.get(name, 'nothing')}"
        for name, want in sorted(pins(path).items())
        if chosen.get(name, "").split("+")[0] != want.split("+")[0]
    ]
    problems += [f"{rel}: {name} must not be in this environment" for name in forbidden if name in chosen]
    return role, problems, seconds


def main(argv: list[str]) -> int:
    roles = argv or list(DEFAULT)
    unknown = [r for r in roles if r not in ENVIRONMENTS]
    if unknown:
        print(f"unknown environment(s) {unknown}; known: {', '.join(ENVIRONMENTS)}", file=sys.stderr)
        return 2
    if os.environ.get("PREFHUB_SKIP_ENV_RESOLVE") == "1":
        print("!! PREFHUB_SKIP_ENV_RESOLVE=1: the environment files were NOT checked")
        return 0
    failed = False
    with ThreadPoolExecutor(max_workers=len(roles)) as pool:
        for role, problems, seconds in pool.map(resolve, roles):
            status = "ok" if not problems else "FAILED"
            print(f"== environment {role} ({ENVIRONMENTS[role][0]}): {status} in {seconds:.0f} s")
            for problem in problems:
                print(f"   {problem}")
            failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
